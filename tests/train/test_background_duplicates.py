"""scripts/experiments/background_duplicates.py: a picture the generator already draws is found,
whatever its resolution; a new one is not."""

import cv2
import numpy as np
import pytest

from streambin.train.sim import assets

from .experiment_scripts import load_experiment


def _script():
    return load_experiment("background_duplicates")


def test_a_known_picture_is_a_duplicate_and_a_new_one_is_not(tmp_path, capsys):
    known = [b for b in assets.find_backgrounds() if b.id == "skimage/coffee"]
    if not known:
        pytest.skip("scikit-image's coffee photograph is not installed")
    folder = tmp_path / "package"
    folder.mkdir()
    image = cv2.imread(str(known[0].path))
    cv2.imwrite(str(folder / "coffee_small.jpg"), cv2.resize(image, (300, 200)))   # another resolution
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "noise.png"), rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    assert _script().main([str(folder)]) == 0
    out = capsys.readouterr().out
    line = {ln.split()[0]: ln for ln in out.splitlines() if " nearest " in ln}
    assert "skimage/coffee" in line["coffee_small.jpg"] and line["coffee_small.jpg"].endswith("DUPLICATE")
    assert not line["noise.png"].endswith("DUPLICATE")
    assert "2 pictures, 1 already among" in out


def test_an_empty_folder_is_refused(tmp_path, capsys):
    assert _script().main([str(tmp_path)]) == 2
    assert "no picture" in capsys.readouterr().err
