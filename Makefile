# The README's two commands. Both set up what they need first (scripts/setup.sh is idempotent):
# `make run` only the runtime (no torch, no training or test extras), `make test` everything.
.PHONY: setup setup-run run test bench

setup:
	bash scripts/setup.sh

setup-run:
	bash scripts/setup.sh --run

# Main job: the shipped example scene through the default model (ONNX Runtime, CPU): a binaural
# wav, and the scene's video with the binaural track.
run: setup-run
	.venv/bin/python -m streambin spatialize examples/scene.wav --video examples/scene.mp4 -o scene_binaural.wav
	.venv/bin/python -m streambin spatialize examples/scene.wav --video examples/scene.mp4 -o scene_binaural.mp4

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python benchmarks/latency.py
