"""Read SoundFont 2 (``.sf2``) instrument samples with numpy and render simple note sequences.

Only what the scene generator needs is parsed: the ``sdta/smpl`` chunk (16-bit PCM, memory
mapped, never loaded whole) and the ``pdta`` hydra (``phdr``, ``pbag``, ``pgen``, ``inst``,
``ibag``, ``igen``, ``shdr``) that maps a General-MIDI preset to its key-ranged sample zones.
Rendering plays the real recorded sample of the zone that covers each note, pitch-shifted by
resampling (soxr) and sustained with the sample's own loop points; envelopes, filters and
modulators of the SoundFont are ignored (a short attack/release ramp is applied instead).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

# SF2 generator operators we read (SoundFont 2.04 spec, section 8.1.2).
_GEN_KEY_RANGE = 43
_GEN_INSTRUMENT = 41
_GEN_SAMPLE_ID = 53
_GEN_SAMPLE_MODES = 54
_GEN_OVERRIDING_ROOT_KEY = 58

_PHDR = np.dtype([("name", "S20"), ("preset", "<u2"), ("bank", "<u2"), ("bag", "<u2"),
                  ("library", "<u4"), ("genre", "<u4"), ("morphology", "<u4")])
_BAG = np.dtype([("gen", "<u2"), ("mod", "<u2")])
_GEN = np.dtype([("oper", "<u2"), ("amount", "<i2")])
_INST = np.dtype([("name", "S20"), ("bag", "<u2")])
_SHDR = np.dtype([("name", "S20"), ("start", "<u4"), ("end", "<u4"), ("loop_start", "<u4"),
                  ("loop_end", "<u4"), ("sample_rate", "<u4"), ("original_pitch", "u1"),
                  ("pitch_correction", "i1"), ("link", "<u2"), ("type", "<u2")])


@dataclass(frozen=True)
class Zone:
    """One key-ranged sample zone of an instrument (indices into the ``smpl`` chunk)."""

    key_lo: int
    key_hi: int
    start: int
    end: int
    loop_start: int
    loop_end: int
    loops: bool
    root_key: int
    sample_rate: int


class SoundFont:
    """A parsed SoundFont 2 file.

    Args:
        path: path of a ``.sf2`` file.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a RIFF ``sfbk`` file with ``smpl`` and ``pdta`` chunks.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"SoundFont not found: {self.path}")
        chunks = _read_chunks(self.path)
        for need in ("smpl", "phdr", "pbag", "pgen", "inst", "ibag", "igen", "shdr"):
            if need not in chunks:
                raise ValueError(f"{self.path} is not a usable SoundFont 2 file: no '{need}' chunk")
        off, size = chunks["smpl"]
        # int16 PCM, memory-mapped: the GM font is ~150 MB and a scene needs a few notes.
        self._smpl = np.memmap(self.path, dtype="<i2", mode="r", offset=off, shape=(size // 2,))
        with open(self.path, "rb") as f:
            def table(name, dtype):
                o, s = chunks[name]
                f.seek(o)
                return np.frombuffer(f.read(s), dtype=dtype)
            self._phdr = table("phdr", _PHDR)
            self._pbag = table("pbag", _BAG)
            self._pgen = table("pgen", _GEN)
            self._inst = table("inst", _INST)
            self._ibag = table("ibag", _BAG)
            self._igen = table("igen", _GEN)
            self._shdr = table("shdr", _SHDR)

    def presets(self) -> list[tuple[int, int, str]]:
        """Return ``[(bank, program, name), ...]`` for every preset (terminal record excluded)."""
        return [(int(r["bank"]), int(r["preset"]), r["name"].split(b"\0")[0].decode("latin-1"))
                for r in self._phdr[:-1]]

    def zones(self, program: int, bank: int = 0) -> list[Zone]:
        """Sample zones of the first instrument layer of preset ``(bank, program)``.

        Raises:
            KeyError: if the preset does not exist.
        """
        idx = np.nonzero((self._phdr["preset"][:-1] == program) & (self._phdr["bank"][:-1] == bank))[0]
        if len(idx) == 0:
            raise KeyError(f"no preset bank={bank} program={program} in {self.path}")
        p = int(idx[0])
        inst = None
        for b in range(int(self._phdr["bag"][p]), int(self._phdr["bag"][p + 1])):
            gens = self._gens(self._pgen, self._pbag, b)
            if _GEN_INSTRUMENT in gens:
                inst = int(gens[_GEN_INSTRUMENT]) & 0xFFFF
                break
        if inst is None:
            raise KeyError(f"preset bank={bank} program={program} has no instrument")
        out = []
        global_gens: dict[int, int] = {}
        for b in range(int(self._inst["bag"][inst]), int(self._inst["bag"][inst + 1])):
            gens = self._gens(self._igen, self._ibag, b)
            if _GEN_SAMPLE_ID not in gens:
                global_gens = gens  # a global zone: defaults for the others
                continue
            g = {**global_gens, **gens}
            s = self._shdr[int(g[_GEN_SAMPLE_ID]) & 0xFFFF]
            raw = int(g.get(_GEN_KEY_RANGE, 127 << 8)) & 0xFFFF
            lo, hi = raw & 0xFF, raw >> 8
            root = int(g.get(_GEN_OVERRIDING_ROOT_KEY, -1))
            if root < 0:
                root = int(s["original_pitch"]) if s["original_pitch"] <= 127 else 60
            out.append(Zone(lo, hi, int(s["start"]), int(s["end"]), int(s["loop_start"]),
                            int(s["loop_end"]), int(g.get(_GEN_SAMPLE_MODES, 0)) & 1 == 1,
                            root, int(s["sample_rate"])))
        return out

    @staticmethod
    def _gens(gen_table, bag_table, b) -> dict[int, int]:
        g0, g1 = int(bag_table["gen"][b]), int(bag_table["gen"][b + 1])
        rows = gen_table[g0:g1]
        return {int(o): int(a) for o, a in zip(rows["oper"], rows["amount"])}

    def note(self, zones: list[Zone], key: int, seconds: float, sample_rate: int) -> np.ndarray:
        """Render one note: ``(round(seconds*sample_rate),) float32`` mono in [-1, 1].

        The zone covering ``key`` (nearest zone if none covers it) is pitch-shifted from its
        root key and, if it loops, sustained with its loop; a 5 ms attack and a release ramp
        over the last 20 % (at most 150 ms) avoid clicks.
        """
        if not zones:
            raise ValueError("zones must be a non-empty list of Zone")
        if seconds <= 0 or sample_rate <= 0:
            raise ValueError(f"seconds and sample_rate must be > 0, got {seconds}, {sample_rate}")
        cover = [z for z in zones if z.key_lo <= key <= z.key_hi]
        z = cover[0] if cover else min(zones, key=lambda z: min(abs(key - z.key_lo), abs(key - z.key_hi)))
        n_out = int(round(seconds * sample_rate))
        ratio = 2.0 ** ((key - z.root_key) / 12.0)
        # Samples needed at the source rate for n_out output samples after pitch shifting.
        n_src = int(np.ceil(n_out * ratio * z.sample_rate / sample_rate)) + 64
        data = np.asarray(self._smpl[z.start:z.end], dtype=np.float32) / 32768.0
        if len(data) < n_src and z.loops and z.start <= z.loop_start < z.loop_end <= z.end:
            head = data[: z.loop_start - z.start]
            loop = data[z.loop_start - z.start: z.loop_end - z.start]
            reps = int(np.ceil((n_src - len(head)) / max(len(loop), 1)))
            data = np.concatenate([head, np.tile(loop, reps)])
        data = data[:n_src]
        # Playing a sample at `ratio` times its speed == resampling it as if recorded at sr*ratio.
        y = soxr.resample(data, z.sample_rate * ratio, sample_rate).astype(np.float32)
        y = np.pad(y, (0, max(0, n_out - len(y))))[:n_out]
        env = np.ones(n_out, dtype=np.float32)
        a = min(n_out, int(0.005 * sample_rate))
        env[:a] = np.linspace(0, 1, a, endpoint=False)
        r = min(int(0.2 * n_out), int(0.15 * sample_rate))
        if r > 0:
            env[-r:] *= np.linspace(1, 0, r)
        return y * env


def _read_chunks(path: Path) -> dict[str, tuple[int, int]]:
    """Map chunk id -> (byte offset of data, size) for the chunks of an sf2 RIFF file."""
    out: dict[str, tuple[int, int]] = {}
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise ValueError(f"{path} is not a SoundFont 2 file (RIFF sfbk header missing)")
        total = struct.unpack("<I", head[4:8])[0] + 8
        pos = 12
        while pos + 8 <= total:
            f.seek(pos)
            cid, size = struct.unpack("<4sI", f.read(8))
            if cid == b"LIST":
                # Descend into LIST chunks (INFO, sdta, pdta): their sub-chunks follow the type.
                sub, end = pos + 12, pos + 8 + size
                while sub + 8 <= end:
                    f.seek(sub)
                    sid, ssize = struct.unpack("<4sI", f.read(8))
                    out[sid.decode("latin-1")] = (sub + 8, ssize)
                    sub += 8 + ssize + (ssize & 1)
            pos += 8 + size + (size & 1)
    return out
