"""Tiny asset fixtures for the scene generator and loader tests (no large Debian packages).

- a synthetic SOFA HRIR set (spherical-head-like ITD/ILD, SOFA azimuth convention: positive
  LEFT), written with sofar; the real MIT KEMAR file is used too where libmysofa1 is installed;
- stamps: solid-colour opaque RGBA squares with short noise OGG sounds;
- a uniform grey background photo;
- a one-preset SoundFont 2 file written byte by byte (a looped sine sample).
"""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

KEMAR = Path("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa")
STAMP_COLOURS = {"red_thing": (255, 0, 0), "green_thing": (0, 255, 0), "blue_thing": (0, 0, 255)}


def write_synthetic_sofa(path: Path, sample_rate: int = 44100, n_taps: int = 256) -> Path:
    """A SimpleFreeFieldHRIR file: directions every 5 deg azimuth at elevations -20..20 step 10;
    the ear nearer the source gets the sound earlier (Woodworth ITD, head radius 8.75 cm) and
    louder (+-4 dB at 90 deg). Receiver 0 is the left ear (y > 0), azimuth counter-clockwise."""
    import sofar

    az, el = np.meshgrid(np.arange(0, 360, 5.0), np.arange(-20, 21, 10.0))
    az, el = az.ravel(), el.ravel()
    lateral = np.sin(np.deg2rad(az)) * np.cos(np.deg2rad(el))  # +1 = fully LEFT (SOFA)
    itd = 0.0875 / 343.0 * (np.arcsin(lateral) + lateral)  # > 0: left ear leads
    t0 = 40 / sample_rate
    ir = np.zeros((len(az), 2, n_taps))
    t = np.arange(n_taps) / sample_rate
    for i in range(len(az)):
        for ear, sign in ((0, -1.0), (1, 1.0)):
            delay = t0 + sign * itd[i] / 2
            g = 10 ** (-sign * 4.0 * lateral[i] / 20)
            x = (t - delay) * sample_rate
            # band-limited (sinc) impulse at the fractional delay, tapered by a Gaussian window
            ir[i, ear] = g * np.sinc(x) * np.exp(-0.5 * (x / 30.0) ** 2)
    s = sofar.Sofa("SimpleFreeFieldHRIR")
    s.Data_IR = ir
    s.Data_SamplingRate = float(sample_rate)
    s.SourcePosition = np.stack([az, el, np.full_like(az, 1.5)], axis=1)
    s.ReceiverPosition = np.array([[0, 0.0875, 0], [0, -0.0875, 0]], dtype=float)
    sofar.write_sofa(str(path), s, compression=0)
    return path


def write_tiny_sf2(path: Path, sine_hz: float = 440.0, sample_rate: int = 22050,
                   root_key: int = 69, program: int = 40) -> Path:
    """A valid SoundFont 2 file: one preset (bank 0, ``program``) -> one instrument -> one zone
    covering keys 0-127 with a 1 s looped sine sample recorded at ``root_key``."""
    n = sample_rate
    smpl = (0.5 * 32767 * np.sin(2 * np.pi * sine_hz * np.arange(n) / sample_rate)).astype("<i2")
    smpl = np.concatenate([smpl, np.zeros(46, "<i2")]).tobytes()  # 46 zero samples per spec

    def chunk(cid: bytes, data: bytes) -> bytes:
        return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")

    def lst(kind: bytes, body: bytes) -> bytes:
        return chunk(b"LIST", kind + body)

    name = lambda s: s.encode().ljust(20, b"\0")
    # One full loop period range: 100 periods of the sine.
    period = sample_rate / sine_hz
    loop_s, loop_e = int(round(100 * period)), int(round(300 * period))
    phdr = (name("Test") + struct.pack("<HHHIII", program, 0, 0, 0, 0, 0)
            + name("EOP") + struct.pack("<HHHIII", 0, 0, 1, 0, 0, 0))
    pbag = struct.pack("<HH", 0, 0) + struct.pack("<HH", 1, 0)
    pgen = struct.pack("<Hh", 41, 0) + struct.pack("<Hh", 0, 0)
    inst = name("TestInst") + struct.pack("<H", 0) + name("EOI") + struct.pack("<H", 1)
    ibag = struct.pack("<HH", 0, 0) + struct.pack("<HH", 3, 0)
    igen = (struct.pack("<HBB", 43, 0, 127) + struct.pack("<Hh", 54, 1)
            + struct.pack("<Hh", 53, 0) + struct.pack("<Hh", 0, 0))
    shdr = (name("Sine") + struct.pack("<IIIIIBbHH", 0, n, loop_s, loop_e, sample_rate, root_key, 0, 0, 1)
            + name("EOS") + struct.pack("<IIIIIBbHH", 0, 0, 0, 0, 0, 0, 0, 0, 0))
    pmod = imod = b"\0" * 10
    info = lst(b"INFO", chunk(b"ifil", struct.pack("<HH", 2, 1)) + chunk(b"INAM", b"test\0\0"))
    sdta = lst(b"sdta", chunk(b"smpl", smpl))
    pdta = lst(b"pdta", chunk(b"phdr", phdr) + chunk(b"pbag", pbag) + chunk(b"pmod", pmod)
               + chunk(b"pgen", pgen) + chunk(b"inst", inst) + chunk(b"ibag", ibag)
               + chunk(b"imod", imod) + chunk(b"igen", igen) + chunk(b"shdr", shdr))
    body = b"sfbk" + info + sdta + pdta
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _write_stamps(root: Path) -> Path:
    rng = np.random.default_rng(123)
    for k, (stem, rgb) in enumerate(STAMP_COLOURS.items()):
        d = root / "cat" / f"sub{k}"
        d.mkdir(parents=True)
        img = np.zeros((40, 40, 4), np.uint8)
        img[:, :, :3] = rgb[::-1]  # cv2 writes BGR(A)
        img[:, :, 3] = 255
        cv2.imwrite(str(d / f"{stem}.png"), img)
        noise = rng.standard_normal(11025).astype(np.float32) * 0.2
        sf.write(str(d / f"{stem}.ogg"), noise, 22050, format="OGG", subtype="VORBIS")
        # Spoken descriptions must be ignored by the stamp finder.
        sf.write(str(d / f"{stem}_desc_fr.ogg"), noise, 22050, format="OGG", subtype="VORBIS")
    # A stamp whose sound is silent (as some tuxpaint OGGs are) must not be used.
    (root / "quiet").mkdir()
    (root / "quiet" / "silent_thing.png").write_bytes((root / "cat" / "sub0" / "red_thing.png").read_bytes())
    sf.write(str(root / "quiet" / "silent_thing.ogg"), np.zeros(11025, np.float32), 22050,
             format="OGG", subtype="VORBIS")
    (root / "lonely.png").write_bytes((root / "cat" / "sub0" / "red_thing.png").read_bytes())
    return root


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory):
    """AssetPaths of tiny fixture assets with the synthetic SOFA file and no SoundFont."""
    from streambin.train.sim.assets import AssetPaths

    root = tmp_path_factory.mktemp("assets")
    sofa = write_synthetic_sofa(root / "synthetic.sofa")
    stamps = _write_stamps(root / "stamps")
    bg = root / "grey.png"
    cv2.imwrite(str(bg), np.full((300, 600, 3), 128, np.uint8))
    return AssetPaths(sofa=sofa, stamps=stamps, sf2=None, backgrounds=[bg])


@pytest.fixture(scope="session")
def make_tiny_sim(tmp_path_factory, tiny_assets):
    """``make(name, seconds, seed=0, rooms=True)`` -> root of 10 generated clips (8/1/1 split) from
    the tiny assets: half of them moving, and half in rooms when ``rooms``."""
    from streambin.train import simulate as S

    def make(name: str, seconds: float, seed: int = 0, rooms: bool = True) -> Path:
        root = tmp_path_factory.mktemp(name)
        S.generate(root, clips=10, seconds=seconds, seed=seed, rooms=rooms, moving=True, workers=1,
                   paths=tiny_assets, room_fraction=0.5 if rooms else 0.0, moving_fraction=0.5, progress=False)
        return root

    return make


@pytest.fixture
def real_assets():
    """AssetPaths of the real Debian assets (the test is skipped where they are missing)."""
    from streambin.train.sim.assets import AssetPaths, MissingAssetError

    paths = AssetPaths()
    try:
        paths.check()
    except MissingAssetError as e:
        pytest.skip(str(e))
    return paths


@pytest.fixture(scope="session", params=["synthetic", "kemar"])
def physics_assets(request, tiny_assets):
    """The tiny assets with the synthetic SOFA, and again with the real MIT KEMAR HRIRs
    (skipped where the Debian package libmysofa1 is not installed)."""
    from dataclasses import replace

    if request.param == "kemar":
        if not KEMAR.is_file():
            pytest.skip("MIT KEMAR SOFA file absent: apt-get install libmysofa1")
        return replace(tiny_assets, sofa=KEMAR)
    return tiny_assets


@pytest.fixture(scope="session")
def tiny_library(tiny_assets):
    """The first generator's library (no pools, one head, nothing else varies): the physics
    and geometry tests of the basic scene use it."""
    from streambin.train.sim.scene import LEGACY_OPTIONS, Library

    return Library(tiny_assets, pool="all", options=LEGACY_OPTIONS)


@pytest.fixture
def one_thread(monkeypatch):
    """One torch/OpenMP thread for the test (the 2 shared cores run faster that way), restored after."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
