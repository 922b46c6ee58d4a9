"""The side renderer (streambin.side_renderer): peak decoding, its symmetry, the blend, the
bundle section, the engine with it, and export.add_side_renderer on a tiny bundle (a random
localiser, two spherical heads: real graphs and real sessions, small)."""

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export.add_side_renderer import ExportError, add_side_renderer, replace_localiser  # noqa: E402
from streambin import Spatializer  # noqa: E402
from streambin.bundle import BundleError, load_bundle, read_config, write_config  # noqa: E402
from streambin.camera import azimuth_to_column, column_to_azimuth  # noqa: E402
from streambin.side_renderer import SideRenderer, SideRendererError, mirror_averaged_peaks  # noqa: E402

HEADS = ["sphere~s1", "sphere~s2"]


def _localiser_checkpoint(path):
    from streambin.nets.localiser import ObjectLocaliser

    torch.manual_seed(0)
    net = ObjectLocaliser(width=8)
    torch.save({"net": net.state_dict(), "width": 8, "step": 0}, path)
    return path


def _fit_json(path, bundle, localiser, n_bins=257):
    f = np.linspace(0, 1, n_bins)
    path.write_text(json.dumps({
        "heads": HEADS, "soft_power": 4.0,
        "blend_weights": {"localiser, soft": {"model": (1.0 - 0.5 * f).round(3).tolist(),
                                              "rendered": (0.8 * f).round(3).tolist()}},
        "command": f"python scripts/experiments/hrtf_prior.py --localiser {localiser} --streamed {bundle} --out x"}))
    return path


@pytest.fixture(scope="module")
def renderer_bundle(tiny_unet, tmp_path_factory):
    """A copy of the tiny side-mask bundle with a side renderer."""
    root = tmp_path_factory.mktemp("renderer")
    ck = _localiser_checkpoint(root / "loc.pt")
    fit = _fit_json(root / "fit.json", tiny_unet[0], ck)
    add_side_renderer(tiny_unet[0], ck, fit, root / "bundle")
    return root / "bundle"


def _renderer(bundle_dir) -> SideRenderer:
    b = load_bundle(bundle_dir)
    return SideRenderer.of_bundle(b)


def _scene(rng, size=(96, 192)):
    """A frame with two bright blocks on a dark ground, off centre."""
    f = np.full(size + (3,), 30, np.uint8)
    f[30:70, 20:60] = (220, 40, 40)
    f[40:60, 120:140] = (40, 200, 60)
    return f + rng.integers(0, 20, f.shape, dtype=np.uint8)


# ---------------------------------------------------------------- decoding

def test_peaks_found_where_the_heat_map_peaks_with_offsets_averaged():
    gh, gw = 6, 12
    own = np.zeros((6, gh, gw), np.float32)
    own[0] = -8.0
    own[0, 2, 3] = 3.0                        # strong peak at column cell 3
    own[0, 4, 9] = 1.0                        # weaker one at column cell 9
    own[2, 2, 3], own[2, 4, 9] = 0.5, 0.25
    mirrored = own[:, :, ::-1].copy()         # a perfectly mirror-consistent net
    mirrored[2] = 0.0
    mirrored[2, 2, gw - 1 - 3], mirrored[2, 4, gw - 1 - 9] = 0.5, 0.75
    cols, scores = mirror_averaged_peaks(own, mirrored, 2)
    # own estimate 3.5; mirror estimate gw - (8 + 0.5) = 3.5; second: 9.25 and 12 - (2 + 0.75) = 9.25
    np.testing.assert_allclose(cols, [3.5 / gw, 9.25 / gw])
    np.testing.assert_allclose(scores, 1 / (1 + np.exp([-3.0, -1.0])), rtol=1e-6)


def test_peaks_tied_with_the_last_one_kept_are_all_kept():
    own = np.zeros((6, 6, 12), np.float32)         # a featureless frame: every cell a peak of one score
    cols, scores = mirror_averaged_peaks(own, own.copy(), 4)
    assert cols.size == 72 and np.ptp(scores) == 0
    np.testing.assert_allclose(np.sort(cols), np.sort(1.0 - cols), atol=1e-12)   # a mirror-symmetric set
    own[0] = -8.0
    own[0, 1, [2, 9]] = 2.0                        # a mirror pair, then a weaker one: the tie at k = 3
    own[0, 4, [4, 7]] = 1.0
    own[0, 3, 0] = 0.5
    assert mirror_averaged_peaks(own, own[:, :, ::-1].copy(), 3)[0].size == 4
    assert mirror_averaged_peaks(own, own[:, :, ::-1].copy(), 4)[0].size == 4
    assert mirror_averaged_peaks(own, own[:, :, ::-1].copy(), 5)[0].size == 5


def test_a_mirrored_frame_gives_mirrored_peaks_and_the_negated_side(renderer_bundle, rng):
    r = _renderer(renderer_bundle)
    frame = _scene(rng)
    az, w = r.azimuths(frame)
    az_m, w_m = r.azimuths(np.ascontiguousarray(frame[:, ::-1]))
    np.testing.assert_allclose(az_m, -az, atol=1e-9)
    np.testing.assert_allclose(w_m, w, atol=1e-12)
    assert np.isclose(w.sum(), 1.0) and (w >= 0).all()
    own, mirrored = r.rendered_mask(frame), r.rendered_mask(np.ascontiguousarray(frame[:, ::-1]))
    assert own.shape == (2, 257, 1) and own.dtype == np.float32
    assert np.abs(own).max() > 1e-3                 # something is rendered ...
    np.testing.assert_allclose(mirrored, -own, atol=1e-6)   # ... and the mirror image negates it


def test_a_uniform_frame_renders_no_side(renderer_bundle):
    r = _renderer(renderer_bundle)
    for value in (0, 128, 255):
        assert np.abs(r.rendered_mask(np.full((96, 192, 3), value, np.uint8))).max() < 1e-6


def test_a_localiser_that_returns_nan_renders_no_side(renderer_bundle, rng):
    r = _renderer(renderer_bundle)
    frame = _scene(rng)
    real = r._session

    class NanSession:
        def run(self, outputs, feeds):
            maps = real.run(outputs, feeds)[0]
            maps[:, 2] = np.nan
            return [maps]

    r._session = NanSession()
    assert np.array_equal(r.rendered_mask(frame), np.zeros((2, 257, 1), np.float32))
    assert r.nonfinite_frames == 1


def test_filter_table_is_antisymmetric_and_interpolated(renderer_bundle):
    r = _renderer(renderer_bundle)
    for a in (0.0, 7.3, 45.0, 89.9):
        np.testing.assert_allclose(r.filter_at([-a], [1.0]), -r.filter_at([a], [1.0]), atol=1e-12)
    lo, hi = r.filter_at([10.0], [1.0]), r.filter_at([10.5], [1.0])
    np.testing.assert_allclose(r.filter_at([10.25], [1.0]), 0.5 * (lo + hi), atol=1e-12)
    np.testing.assert_allclose(r.filter_at([120.0], [1.0]), r.filter_at([90.0], [1.0]))   # clamped
    np.testing.assert_allclose(r.filter_at([10.0, 20.0], [0.25, 0.75]),
                               0.25 * r.filter_at([10.0], [1.0]) + 0.75 * r.filter_at([20.0], [1.0]))


def test_blend_is_the_weighted_model_mask_plus_the_rendered_part(renderer_bundle, rng):
    r = _renderer(renderer_bundle)
    masks = rng.standard_normal((1, 2, 257, 3)).astype(np.float32)
    rendered = r.rendered_mask(_scene(rng))
    out = np.zeros_like(masks)
    got = r.blend(masks, rendered, out=out)
    assert got is out
    np.testing.assert_allclose(got, masks * r.w_model + rendered * r.w_rendered, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match=r"\(96, 192, 3\) uint8"):
        r.azimuths(np.zeros((64, 128, 3), np.uint8))


def test_blend_weighs_the_in_phase_and_quadrature_parts_apart(renderer_bundle, rng):
    """(2, F) weights scale a mask's real part (in phase with the mono) and imaginary part
    (in quadrature) each by its own row; (F,) weights are the same as two equal rows."""
    r = _renderer(renderer_bundle)
    masks = rng.standard_normal((1, 2, 257, 3)).astype(np.float32)
    rendered = r.rendered_mask(_scene(rng))
    wm, wr = rng.uniform(0, 1, (2, 257)), rng.uniform(0, 1, (2, 257))
    r.set_blend(wm, wr)
    got = r.blend(masks, rendered)
    for part in (0, 1):
        np.testing.assert_allclose(got[0, part], masks[0, part] * wm[part][:, None] + rendered[part] * wr[part][:, None],
                                   rtol=1e-5, atol=1e-6)
    r.set_blend(wm[0], wr[0])
    shared = r.blend(masks, rendered).copy()
    r.set_blend(np.stack([wm[0]] * 2), np.stack([wr[0]] * 2))
    np.testing.assert_array_equal(r.blend(masks, rendered), shared)
    with pytest.raises(ValueError, match=r"\(257,\) or \(2, 257\) arrays of finite floats"):
        r.set_blend(np.ones((3, 257)), wr)


# ---------------------------------------------------------------- in the engine

def _stream(sp, mono, frame):
    sp.reset()
    step = sp.sample_rate // 100
    out = [sp.process(mono[i:i + step], frame if i == 0 else None) for i in range(0, len(mono), step)]
    return np.concatenate(out + [sp.flush()], axis=1)


@pytest.mark.parametrize("rate", [48000, 44100, 16000])   # full band on two grids, and the model rate
def test_engine_blends_the_rendered_side(tiny_unet, renderer_bundle, rng, rate):
    mono = (0.1 * rng.standard_normal(rate)).astype(np.float32)
    frame = _scene(rng, (224, 448))
    kw = dict(sample_rate=rate, block_frames=2, lookahead_frames=1, mirror_average=True)
    with Spatializer(renderer_bundle, **kw) as on, Spatializer(renderer_bundle, side_renderer=False, **kw) as off, \
            Spatializer(tiny_unet[0], **kw) as plain:
        assert on.side_renderer and on.stats["side_renderer"] and not off.side_renderer
        grey = _stream(on, mono, np.full((224, 448, 3), 128, np.uint8))
        np.testing.assert_array_equal(grey[0], grey[1])      # nothing on either side: L = R
        with_renderer, without = _stream(on, mono, frame), _stream(off, mono, frame)
        np.testing.assert_array_equal(without, _stream(plain, mono, frame))   # off: the model alone
        side_on, side_off = with_renderer[0] - with_renderer[1], without[0] - without[1]
        assert np.sqrt(np.mean((side_on - side_off) ** 2)) > 1e-4 * np.sqrt(np.mean(mono ** 2))
        # the mid (L + R) / 2 is the input's either way: only the side is blended
        np.testing.assert_allclose(with_renderer.sum(0), without.sum(0), atol=1e-4)
        mirrored = _stream(on, mono, np.ascontiguousarray(frame[:, ::-1]))
        np.testing.assert_allclose(mirrored, with_renderer[::-1], atol=1e-5)   # ears swap exactly


def test_threaded_visual_swaps_feature_and_rendered_side_together(renderer_bundle, rng):
    with Spatializer(renderer_bundle, sample_rate=16000, threaded_visual=True, mirror_average=True) as sp:
        batch0, rendered0 = sp.visual.snapshot()
        assert np.abs(rendered0).max() < 1e-6
        sp.process(np.zeros(1600, np.float32), _scene(rng, (224, 448)))
        sp.visual.wait_idle()
        _, rendered = sp.visual.snapshot()
        assert rendered.shape == (2, 257, 1) and np.abs(rendered).max() > 1e-3
        with pytest.raises(ValueError, match="renderer_frame must be given"):
            sp.visual.submit(np.zeros((32, 64, 3), np.uint8))


# ---------------------------------------------------------------- the camera's field of view

def test_peaks_are_read_at_the_cameras_field_of_view(renderer_bundle, rng):
    r = _renderer(renderer_bundle)
    frame = _scene(rng)
    assert r.hfov_deg == r.section_hfov_deg == 90.0
    az90, w90 = r.azimuths(frame)
    r.hfov_deg = 60
    az60, w60 = r.azimuths(frame)
    width = r.input_size[1]
    # the same columns, read through a narrower lens: nearer the centre, weighed alike
    np.testing.assert_allclose(az60, column_to_azimuth(azimuth_to_column(az90, width, 90.0), width, 60.0), atol=1e-9)
    np.testing.assert_array_equal(w60, w90)
    off_centre = np.abs(az90) > 1.0
    assert off_centre.any() and (np.abs(az60[off_centre]) < np.abs(az90[off_centre])).all()
    for bad in (0, 180, float("nan"), "wide", True):
        with pytest.raises(ValueError, match=r"hfov_deg must be a horizontal field of view in degrees"):
            r.hfov_deg = bad
    assert r.hfov_deg == 60.0     # a refused value changes nothing


def test_engine_reads_the_frames_at_the_cameras_field_of_view(renderer_bundle, rng):
    mono = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    frame = _scene(rng, (224, 448))
    kw = dict(sample_rate=16000, block_frames=2, lookahead_frames=1, mirror_average=True)
    with Spatializer(renderer_bundle, **kw) as default, Spatializer(renderer_bundle, camera_hfov_deg=90, **kw) as same, \
            Spatializer(renderer_bundle, camera_hfov_deg=60.0, **kw) as narrow:
        assert (default.camera_hfov_deg, same.camera_hfov_deg, narrow.camera_hfov_deg) == (90.0, 90.0, 60.0)
        assert narrow.stats["camera_hfov_deg"] == 60.0
        reference = _stream(default, mono, frame)
        np.testing.assert_array_equal(_stream(same, mono, frame), reference)   # the bundle's own view: unchanged
        narrowed = _stream(narrow, mono, frame)
        side, side_ref = narrowed[0] - narrowed[1], reference[0] - reference[1]
        assert np.sqrt(np.mean((side - side_ref) ** 2)) > 1e-4 * np.sqrt(np.mean(mono ** 2))
        np.testing.assert_allclose(narrowed.sum(0), reference.sum(0), atol=1e-4)   # only the side moves
        narrow.camera_hfov_deg = 90       # set on a live engine: from the next frame on
        np.testing.assert_array_equal(_stream(narrow, mono, frame), reference)


def test_camera_field_of_view_option_is_checked(tiny_unet, renderer_bundle):
    with pytest.raises(ValueError, match="read by the side renderer, which is off here"):
        Spatializer(tiny_unet[0], camera_hfov_deg=70)
    with pytest.raises(ValueError, match="read by the side renderer, which is off here"):
        Spatializer(renderer_bundle, side_renderer=False, camera_hfov_deg=70)
    with pytest.raises(ValueError, match=r"camera_hfov_deg must be a horizontal field of view in degrees, a number "
                                         r"in \(0, 180\), got 180"):
        Spatializer(renderer_bundle, camera_hfov_deg=180)
    with Spatializer(tiny_unet[0]) as plain:
        assert plain.camera_hfov_deg is None and plain.stats["camera_hfov_deg"] is None
        with pytest.raises(ValueError, match="which this Spatializer does not run"):
            plain.camera_hfov_deg = 70


def test_side_renderer_option_is_checked(tiny_unet, renderer_bundle):
    with pytest.raises(ValueError, match="has no side renderer"):
        Spatializer(tiny_unet[0], side_renderer=True)
    with pytest.raises(ValueError, match="side_renderer must be True, False or None"):
        Spatializer(renderer_bundle, side_renderer="yes")
    with pytest.raises(ValueError, match="gpu_pipeline=True does not blend a rendered side"):
        Spatializer(renderer_bundle, gpu_pipeline=True)


# ---------------------------------------------------------------- peaks weighed by a sounding map

def _sounding_checkpoint(path):
    from streambin.nets.localiser import ObjectLocaliser

    torch.manual_seed(1)
    net = ObjectLocaliser(width=8, sounding_map=True)
    torch.save({"net": net.state_dict(), "width": 8, "step": 0, "sounding_map": True}, path)
    return path


@pytest.fixture(scope="module")
def sounding_bundle(renderer_bundle, tmp_path_factory):
    """The renderer bundle with its localiser replaced by one with a sounding map, which weighs the peaks."""
    root = tmp_path_factory.mktemp("sounding")
    replace_localiser(renderer_bundle, _sounding_checkpoint(root / "loc.pt"), root / "bundle",
                      weigh_peaks_by="sounding")
    return root / "bundle"


def test_sounding_map_at_the_peaks_is_mirror_averaged():
    gh, gw = 6, 12
    own = np.zeros((7, gh, gw), np.float32)
    own[0] = -8.0
    own[0, 2, 3], own[0, 4, 9] = 3.0, 1.0
    mirrored = own[:, :, ::-1].copy()
    own[6] = -1.0
    own[6, 2, 3], own[6, 4, 9] = 2.0, -2.0
    mirrored[6] = 0.0
    mirrored[6, 2, gw - 1 - 3], mirrored[6, 4, gw - 1 - 9] = 1.0, 0.5
    cols, scores, sound = mirror_averaged_peaks(own, mirrored, 2, sounding=True)
    sig = lambda x: 1 / (1 + np.exp(-x))   # noqa: E731
    np.testing.assert_allclose(sound, [0.5 * (sig(2.0) + sig(1.0)), 0.5 * (sig(-2.0) + sig(0.5))], rtol=1e-6)
    plain = mirror_averaged_peaks(own, mirrored, 2)    # the same peaks as without the sounding map
    np.testing.assert_array_equal(cols, plain[0])
    np.testing.assert_array_equal(scores, plain[1])


def test_peaks_weighed_by_the_sounding_map_keep_the_symmetry(sounding_bundle, renderer_bundle, rng):
    r, base = _renderer(sounding_bundle), _renderer(renderer_bundle)
    assert r.weigh_peaks_by == "sounding" and base.weigh_peaks_by == "heat"
    frame = _scene(rng)
    maps = r._session.run(None, {"frames": np.stack([frame, frame[:, ::-1]])})[0]
    assert maps.shape == (2, 7, 24, 48)
    _, heat, sound = mirror_averaged_peaks(maps[0], maps[1], r.peaks, sounding=True)
    az, w = r.azimuths(frame)
    np.testing.assert_allclose(w, sound ** r.power / np.sum(sound ** r.power), rtol=1e-9)
    assert not np.allclose(w, heat ** r.power / np.sum(heat ** r.power), rtol=1e-3)   # not the heat's weights
    az_m, w_m = r.azimuths(np.ascontiguousarray(frame[:, ::-1]))
    np.testing.assert_allclose(az_m, -az, atol=1e-9)           # a mirrored frame: the mirrored side
    np.testing.assert_allclose(w_m, w, atol=1e-12)
    for value in (0, 128, 255):                                 # a uniform frame: no side
        assert np.abs(r.rendered_mask(np.full((96, 192, 3), value, np.uint8))).max() < 1e-6
    # only the localiser was replaced: the table and the blend weights are the bundle's
    np.testing.assert_array_equal(r._filters_full, base._filters_full)
    np.testing.assert_array_equal(r.w_model, base.w_model)
    np.testing.assert_array_equal(r.w_rendered, base.w_rendered)


def test_engine_with_peaks_weighed_by_the_sounding_map(sounding_bundle, rng):
    mono = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    frame = _scene(rng, (224, 448))
    with Spatializer(sounding_bundle, sample_rate=48000, block_frames=2, lookahead_frames=1,
                     mirror_average=True) as sp:
        out = _stream(sp, mono, frame)
        assert np.isfinite(out).all() and np.abs(out[0] - out[1]).max() > 1e-4
        np.testing.assert_allclose(_stream(sp, mono, np.ascontiguousarray(frame[:, ::-1])), out[::-1], atol=1e-5)
        grey = _stream(sp, mono, np.full((224, 448, 3), 128, np.uint8))
        np.testing.assert_array_equal(grey[0], grey[1])


def test_weighing_by_a_sounding_map_needs_one(tiny_unet, renderer_bundle, tmp_path):
    plain = _localiser_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(ExportError, match="needs a localiser trained with one"):
        replace_localiser(renderer_bundle, plain, tmp_path / "x", weigh_peaks_by="sounding")
    assert not (tmp_path / "x").exists()
    with pytest.raises(ExportError, match="has no side renderer"):
        replace_localiser(tiny_unet[0], plain, tmp_path / "y")
    b = _copy(renderer_bundle, tmp_path)
    cfg = read_config(b)
    cfg["side_renderer"]["weigh_peaks_by"] = "sounding"     # but the graph has six maps
    write_config(b, cfg)
    with pytest.raises(SideRendererError, match="needs its seventh map"):
        _renderer(b)
    cfg["side_renderer"]["weigh_peaks_by"] = "loudness"
    (b / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BundleError, match="'weigh_peaks_by' must be one of"):
        load_bundle(b)


def test_replace_localiser_command_line(renderer_bundle, tmp_path, capsys):
    from export.add_side_renderer import main

    ck = _sounding_checkpoint(tmp_path / "loc.pt")
    with pytest.raises(SystemExit):
        main(["--bundle", str(renderer_bundle), "--localiser", str(ck), "--out", str(tmp_path / "x")])
    assert "--fit" in capsys.readouterr().err
    assert main(["--bundle", str(renderer_bundle), "--localiser", str(ck), "--out", str(tmp_path / "b"),
                 "--replace-localiser", "--weigh-peaks-by", "sounding"]) == 0
    section = read_config(tmp_path / "b")["side_renderer"]
    assert section["weigh_peaks_by"] == "sounding" and section["source"]["localiser"] == str(ck)
    assert section["source"]["localiser_replaced_in"] == str(renderer_bundle)


# ---------------------------------------------------------------- a blend that follows the room

def _room_fit(n_bins=257, seed=1, same=False):
    """``fit_side_blend.apply`` input: free-field and room weights and a detector that reads a
    room where the 1-2 kHz band's steepest drops are gentle (tests/test_room_detector.py)."""
    from streambin import room_detector as R

    f = np.linspace(0, 1, n_bins)
    mean = np.zeros(R.N_FEATURES)
    mean[4] = -20.0
    weights = np.zeros(R.N_FEATURES + 1)
    weights[4] = 1.0
    free = ((1.0 - 0.5 * f).round(3), (0.8 * f).round(3))     # the renderer bundle's (_fit_json)
    room = free if same else (0.9 - 0.2 * f, 0.3 * f)
    return {"blend_model": free[0].tolist(), "blend_rendered": free[1].tolist(),
            "blend_model_room": room[0].tolist(), "blend_rendered_room": room[1].tolist(),
            "room_detector": {"weights": weights.tolist(), "feature_mean": mean.tolist(),
                              "feature_std": np.full(R.N_FEATURES, 10.0).tolist()},
            "data": "hand-made", "split": "none", "clips": 0, "side_residual": {}}


@pytest.fixture(scope="module")
def room_bundle(renderer_bundle, tmp_path_factory):
    """The renderer bundle with blend weights that follow a room detector."""
    from streambin.train.fit_side_blend import apply

    dst = tmp_path_factory.mktemp("room") / "bundle"
    shutil.copytree(renderer_bundle, dst)
    apply(dst, _room_fit(), None)
    return dst


def test_room_blend_weighs_free_field_and_room_weights_by_the_probability(room_bundle, renderer_bundle, rng):
    r = _renderer(room_bundle)
    assert r.room_detector is not None and _renderer(renderer_bundle).room_tracker() is None
    masks = rng.standard_normal((1, 2, 257, 3)).astype(np.float32)
    rendered = r.rendered_mask(_scene(rng))
    for p, expected_p in ((None, 0.0), (0.0, 0.0), (0.3, 0.3), (1.0, 1.0), (1.7, 1.0), (-2.0, 0.0)):
        w_model = (1 - expected_p) * r.w_model + expected_p * r.w_model_room
        w_rendered = (1 - expected_p) * r.w_rendered + expected_p * r.w_rendered_room
        np.testing.assert_allclose(r.blend(masks, rendered, p), masks * w_model + rendered * w_rendered,
                                   rtol=1e-5, atol=1e-6)
    plain = _renderer(renderer_bundle)
    with pytest.raises(ValueError, match="no room detector"):
        plain.set_blend(np.ones(257), np.ones(257), np.zeros(257), np.ones(257))


def _reverberant(rng, rate, seconds=2.0, reverb_s=0.0):
    """Noise bursts at ``rate``, dry or through a decaying noise tail (``reverb_s`` to -60 dB)."""
    n = int(seconds * rate)
    x = rng.standard_normal(n) * ((np.arange(n) % int(0.3 * rate)) < int(0.1 * rate))
    if reverb_s:
        t = np.arange(int(reverb_s * rate)) / rate
        x = np.convolve(x, rng.standard_normal(t.size) * 10 ** (-3 * t / reverb_s))[:n]
    return (0.1 * x / np.abs(x).max()).astype(np.float32)


@pytest.mark.parametrize("rate", [48000, 44100, 16000])   # full band on two grids, and the model rate
def test_engine_reads_the_room_off_the_mono_and_keeps_the_blend_symmetric(room_bundle, renderer_bundle, tmp_path,
                                                                          rng, rate):
    from streambin.train.fit_side_blend import apply

    same = _copy(renderer_bundle, tmp_path)
    apply(same, _room_fit(same=True), None)       # a detector whose weights change nothing
    frame = _scene(rng, (224, 448))
    kw = dict(sample_rate=rate, block_frames=3, lookahead_frames=1, mirror_average=True)
    with Spatializer(room_bundle, **kw) as room, Spatializer(renderer_bundle, **kw) as plain, \
            Spatializer(same, **kw) as unchanged:
        dry, wet = _reverberant(rng, rate), _reverberant(rng, rate, reverb_s=0.8)
        for mono in (dry, wet):
            np.testing.assert_allclose(_stream(unchanged, mono, frame), _stream(plain, mono, frame), atol=1e-6)
        _stream(room, dry, frame)
        p_dry = room.stats["room_probability"]
        out_wet = _stream(room, wet, frame)
        p_wet = room.stats["room_probability"]
        assert p_wet > 0.6 > 0.4 > p_dry and plain.stats["room_probability"] is None
        side_room, side_plain = (out_wet[0] - out_wet[1]), (lambda o: o[0] - o[1])(_stream(plain, wet, frame))
        assert np.sqrt(np.mean((side_room - side_plain) ** 2)) > 1e-3 * np.sqrt(np.mean(wet ** 2))
        np.testing.assert_allclose(out_wet.sum(0), _stream(plain, wet, frame).sum(0), atol=1e-4)  # mid untouched
        mirrored = _stream(room, wet, np.ascontiguousarray(frame[:, ::-1]))
        np.testing.assert_allclose(mirrored, out_wet[::-1], atol=1e-5)            # ears swap exactly
        grey = _stream(room, wet, np.full((224, 448, 3), 128, np.uint8))
        np.testing.assert_array_equal(grey[0], grey[1])                            # no side from grey
        # chunking does not change what the detector hears: one call gives the 10 ms calls' output
        room.reset()
        whole = np.concatenate([room.process(wet, frame), room.flush()], axis=1)
        np.testing.assert_allclose(whole, out_wet, atol=1e-6)


def test_room_table_arrays_are_checked_and_a_bad_fit_changes_nothing(room_bundle, tmp_path):
    from streambin.train.fit_side_blend import apply

    b = _copy(room_bundle, tmp_path)
    table = b / "side_renderer.npz"
    good = dict(np.load(table))
    np.savez(table, **{k: v for k, v in good.items() if k != "room_feature_std"})
    with pytest.raises(SideRendererError, match="needs all of"):
        Spatializer(b)
    np.savez(table, **{**good, "room_weights": good["room_weights"][:10]})
    with pytest.raises(SideRendererError, match=r"a room detector needs weights \(50,\)"):
        Spatializer(b)
    np.savez(table, **{**good, "blend_rendered_room": good["blend_rendered_room"][:5]})
    with pytest.raises(SideRendererError, match=r"blend_rendered_room must be \(257,\) or \(2, 257\) float"):
        Spatializer(b)
    np.savez(table, **good)
    before = table.read_bytes()
    bad = _room_fit()
    bad["room_detector"]["feature_std"] = [0.0] * len(bad["room_detector"]["feature_std"])
    with pytest.raises(SideRendererError, match="std positive"):
        apply(b, bad, None)
    assert table.read_bytes() == before and not list(b.glob("*.staged.npz"))
    plain_fit = {k: v for k, v in _room_fit().items() if "room" not in k}
    apply(b, plain_fit, None)                      # a fit without room weights removes them
    assert _renderer(b).room_detector is None


def test_room_blend_cost_benchmark_times_both_blends(room_bundle, renderer_bundle, tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import room_blend_cost

    out = tmp_path / "cost.json"
    assert room_blend_cost.main(["--bundle", str(room_bundle), "--repeats", "2", "--calls", "3", "--engine-seconds",
                                 "0.5", "--engine-repeats", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["median_ms_per_block"]) == {"audio net + blend, fixed weights", "audio net + room tracker + blend",
                                                  "audio net alone (mirror-averaged batch)"}
    assert all(len(t) == 2 and min(t) > 0 for t in result["per_turn_ms"].values())
    assert result["block_ms_of_audio"] == 30.0 and "cpu" in json.dumps(result["machine"]).lower()
    engine = result["engine_audio_net_stage_ms_per_block"]
    assert all(len(v) == 2 and min(v) > 0 for v in engine["per_repeat"].values())
    with pytest.raises(SystemExit):
        room_blend_cost.main(["--bundle", str(renderer_bundle), "--out", str(tmp_path / "no.json")])


# ---------------------------------------------------------------- bad bundles

def _copy(src, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(src, dst)
    return dst


def test_bundle_section_and_files_are_validated(renderer_bundle, tiny_apnet, tmp_path):
    b = _copy(renderer_bundle, tmp_path)
    cfg = read_config(b)
    for key, value, message in (("peaks", 0, "'peaks' must be a positive integer"),
                                ("hfov_deg", 200.0, "'hfov_deg' must be below 180"),
                                ("graph", "../x.onnx", "'graph' must be a path inside the bundle"),
                                ("input", {"height": 95, "width": 192}, "multiple of 4")):
        bad = json.loads(json.dumps(cfg))
        bad["side_renderer"][key] = value
        (b / "config.json").write_text(json.dumps(bad))   # write_config would refuse it
        with pytest.raises(BundleError, match=message):
            load_bundle(b)
    write_config(b, cfg)
    (b / "localiser.onnx").unlink()
    with pytest.raises(BundleError, match="side renderer's graph file is missing"):
        load_bundle(b)
    lr = _copy(tiny_apnet[0], tmp_path / "lr")
    lr_cfg = read_config(lr)
    lr_cfg["side_renderer"] = cfg["side_renderer"]
    (lr / "config.json").write_text(json.dumps(lr_cfg))
    with pytest.raises(BundleError, match="mask_kind must be 'side'"):
        load_bundle(lr)


def test_corrupt_or_inconsistent_table_is_a_clear_error(renderer_bundle, tmp_path):
    b = _copy(renderer_bundle, tmp_path)
    table = b / "side_renderer.npz"
    good = dict(np.load(table))
    table.write_bytes(table.read_bytes()[:200])
    with pytest.raises(SideRendererError, match="not a readable side renderer table"):
        Spatializer(b)
    for change, message in ((dict(filters=good["filters"][:, :100]), r"filters must be \(181, 257\) complex"),
                            (dict(blend_model=good["blend_model"][:10]), r"blend_model must be \(257,\) or \(2, 257\) float"),
                            (dict(blend_model=np.stack([good["blend_model"]] * 2)),
                             r"blend_rendered must be .* all of them one shape; got \(257,\) float32 where blend_model is \(2, 257\)"),
                            (dict(filters=good["filters"] + 1.0), "filter at 0 degrees must be zero"),
                            (dict(azimuths_deg=good["azimuths_deg"] * 2), "from 0 to 90 degrees")):
        np.savez(table, **{**good, **change})
        with pytest.raises(SideRendererError, match=message):
            Spatializer(b)
    np.savez(table, **{k: v for k, v in good.items() if k != "blend_rendered"})
    with pytest.raises(SideRendererError, match=r"missing arrays \['blend_rendered'\]"):
        Spatializer(b)
    np.savez(table, **good)
    (b / "localiser.onnx").write_bytes(b"not a graph")
    with pytest.raises(SideRendererError, match="cannot load the localiser graph"):
        Spatializer(b)


# ---------------------------------------------------------------- export

def test_export_records_provenance_and_refuses_a_fit_of_another_model(tiny_unet, renderer_bundle, tmp_path):
    sec = read_config(renderer_bundle)["side_renderer"]
    assert sec["source"]["heads"] == len(HEADS) and sec["power"] == 4.0
    assert sec["source"]["max_abs_err_maps"] < 1e-2
    ck = _localiser_checkpoint(tmp_path / "loc.pt")
    other = _fit_json(tmp_path / "fit.json", tmp_path / "another_bundle", ck)
    with pytest.raises(ExportError, match="its blend weights belong to that model's output"):
        add_side_renderer(tiny_unet[0], ck, other, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    fit = _fit_json(tmp_path / "fit2.json", tiny_unet[0], ck)
    with pytest.raises(ExportError, match="exists"):
        add_side_renderer(tiny_unet[0], ck, fit, renderer_bundle)
    (tmp_path / "short.json").write_text(json.dumps({"heads": HEADS, "soft_power": 2.0, "blend_weights": {
        "localiser, soft": {"model": [1.0] * 10, "rendered": [0.0] * 10}}}))
    with pytest.raises(ExportError, match="blend weights must have 257 bins"):
        add_side_renderer(tiny_unet[0], ck, tmp_path / "short.json", tmp_path / "out2")


# ---------------------------------------------------------------- fitting the blend

def _write_set(root, clips, rng, size=(96, 192), seconds=1.0, fps=10, hfov_deg=None):
    """A SimBinaural-lite layout of ``clips``: name -> (mono (n,), truth (2, n) at 16 kHz,
    frame (H, W, 3) uint8 shown throughout); ``hfov_deg``: name -> the field of view its meta
    states (none where absent)."""
    import cv2
    import soundfile as sf

    for d in ("binaural_audios", "frames", "meta", "splits"):
        (root / d).mkdir(parents=True, exist_ok=True)
    n_frames = int(seconds * fps)
    for name, (_, truth, frame) in clips.items():
        sf.write(str(root / "binaural_audios" / f"{name}.wav"), truth.T, 16000, subtype="FLOAT")
        (root / "frames" / name).mkdir()
        for j in range(n_frames):
            cv2.imwrite(str(root / "frames" / name / f"{j + 1:06d}.png"), frame[:, :, ::-1])
        meta = {"sample_rate": 16000, "fps": fps, "seconds": seconds, "n_frames": n_frames,
                "frame_width": size[1], "frame_height": size[0],
                "sources": [{"name": "s", "azimuth_deg": [20.0] * n_frames, "moving": False}]}
        if hfov_deg and name in hfov_deg:
            meta["hfov_deg"] = hfov_deg[name]
        (root / "meta" / f"{name}.json").write_text(json.dumps(meta))
    (root / "splits" / "all.txt").write_text("\n".join(clips) + "\n")


def test_fit_recovers_the_weights_of_a_side_that_is_the_rendered_one(renderer_bundle, tmp_path, rng):
    """Truth = mono plus/minus the engine's own rendered side: the fit must find w_model = 0 and
    w_rendered = 1 wherever the rendered side has energy, and leave almost no residual."""
    from streambin.train import fit_side_blend
    from streambin.train.evaluate_streaming import StreamedPredictor

    bundle = _copy(renderer_bundle, tmp_path / "b")
    render = StreamedPredictor(bundle, sample_rate=48000, block_frames=3, lookahead_frames=1, side_renderer=True)
    r = render.spatializer.visual.side_renderer
    r.set_blend(np.zeros(257), np.ones(257))
    clips = {}
    for k in range(3):
        mono = (0.1 * rng.standard_normal(16000)).astype(np.float32)
        frame = _scene(rng)
        if k == 1:
            frame = np.ascontiguousarray(frame[:, ::-1])
        frames = np.repeat(frame[None], 10, axis=0)
        out = np.asarray(render(mono, frames, 10.0, "true"), np.float64)
        side = 0.5 * (out[0] - out[1])
        clips[f"{k:06d}"] = (mono, np.stack([mono + side, mono - side]), frame)
    _write_set(tmp_path / "set", clips, rng)
    result = fit_side_blend.fit(str(bundle), tmp_path / "set", "all", progress=False)
    assert result["clips"] == 3 and result["sounding_sources_per_clip"] == {"1": 3}
    a, b = np.array(result["blend_model"]), np.array(result["blend_rendered"])
    band = slice(8, 200)   # 250 Hz - 6.2 kHz: where the spherical heads' side has energy
    np.testing.assert_allclose(b[band], 1.0, atol=0.05)
    np.testing.assert_allclose(a[band], 0.0, atol=0.05)
    res = result["side_residual"]
    assert res["fitted weights"] < 0.05 < res["model alone"]
    twice = fit_side_blend.fit(str(bundle), [tmp_path / "set", tmp_path / "set"], "all", progress=False)
    assert twice["clips"] == 6     # roots pooled: the same clips twice give the same weights
    np.testing.assert_allclose(np.array(twice["blend_rendered"])[band], b[band], rtol=1e-4)
    fit_side_blend.apply(bundle, result, None)
    again = _renderer(bundle)
    np.testing.assert_allclose(again.w_rendered[0, :, 0], b.astype(np.float32), rtol=1e-6)
    assert read_config(bundle)["side_renderer"]["source"]["blend_fit"]["clips"] == 3
    with pytest.raises(ValueError, match=r"\(257,\) or \(2, 257\) arrays of finite floats"):
        r.set_blend(np.zeros(3), np.ones(257))


def test_by_part_fit_finds_a_side_whose_parts_are_scaled_apart(renderer_bundle, tmp_path, rng):
    """Truth = the rendered side with its quadrature part at 0.3: the by-part form finds
    (in phase 1, quadrature 0.3) for the rendered side where it has energy, the shared form cannot,
    and applied, the engine plays (2, F) weights."""
    from scipy.signal import istft

    from streambin.train import fit_side_blend
    from streambin.train.evaluate_streaming import StreamedPredictor

    bundle = _copy(renderer_bundle, tmp_path / "b")
    render = StreamedPredictor(bundle, sample_rate=48000, block_frames=3, lookahead_frames=1, side_renderer=True)
    render.spatializer.visual.side_renderer.set_blend(np.zeros(257), np.ones(257))
    clips = {}
    for k in range(3):
        mono = (0.1 * rng.standard_normal(16000)).astype(np.float32)
        frame = _scene(rng)
        frames = np.repeat(frame[None], 10, axis=0)
        out = np.asarray(render(mono, frames, 10.0, "true"), np.float64)
        spectrum = fit_side_blend._spectrum
        in_phase, quadrature = fit_side_blend.split_parts(spectrum(0.5 * (out[0] - out[1]), 16000),
                                                          spectrum(mono.astype(np.float64), 16000))
        side = istft(in_phase + 0.3 * quadrature, fs=16000, window="hann", nperseg=512, noverlap=384)[1][:16000]
        clips[f"{k:06d}"] = (mono, np.stack([mono + side, mono - side]), frame)
    _write_set(tmp_path / "set", clips, rng)
    result = fit_side_blend.fit(str(bundle), tmp_path / "set", "all", progress=False, form="by-part",
                                validate=[tmp_path / "set"])
    wr = np.array(result["blend_rendered"])
    assert wr.shape == (2, 257) and np.array(result["blend_model"]).shape == (2, 257)
    band = slice(16, 200)   # 500 Hz - 6.2 kHz: below it a sphere's side is nearly all delay, its in-phase part too
    np.testing.assert_allclose(wr[0, band], 1.0, atol=0.1)          # small to weigh (0.46 at 0-250 Hz)
    np.testing.assert_allclose(wr[1, band], 0.3, atol=0.1)
    res = result["forms"]
    assert res["by-part"]["side_residual"]["fit clips"] < 0.5 * res["shared"]["side_residual"]["fit clips"]
    # the same clips as validation: the same residuals
    assert result["validation"]["side_residual"]["by-part form"] == pytest.approx(
        res["by-part"]["side_residual"]["fit clips"], rel=1e-9)
    fit_side_blend.apply(bundle, result, None)
    with np.load(bundle / "side_renderer.npz") as z:
        assert z["blend_model"].shape == z["blend_rendered"].shape == (2, 257)
    mono, frame = (0.1 * rng.standard_normal(48000)).astype(np.float32), _scene(rng, (224, 448))
    with Spatializer(bundle, sample_rate=48000, block_frames=3, lookahead_frames=1, mirror_average=True) as sp:
        out = _stream(sp, mono, frame)
        assert np.abs(out[0] - out[1]).max() > 1e-4                                   # a side is played
        np.testing.assert_allclose(_stream(sp, mono, np.ascontiguousarray(frame[:, ::-1])), out[::-1], atol=1e-5)
        grey = _stream(sp, mono, np.full((224, 448, 3), 128, np.uint8))
        np.testing.assert_array_equal(grey[0], grey[1])
    with pytest.raises(ValueError, match="form must be one of"):
        fit_side_blend.fit(str(bundle), tmp_path / "set", "all", progress=False, form="per-bin")


def test_a_plain_fit_of_a_room_following_bundle_replaces_its_room_weights(room_bundle, tmp_path, rng):
    from streambin.train import fit_side_blend

    bundle = _copy(room_bundle, tmp_path / "b")
    mono = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    _write_set(tmp_path / "set", {"000000": (mono, np.stack([mono, 0.6 * mono]), _scene(rng))}, rng)
    result = fit_side_blend.fit(str(bundle), tmp_path / "set", "all", progress=False)
    assert result["side_residual"]["bundle's weights before"] is None      # one pair cannot stand for it
    assert np.isfinite(result["side_residual"]["fitted weights"])
    fit_side_blend.apply(bundle, result, None)
    assert _renderer(bundle).room_detector is None


def test_a_fit_with_its_peak_power_and_field_of_view_sets_the_bundles(renderer_bundle, tmp_path):
    from streambin.train import fit_side_blend

    bundle = _copy(renderer_bundle, tmp_path / "b")
    r = _renderer(bundle)
    fitted = {"blend_model": r.w_model[0, :, 0].tolist(), "blend_rendered": r.w_rendered[0, :, 0].tolist(),
              "data": "d", "split": "s", "clips": 1, "side_residual": {}}
    for bad in (0.0, -2.0, float("nan")):
        with pytest.raises(ValueError, match="power must be a finite number > 0"):
            fit_side_blend.apply(bundle, {**fitted, "power": bad}, None)
    assert read_config(bundle)["side_renderer"]["power"] == 4.0          # refused: nothing written
    fit_side_blend.apply(bundle, {**fitted, "power": 8.0}, None)
    assert read_config(bundle)["side_renderer"]["power"] == 8.0
    assert _renderer(bundle).power == 8.0
    for bad in (0.0, 180.0, float("inf")):
        with pytest.raises(ValueError, match=r"hfov_deg must be a horizontal field of view in degrees, a number in \(0, 180\)"):
            fit_side_blend.apply(bundle, {**fitted, "hfov_deg": bad}, None)
    fit_side_blend.apply(bundle, {**fitted, "hfov_deg": 80.0}, None)
    assert _renderer(bundle).hfov_deg == 80.0
    fit_side_blend.apply(bundle, fitted, None)                           # a fit without them keeps them
    assert (_renderer(bundle).power, _renderer(bundle).hfov_deg) == (8.0, 80.0)


def test_streamed_evaluation_feeds_stored_frames_to_both_nets(renderer_bundle, tmp_path, rng):
    from streambin.train import evaluate

    mono = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    _write_set(tmp_path / "set", {"000000": (mono, np.stack([mono, 0.5 * mono]), _scene(rng, (224, 448)))},
               rng, size=(224, 448))
    common = ["--bundle", str(renderer_bundle), "--data", str(tmp_path / "set"), "--split", "all",
              "--block-frames", "3", "--lookahead", "1", "--no-localisation", "--no-progress"]
    on = evaluate.run(evaluate.build_parser().parse_args(common))
    off = evaluate.run(evaluate.build_parser().parse_args(common + ["--no-side-renderer"]))
    assert "side renderer" in on["settings"]["protocol"] and "side renderer" not in off["settings"]["protocol"]
    assert on["per_clip"][0]["metrics"]["model"]["stft"] != off["per_clip"][0]["metrics"]["model"]["stft"]


def test_streamed_evaluation_reads_each_clip_at_its_own_camera_view(renderer_bundle, tmp_path, rng):
    from streambin.train import evaluate

    mono = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    frame = _scene(rng, (224, 448))
    clips = {name: (mono, np.stack([mono, 0.5 * mono]), frame) for name in ("000000", "000001")}
    _write_set(tmp_path / "set", clips, rng, size=(224, 448), hfov_deg={"000000": 90.0, "000001": 60.0})
    common = ["--bundle", str(renderer_bundle), "--data", str(tmp_path / "set"), "--split", "all",
              "--block-frames", "3", "--lookahead", "1", "--no-localisation", "--no-progress"]
    bundles = evaluate.run(evaluate.build_parser().parse_args(common))
    own = evaluate.run(evaluate.build_parser().parse_args(common + ["--camera-hfov", "clip"]))
    assert own["settings"]["camera_hfov_deg"] == "clip" and "each clip's own camera view" in own["settings"]["protocol"]
    stft = [[c["metrics"]["model"]["stft"] for c in r["per_clip"]] for r in (bundles, own)]
    assert stft[1][0] == stft[0][0]      # filmed at the bundle's 90 degrees: the same output
    assert stft[1][1] != stft[0][1]      # at 60 degrees the objects are read nearer the centre
    fixed = evaluate.run(evaluate.build_parser().parse_args(common + ["--camera-hfov", "60"]))
    assert [c["metrics"]["model"]["stft"] for c in fixed["per_clip"]][1] == stft[1][1]

    _write_set(tmp_path / "bare", {"000000": clips["000000"]}, rng, size=(224, 448))
    with pytest.raises(ValueError, match="needs each clip's meta with its 'hfov_deg'"):
        evaluate.run(evaluate.build_parser().parse_args(
            [a if a != str(tmp_path / "set") else str(tmp_path / "bare") for a in common] + ["--camera-hfov", "clip"]))
    with pytest.raises(SystemExit):
        evaluate.build_parser().parse_args(common + ["--camera-hfov", "wide"])
    with pytest.raises(ValueError, match="--camera-hfov is read by the engine's side renderer"):
        evaluate.run(evaluate.build_parser().parse_args(["--checkpoint", str(tmp_path / "any.pt"), "--data",
                                                         str(tmp_path / "set"), "--camera-hfov", "70"]))
