#!/usr/bin/env bash
# The seven-method comparison with one budget for every method (docs/results.md, "All seven
# methods with the same budget"), scored on the in-domain test split (the papers' offline
# protocol) and on an OOD set, both with the localisation measures.
#
#   scripts/run_comparison.sh DATA OOD_DATA OUT [STEPS]
#   e.g. scripts/run_comparison.sh /work/data/simdiv /work/data/ood_val runs/compare_div 400
#
# Stages, in order: the shared visual trunk (pretrain_visual, VP_STEPS steps); the seven methods;
# the avconsistency semi-supervised runs at labelled fractions 0.5 and 0.25 and their supervised
# controls (the same labelled clips, no unlabelled ones). Runs go PARALLEL at a time (default 2,
# one thread each). Each run is evaluated as soon as it has trained, so a stopped comparison
# leaves every finished run scored. Resumable: a finished stage leaves its output (a run's "done"
# file, an evaluation's JSON) and is skipped; a stopped run continues from its last.pt. Second
# seeds are run with SEEDS="mono2binaural sagm ..." (seed 1), once the first table says which
# methods are the best three.
#
# Settings from the environment: VP_STEPS (trunk pretraining steps, default 800), EVAL_CLIPS
# and OOD_CLIPS (the first N in-domain test clips and OOD clips scored, default 100 each),
# LATERAL_CLIPS (default 0 = none: also score the lateral single-source clips among the first N
# OOD clips, <name>_ood_lateral.json, so the localisation measures count more clips), ONLY
# (run names, e.g. ONLY="sepstereo avc_frac0.5": train and evaluate just these, so that runs can
# be given to whichever core is free), PARALLEL (runs at a time, default 2; two invocations with
# PARALLEL=1 and different ONLY lists keep both cores busy without one waiting for the other).
set -euo pipefail

DATA=${1:?usage: run_comparison.sh DATA OOD_DATA OUT [STEPS]}
OOD=${2:?usage: run_comparison.sh DATA OOD_DATA OUT [STEPS]}
OUT=${3:?usage: run_comparison.sh DATA OOD_DATA OUT [STEPS]}
STEPS=${4:-400}
VP_STEPS=${VP_STEPS:-800}
EVAL_CLIPS=${EVAL_CLIPS:-100}
OOD_CLIPS=${OOD_CLIPS:-100}
LATERAL_CLIPS=${LATERAL_CLIPS:-0}
[[ "$LATERAL_CLIPS" =~ ^[0-9]+$ ]] || { echo "LATERAL_CLIPS must be a number of clips, got: $LATERAL_CLIPS" >&2; exit 2; }
PARALLEL=${PARALLEL:-2}
[[ "$PARALLEL" =~ ^[1-9][0-9]*$ ]] || { echo "PARALLEL must be a positive integer, got: $PARALLEL" >&2; exit 2; }
METHODS="mono2binaural apnet multitask sagm avconsistency geometry sepstereo"
VP=$OUT/visual_pretrain
mkdir -p "$OUT/runs" "$OUT/evals" "$OUT/logs"

# The runs: the seven methods, the semi-supervised pairs, optional second seeds (ONLY: a subset).
specs=()
for m in $METHODS; do specs+=("$m:$m"); done
for f in 0.5 0.25; do
    specs+=("avc_frac$f:avconsistency:recipes.avc_labelled_fraction=$f")
    specs+=("avc_frac${f}_control:avconsistency:recipes.avc_labelled_fraction=$f,recipes.avc_unlabelled_clips=false")
done
for m in ${SEEDS:-}; do specs+=("${m}_seed1:$m:train.seed=1"); done
if [ -n "${ONLY:-}" ]; then
    chosen=()
    for spec in "${specs[@]}"; do
        [[ " $ONLY " == *" ${spec%%:*} "* ]] && chosen+=("$spec")
    done
    [ ${#chosen[@]} -gt 0 ] || { echo "ONLY names no run of the comparison: $ONLY" >&2; exit 2; }
    specs=("${chosen[@]}")
fi

if [ ! -f "$VP/resnet18.pth" ]; then
    resume=""
    [ -f "$VP/checkpoint.pt" ] && resume="--resume"
    OMP_NUM_THREADS=2 python -m streambin.train.pretrain_visual --data "$DATA" --out "$VP" --steps "$VP_STEPS" \
        --num-workers 1 --no-progress $resume > "$OUT/logs/visual_pretrain.log" 2>&1
fi

# train NAME RECIPE [--set KEY=VALUE ...]: one method, one thread.
train() {
    local name=$1 recipe=$2 dir=$OUT/runs/$1
    shift 2
    [ -f "$dir/done" ] && return 0
    if [ -f "$dir/last.pt" ]; then
        OMP_NUM_THREADS=1 python -m streambin.train --recipe "$recipe" --data "$DATA" --resume "$dir/last.pt" \
            --out "$dir" --max-steps "$STEPS" --no-progress >> "$OUT/logs/$name.log" 2>&1
    else
        OMP_NUM_THREADS=1 python -m streambin.train --recipe "$recipe" --data "$DATA" --config configs/compare_cpu.yaml \
            --set model.imagenet_weights="$VP/resnet18.pth" --set train.val_every_steps=200 \
            --set train.checkpoint_every_steps=100 "$@" --out "$dir" --max-steps "$STEPS" --no-progress \
            > "$OUT/logs/$name.log" 2>&1
    fi
    touch "$dir/done"
}

# evaluate NAME: the papers' offline protocol with the localisation measures, on the in-domain test
# split and on the OOD set; one thread, so that two can run beside each other. (The OOD set is
# scored offline too: streaming through the Spatializer costs about twice as much, and the
# engine's streamed output stays within 1% of the offline protocol, docs/results.md.)
evaluate() {
    local name=$1 ck=$OUT/runs/$1/best.pt e=$OUT/evals/$1
    [ -f "${e}_indomain.json" ] || OMP_NUM_THREADS=1 python -m streambin.train.evaluate --checkpoint "$ck" \
        --data "$DATA" --split test --max-clips "$EVAL_CLIPS" --no-progress --out "${e}_indomain.json" \
        > "$OUT/logs/${name}_eval_indomain.log" 2>&1
    [ -f "${e}_ood.json" ] || OMP_NUM_THREADS=1 python -m streambin.train.evaluate --checkpoint "$ck" \
        --data "$OOD" --split all --max-clips "$OOD_CLIPS" --no-progress --out "${e}_ood.json" \
        > "$OUT/logs/${name}_eval_ood.log" 2>&1
    if [ "$LATERAL_CLIPS" -gt 0 ] && [ ! -f "${e}_ood_lateral.json" ]; then
        OMP_NUM_THREADS=1 python -m streambin.train.evaluate --checkpoint "$ck" --data "$OOD" --split all \
            --max-clips "$LATERAL_CLIPS" --lateral-only --no-progress --out "${e}_ood_lateral.json" \
            > "$OUT/logs/${name}_eval_ood_lateral.log" 2>&1
    fi
}

# batches NAME:RECIPE[:KEY=VALUE,...] ...: train and evaluate PARALLEL at a time.
batches() {
    local specs=("$@") i
    for ((i = 0; i < ${#specs[@]}; i += PARALLEL)); do
        local pids=() spec
        for spec in "${specs[@]:i:PARALLEL}"; do
            IFS=: read -r name recipe sets <<< "$spec"
            local args=()
            if [ -n "${sets:-}" ]; then
                IFS=, read -ra kv <<< "$sets"
                for s in "${kv[@]}"; do args+=(--set "$s"); done
            fi
            { train "$name" "$recipe" "${args[@]}" && evaluate "$name"; } &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p"; done
    done
}

batches "${specs[@]}"

echo "comparison finished: $OUT/evals"
