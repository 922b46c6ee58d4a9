"""The runtime (Spatializer on ONNX Runtime, the offline API, the CLI, the demo) runs with
torch and streambin.train absent, as it does for users who install streambin without [train]."""

import subprocess
import sys
import textwrap

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_runtime_spatializes_with_torch_and_training_blocked(tmp_path):
    code = textwrap.dedent(f"""
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] == "torch" or name.startswith("streambin.train"):
                    raise ImportError("blocked for the test: " + name)

        sys.meta_path.insert(0, Block())
        import numpy as np
        import soundfile as sf
        import streambin
        import streambin.cli
        import streambin.demo

        rate = 16000
        t = np.arange(rate, dtype=np.float32) / rate
        mono = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[:, 120:] = 255                       # something bright on the right
        out = streambin.spatialize(mono, rate, frames=frame)
        assert out.shape == (2, rate) and out.dtype == np.float32 and np.isfinite(out).all()
        assert np.abs(out).max() > 0.01

        sf.write({str(tmp_path / "in.wav")!r}, mono, rate)
        rc = streambin.cli.main(["spatialize", {str(tmp_path / "in.wav")!r}, "-o", {str(tmp_path / "out.wav")!r}, "--quiet"])
        assert rc == 0
        stereo, sr = sf.read({str(tmp_path / "out.wav")!r})
        assert sr == rate and stereo.shape == (rate, 2)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] == "torch" or m.startswith("streambin.train"))
        print("ok", leaked)
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1].split() == ["ok", "[]"]
