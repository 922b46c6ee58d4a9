"""Clip-art objects: which drawings are found, the kept-out list, and scenes that draw their
objects as clip art (tiny generated drawings; the real package's list is checked where it is
installed)."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from streambin.train.sim import assets as A
from streambin.train.sim import clipart, pools
from streambin.train.sim.scene import Library, SceneOptions, compose_frames, sample_scene

from .test_sim_diversity import diverse_assets  # noqa: F401 (a fixture: stamps, talkers, backgrounds)


def _drawing(path, h=48, w=40, channels=4, colour=(0, 200, 0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((h, w, channels), np.uint8)
    img[:, :, :3] = colour
    if channels == 4:
        img[4:-4, 4:-4, 3] = 255
    cv2.imwrite(str(path), img)


@pytest.fixture
def clipart_root(tmp_path):
    """A package-like tree: usable drawings in object categories (one in a kept-out list), one in
    an excluded subtree, one in a category that is not used, an RGB picture, a thumbnail, a
    drawing larger than MAX_SIDE_PX and a fully transparent one."""
    root = tmp_path / "png"
    for k in range(6):
        _drawing(root / "animals" / f"cat{k}.png", colour=(0, 40 * k, 255 - 40 * k))
    _drawing(root / "food" / "fruit" / "apple.png")
    _drawing(root / "food" / "fruit" / "listed.png")
    _drawing(root / "transportation" / "roadsigns" / "stop.png")
    _drawing(root / "shapes" / "star.png")
    _drawing(root / "tools" / "flat.png", channels=3)
    _drawing(root / "tools" / "tiny.png", h=20, w=20)
    _drawing(root / "tools" / "huge.png", h=48, w=clipart.MAX_SIDE_PX + 1)
    cv2.imwrite(str(root / "tools" / "empty.png"), np.zeros((48, 40, 4), np.uint8))  # fully transparent
    listed = tmp_path / "kept_out.txt"
    listed.write_text("# header\n\nfood/fruit/listed.png\n")
    return root, listed


def test_find_clipart_keeps_only_usable_object_drawings(clipart_root):
    root, listed = clipart_root
    found = clipart.find_clipart(root, kept_out_list=listed)
    assert [c.name for c in found] == ["animals/cat0", "animals/cat1", "animals/cat2", "animals/cat3",
                                       "animals/cat4", "animals/cat5", "food/fruit/apple"]
    assert all(c.png.is_file() for c in found)
    assert clipart.find_clipart(root.parent / "absent", kept_out_list=listed) == []
    with pytest.raises(ValueError, match="categories must be among"):
        clipart.find_clipart(root, categories=("shapes",), kept_out_list=listed)


def test_kept_out_list_is_required_and_parsed(tmp_path, clipart_root):
    root, listed = clipart_root
    assert clipart.kept_out_names(listed) == {"food/fruit/listed"}
    with pytest.raises(FileNotFoundError, match="kept-out list"):
        clipart.find_clipart(root, kept_out_list=tmp_path / "missing.txt")


def test_shipped_kept_out_list_names_real_drawings():
    """The list beside the module exists, has its header, and (where the package is installed)
    names only files the package has."""
    text = clipart.KEPT_OUT_LIST.read_text()
    assert text.startswith("#") and "gcompris-qt-data" in text
    names = clipart.kept_out_names()
    if not clipart.DEFAULT_CLIPART.is_dir():
        pytest.skip(f"{clipart.PACKAGE} is not installed")
    missing = [n for n in names if not (clipart.DEFAULT_CLIPART / (n + ".png")).is_file()]
    assert not missing, f"kept-out entries that are no file of the package: {missing[:5]}"
    found = {c.name for c in clipart.find_clipart()}
    assert found and not (found & names)


def test_clipart_share_is_validated():
    with pytest.raises(ValueError, match="clipart_share must be in"):
        SceneOptions(clipart_share=1.5)


def test_library_without_clipart_names_the_package(diverse_assets, tmp_path, clipart_root):  # noqa: F811
    paths = replace(diverse_assets, clipart=tmp_path / "none", clipart_kept_out=clipart_root[1])
    with pytest.raises(A.MissingAssetError, match=clipart.PACKAGE):
        Library(paths, options=SceneOptions(clipart_share=0.5, head_variation=False))


def test_clipart_scenes_change_only_the_pictures(diverse_assets, clipart_root):  # noqa: F811
    root, listed = clipart_root
    paths = replace(diverse_assets, clipart=root, clipart_kept_out=listed)
    base = SceneOptions(head_variation=False, speech_share=0.0)
    plain_lib = Library(paths, options=base)
    clip_lib = Library(paths, options=replace(base, clipart_share=1.0))
    in_pool = {str(c.png) for c in clip_lib.clipart}
    assert in_pool and all(pools.pool_of("clipart", c.name) == "train" for c in clip_lib.clipart)
    n_sources = 0
    for i in range(6):
        plain = sample_scene(np.random.default_rng([11, i]), plain_lib, seconds=0.5)
        drawn = sample_scene(np.random.default_rng([11, i]), clip_lib, seconds=0.5)
        assert len(plain.sources) == len(drawn.sources)
        pictures = [s.cutout for s in drawn.sources]
        assert all(p in in_pool for p in pictures), "every source is drawn as clip art"
        assert len(set(pictures)) == len(pictures), "two sources of a clip share a drawing"
        for a, b in zip(plain.sources, drawn.sources):  # what is heard and where: unchanged
            assert (a.name, a.kind, a.sound, a.silent) == (b.name, b.kind, b.sound, b.silent)
            np.testing.assert_array_equal(a.azimuth_deg, b.azimuth_deg)
        assert (plain.room is None) == (drawn.room is None) and plain.head == drawn.head
        frames, boxes = compose_frames(drawn, clip_lib)
        assert frames[0].shape == (drawn.height, drawn.width, 3)
        n_sources += len(drawn.sources)
    assert n_sources > 6
    # share 0 draws nothing extra: the same scene as without the option
    zero = sample_scene(np.random.default_rng([11, 0]), Library(paths, options=replace(base, clipart_share=0.0)),
                        seconds=0.5)
    first = sample_scene(np.random.default_rng([11, 0]), plain_lib, seconds=0.5)
    assert [s.cutout for s in zero.sources] == [s.cutout for s in first.sources]


def test_talkers_keep_their_pictures(diverse_assets, clipart_root):  # noqa: F811
    root, listed = clipart_root
    lib = Library(replace(diverse_assets, clipart=root, clipart_kept_out=listed),
                  options=SceneOptions(head_variation=False, speech_share=1.0, clipart_share=1.0))
    talkers = {str(t.png) for t in lib.talkers}
    seen = 0
    for i in range(4):
        for s in sample_scene(np.random.default_rng([12, i]), lib, seconds=0.5).sources:
            if s.kind == "speech":
                assert s.cutout in talkers
                seen += 1
    assert seen > 0


def test_simulate_cli_passes_the_share():
    from streambin.train import simulate

    args = simulate.build_parser().parse_args(["--out", "unused", "--clips", "1", "--clipart", "0.25"])
    assert simulate.options_from_args(args).clipart_share == 0.25
    args = simulate.build_parser().parse_args(["--out", "unused", "--clips", "1"])
    assert simulate.options_from_args(args).clipart_share == 0.0
