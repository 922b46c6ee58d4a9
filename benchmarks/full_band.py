"""Full-band output at the device rate vs the resampling path, side by side in one run.

Default model (the shipped bundle), ONNX Runtime on the CPU, block 1. Measured:

* white noise at 48 kHz: output/input energy per band (ears averaged), both paths;
* synthetic scenes rendered at 48 kHz with the MIT KEMAR HRIRs (streambin.train.sim, single
  static source, its picture as the camera): the output's 8.5-16 kHz energy against the
  full-band binaural reference of the same scene, and whether the output's level difference
  (L over R) in 8.5-16 kHz has the sign it has in 0.2-7 kHz (100 ms segments where the
  0.2-7 kHz difference is at least 1 dB). For scale, the same energy measure of the mono input
  itself ((L + R) / 2 loses high-band energy where the ears are out of phase). Each scene twice: with the scene's own sound and with
  a white-noise source at the same place (tuxpaint sounds often stop below 11 kHz);
* below 7 kHz: the difference of each 48 kHz path's output from the 16 kHz engine's for the
  same band-limited speech-like sound;
* algorithmic latency per lookahead 0/1/2 at 44.1/48/96 kHz (``latency_samples``, checked by
  an impulse through the engine);
* whole-engine real-time factor (visual net included, camera at the scene's 10 fps, chunks of
  480 samples), the two paths alternated three times, median; and the engine alone (audio net
  replaced by a fixed output, no camera) at 44.1 and 48 kHz, alternated five times.

    python benchmarks/full_band.py [--scenes 6] [--out benchmarks/results/full-band-<machine>.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from scipy import signal

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine import machine_description, machine_slug  # noqa: E402
from streambin.spatializer import Spatializer  # noqa: E402

RATE = 48000
CHUNK = 480
HIGH_HZ = (8500.0, 16000.0)
LOW_HZ = (200.0, 7000.0)
SEGMENT_S = 0.1
MIN_LOW_ILD_DB = 1.0
BANDS_HZ = ((200, 7000), (7000, 8000), (8500, 12000), (12000, 16000), (16000, 22000))


def band_energy(x: np.ndarray, rate: int, lo: float, hi: float) -> np.ndarray:
    """Energy of ``x`` ``(..., n)`` in [lo, hi) Hz (per leading index)."""
    f = np.fft.rfftfreq(x.shape[-1], 1 / rate)
    m = (f >= lo) & (f < hi)
    return np.sum(np.abs(np.fft.rfft(x, axis=-1)[..., m]) ** 2, axis=-1)


def run_engine(x: np.ndarray, frames=None, fps: float = 10.0, model="default", rate: int = RATE,
               fixed_masks: bool = False, **kwargs):
    """Stream ``x`` through a Spatializer in CHUNK pieces (frames handed with the chunk that
    starts at or after their time); returns ``((2, n) aligned output, seconds, spatializer)``.
    ``fixed_masks``: the audio net returns one precomputed output (times the engine alone)."""
    sp = Spatializer(model, sample_rate=rate, **kwargs)
    if fixed_masks:
        masks = sp.backend.audio(sp._runner._net_in, sp.visual.batch)
        sp.backend.audio = lambda spec, feature: masks
    out, k, t0 = [], 0, time.perf_counter()
    for pos in range(0, len(x), CHUNK):
        frame = None
        while frames is not None and k < len(frames) and k / fps <= pos / RATE:
            frame, k = frames[k], k + 1
        out.append(sp.process(x[pos:pos + CHUNK], frame))
    seconds = time.perf_counter() - t0
    y = np.concatenate(out + [sp.flush()], axis=1)[:, sp.latency_samples:sp.latency_samples + len(x)]
    return y, seconds, sp


def ild_segments(y: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """L over R level difference in dB per SEGMENT_S segment, band [lo, hi)."""
    sos = signal.butter(6, [lo, hi], "bandpass", fs=RATE, output="sos")
    yb = signal.sosfiltfilt(sos, y, axis=1)
    n = int(SEGMENT_S * RATE)
    k = yb.shape[1] // n
    e = np.sum(yb[:, :k * n].reshape(2, k, n) ** 2, axis=2) + 1e-20
    return 10 * np.log10(e[0] / e[1]), e.sum(axis=0)


def scene_measures(y: np.ndarray, ref: np.ndarray) -> dict:
    high_out, high_ref = band_energy(y, RATE, *HIGH_HZ).sum(), band_energy(ref, RATE, *HIGH_HZ).sum()
    ild_lo, e_lo = ild_segments(y, *LOW_HZ)
    ild_hi, e_hi = ild_segments(y, *HIGH_HZ)
    ref_lo, _ = ild_segments(ref, *LOW_HZ)
    ref_hi, _ = ild_segments(ref, *HIGH_HZ)
    # Segments with a clear low-band difference and sound in both bands.
    use = (np.abs(ild_lo) >= MIN_LOW_ILD_DB) & (e_lo > 1e-6 * e_lo.max()) & (e_hi > 1e-6 * e_hi.max())
    return {
        "high_band_vs_reference_db": float(10 * np.log10(high_out / high_ref)),
        "sign_agreement": float(np.mean(np.sign(ild_hi[use]) == np.sign(ild_lo[use]))) if use.any() else None,
        "segments_used": int(use.sum()),
        "ild_low_db_mean_abs": float(np.mean(np.abs(ild_lo[use]))) if use.any() else None,
        "ild_high_db_mean_abs": float(np.mean(np.abs(ild_hi[use]))) if use.any() else None,
        "reference_ild_low_db_mean": float(np.mean(ref_lo)),
        "reference_ild_high_db_mean": float(np.mean(ref_hi)),
        "output_ild_low_db_mean": float(np.mean(ild_lo[use])) if use.any() else None,
        "output_ild_high_db_mean": float(np.mean(ild_hi[use])) if use.any() else None,
    }


def make_scenes(n: int, seconds: float, seed: int):
    """``n`` single-source static scenes at RATE: (name, azimuth, frames, reference (2, n) with
    the scene's sound, reference with white noise at the same place)."""
    from streambin.train.sim import assets
    from streambin.train.sim.render import anechoic_brir
    from streambin.train.sim.scene import Library, compose_frames, render_audio, sample_scene

    lib = Library(assets.AssetPaths(), RATE)
    rng = np.random.default_rng(seed)
    scenes = []
    while len(scenes) < n:
        spec = sample_scene(rng, lib, seconds=seconds, max_sources=1, moving_prob=0.0, room_prob=0.0)
        src = spec.sources[0]
        frames, _ = compose_frames(spec, lib)
        ref, _ = render_audio(spec, lib, rng)
        brir = anechoic_brir(lib.hrirs, float(src.azimuth_deg[0]), float(src.elevation_deg[0]),
                             float(src.distance_m[0]))
        noise = rng.standard_normal(spec.n_samples + brir.shape[1])
        ref_noise = np.stack([signal.fftconvolve(noise, brir[c])[brir.shape[1]:brir.shape[1] + spec.n_samples]
                              for c in range(2)])
        # Same level as the scene, peak-safe for float32.
        for r in (ref, ref_noise):
            r *= 0.3 / max(np.abs(r).max(), 1e-9)
        scenes.append((src.name, float(src.azimuth_deg[0]), frames, ref.astype(np.float32),
                       ref_noise.astype(np.float32)))
    return scenes


def below_7khz_agreement(seconds: float = 4.0) -> dict:
    """Speech-like sound band-limited at 16 kHz (benchmarks.engine_bench.speech_like), through
    the 16 kHz engine and, upsampled to 48 kHz, through both 48 kHz paths: relative difference
    of each 48 kHz output from the 16 kHz engine's over 0.2-7 kHz (ears, and the side L - R)."""
    from benchmarks.engine_bench import speech_like

    x16 = speech_like(seconds, 16000, seed=1)
    x48 = signal.resample_poly(x16.astype(np.float64), 3, 1).astype(np.float32)
    out = {}
    for key, rate, x, full in (("16k", 16000, x16, None), ("full_band", RATE, x48, True),
                               ("resampling", RATE, x48, False)):
        sp = Spatializer("default", sample_rate=rate, block_frames=1, lookahead_frames=2, full_band=full)
        y = np.concatenate([sp.process(x), sp.flush()], axis=1)[:, sp.latency_samples:sp.latency_samples + len(x)]
        out[key] = y if rate == 16000 else signal.resample_poly(y.astype(np.float64), 1, 3, axis=1)
    sos = signal.butter(8, LOW_HZ, "bandpass", fs=16000, output="sos")
    ref = signal.sosfiltfilt(sos, out["16k"], axis=1)[:, 16000:]        # context filled
    result = {}
    for key in ("full_band", "resampling"):
        y = signal.sosfiltfilt(sos, out[key], axis=1)[:, 16000:16000 + ref.shape[1]]
        side_ref, side = ref[0] - ref[1], y[0] - y[1]
        result[key] = {"ears_db": float(10 * np.log10(np.sum((y - ref) ** 2) / np.sum(ref ** 2))),
                       "side_db": float(10 * np.log10(np.sum((side - side_ref) ** 2) / np.sum(side_ref ** 2)))}
    return result


def measure_latency() -> list:
    rows = []
    for rate in (44100, 48000, 96000):
        for lookahead in (0, 1, 2):
            for full in (True, False):
                sp = Spatializer("default", sample_rate=rate, block_frames=1, lookahead_frames=lookahead,
                                 full_band=full)
                x = np.zeros(rate // 2, np.float32)
                x[rate // 5] = 1.0
                y = sp.process(x)
                by_impulse = int(np.argmax(np.abs(y[0] + y[1]))) - rate // 5
                rows.append({"sample_rate": rate, "lookahead_frames": lookahead, "block_frames": 1,
                             "path": "full_band" if full else "resampling",
                             "latency_samples": sp.latency_samples, "latency_ms": round(sp.latency_ms, 3),
                             "impulse_delay_samples": by_impulse})
    return rows


def engine_only_rtf(rounds: int, seconds: float = 10.0) -> dict:
    """The engine alone (audio net replaced by a fixed output, no camera): what the two paths'
    DSP costs, without the networks' share of the noisy, shared CPU. The paths alternate within
    each round, so a slow spell of the machine hits both; besides the medians, the median of
    the per-round ratios full band / resampling is the figure to compare."""
    engine = {}
    for rate in (44100, 48000):
        x = np.random.default_rng(1).standard_normal(int(seconds * rate)).astype(np.float32) * 0.1
        runs = {"full_band": [], "resampling": []}
        stages = {}
        for _ in range(rounds):
            for path in runs:
                _, elapsed, sp = run_engine(x, rate=rate, fixed_masks=True, block_frames=1, lookahead_frames=2,
                                            full_band=path == "full_band")
                runs[path].append(elapsed / seconds)
                stages[path] = {k: round(v / seconds, 2) for k, v in sp.stats["stage_ms"].items()}
        ratios = np.array(runs["full_band"]) / np.array(runs["resampling"])
        engine[str(rate)] = {**{p: {"median": float(np.median(v)), "min": float(np.min(v)),
                                    "runs": [round(t, 5) for t in v],
                                    "stage_ms_per_audio_second_last_run": stages[p]} for p, v in runs.items()},
                             "full_band_over_resampling": {"median": float(np.median(ratios)),
                                                           "runs": [round(float(r), 3) for r in ratios]}}
    return engine


def write_result(result: dict, out, stem: str) -> int:
    """Write ``result`` as JSON to ``out`` (default results/<stem>-<machine>.json); returns 0."""
    out = out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                              f"{stem}-{machine_slug(result['machine'])}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", out)
    return 0


def write_cost_only(rounds: int, out=None) -> int:
    if rounds < 1:
        raise SystemExit(f"--cost-only needs at least 1 round, got {rounds}")
    result = {"machine": machine_description(), "chunk_samples": CHUNK, "model": "default",
              "backend": "onnxruntime (cpu), audio net output fixed", "block_frames": 1, "lookahead_frames": 2,
              "engine_only_rtf": engine_only_rtf(rounds)}
    print("engine only RTF:", json.dumps(result["engine_only_rtf"], indent=1))
    return write_result(result, out, "full-band-cost")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--cost-only", type=int, metavar="ROUNDS", default=None,
                    help="only time the engine alone (both paths alternated, ROUNDS rounds) and write "
                         "results/full-band-cost-<machine>.json")
    args = ap.parse_args(argv)
    if args.cost_only is not None:
        return write_cost_only(args.cost_only, args.out)
    paths = {"full_band": True, "resampling": False}
    result = {"machine": machine_description(), "sample_rate": RATE, "chunk_samples": CHUNK,
              "model": "default", "backend": "onnxruntime (cpu)", "block_frames": 1}

    # White noise: energy per band, ears averaged.
    x = np.random.default_rng(0).standard_normal(5 * RATE).astype(np.float32) * 0.1
    noise = {}
    for name, full in paths.items():
        y, _, _ = run_engine(x, block_frames=1, lookahead_frames=2, full_band=full)
        y = y[:, :len(x)]
        noise[name] = {f"{lo}-{hi}_hz_db": float(10 * np.log10(band_energy(y, RATE, lo, hi).mean()
                                                                / band_energy(x, RATE, lo, hi)))
                       for lo, hi in BANDS_HZ}
    result["white_noise_band_db"] = noise
    print("white noise, output/input per band (dB):", json.dumps(noise, indent=1))

    # Scenes against their KEMAR reference.
    scenes = make_scenes(args.scenes, args.seconds, seed=17)
    rows = []
    for name, azimuth, frames, ref, ref_noise in scenes:
        for source, r in (("scene_sound", ref), ("white_noise", ref_noise)):
            mono = ((r[0] + r[1]) / 2).astype(np.float32)
            for path, full in paths.items():
                y, _, _ = run_engine(mono, frames, block_frames=1, lookahead_frames=2, full_band=full)
                row = {"scene": name, "azimuth_deg": azimuth, "source": source, "path": path,
                       "input_high_over_low_db": float(10 * np.log10(
                           band_energy(mono, RATE, *HIGH_HZ) / band_energy(mono, RATE, *LOW_HZ))),
                       # What an output equal to the mono input would score: (L + R) / 2 loses
                       # high-band energy where the ears' signals are out of phase.
                       "mono_high_band_vs_reference_db": float(10 * np.log10(
                           2 * band_energy(mono, RATE, *HIGH_HZ) / band_energy(r, RATE, *HIGH_HZ).sum())),
                       **scene_measures(y[:, :r.shape[1]], r)}
                rows.append(row)
                print(f"{source:11s} {path:10s} az {azimuth:6.1f} high vs ref {row['high_band_vs_reference_db']:6.1f} dB "
                      f"(mono input {row['mono_high_band_vs_reference_db']:6.1f}), "
                      f"sign agreement {row['sign_agreement']} ({row['segments_used']} seg), "
                      f"ILD low/high out {row['output_ild_low_db_mean']}/{row['output_ild_high_db_mean']} "
                      f"ref {row['reference_ild_low_db_mean']:.1f}/{row['reference_ild_high_db_mean']:.1f}")
    result["scenes"] = rows
    summary = {}
    for source in ("scene_sound", "white_noise"):
        for path in paths:
            sel = [r for r in rows if r["source"] == source and r["path"] == path]
            agree = [r["sign_agreement"] for r in sel if r["sign_agreement"] is not None]
            used = [r["segments_used"] for r in sel if r["sign_agreement"] is not None]
            summary[f"{source}/{path}"] = {
                "high_band_vs_reference_db_median": float(np.median([r["high_band_vs_reference_db"] for r in sel])),
                "high_band_vs_reference_db_range": [float(min(r["high_band_vs_reference_db"] for r in sel)),
                                                    float(max(r["high_band_vs_reference_db"] for r in sel))],
                "mono_high_band_vs_reference_db_median": float(np.median(
                    [r["mono_high_band_vs_reference_db"] for r in sel])),
                # Pooled over segments of all scenes.
                "sign_agreement": float(np.dot(agree, used) / sum(used)) if used else None,
                "segments_used": int(sum(used)),
            }
    result["scene_summary"] = summary
    print(json.dumps(summary, indent=1))

    result["below_7khz_vs_16k_engine"] = below_7khz_agreement()
    print("below 7 kHz, relative difference from the 16 kHz engine:", json.dumps(result["below_7khz_vs_16k_engine"]))

    result["latency"] = measure_latency()
    for r in result["latency"]:
        print(r)

    # Whole-engine RTF, the two paths alternated.
    name, _, frames, ref, _ = scenes[0]
    clip = ((ref[0] + ref[1]) / 2).astype(np.float32)
    timings = {p: [] for p in paths}
    stages = {}
    for _ in range(3):
        for path, full in paths.items():
            _, seconds, sp = run_engine(clip, frames, block_frames=1, lookahead_frames=2, full_band=full)
            timings[path].append(seconds / (len(clip) / RATE))
            stages[path] = {k: round(v / (len(clip) / RATE), 2) for k, v in sp.stats["stage_ms"].items()}
    result["rtf"] = {p: {"median": float(np.median(v)), "runs": [round(t, 4) for t in v],
                         "stage_ms_per_audio_second": stages[p]} for p, v in timings.items()}
    print("RTF:", json.dumps(result["rtf"], indent=1))

    engine = engine_only_rtf(rounds=5)
    result["engine_only_rtf"] = engine
    print("engine only RTF:", json.dumps(engine, indent=1))

    return write_result(result, args.out, "full-band")


if __name__ == "__main__":
    sys.exit(main())
