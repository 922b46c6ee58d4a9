#!/usr/bin/env bash
# The seven-method comparison with one budget for every method (docs/results.md, "All seven
# methods with the same budget"), scored on the in-domain test split (the papers' offline
# protocol) and on an OOD set (streamed through the Spatializer, with the localisation measures).
#
#   scripts/run_comparison.sh DATA OOD_DATA OUT [STEPS]
#   e.g. scripts/run_comparison.sh /work/data/simdiv /work/data/ood_val runs/compare_div 400
#
# Stages, in order: the shared visual trunk (pretrain_visual, 800 steps); the seven methods
# (two runs at a time, one thread each); the avconsistency semi-supervised runs at labelled
# fractions 0.5 and 0.25 and their supervised controls (the same labelled clips, no unlabelled
# ones); then every run's evaluations. Resumable: a finished stage leaves its output (a run's
# "done" file, an evaluation's JSON) and is skipped; a stopped run continues from its last.pt.
# Second seeds are run with SEEDS="mono2binaural sagm ..." (seed 1), once the first table says
# which methods are the best three.
set -euo pipefail

DATA=${1:?usage: run_comparison.sh DATA OOD_DATA OUT [STEPS]}
OOD=${2:?usage: run_comparison.sh DATA OOD_DATA OUT [STEPS]}
OUT=${3:?usage: run_comparison.sh DATA OOD_DATA OUT [STEPS]}
STEPS=${4:-400}
METHODS="mono2binaural apnet multitask sagm avconsistency geometry sepstereo"
VP=$OUT/visual_pretrain
mkdir -p "$OUT/runs" "$OUT/evals" "$OUT/bundles" "$OUT/logs"

if [ ! -f "$VP/resnet18.pth" ]; then
    resume=""
    [ -f "$VP/checkpoint.pt" ] && resume="--resume"
    OMP_NUM_THREADS=2 python -m streambin.train.pretrain_visual --data "$DATA" --out "$VP" --steps 800 \
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

# pairs NAME:RECIPE[:KEY=VALUE,...] ...: train two at a time.
pairs() {
    local specs=("$@") i
    for ((i = 0; i < ${#specs[@]}; i += 2)); do
        local pids=() spec
        for spec in "${specs[@]:i:2}"; do
            IFS=: read -r name recipe sets <<< "$spec"
            local args=()
            if [ -n "${sets:-}" ]; then
                IFS=, read -ra kv <<< "$sets"
                for s in "${kv[@]}"; do args+=(--set "$s"); done
            fi
            train "$name" "$recipe" "${args[@]}" &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p"; done
    done
}

specs=()
for m in $METHODS; do specs+=("$m:$m"); done
for f in 0.5 0.25; do
    specs+=("avc_frac$f:avconsistency:recipes.avc_labelled_fraction=$f")
    specs+=("avc_frac${f}_control:avconsistency:recipes.avc_labelled_fraction=$f,recipes.avc_unlabelled_clips=false")
done
for m in ${SEEDS:-}; do specs+=("${m}_seed1:$m:train.seed=1"); done
pairs "${specs[@]}"

# Evaluations: in-domain offline (the papers' protocol), OOD streamed with the localisation measures.
for spec in "${specs[@]}"; do
    name=${spec%%:*}
    ck=$OUT/runs/$name/best.pt
    e=$OUT/evals/$name
    [ -f "${e}_indomain.json" ] || OMP_NUM_THREADS=2 python -m streambin.train.evaluate --checkpoint "$ck" \
        --data "$DATA" --split test --max-clips 100 --no-progress --out "${e}_indomain.json" \
        > "$OUT/logs/${name}_eval_indomain.log" 2>&1
    [ -f "$OUT/bundles/$name/config.json" ] || python -m export.to_onnx --checkpoint "$ck" \
        --out "$OUT/bundles/$name" > "$OUT/logs/${name}_export.log" 2>&1
    [ -f "${e}_ood.json" ] || OMP_NUM_THREADS=2 python -m streambin.train.evaluate --bundle "$OUT/bundles/$name" \
        --data "$OOD" --split all --max-clips 100 --block-frames 2 --lookahead 2 --no-progress \
        --out "${e}_ood.json" > "$OUT/logs/${name}_eval_ood.log" 2>&1
done
echo "comparison finished: $OUT/evals"
