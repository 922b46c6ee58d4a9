"""benchmarks/train_denormals.py: counts denormal activations and times both settings side by side."""

import json

import pytest

torch = pytest.importorskip("torch")

from benchmarks import train_denormals  # noqa: E402


def _checkpoint(path, scale_head: float):
    """A tiny Mono2Binaural checkpoint; its U-Net's last convolution scaled by ``scale_head``."""
    from streambin.train.build import build_generator
    from streambin.train.checkpoint import save_checkpoint
    from streambin.train.config import load_config

    cfg = load_config(None, ["recipe=mono2binaural", "model.arch=unet", "model.ngf=4",
                             "model.visual_size=[32,64]"])
    torch.manual_seed(0)
    model = build_generator(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("unet.head.0."):
                p.mul_(scale_head)
    save_checkpoint(str(path), config=cfg, model=model)
    return str(path)


def test_counts_denormals_and_writes_both_timings(tmp_path):
    if not torch.set_flush_denormal(True):
        pytest.skip("torch cannot flush denormals on this CPU (not x86 with SSE3)")
    torch.set_flush_denormal(False)
    normal = _checkpoint(tmp_path / "normal.pt", 1.0)
    tiny = _checkpoint(tmp_path / "tiny.pt", 1e-40)  # the head's outputs land in the denormal range
    out = tmp_path / "result.json"
    assert train_denormals.main(["--checkpoints", f"{normal},{tiny}", "--repeats", "1", "--batch", "2",
                                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["machine"]["cores"] >= 1 and result["settings"]["repeats"] == 1
    normal_row, tiny_row = result["rows"]
    assert normal_row["denormal_activations"]["denormal"] == 0
    assert tiny_row["denormal_activations"]["denormal"] > 0
    assert tiny_row["denormal_activations"]["total"] == normal_row["denormal_activations"]["total"] > 0
    for row in result["rows"]:
        for kind in ("inference_ms", "train_step_ms"):
            t = row[kind]
            assert t["denormals_kept"] > 0 and t["denormals_flushed"] > 0
            assert t["kept_over_flushed"] == pytest.approx(t["denormals_kept"] / t["denormals_flushed"], rel=0.01)
    # the benchmark leaves torch's default (denormals computed) behind
    assert float((torch.tensor([1e-39]) * 1.0).item()) != 0.0


def test_refuses_missing_checkpoints(tmp_path):
    with pytest.raises(SystemExit):
        train_denormals.main(["--checkpoints", str(tmp_path / "none.pt")])
