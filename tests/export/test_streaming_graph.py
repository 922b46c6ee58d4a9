"""Audio graphs shaped for streaming: masks of the context's last K frames only
(``model.audio(..., last_frames=K)``, ``python -m export.to_onnx --output-frames K``, config.json
``output_frames``) and one context for several features (``shared_context``). Both give the
same masks as the plain graph, and the engine the same streamed output."""

import json
import shutil

import numpy as np
import pytest
import torch

from export.to_onnx import ExportError, export_bundle
from streambin import Spatializer
from streambin.bundle import BundleError, load_bundle, write_config
from streambin.nets import BinauralGenerator
from streambin.nets.unet import decoder_starts
from tests.export.factory import make_checkpoint, make_tiny_bundle, perturb_weights, tiny_config

T = 64


def _generator(arch="unet", mirror_average=False):
    gen = BinauralGenerator(arch=arch, ngf=4, visual_size=(32, 64), mirror_average=mirror_average)
    perturb_weights(gen, seed=3)
    return gen.eval()


def test_decoder_starts_follow_the_transposed_convolution_footprint():
    assert decoder_starts(64, 64) == (0, 0, 0, 0, 0)
    assert decoder_starts(64, 16) == (0, 2, 5, 11, 23)
    assert decoder_starts(64, 1) == (1, 3, 7, 15, 31)
    for bad in (0, 65):
        with pytest.raises(ValueError, match=r"last_frames must be in \[1, 64\]"):
            decoder_starts(64, bad)


@pytest.mark.parametrize("mirror_average", [False, True])
def test_last_frames_are_the_whole_context_masks_last_columns(mirror_average):
    gen = _generator(mirror_average=mirror_average)
    g = torch.Generator().manual_seed(0)
    spec = torch.randn(3, 2, 257, T, generator=g)
    frames = torch.randint(0, 256, (3, 32, 64, 3), dtype=torch.uint8, generator=g)
    with torch.inference_mode():
        feature = gen.visual(frames)
        full = gen.audio(spec, feature)
        # Real masks, not constants (mirror averaging leaves only the part that follows the
        # picture, much smaller with random weights): tolerances are relative to their size.
        size = float(full.abs().max())
        assert size > 1e-4 and full[..., -8:].std() > 0.05 * size
        for k in (1, 2, 3, 5, 8, 16, 17, 31, 33, 63, 64):
            part = gen.audio(spec, feature, last_frames=k)
            assert tuple(part.shape) == (3, 1, 2, 257, k)
            torch.testing.assert_close(part, full[..., T - k:], atol=1e-5 * size, rtol=0)
        # A column wrongly cut would differ: the context's older frames change the last masks.
        older = spec.clone()
        older[..., :T // 2] = 0
        assert (gen.audio(older, feature, last_frames=4) - full[..., -4:]).abs().max() > 1e-2 * size


def test_bad_last_frames_and_apnet_are_refused():
    gen = _generator()
    spec, feature = torch.zeros(1, 2, 257, T), torch.zeros(1, *gen.feature_shape)
    for bad in (0, T + 1, 2.0, True):
        with pytest.raises(ValueError, match=r"last_frames must be an integer in \[1, 64\]"):
            gen.audio(spec, feature, last_frames=bad)
    ap = _generator("apnet")
    with pytest.raises(ValueError, match="needs arch 'unet'"):
        ap.audio(spec, torch.zeros(1, *ap.feature_shape), last_frames=8)
    assert ap.audio(spec, torch.zeros(1, *ap.feature_shape), last_frames=T).shape[-1] == T


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """The same weights exported whole-context and with output_frames 5."""
    root = tmp_path_factory.mktemp("output_frames")
    ckpt = root / "unet.pt"
    make_checkpoint(ckpt, "unet", seed=0)
    full = export_bundle(str(ckpt), root / "full", engine_mirror_average=True)
    last5 = export_bundle(str(ckpt), root / "last5", engine_mirror_average=True, output_frames=5)
    return full, last5, ckpt


def test_export_writes_the_last_frames_graph(bundles):
    import onnxruntime as ort

    full, last5, _ = bundles
    assert "output_frames" not in full.config and full.output_frames == T
    assert last5.config["output_frames"] == 5 and last5.output_frames == 5
    assert last5.mask_shape == (1, 2, 257, 5)
    rng = np.random.default_rng(0)
    spec = rng.standard_normal((2, 2, 257, T)).astype(np.float32)
    feature = rng.standard_normal((2,) + full.feature_shape).astype(np.float32)
    outs = [ort.InferenceSession(str(b.graphs["audio"]), providers=["CPUExecutionProvider"])
            .run(["mask"], {"spec": spec, "feature": feature})[0] for b in (full, last5)]
    assert outs[1].shape == (2, 1, 2, 257, 5)
    np.testing.assert_allclose(outs[1], outs[0][..., -5:], rtol=0, atol=2e-6)
    # fewer operations: the decoder's transposed convolutions see only the columns they need
    assert last5.graphs["audio"].stat().st_size < 1.2 * full.graphs["audio"].stat().st_size


def test_export_refuses_what_cannot_be_cut(bundles, tmp_path):
    _, _, ckpt = bundles
    for bad in (0, T + 1):
        with pytest.raises(ExportError, match=r"--output-frames: last_frames must be an integer in \[1, 64\]"):
            export_bundle(str(ckpt), tmp_path / "bad", output_frames=bad)
    assert not (tmp_path / "bad").exists()
    ap = tmp_path / "ap.pt"
    make_checkpoint(ap, "apnet")
    with pytest.raises(ExportError, match="needs arch 'unet'"):
        export_bundle(str(ap), tmp_path / "ap", output_frames=8)
    assert not (tmp_path / "ap").exists()


@pytest.mark.parametrize("rate, chunk, block, lookahead", [(16000, 160, 2, 1), (16000, 333, 4, 1),
                                                           (48000, 441, 3, 2), (48000, 1024, 1, 0)])
def test_the_engine_streams_the_same_output(bundles, rate, chunk, block, lookahead):
    full, last5, _ = bundles
    rng = np.random.default_rng(1)
    mono = (0.3 * rng.standard_normal(rate)).astype(np.float32)
    frame = rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)
    outs = []
    for b in (full, last5):
        with Spatializer(b.path, sample_rate=rate, block_frames=block, lookahead_frames=lookahead) as sp:
            assert sp.output_frames == b.output_frames
            parts = [sp.process(mono[i:i + chunk], frame if i == 0 else None) for i in range(0, len(mono), chunk)]
            outs.append(np.concatenate(parts + [sp.flush()], axis=1))
    assert np.abs(outs[0][0] - outs[0][1]).max() > 1e-3  # the ears differ: the masks matter
    np.testing.assert_allclose(outs[1], outs[0], rtol=0, atol=1e-5)


def test_the_engine_names_the_limit(bundles):
    _, last5, _ = bundles
    with pytest.raises(ValueError, match=r"block_frames \+ lookahead_frames must be <= the 5 mask frames"):
        Spatializer(last5.path, sample_rate=16000, block_frames=5, lookahead_frames=1)
    with pytest.raises(ValueError, match=r"lookahead_frames must be below the 5 mask frames"):
        Spatializer(last5.path, sample_rate=16000, lookahead_frames=5)
    with Spatializer(last5.path, sample_rate=16000, block_frames=4, lookahead_frames=1) as sp:
        assert sp.block_frames == 4
    with Spatializer(last5.path, sample_rate=16000, block_frames="auto", lookahead_frames=2) as sp:
        assert 1 <= sp.block_frames <= 3


def test_torch_backend_returns_the_bundles_mask_frames(bundles, tmp_path):
    from streambin.backends.torch_backend import TorchBackend

    _, _, ckpt = bundles
    b = export_bundle(str(ckpt), tmp_path / "with_weights", output_frames=7)
    assert b.weights is not None
    backend = TorchBackend(b, device="cpu")
    spec = np.random.default_rng(2).standard_normal((1,) + b.spec_shape).astype(np.float32)
    feature = backend.visual(np.zeros((1,) + b.frame_shape, np.uint8))
    masks = backend.audio(spec, feature)
    assert masks.shape == (1,) + b.mask_shape == (1, 1, 2, 257, 7)


def test_config_output_frames_is_validated(tmp_path):
    root = make_tiny_bundle(tmp_path / "tiny")
    assert load_bundle(root).output_frames == 32  # absent: the whole context (context_frames 32)
    for bad, msg in ((33, r"output_frames \(33\) must be <= context_frames \(32\)"),
                     (0, "output_frames"), ("8", "output_frames")):
        with pytest.raises(BundleError, match=msg):
            write_config(root, tiny_config(output_frames=bad))
    # A config that promises fewer frames than its graph returns is caught when the graph is checked.
    cfg = tiny_config(output_frames=8)
    (root / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BundleError, match=r"tensor 'mask' has shape \[batch, 1, 2, 257, 32\] but config.json "
                                          r"implies \[batch, 1, 2, 257, 8\]"):
        load_bundle(root)


def test_one_context_serves_several_features():
    gen = _generator()
    g = torch.Generator().manual_seed(4)
    spec = torch.randn(1, 2, 257, T, generator=g)
    feature = gen.visual(torch.randint(0, 256, (3, 32, 64, 3), dtype=torch.uint8, generator=g))
    with torch.inference_mode():
        for k in (None, 17):
            shared = gen.audio(spec, feature, last_frames=k)
            each = gen.audio(spec.expand(3, -1, -1, -1).contiguous(), feature, last_frames=k)
            assert shared.shape == each.shape == (3, 1, 2, 257, T if k is None else k)
            torch.testing.assert_close(shared, each, atol=1e-6, rtol=0)
            assert (shared[0] - shared[1]).abs().max() > 1e-3  # the features matter
        with pytest.raises(ValueError, match=r"spec's batch \(2\) must equal the feature's \(3\) or be 1"):
            gen.audio(spec.expand(2, -1, -1, -1), feature)
    ap = _generator("apnet")
    with pytest.raises(ValueError, match=r"spec's batch \(1\) must equal the feature's \(3\)$"):
        ap.audio(spec, torch.zeros(3, *ap.feature_shape))


def test_exported_graph_takes_one_context_for_several_features(bundles, tmp_path):
    from streambin.backends.onnxruntime_backend import OnnxRuntimeBackend

    full, last5, ckpt = bundles
    assert full.shared_context and last5.config["shared_context"] is True
    inside = export_bundle(str(ckpt), tmp_path / "inside", mirror_average=True)
    assert not inside.shared_context and "shared_context" not in inside.config  # it concatenates the context
    rng = np.random.default_rng(5)
    spec = rng.standard_normal((1,) + last5.spec_shape).astype(np.float32)
    for io_binding in (False, True):
        backend = OnnxRuntimeBackend(last5, io_binding=io_binding)
        feature = backend.visual(rng.integers(0, 256, (2,) + last5.frame_shape, dtype=np.uint8))
        shared = backend.audio(spec, feature)
        each = backend.audio(np.repeat(spec, 2, axis=0), feature)
        assert shared.shape == each.shape == (2, 1, 2, 257, 5)
        np.testing.assert_allclose(shared, each, rtol=0, atol=2e-6)
        backend.close()
    plain = OnnxRuntimeBackend(load_bundle(make_tiny_bundle(tmp_path / "tiny")))  # no shared_context
    with pytest.raises(ValueError, match=r"feature must have shape \(1, 4\) to match spec's batch 1"):
        plain.audio(np.zeros((1,) + plain.bundle.spec_shape, np.float32), np.zeros((2, 4), np.float32))


def test_mirror_averaging_encodes_the_context_once_with_the_same_output(bundles, tmp_path):
    full, last5, _ = bundles
    copied = tmp_path / "copied"  # the same graphs, without the config key: the context is copied
    shutil.copytree(last5.path, copied)
    cfg = json.loads((copied / "config.json").read_text())
    del cfg["shared_context"]
    write_config(copied, cfg)
    rng = np.random.default_rng(6)
    mono = (0.3 * rng.standard_normal(16000)).astype(np.float32)
    frame = rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)
    outs = []
    for path in (last5.path, copied):
        with Spatializer(path, sample_rate=48000, block_frames=3) as sp:
            assert sp.mirror_average
            assert sp._runner._net_in.shape[0] == (1 if sp.bundle.shared_context else 2)
            parts = [sp.process(mono[i:i + 480], frame if i == 0 else None) for i in range(0, len(mono), 480)]
            outs.append(np.concatenate(parts + [sp.flush()], axis=1))
    assert np.abs(outs[0][0] - outs[0][1]).max() > 1e-4
    np.testing.assert_allclose(outs[0], outs[1], rtol=0, atol=1e-6)
