#!/usr/bin/env bash
# Set up streambin on a fresh Debian/Ubuntu machine, idempotently:
#   1. Debian packages: KissFFT headers (native extension), libmysofa1 and
#      soundscaperenderer-common (the measured HRIRs the scene generator's heads and their
#      tests use: MIT KEMAR; TU Berlin KEMAR and FABIAN), PortAudio (live demo), pkg-config.
#      With --run only KissFFT and pkg-config (what `make run` needs).
#      With --with-assets also the large real-sound/photo packages the training-data
#      generator reads (tux paint stamps and templates, a SoundFont, wallpaper photographs,
#      espeak-ng; see streambin/train/sim/assets.py).
#   2. A virtual environment in .venv with torch==2.13.0 installed FIRST and explicitly
#      (a looser requirement would pull several GB of CUDA wheels), then streambin itself
#      (editable, building streambin._C) with its train/demo/dev extras.
#      When nvcc exists, nvidia-cufft is installed too so the CUDA sources are compiled.
#      With --run: streambin and its runtime dependencies only (ONNX Runtime, PyAV, ...; no
#      torch, no extras): what `make run` needs. A later run without --run adds the rest.
# Usage: scripts/setup.sh [--run | --with-assets]
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_ASSETS=0
RUN_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --with-assets) WITH_ASSETS=1 ;;
    --run) RUN_ONLY=1 ;;
    *) echo "usage: scripts/setup.sh [--run | --with-assets]" >&2; exit 2 ;;
  esac
done

if [ "$RUN_ONLY" = 1 ]; then
  debs=(libkissfft-dev pkg-config)
else
  debs=(libkissfft-dev libmysofa1 libportaudio2 pkg-config)
fi
if [ "$WITH_ASSETS" = 1 ]; then
  # Photo cut-outs with their sounds, instrument samples, background photographs (wallpaper
  # collections and Tux Paint's photo templates) and a speech synthesiser for talkers.
  debs+=(tuxpaint-stamps-default tuxpaint-data fluid-soundfont-gm espeak-ng
         gnome-backgrounds mate-backgrounds plasma-workspace-wallpapers ukui-wallpapers
         lomiri-wallpapers lomiri-wallpapers-20.04 sway-backgrounds)
fi
# Packages wanted for their data only, without what they recommend: the SoundScape Renderer's
# measured HRIRs (TU Berlin KEMAR and FABIAN heads of streambin/train/sim/heads.py; the
# renderer itself, which it recommends, would bring JACK).
debs_norec=(soundscaperenderer-common)
if [ "$WITH_ASSETS" = 1 ]; then
  # Recorded sound effects and spoken words (streambin/train/sim/recordings.py); some
  # recommend their games, which training does not need.
  debs_norec+=(heroes-sound-effects oxygen-sounds sound-theme-freedesktop frozen-bubble-data
               pingus-data chromium-bsu-data abe-data tuxtype-data klettres-data ktuberling-data
               openclipart-png)  # clip-art objects (streambin/train/sim/clipart.py)
fi
[ "$RUN_ONLY" = 1 ] && debs_norec=()
missing=(); missing_norec=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for p in "${debs_norec[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_norec+=("$p")
done
if [ "$(( ${#missing[@]} + ${#missing_norec[@]} ))" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]} ${missing_norec[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  if [ "${#missing[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ "${#missing_norec[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${missing_norec[@]}" >/dev/null
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip setuptools wheel
if [ "$RUN_ONLY" = 1 ]; then
  if ! .venv/bin/python -c "import streambin.cli, onnxruntime, av" 2>/dev/null; then
    echo "setup: installing streambin for running (building streambin._C)"
    $PIP install -q "pybind11>=2.11"
    $PIP install -q --no-build-isolation -e .
  fi
  .venv/bin/python -c "import streambin; print('setup: streambin', streambin.__version__, '(runtime)')"
  exit 0
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  echo "setup: installing torch==2.13.0 (CPU build)"
  $PIP install -q torch==2.13.0
fi
$PIP install -q "pybind11>=2.11"
if command -v nvcc >/dev/null 2>&1; then
  $PIP install -q nvidia-cufft
fi
echo "setup: installing streambin (building streambin._C)"
$PIP install -q --no-build-isolation -e ".[train,demo,dev]"
.venv/bin/python -c "import streambin, streambin.dsp as d; print('setup: streambin', streambin.__version__, '| _C built with CUDA:', d.has_cuda())"
