"""The approach users have today: the papers' offline inference, timed on the same model and clip.

Mono2Binaural / Sep-Stereo test time (streambin.train.evaluate.predict_clip, the papers'
protocol minus their bugs): a PyTorch generator runs on 0.63 s windows (10080 samples at 16 kHz)
starting every 0.1 s over a whole clip, each with the frame at the window centre from frames
pre-extracted at 10 fps, and the overlapping window outputs are averaged.

It cannot stream. A live variant of it would have to wait for a whole window before it can
compute anything and would emit a new result every hop, so its latency is at least
``window + hop = 630 + 100 = 730 ms`` before any compute time; that lower bound is what the
row reports as its latency.

What is timed: ``predict_clip`` itself (STFTs, visual net per window, audio net, ISTFTs,
overlap averaging) after a warm-up call. Not timed, as in the papers' pipelines where these are
done beforehand: resampling the 48 kHz input to the model's 16 kHz, and extracting and resizing
the frames.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.engine_bench import SAMPLE_RATE, MovingPatchCamera, empty_row, peak_rss_mb, speech_like  # noqa: E402

WINDOW_HOP_S = 0.1
FRAMES_FPS = 10.0  # the papers' pre-extracted frame rate
BATCH_SIZE = 32    # windows per forward pass (streambin.train.evaluate's default)


def papers_latency_ms(audio_cfg, window_hop_s: float = WINDOW_HOP_S) -> float:
    """Lower bound of the papers' method's latency in ms: one window plus one hop."""
    crop = (audio_cfg.context_frames - 1) * audio_cfg.hop
    return 1e3 * crop / audio_cfg.sample_rate + 1e3 * window_hop_s


def measure_papers_offline(weights_path, device: str, seconds: float, sample_rate: int = SAMPLE_RATE,
                           model_label: str | None = None, batch_size: int = BATCH_SIZE,
                           window_hop_s: float = WINDOW_HOP_S, seed: int = 0) -> dict:
    """Time the papers' sliding-window inference on a ``seconds``-long speech-like clip.

    Args:
        weights_path: a streambin checkpoint / bundle ``weights.pt`` (loaded with
            streambin.train.checkpoint.load_generator).
        device: torch device, "cpu" or "cuda".
        seconds: clip length in seconds (at least one 0.63 s window is processed).
        sample_rate: rate of the benchmark input before it is resampled to the model rate.
    Returns a row with ``reference: True``, ``rtf`` = processing time / clip duration,
    ``ms_per_audio_s``, the latency lower bound, and per-chunk fields set to None (the method
    has no chunks).
    """
    import soxr
    import torch

    from streambin.frames import check_frame, convert_frame
    from streambin.train.checkpoint import load_generator
    from streambin.train.evaluate import predict_clip, window_starts

    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        from streambin.backends import BackendUnavailable

        raise BackendUnavailable("torch sees no CUDA GPU")
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    model, cfg = load_generator(str(weights_path), map_location=device)
    a = cfg.audio
    h, w = cfg.model.visual_size
    x48 = speech_like(seconds, sample_rate, seed)
    mono = soxr.resample(x48, sample_rate, a.sample_rate).astype(np.float32)  # not timed (see module doc)
    camera = MovingPatchCamera(seed=seed)
    n_frames = max(1, math.ceil(len(mono) / a.sample_rate * FRAMES_FPS))
    # Frame i of the 10 fps set is the camera frame showing time i / 10 s, checked and resized
    # as the Spatializer does it.
    frames = np.stack([convert_frame(check_frame(camera.frame(int(i * camera.fps / FRAMES_FPS))), (h, w))
                       for i in range(n_frames)])

    def call(clip, clip_frames):
        out = predict_clip(model, clip, clip_frames, FRAMES_FPS, a, window_hop_s=window_hop_s,
                           batch_size=batch_size)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    warm_n = min(len(mono), int(1.0 * a.sample_rate))
    call(mono[:warm_n], frames[:max(1, int(FRAMES_FPS))])
    t0 = time.perf_counter()
    out = call(mono, frames)
    total = time.perf_counter() - t0
    if out.shape != (2, len(mono)) or not np.isfinite(out).all():
        raise RuntimeError(f"predict_clip returned {out.shape} (finite: {np.isfinite(out).all()}), "
                           f"expected (2, {len(mono)}) finite")
    crop = (a.context_frames - 1) * a.hop
    n_windows = len(window_starts(max(len(mono), crop), crop, max(1, int(round(window_hop_s * a.sample_rate)))))
    duration = len(mono) / a.sample_rate
    latency = papers_latency_ms(a, window_hop_s)
    return empty_row(
        kind="papers", reference=True, backend="torch", device=device,
        model=model_label or str(weights_path),
        model_info={"arch": cfg.model.arch, "ngf": cfg.model.ngf, "visual_size": [h, w], "mask_kind": model.mask_kind,
                    "path": str(weights_path)},
        chunk_samples=None, sample_rate=a.sample_rate, seconds=duration,
        rtf=float(total / duration), rtf_total=float(total / duration), ms_per_audio_s=float(1e3 * total / duration),
        algorithmic_latency_ms=latency, end_to_end_latency_ms=latency, peak_mem_mb=peak_rss_mb(),
        windows=n_windows, window_ms_mean=float(1e3 * total / n_windows), batch_size=batch_size,
        threads=torch.get_num_threads() if device == "cpu" else None,
        method=(f"papers' offline inference (PyTorch): {1e3 * crop / a.sample_rate:.0f} ms windows every "
                f"{1e3 * window_hop_s:.0f} ms over the whole clip, outputs averaged; frames at "
                f"{FRAMES_FPS:g} fps; {batch_size} windows per forward pass"),
        note=(f"cannot stream: latency is at least one window plus one hop ({latency:.0f} ms) before compute; "
              "per-chunk times do not exist (null); input resampled to 16 kHz and frames resized beforehand "
              "(not timed)"),
    )
