"""Scripts of scripts/experiments/ loaded as modules for their tests (the folder is no package)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_experiment(name: str):
    """``scripts/experiments/<name>.py`` as a fresh module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
