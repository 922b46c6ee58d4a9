#!/usr/bin/env bash
# Regenerate the generated data sets that docs/results.md's runs were trained and scored on.
# Nothing here is downloaded: every clip is drawn by streambin.train.simulate from the Debian
# packages `scripts/setup.sh --with-assets` installs, clip i from default_rng([seed, i]), so the
# same command gives the same clip on any machine with the same packages.
#
#   scripts/make_datasets.sh eval  ROOT   the evaluation sets: ROOT/ood_val (200 held-out-pool
#                                         scenes, 40 per scenario), ROOT/ood_confirm and
#                                         ROOT/ood_confirm2 (two more draws of the same recipe,
#                                         the confirmation sets) and the 200 test clips of
#                                         ROOT/simbin (the first set's in-domain test split)
#   scripts/make_datasets.sh train ROOT   ROOT/simall: every training scene family in one root,
#                                         8,700 clips (6,960 train / 870 val / 870 test), and
#                                         splits/val320.txt, the first 320 validation clips
#
# Each family has its own clip-index range, so they share one root without name clashes, and the
# split rule (a function of the clip index and seed) gives every clip the split it had in the
# smaller sets the results name (simdiv, simxs, simleg, simsyn). About 35 min on 2 cores for
# `train`, about 3 min for `eval` (measured: ood_val 1 min, each confirmation set 0.5-1 min). Regenerating a clip rewrites it with the same bytes; to continue a
# cut-off family, run its line by hand with --start at its first missing clip.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/make_datasets.sh {eval|train} ROOT [--workers N]" >&2; exit 2; }
[ $# -ge 2 ] || usage
what=$1; root=$2; shift 2
workers=2
if [ $# -gt 0 ]; then
  [ "$1" = "--workers" ] && [ $# -eq 2 ] || usage
  workers=$2
fi
PY=${PYTHON:-.venv/bin/python}
sim() { "$PY" -m streambin.train.simulate --seconds 10 --rooms --moving --workers "$workers" "$@"; }

case "$what" in
  eval)
    sim --out "$root/ood_val" --clips 200 --seed 2026 --pool ood --mix validation
    sim --out "$root/ood_confirm" --clips 200 --seed 2027 --pool ood --mix validation
    sim --out "$root/ood_confirm2" --clips 200 --seed 2028 --pool ood --mix validation
    # The first training set's test clips, byte for byte (--legacy --pool all reproduces it).
    sim --out "$root/simbin" --clips 2000 --seed 0 --legacy --pool all --only-split test
    ;;
  train)
    out="$root/simall"
    train_sim() { sim --out "$out" --seed 100 "$@"; }
    train_sim --clips 2500 --start 0                          # diverse scenes (simdiv)
    train_sim --clips 2200 --start 5000 --legacy --pool train # first-set-style (simdiv 5000-5699, simleg)
    train_sim --clips 1200 --start 30000 --extra-sounds 0.5   # recorded sounds (simxs)
    train_sim --clips 1200 --start 32000 --extra-sounds 1.0   # recorded sounds (simxs)
    train_sim --clips 1600 --start 40000 --synth-sounds 1.0   # synthesised sounds (simsyn)
    "$PY" -m streambin.train.simulate --out "$out" --splits-only --seed 100
    head -n 320 "$out/splits/val.txt" > "$out/splits/val320.txt"
    ;;
  *) usage ;;
esac
