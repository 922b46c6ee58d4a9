"""python -m streambin.train.position_probe: a ridge probe of the visual feature for the source's azimuth."""

import argparse
import json

import numpy as np
import pytest

from streambin.train import position_probe as P


@pytest.fixture(scope="module")
def sim_root(make_tiny_sim):
    return make_tiny_sim("simbin_probe", seconds=1.0, seed=4, rooms=False)


def test_frames_come_from_single_source_clips_with_their_own_azimuth(sim_root):
    frames = P.single_source_frames(sim_root, "all", frames_per_clip=3, max_clips=0, seed=0)
    assert frames, "the tiny set has single-source clips"
    for path, azimuth, clip in frames:
        meta = json.loads((sim_root / "meta" / f"{clip}.json").read_text())
        sounding = [s for s in meta["sources"] if not s.get("silent", False)]
        assert len(sounding) == 1
        k = int(path.stem)
        assert path.is_file() and 1 <= k <= meta["n_frames"]
        assert azimuth == pytest.approx(sounding[0]["azimuth_deg"][min(k, len(sounding[0]["azimuth_deg"])) - 1])
    clips = [c for _, _, c in frames]
    assert all(clips.count(c) == 3 for c in clips)
    with pytest.raises(ValueError, match="frames_per_clip"):
        P.single_source_frames(sim_root, "all", 0, 0, 0)


def test_box_centres_give_the_azimuth_at_the_clips_own_field_of_view(sim_root):
    frames = P.labelled_frames(sim_root, "all", 2, 0, 0)
    for _, azimuth, clip, _, centre, width, hfov in frames:
        meta = json.loads((sim_root / "meta" / f"{clip}.json").read_text())
        assert width == meta["frame_width"]
        assert P.column_to_azimuth(centre, width, hfov) == pytest.approx(azimuth, abs=1.0)
    box = P.box_centre_azimuths(frames)
    assert box.shape == (2 * len(frames),) and np.array_equal(box[len(frames):], -box[:len(frames)])


def test_ridge_recovers_a_linear_azimuth_and_score_reports_it():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 6))
    y = x @ np.array([10.0, -5.0, 0.0, 2.0, 0.0, 1.0]) + 3.0
    fitted = P.Ridge(x, y, strength=1e-6)
    assert np.abs(fitted(x) - y).max() < 1e-4

    true = np.array([-30.0, -5.0, 5.0, 30.0])
    exact = P.score(true, true, constant=0.0)
    assert exact["mae_deg"] == 0 and exact["slope"] == pytest.approx(1.0) and exact["side_accuracy"] == 1.0
    assert exact["mae_near_centre_deg"] == 0 and exact["constant_mae_deg"] == pytest.approx(17.5)
    half = P.score(0.5 * true, true, constant=0.0)
    assert half["slope"] == pytest.approx(0.5) and half["mae_deg"] == pytest.approx(8.75)
    assert half["mae_near_centre_deg"] == pytest.approx(2.5) and half["side_accuracy"] == 1.0
    wrong_side = P.score(-true, true, constant=0.0)
    assert wrong_side["side_accuracy"] == 0.0 and wrong_side["slope"] == pytest.approx(-1.0)


def test_cli_fits_scores_and_writes_json(sim_root, tiny_unet, tmp_path, capsys, one_thread):
    out = tmp_path / "probe.json"
    spec = f"{sim_root}:all"
    assert P.main(["--checkpoint", str(tiny_unet[1]), "--fit", spec, "--score", spec, "--frames-per-clip", "4",
                   "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["ridge_strength"] in P.RIDGE_GRID and set(result["held_out_mae_deg"]) == {str(s) for s in P.RIDGE_GRID}
    scored = result["splits"][spec]
    n_single = len(P.single_source_frames(sim_root, "all", 4, 0, 1))
    assert scored["frames"] == 2 * n_single          # each frame and its mirror image
    assert np.isfinite(scored["mae_deg"]) and scored["mae_deg"] >= 0
    # The box centres place the sources far better than chance: they are where the generator drew them.
    assert 0 <= scored["box_centre_mae_deg"] < 0.5 * scored["constant_mae_deg"]
    # Per scene: every frame in exactly one group, the groups named from the sidecars.
    by_scene = scored["by_scene"]
    assert sum(g["frames"] for g in by_scene.values()) == scored["frames"]
    assert all(name.split(", ")[1] in ("alone", "with distractors") for name in by_scene)
    assert "MAE" in capsys.readouterr().out

    # Each frame enters twice: as it is, and mirrored with its azimuth negated.
    import torch
    from streambin.train.checkpoint import load_generator
    from streambin.train.data import load_frame
    gen, cfg = load_generator(str(tiny_unet[1]), mirror_average=False)
    size = tuple(cfg.model.visual_size)
    frames = P.single_source_frames(sim_root, "all", 1, 0, 0)[:3]
    x, y = P.features(gen.eval(), frames, size, "test")
    assert np.array_equal(y, [a for _, a, _ in frames] + [-a for _, a, _ in frames])
    mirrored = torch.from_numpy(np.ascontiguousarray(load_frame(frames[0][0], size)[None, :, ::-1]))
    with torch.no_grad():
        assert np.allclose(x[3], gen.visual(mirrored).flatten(1)[0].double().numpy(), atol=1e-6)


def test_bad_arguments_fail_clearly(sim_root, tmp_path):
    with pytest.raises(argparse.ArgumentTypeError, match="DATA_ROOT:SPLIT"):
        P.split_spec("no-colon")
    with pytest.raises(argparse.ArgumentTypeError, match="not found"):
        P.split_spec(f"{sim_root}:nosuchsplit")
    with pytest.raises(SystemExit):
        P.main(["--checkpoint", "x.pt", "--fit", f"{sim_root}:all", "--score", f"{sim_root}:all",
                "--frames-per-clip", "0"])


def test_a_missing_checkpoint_is_named(sim_root, tmp_path, capsys):
    missing = tmp_path / "missing.pt"
    assert P.main(["--checkpoint", str(missing), "--fit", f"{sim_root}:all", "--score", f"{sim_root}:all"]) == 2
    assert str(missing) in capsys.readouterr().err
