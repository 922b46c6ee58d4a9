"""The runtime (Spatializer on ONNX Runtime, the offline API, the CLI, the demo) runs with
torch and streambin.train absent, as it does for users who install streambin without [train];
the torch backend runs with torch but without streambin.train and OmegaConf."""

import subprocess
import sys
import textwrap

import pytest

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def run_with_imports_blocked(blocked: str, body: str) -> str:
    """Run ``body`` in a fresh interpreter where importing any module whose ``name`` makes the
    expression ``blocked`` true fails; ``body`` finds numpy as ``np``, a 1 s 440 Hz ``mono`` at
    ``rate`` 16 kHz and an RGB ``frame`` bright on the right. Returns the last line it prints:
    ``ok <the blocked modules that got imported anyway>``."""
    prelude = textwrap.dedent(f"""
        import importlib.abc, sys

        def blocked(name):
            return {blocked}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if blocked(name):
                    raise ImportError("blocked for the test: " + name)

        sys.meta_path.insert(0, Block())
        import numpy as np

        rate = 16000
        t = np.arange(rate, dtype=np.float32) / rate
        mono = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[:, 120:] = 255                       # something bright on the right
    """)
    epilogue = "\nprint('ok', sorted(m for m in sys.modules if blocked(m)))\n"
    res = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(body) + epilogue], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout.strip().splitlines()[-1]


def test_runtime_spatializes_with_torch_and_training_blocked(tmp_path):
    body = f"""
        import soundfile as sf
        import streambin
        import streambin.cli
        import streambin.demo

        out = streambin.spatialize(mono, rate, frames=frame)
        assert out.shape == (2, rate) and out.dtype == np.float32 and np.isfinite(out).all()
        assert np.abs(out).max() > 0.01

        sf.write({str(tmp_path / "in.wav")!r}, mono, rate)
        rc = streambin.cli.main(["spatialize", {str(tmp_path / "in.wav")!r}, "-o", {str(tmp_path / "out.wav")!r}, "--quiet"])
        assert rc == 0
        stereo, sr = sf.read({str(tmp_path / "out.wav")!r})
        assert sr == rate and stereo.shape == (rate, 2)
    """
    blocked = 'name.split(".")[0] == "torch" or name.startswith("streambin.train")'
    assert run_with_imports_blocked(blocked, body) == "ok []"


def test_torch_backend_runs_with_training_blocked(tiny_apnet):
    # The torch backend needs torch and streambin.nets only: a user with torch but without the
    # training package (or OmegaConf) runs an exported bundle's weights.pt and a training
    # checkpoint. The APNet model's visual_net "auto" exercises the recipe -> trunk table.
    pytest.importorskip("torch")
    bundle_dir, ckpt = tiny_apnet
    body = f"""
        import streambin

        for model in ({str(bundle_dir)!r}, {str(ckpt)!r}):
            with streambin.Spatializer(model, backend="torch", device="cpu", sample_rate=rate) as sp:
                assert sp.backend.name == "torch", sp.backend.name
                assert sp.backend.model.visual_net == "resnet18_dilated"
            out = streambin.spatialize(mono, rate, frames=frame, model=model, backend="torch", device="cpu")
            assert out.shape == (2, rate) and out.dtype == np.float32 and np.isfinite(out).all()
        assert "torch" in sys.modules
    """
    blocked = 'name.split(".")[0] == "omegaconf" or name.startswith("streambin.train")'
    assert run_with_imports_blocked(blocked, body) == "ok []"
