"""Recovering an object localiser from its exported graph (streambin.train.localiser_from_bundle),
fine-tuning it with fixed BatchNorm statistics, and the stronger augmentation of
scripts/experiments/object_localiser.py (its boxes follow the picture)."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from export.add_side_renderer import export_localiser  # noqa: E402
from streambin.nets.localiser import (INPUT_H, INPUT_W, TrunkLocaliser, build_localiser,  # noqa: E402
                                      load_localiser)
from streambin.train.localiser_from_bundle import (LocaliserRecoveryError, check_parity, main,  # noqa: E402
                                                   recover_localiser)

from .experiment_scripts import ROOT, load_experiment  # noqa: E402

DEFAULT_BUNDLE = ROOT / "streambin" / "models" / "default"


def _experiment():
    return load_experiment("object_localiser")


def _random_localiser(path, sounding_map=False, trunk="own"):
    """A width-8 localiser whose BatchNorms have non-trivial statistics and affine weights."""
    torch.manual_seed(1)
    net = build_localiser(8, sounding_map, trunk)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    torch.save({"net": net.state_dict(), "width": 8, "sounding_map": sounding_map, "trunk": trunk}, path)
    return path


@pytest.mark.parametrize("sounding_map", [False, True])
def test_recovered_localiser_reproduces_its_graph(tmp_path, sounding_map):
    ck = _random_localiser(tmp_path / "loc.pt", sounding_map)
    graph = tmp_path / "localiser.onnx"
    export_localiser(ck, graph, (INPUT_H, INPUT_W))
    net = recover_localiser(graph)
    assert net.sounding_map == sounding_map and net.head.weight.shape[1] == 8
    # the graph stores float16 weights: the recovered net matches the graph, not the float32 original
    assert check_parity(net, graph) < 1e-4
    # and the original's maps only to float16's precision
    original = load_localiser(str(ck))
    x = torch.randn(2, 3, INPUT_H, INPUT_W)
    with torch.no_grad():
        assert torch.allclose(net(x), original(x), atol=2e-2)


def test_an_imagenet_trunk_localiser_recovers_as_one(tmp_path, capsys):
    """The graph of the ImageNet-trunk localiser (36 Conv nodes, depthwise ones among them) comes
    back as a TrunkLocaliser, and its checkpoint says so, so fine-tuning it needs that trunk."""
    ck = _random_localiser(tmp_path / "loc.pt", trunk=TrunkLocaliser.TRUNK)
    export_localiser(ck, tmp_path / "localiser.onnx", (INPUT_H, INPUT_W))
    net = recover_localiser(tmp_path / "localiser.onnx")
    assert isinstance(net, TrunkLocaliser) and check_parity(net, tmp_path / "localiser.onnx") < 1e-4
    assert main(["--bundle", str(tmp_path), "--out", str(tmp_path / "recovered.pt")]) == 0
    assert "'efficientnet-lite0' trunk" in capsys.readouterr().out
    recovered = torch.load(tmp_path / "recovered.pt", weights_only=False)
    assert recovered["trunk"] == TrunkLocaliser.TRUNK and recovered["batchnorm_frozen"] is True
    assert isinstance(load_localiser(str(tmp_path / "recovered.pt")), TrunkLocaliser)
    _shards(tmp_path / "frames", n=12)
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "experiments" / "object_localiser.py"), "train",
                          "--frames", str(tmp_path / "frames"), "--init", str(tmp_path / "recovered.pt"),
                          "--out", str(tmp_path / "ft"), "--steps", "1", "--batch", "2", "--width", "8"],
                         capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert run.returncode != 0 and "pass --trunk efficientnet-lite0" in run.stderr
    assert not (tmp_path / "ft" / "last.pt").exists()


def test_shipped_localiser_recovers_through_the_cli(tmp_path):
    if not (DEFAULT_BUNDLE / "localiser.onnx").is_file():
        pytest.skip("the shipped default has no localiser graph")
    out = tmp_path / "default_loc.pt"
    assert main(["--bundle", str(DEFAULT_BUNDLE), "--out", str(out)]) == 0
    ck = torch.load(out, weights_only=False)
    assert ck["batchnorm_frozen"] is True
    net = load_localiser(str(out))
    assert check_parity(net, DEFAULT_BUNDLE / "localiser.onnx") < 1e-4


def test_recovery_refuses_what_is_not_a_localiser(tmp_path, capsys):
    garbage = tmp_path / "localiser.onnx"
    garbage.write_bytes(b"not a graph")
    with pytest.raises(LocaliserRecoveryError, match="not a readable ONNX graph"):
        recover_localiser(garbage)
    if (DEFAULT_BUNDLE / "visual.onnx").is_file():   # a real graph of another net: no 1 x 1 head last
        with pytest.raises(LocaliserRecoveryError, match="1 x 1 head"):
            recover_localiser(DEFAULT_BUNDLE / "visual.onnx")
    assert main(["--bundle", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "has no localiser" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def _shards(root, n=40, seed=0):
    """A shard of frames with one or two bright boxes on a textured ground."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 60, (n, INPUT_H, INPUT_W, 3), dtype=np.uint8)
    boxes = np.full((n, 6, 4), -1.0, np.float32)
    silent = np.zeros((n, 6), bool)
    for i in range(n):
        for j in range(1 + i % 2):
            x0, y0 = rng.uniform(0.05, 0.7), rng.uniform(0.1, 0.6)
            x1, y1 = x0 + rng.uniform(0.1, 0.25), y0 + rng.uniform(0.2, 0.35)
            boxes[i, j] = (x0, y0, x1, y1)
            silent[i, j] = j == 1
            frames[i, int(y0 * INPUT_H):int(y1 * INPUT_H), int(x0 * INPUT_W):int(x1 * INPUT_W)] = (230, 200, 40)
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "shard_0_00000000.npz", frames=frames, boxes=boxes, silent=silent)
    return frames, boxes, silent


def test_fine_tuning_a_recovered_localiser_keeps_its_batchnorm_statistics(tmp_path):
    ck = _random_localiser(tmp_path / "loc.pt")
    graph = tmp_path / "localiser.onnx"
    export_localiser(ck, graph, (INPUT_H, INPUT_W))
    assert main(["--bundle", str(tmp_path), "--out", str(tmp_path / "recovered.pt")]) == 0
    _shards(tmp_path / "frames")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "experiments" / "object_localiser.py"), "train",
                          "--frames", str(tmp_path / "frames"), "--init", str(tmp_path / "recovered.pt"),
                          "--out", str(tmp_path / "ft"), "--steps", "3", "--batch", "4", "--width", "8",
                          "--lr", "1e-3", "--checkpoint-every", "3", "--augment", "strong"],
                         capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert run.returncode == 0, run.stderr[-2000:]
    out = torch.load(tmp_path / "ft" / "last.pt", weights_only=False)
    assert out["step"] == 3 and out["batchnorm_frozen"] is True and out["augment"] == "strong"
    before = torch.load(tmp_path / "recovered.pt", weights_only=False)["net"]
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(before[k], out["net"][k]) for k in stats)
    assert not torch.equal(before["head.weight"], out["net"]["head.weight"])   # it did train


def test_zoom_moves_the_boxes_with_the_picture():
    exp = _experiment()
    rng = np.random.default_rng(3)
    frame = np.zeros((INPUT_H, INPUT_W, 3), np.uint8)
    box = np.full((6, 4), -1.0, np.float32)
    box[0] = (0.40, 0.30, 0.60, 0.70)
    frame[int(0.3 * INPUT_H):int(0.7 * INPUT_H), int(0.4 * INPUT_W):int(0.6 * INPUT_W)] = 255
    for _ in range(20):
        zoomed, nb, rows = exp._zoom(frame, box, rng)
        if not rows:
            continue
        x0, y0, x1, y1 = nb[0]
        inner = zoomed[int(y0 * INPUT_H) + 2:int(y1 * INPUT_H) - 2, int(x0 * INPUT_W) + 2:int(x1 * INPUT_W) - 2]
        assert inner.size and inner.mean() > 240          # the box still holds the object
        outside = zoomed.copy()
        outside[max(0, int(y0 * INPUT_H) - 2):int(y1 * INPUT_H) + 3, max(0, int(x0 * INPUT_W) - 2):int(x1 * INPUT_W) + 3] = 0
        assert outside.max() == 0                         # and nothing of it lies outside the box


def test_zoom_drops_a_box_cut_off_and_says_which_rows_it_kept():
    exp = _experiment()
    box = np.full((6, 4), -1.0, np.float32)
    box[0] = (0.00, 0.30, 0.10, 0.70)      # at the left edge: cut off by most zooms
    box[1] = (0.45, 0.30, 0.55, 0.70)      # in the middle: kept by every zoom
    frame = np.zeros((INPUT_H, INPUT_W, 3), np.uint8)
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(50):
        _, nb, rows = exp._zoom(frame, box, rng)
        assert 1 in rows and rows == sorted(rows)
        assert (nb[:, 0] >= 0).sum() == len(rows) and np.all(nb[len(rows):] == -1)
        seen.add(tuple(rows))
    assert (1,) in seen and (0, 1) in seen   # the edge box dropped by some zooms, kept by others


def test_background_swap_keeps_both_frames_objects_covered_or_shown(tmp_path):
    exp = _experiment()
    frames, boxes, _ = _shards(tmp_path / "frames", n=2, seed=4)
    own, other = frames[0].copy(), np.full_like(frames[1], 7)
    mixed = exp.swap_background(own, boxes[0], other, boxes[1])
    for bx in (boxes[0], boxes[1]):           # inside either frame's objects: the own frame's pixels
        for x0, y0, x1, y1 in bx[bx[:, 0] >= 0]:
            sl = np.s_[int(y0 * INPUT_H):int(y1 * INPUT_H), int(x0 * INPUT_W):int(x1 * INPUT_W)]
            assert np.array_equal(mixed[sl], own[sl])
    away = ~(exp._object_mask(boxes[0]) | exp._object_mask(boxes[1]))
    assert away.any() and np.all(mixed[away] == 7)   # elsewhere the other frame's background


def test_strong_augmentation_keeps_boxes_and_flags_consistent(tmp_path):
    exp = _experiment()
    frames, boxes, silent = _shards(tmp_path / "frames", n=16, seed=2)
    f, b, s = exp.augment_strong(frames, boxes, np.random.default_rng(0), silent)
    assert f.shape == frames.shape and f.dtype == np.uint8 and b.shape == boxes.shape and s.shape == silent.shape
    assert not np.array_equal(f, frames)
    for i in range(len(f)):
        valid = b[i, :, 0] >= 0
        assert valid.any() and np.all(b[i, valid] >= 0) and np.all(b[i, valid] <= 1)
        assert np.all(b[i, valid, 2] > b[i, valid, 0]) and np.all(b[i, valid, 3] > b[i, valid, 1])
        assert not s[i, ~valid].any()          # flags only on boxes that exist
        assert s[i].sum() <= silent[i].sum()   # a flag is never made up


def test_score_frames_pairs_each_checkpoint_with_the_first(tmp_path):
    ck = _random_localiser(tmp_path / "loc.pt")
    frames, boxes, _ = _shards(tmp_path / "frames", n=12, seed=5)
    out = tmp_path / "scores.json"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "experiments" / "object_localiser.py"), "score-frames",
                          "--frames", str(tmp_path / "frames"), "--checkpoint", str(ck), str(ck), "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert run.returncode == 0, run.stderr[-2000:]
    import json
    result = json.loads(out.read_text())["checkpoints"][str(ck)]
    # the same checkpoint twice: one entry, scored on all 12 frames
    assert result["frames"] == 12 and len(result["per_frame"]["centre_error_frac"]) == 12
    assert 0 <= result["centre_error_frac"] <= 1 and 0 <= result["peak_outside_boxes"] <= 1
    exp = _experiment()
    again = exp.frame_errors(load_localiser(str(ck)), frames, boxes)
    assert again["centre_error_frac"] == pytest.approx(result["centre_error_frac"], abs=1e-4)
    paired = exp.paired_against(again, again)
    assert paired["centre_error_frac"] == {"mean": 0.0, "se": 0.0}
    # by hand: the distance from the strongest peak to the nearest box centre
    cols, _ = exp.peaks(load_localiser(str(ck)), frames[:1], k=1, mirror_average=True)
    valid = boxes[0, :, 0] >= 0
    centres = (boxes[0, valid, 0] + boxes[0, valid, 2]) / 2
    assert again["per_frame"]["centre_error_frac"][0] == pytest.approx(np.abs(centres - cols[0, 0]).min(), abs=1e-4)


@pytest.mark.parametrize("extra, message", [
    (["--pool", "ood", "--mosaic-share", "0.5"], "mosaic backgrounds"),
    (["--kind-pool", "background=ood", "--mosaic-share", "0.5"], "mosaic backgrounds"),
    (["--kind-pool", "face=ood"], "kind must be one of"),
])
def test_frames_refuses_bad_pools_before_any_worker(tmp_path, extra, message):
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "experiments" / "object_localiser.py"), "frames",
                          "--out", str(tmp_path / "frames"), "--count", "10", "--workers", "1", *extra],
                         capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert run.returncode != 0 and message in run.stderr, run.stderr[-2000:]
    assert not list((tmp_path / "frames").glob("shard_*.npz"))


def test_average_interpolates_two_localisers_and_refuses_other_nets(tmp_path):
    base = torch.load(_random_localiser(tmp_path / "base.pt"), weights_only=False)
    tuned = {**base, "net": {k: (v + 1.0 if v.is_floating_point() else v) for k, v in base["net"].items()},
             "batchnorm_frozen": True}
    torch.save(tuned, tmp_path / "tuned.pt")

    def run(*args):
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "experiments" / "object_localiser.py"),
                               "average", *args], capture_output=True, text=True, cwd=ROOT,
                              env={"PYTHONPATH": str(ROOT), "PATH": ""})

    done = run("--base", str(tmp_path / "base.pt"), "--tuned", str(tmp_path / "tuned.pt"),
               "--weight", "0.25", "--out", str(tmp_path / "avg.pt"))
    assert done.returncode == 0, done.stderr[-2000:]
    avg = torch.load(tmp_path / "avg.pt", weights_only=False)
    assert avg["width"] == 8 and avg["batchnorm_frozen"] is True and avg["averaged_from"]["weight"] == 0.25
    for k, v in base["net"].items():
        expected = v + 0.25 if v.is_floating_point() else v
        assert torch.allclose(avg["net"][k], expected, atol=1e-6), k
    load_localiser(str(tmp_path / "avg.pt"))  # it loads as a localiser
    torch.save({**base, "width": 16}, tmp_path / "other.pt")
    refused = run("--base", str(tmp_path / "base.pt"), "--tuned", str(tmp_path / "other.pt"),
                  "--weight", "0.5", "--out", str(tmp_path / "bad.pt"))
    assert refused.returncode != 0 and "different nets" in refused.stderr and not (tmp_path / "bad.pt").exists()
    refused = run("--base", str(tmp_path / "base.pt"), "--tuned", str(tmp_path / "tuned.pt"),
                  "--weight", "1.5", "--out", str(tmp_path / "bad.pt"))
    assert refused.returncode != 0 and "weight must be in [0, 1]" in refused.stderr
