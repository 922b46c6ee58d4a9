# The README's two commands. Both set everything up first (scripts/setup.sh is idempotent).
.PHONY: setup run test bench

setup:
	bash scripts/setup.sh

# Main job on the embedded default: see README.
run: setup
	.venv/bin/python benchmarks/latency.py --quick

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python benchmarks/latency.py
