"""PyTorch datasets for SimBinaural-lite (streambin.train.simulate) and FAIR-Play.

Both yield the items of docs/architecture.md ("Data"):

- ``mode="train"``: ``{"audio": (2, crop_samples) float32 tensor L/R at 16 kHz whose mono
  (L+R)/2 has RMS ``rms`` (scale = rms / max(rms(mono), 1e-4), as the runtime's floor),
  "frame": (H, W, 3) uint8 RGB tensor at ``visual_size``, the frame nearest the crop centre,
  "clip": str, "flipped": bool}``. Augmentation as in the papers: a uniformly random crop;
  brightness and colour saturation each scaled by a factor uniform in [0.7, 1.3] (on the
  uint8 frame); with probability ``flip_prob`` the frame is mirrored horizontally AND left and
  right are swapped together (a mirrored scene).
- opt-in training-item fields (constructor arguments, all off by default; used by the
  issue-5 recipes): ``with_second_frame=True`` adds ``"frame2"`` (H, W, 3) uint8, the frame
  ``second_frame_gap_s`` later than ``"frame"`` (earlier when that is past the clip end), with
  the same jitter and flip; ``clip_frames=K`` adds ``"clip_frames"`` (K, H, W, 3) uint8, the K
  consecutive frames centred on the crop centre (clamped at the clip ends), same jitter and
  flip; ``with_rir=True`` (SimBinaural-lite only) adds ``"rir"`` (2, rir_samples) float32,
  the ground-truth binaural room impulse response of the clip's first source at 16 kHz
  (``brirs/<clip>.npy``), truncated or zero-padded, channels swapped when flipped;
  ``with_positions=True`` (sidecars needed) adds ``"source_x"`` (3,) float32, each source's box
  centre in the item's frame as a fraction of the width (mirrored when flipped; -1 for no
  source), for the auxiliary localisation loss, and ``"silent_distractors"`` () bool, whether
  the clip's picture also shows objects that make no sound (then the picture alone cannot say
  which object sounds). These draw no random numbers, so the crops of a seed are the same with
  and without them.
- ``blank_prob`` (train items; default 0): with this probability an item becomes a "picture
  says nothing" example (:func:`blank_item`): a uniform frame and the mono mix as the target
  in both ears, so a model learns to leave the sound centred when the picture shows no source.
- ``mode="eval"``: ``{"audio": (2, n) float32 whole clip (not normalised), "frames":
  (n_frames, H, W, 3) uint8, "fps": float, "clip": str, "meta": dict or None}``.

Frame timing (FAIR-Play's convention): file ``k`` (1-based, ``%06d.png``) covers
``[(k-1)/fps, k/fps)``, so the frame nearest time ``t`` is file ``floor(t * fps) + 1``.

Determinism: item ``i`` of epoch ``e`` draws its crop, jitter and flip from
``numpy.random.default_rng([seed, e, i])``: the same for any number of DataLoader workers.
Call :meth:`set_epoch` at the start of each epoch for new crops (a DataLoader without
persistent workers copies the dataset, and its epoch, when each epoch's workers start).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf
import soxr
import torch
from torch.utils.data import Dataset

from streambin.signal_contract import RMS_FLOOR, input_scale

MODEL_SAMPLE_RATE = 16000
MAX_SOURCES = 3  # the generator's --max-sources ceiling


def read_clip(root: str | Path, clip: str):
    """Read a SimBinaural-lite clip.

    Returns:
        ``(audio, sample_rate, frames_dir)``: ``audio (2, n) float32`` left/right,
        ``sample_rate`` int Hz, ``frames_dir`` Path of ``frames/<clip>/``.
    """
    root = Path(root)
    wav = root / "binaural_audios" / f"{clip}.wav"
    if not wav.is_file():
        raise FileNotFoundError(f"no audio for clip {clip!r}: {wav}")
    audio, sr = _read_stereo(wav)
    return audio, sr, root / "frames" / clip


def _read_stereo(path: Path) -> tuple[np.ndarray, int]:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if x.shape[1] != 2:
        raise ValueError(f"{path} must be 2-channel (left, right), has {x.shape[1]} channels")
    return np.ascontiguousarray(x.T), int(sr)


def stored_frame_size(root: str | Path) -> tuple[int, int]:
    """``(H, W)`` of the first frame file of a generated set's first clip (a set's frames share
    one size): what a streamed evaluation hands the engine when its nets need other sizes."""
    first = next(iter(sorted((Path(root) / "frames").glob("*/000001.png"))), None)
    img = None if first is None else cv2.imread(str(first), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"no readable frames/*/000001.png under {root}")
    return int(img.shape[0]), int(img.shape[1])


def load_frame(path: Path, visual_size) -> np.ndarray:
    """A frame file as ``(H, W, 3) uint8`` RGB at ``visual_size`` (H, W), resized with area
    averaging when its size differs."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read frame {path}")
    h, w = visual_size
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def colour_jitter(frame: np.ndarray, brightness: float, saturation: float) -> np.ndarray:
    """Scale brightness and colour saturation of an ``(H, W, 3) uint8`` RGB frame.

    ``saturation`` blends with the frame's grey version (ITU-R 601 luma), like PIL's
    ImageEnhance.Color; ``brightness`` multiplies all channels, like ImageEnhance.Brightness.
    """
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    x = frame.astype(np.float32)
    grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = grey[..., None] + saturation * (x - grey[..., None])
    return np.clip(x * brightness + 0.5, 0, 255).astype(np.uint8)


def source_columns(boxes, width: float, flipped: bool) -> np.ndarray:
    """Horizontal centres of the sounding sources' boxes ``[x0, y0, x1, y1]`` as fractions of
    the frame ``width``, mirrored when ``flipped``: ``(MAX_SOURCES,) float32``, -1 where no
    source (the first MAX_SOURCES boxes are used)."""
    xs = np.full(MAX_SOURCES, -1.0, np.float32)
    for j, (x0, _, x1, _) in enumerate(list(boxes)[:MAX_SOURCES]):
        x = min(max((x0 + x1) / 2.0 / width, 0.0), 1.0)
        xs[j] = 1.0 - x if flipped else x
    return xs


def blank_item(item: dict, rng: np.random.Generator) -> dict:
    """The fields that turn a training item into a "picture says nothing" example: a frame of
    one uniform colour (grey most often) and, as the target, the mono mix in both ears (a
    centred output; no source may be placed from a picture that shows none)."""
    frame = item["frame"]
    colour = np.full(3, rng.integers(30, 226)) if rng.random() < 0.7 else rng.integers(0, 256, 3)
    blank = torch.from_numpy(np.broadcast_to(colour.astype(np.uint8), tuple(frame.shape)).copy())
    mono = item["audio"].mean(dim=0, keepdim=True)
    out = {"frame": blank, "audio": mono.expand(2, -1).contiguous()}
    if "source_x" in item:
        out["source_x"] = torch.full_like(item["source_x"], -1.0)
        out["silent_distractors"] = torch.tensor(False)  # a uniform frame shows nothing
    return out


class _BinauralBase(Dataset):
    """Shared crop / augmentation / eval logic; subclasses list clips and read them."""

    def __init__(self, mode, visual_size, crop_samples, flip_prob, rms, seed, with_second_frame=False,
                 second_frame_gap_s=1.0, clip_frames=0, with_rir=False, rir_samples=10080,
                 with_positions=False, blank_prob=0.0):
        if not 0.0 <= blank_prob <= 1.0:
            raise ValueError(f"blank_prob must be in [0, 1], got {blank_prob}")
        self.blank_prob = float(blank_prob)
        if not second_frame_gap_s > 0:
            raise ValueError(f"second_frame_gap_s must be > 0 seconds, got {second_frame_gap_s}")
        if not isinstance(clip_frames, int) or clip_frames < 0:
            raise ValueError(f"clip_frames must be an int >= 0 (0: off), got {clip_frames!r}")
        if rir_samples < 1:
            raise ValueError(f"rir_samples must be >= 1, got {rir_samples}")
        self.with_second_frame, self.second_frame_gap_s = bool(with_second_frame), float(second_frame_gap_s)
        self.clip_frames, self.with_rir, self.rir_samples = clip_frames, bool(with_rir), int(rir_samples)
        self.with_positions = bool(with_positions)
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
        if len(tuple(visual_size)) != 2 or min(visual_size) < 1:
            raise ValueError(f"visual_size must be (H, W) positive ints, got {visual_size}")
        if crop_samples < 1:
            raise ValueError(f"crop_samples must be >= 1, got {crop_samples}")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        if rms <= 0:
            raise ValueError(f"rms must be > 0, got {rms}")
        self.mode, self.visual_size = mode, (int(visual_size[0]), int(visual_size[1]))
        self.crop_samples, self.flip_prob, self.rms, self.seed = int(crop_samples), flip_prob, rms, seed
        self.epoch = 0
        self.clips: list[str] = []

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops/flips items draw (see the module docstring)."""
        self.epoch = int(epoch)

    def keep_clips(self, keep) -> None:
        """Restrict the set to the clips whose name ``keep(name)`` accepts (order kept); raises
        ValueError when none is left, since an empty training set cannot train."""
        kept = [c for c in self.clips if keep(c)]
        if not kept:
            raise ValueError(f"no clip of the {len(self.clips)} is kept by {keep!r}")
        self.clips = kept

    def __len__(self) -> int:
        return len(self.clips)

    def clip_audio(self, i: int) -> np.ndarray:
        """Clip ``i``'s whole binaural audio, ``(2, n)`` float32 (left, right) at 16 kHz, without
        decoding its frames (for measures of the audio alone)."""
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} clips")
        return self._audio(i)

    def meta(self, i: int):
        """Clip ``i``'s sidecar (``meta/<clip>.json`` of a generated set) as a dict, or None."""
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} clips")
        return self._meta(i)

    # subclass interface
    def _audio(self, i: int) -> np.ndarray: ...  # (2, n) float32 at 16 kHz
    def _frame_path(self, i: int, k: int) -> Path: ...  # 1-based frame file
    def _n_frames(self, i: int) -> int: ...
    def _fps(self, i: int) -> float: ...
    def _meta(self, i: int): return None
    def _rir(self, i: int) -> np.ndarray:  # (n_sources, 2, taps) float32 at 16 kHz
        raise ValueError(f"{type(self).__name__} has no room impulse responses (with_rir=True needs "
                         "the SimBinaural-lite layout's brirs/)")

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} clips")
        audio = self._audio(i)
        if self.mode == "eval":
            frames = np.stack([load_frame(self._frame_path(i, k), self.visual_size)
                               for k in range(1, self._n_frames(i) + 1)])
            return {"audio": torch.from_numpy(audio), "frames": torch.from_numpy(frames),
                    "fps": float(self._fps(i)), "clip": self.clips[i], "meta": self._meta(i)}
        rng = np.random.default_rng([self.seed, self.epoch, i])
        n, c = audio.shape[1], self.crop_samples
        if n < c:  # shorter than a crop: zero-pad at the end
            audio = np.pad(audio, ((0, 0), (0, c - n)))
            n = c
        start = int(rng.integers(0, n - c + 1))
        crop = audio[:, start:start + c].astype(np.float64)
        crop = crop * input_scale((crop[0] + crop[1]) / 2, self.rms, RMS_FLOOR)
        centre_s = (start + c / 2) / MODEL_SAMPLE_RATE
        k = min(int(np.floor(centre_s * self._fps(i))), self._n_frames(i) - 1) + 1
        frame = load_frame(self._frame_path(i, k), self.visual_size)
        jitter = (rng.uniform(0.7, 1.3), rng.uniform(0.7, 1.3))
        frame = colour_jitter(frame, *jitter)
        flipped = bool(rng.random() < self.flip_prob)
        if flipped:
            frame = frame[:, ::-1]
            crop = crop[::-1]
        item = {"audio": torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32)),
                "frame": torch.from_numpy(np.ascontiguousarray(frame)),
                "clip": self.clips[i], "flipped": flipped}
        item.update(self._extras(i, k, centre_s, jitter, flipped))
        if self.blank_prob > 0:  # drawn last: the crops of a seed do not depend on blank_prob
            blank_rng = np.random.default_rng([self.seed, self.epoch, i, 2])
            if blank_rng.random() < self.blank_prob:
                item.update(blank_item(item, blank_rng))
        return item

    def _extras(self, i: int, k: int, centre_s: float, jitter, flipped: bool) -> dict:
        """The opt-in fields of a training item (see the module docstring); ``k`` is the 1-based
        frame of ``"frame"``."""
        out = {}
        n = self._n_frames(i)

        def load(kk):
            f = colour_jitter(load_frame(self._frame_path(i, kk), self.visual_size), *jitter)
            return np.ascontiguousarray(f[:, ::-1] if flipped else f)

        if self.with_second_frame:
            fps = self._fps(i)
            k2 = int(np.floor((centre_s + self.second_frame_gap_s) * fps)) + 1
            if k2 > n:
                k2 = int(np.floor((centre_s - self.second_frame_gap_s) * fps)) + 1
            out["frame2"] = torch.from_numpy(load(min(max(k2, 1), n)))
        if self.clip_frames:
            first = k - self.clip_frames // 2
            ks = [min(max(first + j, 1), n) for j in range(self.clip_frames)]
            out["clip_frames"] = torch.from_numpy(np.stack([load(kk) for kk in ks]))
        if self.with_rir:
            rir = np.asarray(self._rir(i), dtype=np.float32)
            if rir.ndim != 3 or rir.shape[1] != 2 or rir.shape[0] < 1:
                raise ValueError(f"room responses of clip {self.clips[i]!r} must be (n_sources, 2, taps), "
                                 f"got {rir.shape}")
            r = np.zeros((2, self.rir_samples), np.float32)
            taps = min(self.rir_samples, rir.shape[2])
            r[:, :taps] = rir[0, :, :taps]
            out["rir"] = torch.from_numpy(np.ascontiguousarray(r[::-1] if flipped else r))
        if self.with_positions:
            out["source_x"] = torch.from_numpy(self._source_x(i, k, flipped))
            out["silent_distractors"] = torch.tensor(self._has_silent_distractors(i))
        return out

    def _has_silent_distractors(self, i: int) -> bool:
        """Whether clip ``i``'s sidecar lists a silent source (a distractor)."""
        m = self._meta(i)
        return any(src.get("silent", False) for src in (m or {}).get("sources", []))

    def _source_x(self, i: int, k: int, flipped: bool) -> np.ndarray:
        """Horizontal box centres of the sources in frame ``k`` (1-based) as fractions of the
        frame width, mirrored when flipped: (MAX_SOURCES,) float32, -1 where no source."""
        m = self._meta(i)
        if not m or "sources" not in m:
            raise ValueError(f"clip {self.clips[i]!r}: with_positions needs the sidecar's source boxes")
        sounding = [src for src in m["sources"] if not src.get("silent", False)]  # distractors are not sources
        boxes = [src["bbox"][min(k - 1, len(src["bbox"]) - 1)] for src in sounding]
        return source_columns(boxes, float(m.get("frame_width", 448)), flipped)


class SimBinauralDataset(_BinauralBase):
    """A SimBinaural-lite split: ``root/splits/<split>.txt`` lists clip names.

    Args:
        root: the directory given to ``simulate --out``.
        split: "train", "val" or "test".
        mode, visual_size (H, W), crop_samples, flip_prob, rms, seed: see the module docstring.
        **extras: the opt-in item fields (with_second_frame, second_frame_gap_s, clip_frames,
            with_rir, rir_samples), see the module docstring.
    """

    def __init__(self, root, split, mode="train", visual_size=(224, 448), crop_samples=10080,
                 flip_prob=0.0, rms=0.1, seed=0, **extras):
        super().__init__(mode, visual_size, crop_samples, flip_prob, rms, seed, **extras)
        self.root = Path(root)
        lst = self.root / "splits" / f"{split}.txt"
        if not lst.is_file():
            raise FileNotFoundError(f"split file {lst} not found (write it with "
                                    f"python -m streambin.train.simulate --out {self.root} --splits-only)")
        self.clips = [l.strip() for l in lst.read_text().splitlines() if l.strip()]
        self._meta_cache: dict = {}

    def _meta(self, i):
        c = self.clips[i]
        if c not in self._meta_cache:
            p = self.root / "meta" / f"{c}.json"
            self._meta_cache[c] = json.loads(p.read_text()) if p.is_file() else None
        return self._meta_cache[c]

    def _audio(self, i):
        audio, sr, _ = read_clip(self.root, self.clips[i])
        if sr != MODEL_SAMPLE_RATE:
            audio = soxr.resample(audio.T, sr, MODEL_SAMPLE_RATE).T.astype(np.float32)
        return np.ascontiguousarray(audio)

    def _rir(self, i):
        m = self._meta(i)
        if not m or "brir_file" not in m:
            raise FileNotFoundError(f"clip {self.clips[i]!r} has no meta/<clip>.json with a brir_file")
        sr = int(m.get("brir_sample_rate", MODEL_SAMPLE_RATE))
        if sr != MODEL_SAMPLE_RATE:
            raise ValueError(f"clip {self.clips[i]!r}: BRIRs at {sr} Hz, expected {MODEL_SAMPLE_RATE}")
        return np.load(self.root / m["brir_file"])

    def _fps(self, i):
        m = self._meta(i)
        return float(m["fps"]) if m else 10.0

    def _n_frames(self, i):
        m = self._meta(i)
        if m and "n_frames" in m:
            return int(m["n_frames"])
        return len(list((self.root / "frames" / self.clips[i]).glob("*.png")))

    def _frame_path(self, i, k):
        return self.root / "frames" / self.clips[i] / f"{k:06d}.png"


class FairPlayDataset(_BinauralBase):
    """FAIR-Play as its authors ship it.

    Args:
        root: the FAIR-Play directory (``binaural_audios/*.wav`` at 48 kHz, ``frames/``).
        split_file: an ``.h5`` file (e.g. ``splits/split1/train.h5``; relative paths are taken
            from ``root``) whose dataset ``audio`` holds wav paths as byte strings. Paths that do
            not exist as written are looked up by file name in ``root/binaural_audios``.
        mode, visual_size, crop_samples, flip_prob, rms, seed: see the module docstring.

    Frames are read from ``root/frames/<stem>.mp4/`` (the authors' layout) or
    ``root/frames/<stem>/``, 10 fps. Audio is resampled to 16 kHz with soxr.
    """

    FPS = 10.0

    def __init__(self, root, split_file, mode="train", visual_size=(224, 448), crop_samples=10080,
                 flip_prob=0.0, rms=0.1, seed=0, **extras):
        super().__init__(mode, visual_size, crop_samples, flip_prob, rms, seed, **extras)
        import h5py

        self.root = Path(root)
        sp = Path(split_file)
        if not sp.is_absolute() and not sp.is_file():
            sp = self.root / sp
        if not sp.is_file():
            raise FileNotFoundError(f"FAIR-Play split file {split_file} not found")
        with h5py.File(sp, "r") as f:
            if "audio" not in f:
                raise ValueError(f"{sp} has no dataset 'audio' (expected wav paths as byte strings)")
            raw = [p.decode() if isinstance(p, bytes) else str(p) for p in f["audio"][()]]
        self.wavs = []
        for p in raw:
            path = Path(p.strip())
            if not path.is_file():
                path = self.root / "binaural_audios" / path.name
            if not path.is_file():
                raise FileNotFoundError(f"wav {p!r} listed in {sp} not found (also not in "
                                        f"{self.root / 'binaural_audios'})")
            self.wavs.append(path)
        self.clips = [w.stem for w in self.wavs]
        self._nframes: dict = {}

    def _frames_dir(self, i) -> Path:
        d = self.root / "frames" / f"{self.clips[i]}.mp4"
        return d if d.is_dir() else self.root / "frames" / self.clips[i]

    def _audio(self, i):
        audio, sr = _read_stereo(self.wavs[i])
        if sr != MODEL_SAMPLE_RATE:
            audio = soxr.resample(audio.T, sr, MODEL_SAMPLE_RATE).T
        return np.ascontiguousarray(audio, dtype=np.float32)

    def _fps(self, i):
        return self.FPS

    def _n_frames(self, i):
        if i not in self._nframes:
            n = len(list(self._frames_dir(i).glob("*.png")))
            if n == 0:
                raise FileNotFoundError(f"no frames in {self._frames_dir(i)}")
            self._nframes[i] = n
        return self._nframes[i]

    def _frame_path(self, i, k):
        return self._frames_dir(i) / f"{k:06d}.png"


class OnlineSimDataset(Dataset):
    """Training items rendered on the fly from the scene generator: no files, every item a new
    scene, so a run can see millions of distinct scenes.

    Items are the ``mode="train"`` items of the file-based datasets (see the module docstring):
    ``{"audio": (2, crop_samples) float32, "frame": (H, W, 3) uint8, "clip": str,
    "flipped": bool}`` plus ``"source_x"`` and ``"silent_distractors"`` with
    ``with_positions=True`` (the SOUNDING sources' box centres only: silent distractors are not
    sources; the flag says whether the picture shows any). The scene is rendered for
    ``crop_samples`` (plus 0.1 s) with one frame, shown at the crop's centre. With
    ``frames_only=True`` no sound is rendered and items have no ``"audio"``: the pictures alone,
    about three times as many per CPU second (``docs/dataset.md``), for training the visual path.

    Determinism: item ``i`` of epoch ``e`` is drawn from ``default_rng([seed, e, i])``: the same
    scene, crop, jitter and flip for any number of DataLoader workers.

    Args:
        length: items per epoch.
        pool: asset pool ("train" for training; "ood" only for measurements).
        options: :class:`streambin.train.sim.scene.SceneOptions` (default: all variation on).
        room_prob, moving_prob, max_sources, instrument_prob: as the offline generator's.
        paths: :class:`streambin.train.sim.assets.AssetPaths` (default: the Debian locations).
        visual_size, crop_samples, flip_prob, rms, with_positions: as the file-based datasets'.
        frames_only: render the picture and the boxes, not the sound.
        kind_pools: kinds drawn from the other pool, e.g. ``{"background": "ood"}``
            (:func:`streambin.train.sim.pools.check_kind_pools`; measurements only).
    """

    def __init__(self, length: int, pool: str = "train", seed: int = 0, visual_size=(224, 448),
                 crop_samples: int = 10080, flip_prob: float = 0.0, rms: float = 0.1,
                 room_prob: float = 0.5, moving_prob: float = 0.3, max_sources: int = 3,
                 instrument_prob: float = 0.3, options=None, paths=None, with_positions: bool = False,
                 frames_only: bool = False, kind_pools=None):
        from .sim.pools import check_pool
        from .sim.scene import SceneOptions, check_pools

        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        if len(tuple(visual_size)) != 2 or min(visual_size) < 1:
            raise ValueError(f"visual_size must be (H, W) positive ints, got {visual_size}")
        if crop_samples < 160:
            raise ValueError(f"crop_samples must be >= 160, got {crop_samples}")
        for name, p in (("flip_prob", flip_prob), ("room_prob", room_prob), ("moving_prob", moving_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if rms <= 0:
            raise ValueError(f"rms must be > 0, got {rms}")
        self.length, self.pool, self.seed = int(length), check_pool(pool), seed
        # checked here, not first in a worker process (the Library is built lazily there)
        self.kind_pools = check_pools(options if options is not None else SceneOptions(), self.pool, kind_pools)
        self.visual_size = (int(visual_size[0]), int(visual_size[1]))
        self.crop_samples, self.flip_prob, self.rms = int(crop_samples), float(flip_prob), float(rms)
        self.room_prob, self.moving_prob, self.max_sources = room_prob, moving_prob, int(max_sources)
        self.instrument_prob, self.options, self.paths = instrument_prob, options, paths
        self.with_positions, self.frames_only = bool(with_positions), bool(frames_only)
        self.epoch = 0
        self._lib = None  # built lazily in each worker process

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    @property
    def library(self):
        if self._lib is None:
            from .sim.assets import AssetPaths
            from .sim.scene import Library
            self._lib = Library(self.paths or AssetPaths(), MODEL_SAMPLE_RATE, pool=self.pool,
                                options=self.options, kind_pools=self.kind_pools)
        return self._lib

    def render(self, i: int, epoch: int | None = None):
        """Scene ``i`` of ``epoch`` (default: the current one): ``(audio (2, n) float32 at 16 kHz,
        frame (448x224 RGB uint8), scene, bboxes)``; the frame shows the audio's centre. With
        ``frames_only`` the audio is None and the scene's sounds are never loaded."""
        from .sim.scene import compose_frames, render_audio, sample_scene

        lib = self.library
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch, i])
        seconds = self.crop_samples / MODEL_SAMPLE_RATE + 0.1
        scene = sample_scene(rng, lib, seconds=seconds, fps=1.0 / seconds,
                             max_sources=self.max_sources, room_prob=self.room_prob,
                             moving_prob=self.moving_prob, instrument_prob=self.instrument_prob)
        audio = None if self.frames_only else render_audio(scene, lib, rng)[0]
        frames, bboxes = compose_frames(scene, lib)
        return audio, frames[0], scene, bboxes

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} items")
        audio, frame, scene, bboxes = self.render(i)
        rng = np.random.default_rng([self.seed, self.epoch, i, 1])  # augmentation stream
        H, W = self.visual_size
        frame = cv2.resize(frame, (W, H), interpolation=cv2.INTER_AREA)
        frame = colour_jitter(frame, rng.uniform(0.7, 1.3), rng.uniform(0.7, 1.3))
        flipped = bool(rng.random() < self.flip_prob)
        if flipped:
            frame = frame[:, ::-1]
        item = {"frame": torch.from_numpy(np.ascontiguousarray(frame)),
                "clip": f"online-{self.pool}-{self.seed}-{self.epoch}-{i}", "flipped": flipped}
        if audio is not None:
            n, c = audio.shape[1], self.crop_samples
            start = (n - c) // 2  # centred on the frame's time
            crop = audio[:, start:start + c].astype(np.float64)
            crop = crop * input_scale((crop[0] + crop[1]) / 2, self.rms, RMS_FLOOR)
            if flipped:
                crop = crop[::-1]
            item["audio"] = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))
        if self.with_positions:
            boxes = [bb[0] for src, bb in zip(scene.sources, bboxes) if not src.silent]
            item["source_x"] = torch.from_numpy(source_columns(boxes, scene.width, flipped))
            item["silent_distractors"] = torch.tensor(any(src.silent for src in scene.sources))
        return item
