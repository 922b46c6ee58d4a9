# The README's two commands. Both set everything up first (scripts/setup.sh is idempotent).
.PHONY: setup run test bench

setup:
	bash scripts/setup.sh

# Main job: the shipped example scene through the default model (ONNX Runtime, CPU).
run: setup
	.venv/bin/python -m streambin spatialize examples/scene.wav --video examples/scene.mp4 -o scene_binaural.wav
	.venv/bin/python -m streambin spatialize examples/scene.wav --video examples/scene.mp4 -o scene_binaural.mp4

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python benchmarks/latency.py
