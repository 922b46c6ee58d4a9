"""The streaming engine: mono audio chunks + camera frames in, binaural audio out.

Two paths per :meth:`Spatializer.process` call (all state explicit, buffers allocated once).

Full band (default where the device rate is above the model's and its 10 ms hop is a whole
number of samples: 24, 32, 44.1, 48, 88.2, 96 kHz; see streambin.full_band)::

    chunk (n,) at sample_rate -> streambin._C streaming STFT on the model's time grid at the
        device rate -> model bins below 8 kHz, scaled to the model rate's level -> ring of the
        last T frames (+ their band energy for the RMS)
        -> every block_frames new frames: audio net on the last T frames (normalised by the
           context's RMS) with the cached visual feature -> masks
        -> masks of the block's frames (lookahead_frames before the newest), on the device bins
           below 8 kHz, extended above from the model's 4-8 kHz band -> x raw device spectrum
           (_C mask multiply, both ears) -> _C streaming ISTFT -> output FIFO -> (2, n)

Resampling (rates at or below the model's, 22.05 kHz, the GPU pipeline, ``full_band=False``)::

    chunk (n,) at sample_rate --FIR/soxr--> model rate (16 kHz)
        -> streambin._C streaming STFT -> ring of the last T frames (+ ring of raw samples for RMS)
        -> audio net and masks as above, on the model's bins -> _C streaming ISTFT
        --FIR/soxr--> sample_rate -> output FIFO -> (2, n)

The resampling path's output stops at the model's Nyquist (8 kHz). Everything between the
analysis input and the synthesis output is a block runner (streambin.block_runner: model-rate,
full-band or GPU); this class keeps the resamplers, the output FIFO, the visual cadence, the
latency plan and the input checks.

Latency. Every stage's delay is fixed, so the output is the input delayed by exactly
``latency_samples`` (at ``sample_rate``): the STFT/ISTFT's ``win_length - hop`` samples, the
wait for a full hop and block (``block_frames * hop - 1``), ``lookahead_frames * hop``; on the
resampling path also rounding up so the total maps to whole device samples, the resamplers' filter
delay and zeros pre-filled into the output to cover their worst hold-back (streambin.latency_plan).
At 48 kHz with block 1 that is 25.0 ms with lookahead 0, 35.0 ms with 1, 45.0 ms with 2 (full
band). The output is identical however the input is chunked.

Input handling (documented, tested):

* ``chunk``: ``(n,)`` (or ``(n, 1)`` / ``(1, n)``) real floats, converted to float32; int16 and
  int32 PCM are scaled by their full scale (1/32768, 1/2^31); other dtypes raise TypeError;
  ``n = 0`` returns ``(2, 0)``. NaN and inf samples are replaced by 0 (counted in
  ``stats["nonfinite_samples"]``, one warning) so they never reach the network or later output.
  Samples beyond +-MAX_ABS_SAMPLE (1000, +60 dBFS: no real signal, but finite) are clipped to it
  (counted in ``stats["clipped_samples"]``, one warning), so every output sample is finite.
  Samples below FLUSH_BELOW (1e-15, -300 dBFS) in magnitude are set to 0: denormal floats
  would otherwise slow the FFTs and networks several times over.
  Chunks of any size are processed in pieces of at most one second; working memory beyond the
  ``(2, n)`` result stays bounded.
* Output level: masks lie in [-2, 2], so an ear may peak above the input (up to ~1.8x
  seen for full-scale input); the output is not limited.
* A call that raises on its arguments (chunk, frame) changes nothing. A call that fails inside
  the pipeline resets the stream (as :meth:`Spatializer.reset`) and raises RuntimeError saying
  so: the next call works. :meth:`Spatializer.process` is one call at a time per instance; a
  concurrent call from another thread raises RuntimeError. After :meth:`Spatializer.close`
  every call raises RuntimeError.
* ``frame``: see :mod:`streambin.frames` (RGB/BGR uint8, grayscale and RGBA converted, any size,
  size may change mid-stream; bad frames raise and leave the stream state untouched).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
import weakref
from pathlib import Path

import numpy as np

from streambin import dsp
from streambin.block_runner import FullBandRunner, GpuRunner, ModelRateRunner
from streambin.camera import check_hfov_deg
from streambin.frames import check_frame, convert_frame
from streambin.full_band import device_grid
from streambin.latency_plan import plan_latency
from streambin.resample import QUALITIES, StreamResampler, chain_delay, worst_holdback
from streambin.signal_contract import check_side_gain
from streambin.visual import VisualFeature

log = logging.getLogger("streambin")

SUPPORTED_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)
_MAX_BLOCK_FRAMES = 16
# Default block size when none is given: fixed, so the same input always gives the same output
# and latency. 2 frames (20 ms) keeps the default model's audio net well inside each block's
# budget on 2 CPU cores (block 1 ran at p99 9.3-9.8 ms of its 10 ms, docs/demo.md);
# block_frames="auto" measures the backend instead.
DEFAULT_BLOCK_FRAMES = 2
# Default block size with mirror averaging, which runs both networks twice: at 2 frames the
# default model's blocks took 17.8-18.6 ms of their 20 ms at p99 on 2 CPU cores, at 3 frames
# 19.4-21.7 of 30 ms (benchmarks/results/mirror_average/engine-settings-cpu-2core.json), for
# 10 ms more latency.
MIRROR_AVERAGE_BLOCK_FRAMES = 3
# Input samples beyond this magnitude are clipped (counted): finite but absurd values (1e37)
# would overflow the float32 spectra and powers into inf/NaN.
MAX_ABS_SAMPLE = 1000.0
# Input samples below this magnitude are set to 0 (-300 dBFS, far below 24-bit PCM's -144):
# denormal floats run the FFTs and networks several times slower.
FLUSH_BELOW = 1e-15
_MAX_NUM_THREADS = 256
# Default lookahead: with 0 the newest frame's mask is predicted without any future context and
# the streaming output scored 6.3% worse than the offline protocol on STFT distance (30 test
# clips, docs/results.md); 1 frame (+10 ms) scores as the offline protocol does (0.988 vs 0.991
# on 30 in-domain clips, the same as 2 frames) for 10 ms less delay than 2.
DEFAULT_LOOKAHEAD_FRAMES = 1
# Auto block size: the audio net may use at most this share of each block's duration (as
# measured alone at construction), leaving the rest of a 0.5 real-time factor to the visual net
# (~12% at 10 fps on 2 cores), the DSP (~5%) and the slowdown when both nets share the cores.
# At 0.25 the default model's probe (~2.4 ms) sat at the 1-vs-2-frame threshold on 2 cores and
# block 1 ran at p99 9.3-9.8 ms of its 10 ms in the demo (docs/demo.md).
_AUTO_BLOCK_BUDGET = 0.2
# Default cap on visual-net runs per second of audio: the frame rate the models are trained on
# (SimBinaural-lite and FAIR-Play frames are 10 fps). A 30 fps camera would otherwise spend 3x
# the CPU on pictures that barely differ at the model's 64-frame (0.63 s) audio context.
DEFAULT_VISUAL_FPS = 10.0
# A frame counts as due when it arrives at most this share of a period early: a 10 fps camera
# read by its own thread drifts by a few ms against the audio clock (0.1 skipped 1 frame in 100
# of the demo's file mode).
_VISUAL_DUE_TOLERANCE = 0.25
# Visual-net runs banked at most (credit on the audio clock): frames only arrive at chunk
# starts, so a camera at the cap with chunks longer than the tolerance needs a little credit
# carried over to keep the cap's rate; 2 allows at most one extra run after a pause.
_VISUAL_MAX_CREDIT = 2.0


class Spatializer:
    """Live mono audio + camera frames -> binaural audio.

    Args:
        model: "default" (the bundle shipped in the package), a bundle directory, or a
            training checkpoint file (``*.pt``; runs on the torch backend).
        backend: "auto" (TensorRT, then ONNX Runtime CUDA, then ONNX Runtime CPU, then torch),
            "onnxruntime", "tensorrt" or "torch".
        device: "auto", "cpu" or "cuda".
        sample_rate: device sample rate of ``chunk`` and of the output, in Hz.
        block_frames: STFT frames (10 ms each at the default hop) per audio-net run, 1-16.
            None: DEFAULT_BLOCK_FRAMES (2), a fixed choice, so output and latency never depend
            on the machine's speed. "auto": the smallest block the audio net's speed, measured
            at construction, sustains in real time (may differ from run to run).
        lookahead_frames: use masks this many frames before the newest (the network sees a
            little future context) at the cost of ``lookahead_frames * hop`` more latency.
            Default 1 (10 ms): see DEFAULT_LOOKAHEAD_FRAMES. ``block_frames +
            lookahead_frames`` must fit in the masks the bundle's audio graph returns per run
            (``bundle.output_frames``: 17 for the shipped default).
        color: channel order of 3/4-channel frames, "rgb" or "bgr".
        threaded_visual: run the visual network on a worker thread (live use) instead of
            synchronously inside :meth:`process` (the deterministic default).
        visual_fps: at most this many visual-net runs per second of audio, on the audio clock
            (samples given to :meth:`process`, so it is deterministic). Frames that arrive
            sooner after the last run are still validated, then skipped (``stats
            ["frames_skipped"]``); on average the rate reaches ``visual_fps`` for any faster
            camera. Default 10 (DEFAULT_VISUAL_FPS, the training frame rate); None: every frame.
        resample_quality: resampler between device and model rate: "fir" (default; polyphase
            FIR, ~1 ms) or "soxr-lq"/"soxr-mq"/"soxr-hq" (soxr; 20-37 ms more per direction).
        num_threads: CPU threads for the networks (ONNX Runtime intra-op / torch), 1-256, or
            None for the backend's default.
        backend_options: extra keyword arguments for the backend's constructor, e.g.
            ``{"allow_spinning": True}`` for ONNX Runtime (streambin.backends).
        gpu_pipeline: keep model-rate audio on the GPU from STFT to ISTFT (streambin.gpu_engine).
            None: on when the backend is torch on CUDA and streambin._C has CUDA (and full_band
            is not True).
        full_band: True: full-band output at the device rate, no resampler (streambin.full_band;
            raises where the rate has no such grid); False: resample to the model rate and back
            (output band-limited to the model's Nyquist, 8 kHz); None: full band wherever the rate
            allows and the GPU pipeline is not in use. ``resample_quality`` only concerns the
            resampling path.
        mirror: flip every frame left-right before the visual net: for front (selfie) cameras,
            whose picture is a mirror image (a source on the user's right shows on the left).
        mirror_average: average the masks for each frame with the ear-swapped masks for its
            mirror image (streambin.signal_contract), so that a mirrored picture swaps the ears
            exactly and a picture without a side (uniform grey) gives L = R. Both networks then
            run twice, and the default block is MIRROR_AVERAGE_BLOCK_FRAMES (3). None: as the
            bundle's ``inference`` section says (on for the shipped default); a bundle whose
            graph averages by itself (exported with ``--mirror-average``) is always averaged.
            Not on the GPU pipeline.
        side_gain: scale of what the output adds to one ear and takes from the other, in
            [0, 4]: 1 the model's own output, 0 mono (both ears the input), above 1 wider
            (streambin.signal_contract.scale_side; the mid ``(L + R) / 2`` is unchanged). None:
            the bundle's ``inference.side_gain`` (1 when the bundle has none, as the shipped
            default; ``python -m streambin.train.calibrate_side_gain`` fits a model's gain on
            validation data). Not on the GPU pipeline.
        side_renderer: blend the model's side mask with the side an average head renders at
            the objects a localiser finds in the camera frame (streambin.side_renderer; the
            localiser runs beside the visual net, per camera frame, on ONNX Runtime's CPU
            provider). None: on when the bundle has one; True: the bundle must have one. Not on
            the GPU pipeline.
        camera_hfov_deg: the camera's horizontal field of view in degrees, in (0, 180), if you
            know it (webcam data sheets usually give the diagonal one:
            ``streambin.camera.hfov_from_diagonal(78, 1920, 1080)`` is 70.4; laptop webcams
            are often 60-80): the side renderer turns the columns where it finds objects into
            azimuths through it. None: the field of view the bundle's renderer was
            fitted at (90 degrees for the shipped default). Needs the side renderer; settable
            later as the attribute of the same name (a camera switched or zoomed).

    Attributes:
        latency_samples: fixed delay of the output behind the input, in samples at
            ``sample_rate`` (``latency_ms`` in milliseconds): output sample ``i + latency_samples``
            belongs to input sample ``i``. :meth:`flush` returns the last ``latency_samples``
            of the aligned output, then ``tail_samples`` of decay after the last input sample.
        stats: counters and timings of the stream so far (blocks, block_ms_p99 against
            block_budget_ms, frames received/skipped, nonfinite/clipped samples, ...).

    Output level: masks lie in [-2, 2], so the output may exceed the input's peak (up to about
    1.8x for full-scale input); it is not limited. Call :meth:`close` (or use ``with``) when done:
    an instance collected unclosed stops its visual worker thread and warns (ResourceWarning).

    Example::

        import numpy as np, streambin
        sp = streambin.Spatializer(sample_rate=48000)
        mono = np.zeros(48000, np.float32)                    # one second of your audio
        frame = np.zeros((480, 640, 3), np.uint8)             # the camera picture (RGB)
        out = np.concatenate([sp.process(mono[i:i + 480], frame if i % 4800 == 0 else None)
                              for i in range(0, len(mono), 480)] + [sp.flush()], axis=1)
        binaural = out[:, sp.latency_samples:sp.latency_samples + len(mono)]  # (2, 48000), aligned

    For whole clips, :func:`streambin.spatialize` does this loop (any sample rate).
    """

    def __init__(self, model="default", backend: str = "auto", device: str = "auto", sample_rate: int = 48000,
                 block_frames: int | str | None = None, lookahead_frames: int = DEFAULT_LOOKAHEAD_FRAMES, color: str = "rgb",
                 threaded_visual: bool = False, resample_quality: str = "fir", num_threads: int | None = None,
                 gpu_pipeline: bool | None = None, visual_fps: float | None = DEFAULT_VISUAL_FPS,
                 backend_options: dict | None = None, full_band: bool | None = None, mirror: bool = False,
                 mirror_average: bool | None = None, side_gain: float | None = None,
                 side_renderer: bool | None = None, camera_hfov_deg: float | None = None):
        from streambin.backends import create_backend

        self._closed = True  # until construction has finished: close() and the finaliser are no-ops
        if isinstance(model, bool) or not isinstance(model, (str, Path)):
            raise TypeError(f"model must be 'default', a bundle directory or a checkpoint file path (str or Path), "
                            f"got {type(model).__name__}")
        if str(model).strip() == "":
            raise ValueError("model must be 'default', a bundle directory or a checkpoint file path, got ''")
        if not isinstance(threaded_visual, (bool, np.bool_)):
            raise ValueError(f"threaded_visual must be True or False, got {threaded_visual!r}")
        if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer))
                                        or not 1 <= num_threads <= _MAX_NUM_THREADS):
            raise ValueError(f"num_threads must be an integer in [1, {_MAX_NUM_THREADS}] or None "
                             f"(the backend's default), got {num_threads!r}")
        if (isinstance(lookahead_frames, (bool, np.bool_)) or not isinstance(lookahead_frames, (int, np.integer))
                or lookahead_frames < 0):
            raise ValueError(f"lookahead_frames must be an integer >= 0, got {lookahead_frames!r}")
        if block_frames is not None and block_frames != "auto" and (
                isinstance(block_frames, (bool, np.bool_)) or not isinstance(block_frames, (int, np.integer))
                or not 1 <= block_frames <= _MAX_BLOCK_FRAMES):
            raise ValueError(f"block_frames must be an integer in [1, {_MAX_BLOCK_FRAMES}], None "
                             f"({DEFAULT_BLOCK_FRAMES}) or 'auto' (measured), got {block_frames!r}")
        if not isinstance(sample_rate, (int, np.integer)) or int(sample_rate) not in SUPPORTED_RATES:
            raise ValueError(f"sample_rate must be one of {SUPPORTED_RATES} Hz, got {sample_rate!r}")
        if color not in ("rgb", "bgr"):
            raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
        if full_band is not None and not isinstance(full_band, bool):
            raise ValueError(f"full_band must be True, False or None (where the rate allows), got {full_band!r}")
        if resample_quality not in QUALITIES:
            raise ValueError(f"resample_quality must be one of {QUALITIES}, got {resample_quality!r}")
        if visual_fps is not None and (isinstance(visual_fps, bool) or not isinstance(visual_fps, (int, float))
                                       or not math.isfinite(visual_fps) or visual_fps <= 0):
            raise ValueError(f"visual_fps must be a positive number of frames per second or None "
                             f"(every frame), got {visual_fps!r}")
        self.sample_rate = int(sample_rate)
        self.color = color
        if not isinstance(mirror, (bool, np.bool_)):
            raise ValueError(f"mirror must be True (flip frames left-right: front cameras) or False, got {mirror!r}")
        self.mirror = bool(mirror)
        if mirror_average is not None and not isinstance(mirror_average, (bool, np.bool_)):
            raise ValueError(f"mirror_average must be True, False or None (as the bundle says), got {mirror_average!r}")
        if side_gain is not None:
            side_gain = check_side_gain(side_gain)
        if side_renderer is not None and not isinstance(side_renderer, (bool, np.bool_)):
            raise ValueError(f"side_renderer must be True, False or None (as the bundle says), got {side_renderer!r}")
        if camera_hfov_deg is not None:
            camera_hfov_deg = check_hfov_deg(camera_hfov_deg, "camera_hfov_deg")
        self.visual_fps = None if visual_fps is None else float(visual_fps)
        self.resample_quality = resample_quality

        if backend_options is not None and not isinstance(backend_options, dict):
            raise TypeError(f"backend_options must be a dict of backend keyword arguments or None, "
                            f"got {type(backend_options).__name__}")
        options = dict(backend_options or {})
        if num_threads is not None:
            options["num_threads"] = int(num_threads)  # create_backend maps it per backend
        self.bundle, self.backend = _open_model(model, backend, device, create_backend, options)
        b = self.bundle
        self.model_rate, self.hop, self.context_frames = b.sample_rate, b.hop, b.context_frames
        self.n_bins = b.n_bins
        # Each audio-net run returns the masks of the context's last output_frames frames (the
        # whole context unless the bundle was exported with --output-frames): block and
        # lookahead must fit in them.
        self.output_frames = b.output_frames
        if lookahead_frames >= self.output_frames:
            raise ValueError(f"lookahead_frames must be below the {self.output_frames} mask frames the model's audio "
                             f"graph returns per run (its output_frames), got {lookahead_frames}")
        self.lookahead_frames = int(lookahead_frames)
        self.mirror_average = self._resolve_mirror_average(mirror_average)
        self.side_gain = b.inference_side_gain if side_gain is None else side_gain
        renderer = self._open_side_renderer(side_renderer, options.get("num_threads"))
        if camera_hfov_deg is not None:
            if renderer is None:
                raise ValueError(f"camera_hfov_deg={camera_hfov_deg:g}: the field of view is read by the side "
                                 f"renderer, which is off here (the bundle {b.path} has none, or side_renderer=False)")
            renderer.hfov_deg = camera_hfov_deg
        # The engine averages unless the graph already does it inside itself.
        self.visual = VisualFeature(self.backend, b.visual_size, threaded=bool(threaded_visual),
                                    mirror_average=self.mirror_average and not b.graph_mirror_average,
                                    side_renderer=renderer)
        # Stops the visual worker thread when the instance is collected without close(): the
        # finaliser holds the VisualFeature, never the Spatializer.
        self._finalizer = weakref.finalize(self, _close_unclosed, self.visual)
        if block_frames == "auto":
            block_frames = self._auto_block_frames(self._measure_audio_ms())
        elif block_frames is None:
            default = MIRROR_AVERAGE_BLOCK_FRAMES if self.mirror_average else DEFAULT_BLOCK_FRAMES
            block_frames = min(default, self.output_frames - self.lookahead_frames)
        self.block_frames = int(block_frames)
        if self.block_frames + self.lookahead_frames > self.output_frames:
            raise ValueError(f"block_frames + lookahead_frames must be <= the {self.output_frames} mask frames the "
                             f"model's audio graph returns per run (its output_frames; re-export with a larger "
                             f"--output-frames for larger blocks), got {self.block_frames} + {self.lookahead_frames}")

        self._gpu = self._make_gpu_runner(gpu_pipeline, full_band)
        self._grid = self._choose_grid(full_band)
        self.full_band = self._grid is not None
        self._plan_latency()
        self._allocate()
        self.reset()
        self._busy = threading.Lock()  # process() is one call at a time (see process)
        self._closed = False
        log.info("streambin: %s on %s, block %d frames, lookahead %d, latency %.1f ms at %d Hz",
                 self.backend.name, self.backend.device, self.block_frames, self.lookahead_frames,
                 self.latency_ms, self.sample_rate)

    # ------------------------------------------------------------------ set-up

    def _resolve_mirror_average(self, wanted) -> bool:
        b = self.bundle
        if wanted is None:
            return b.inference_mirror_average or b.graph_mirror_average
        if not wanted and b.graph_mirror_average:
            raise ValueError(f"mirror_average=False: the bundle {b.path} averages inside its graph (exported with "
                             "--mirror-average); export it again without --mirror-average to run it plain")
        return bool(wanted)

    def _open_side_renderer(self, wanted, num_threads):
        """The bundle's :class:`streambin.side_renderer.SideRenderer` if ``wanted`` (None: if
        the bundle has one), else None."""
        b = self.bundle
        if wanted is False or (wanted is None and b.side_renderer is None):
            return None
        if b.side_renderer is None:
            raise ValueError(f"side_renderer=True: the bundle {b.path} has no side renderer "
                             "(python -m export.add_side_renderer adds one)")
        from streambin.backends.onnxruntime_backend import default_threads
        from streambin.side_renderer import SideRenderer

        return SideRenderer.of_bundle(b, num_threads or default_threads())

    @property
    def side_renderer(self) -> bool:
        """Whether the side rendered from the camera frame is blended in (streambin.side_renderer)."""
        return self.visual.side_renderer is not None

    @property
    def camera_hfov_deg(self) -> float | None:
        """The horizontal field of view, in degrees, the side renderer reads the camera frames
        at (None without a side renderer). Set it to the camera's own (in (0, 180)) when it
        changes; it takes effect from the next camera frame rendered."""
        renderer = self.visual.side_renderer
        return None if renderer is None else renderer.hfov_deg

    @camera_hfov_deg.setter
    def camera_hfov_deg(self, value: float) -> None:
        value = check_hfov_deg(value, "camera_hfov_deg")
        if self.visual.side_renderer is None:
            raise ValueError("camera_hfov_deg is read by the side renderer, which this Spatializer does not run")
        self.visual.side_renderer.hfov_deg = value

    def _measure_audio_ms(self) -> float:
        feat = self.visual.batch
        spec = np.zeros((len(feat),) + tuple(self.bundle.spec_shape), np.float32)
        times = []
        for _ in range(12):  # ~40 ms at construction; the first two runs (warm-up) not counted
            t0 = time.perf_counter()
            self.backend.audio(spec, feat)
            times.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(times[2:]))

    def _auto_block_frames(self, audio_ms: float) -> int:
        hop_ms = 1e3 * self.hop / self.model_rate
        needed = math.ceil(audio_ms / (_AUTO_BLOCK_BUDGET * hop_ms))
        return int(min(max(needed, 1), _MAX_BLOCK_FRAMES, self.output_frames - self.lookahead_frames))

    def _choose_grid(self, wanted):
        """The device-rate STFT grid of the full-band path, or None for the resampling path."""
        b = self.bundle
        grid = device_grid(self.sample_rate, self.model_rate, b.n_fft, b.win_length, self.hop)
        if wanted and grid is None:
            raise ValueError(f"full_band=True needs a device rate above the model's {self.model_rate} Hz whose "
                             f"{1e3 * self.hop / self.model_rate:g} ms hop is a whole number of samples, "
                             f"got sample_rate={self.sample_rate}")
        if wanted and self._gpu is not None:
            raise ValueError("full_band=True does not run on the GPU pipeline (it works at the model rate): "
                             "pass gpu_pipeline=False or full_band=False")
        if wanted is False or self._gpu is not None:
            return None
        return grid

    def _plan_latency(self) -> None:
        """Fix every delay of the pipeline (streambin.latency_plan)."""
        b, a = self.block_frames, self.lookahead_frames
        if self.full_band:
            g = self._grid
            plan = plan_latency(sample_rate=self.sample_rate, stft_rate=self.sample_rate, win_length=g.win_length,
                                hop=g.hop, block_frames=b, lookahead_frames=a)
        else:
            holdback = None
            if self.sample_rate != self.model_rate:
                def holdback(burst, prefill):
                    return worst_holdback(self.sample_rate, self.model_rate, self.resample_quality,
                                          engine_burst=burst, engine_prefill=prefill)
            plan = plan_latency(sample_rate=self.sample_rate, stft_rate=self.model_rate,
                                win_length=self.bundle.win_length, hop=self.hop, block_frames=b, lookahead_frames=a,
                                resample_holdback=holdback,
                                resample_delay=chain_delay(self.sample_rate, self.model_rate, self.resample_quality))
        self._latency_plan = plan
        self._engine_prefill, self._fifo_prefill = plan.engine_prefill, plan.fifo_prefill
        self.latency_samples = plan.latency_samples
        # After the last input sample the output goes on for at most one synthesis window (the
        # overlap-add of the last frames that saw it) beyond the fixed delay, plus the
        # resamplers' filter delay on the resampling path: flush() returns that much too.
        stft_rate = self.sample_rate if self.full_band else self.model_rate
        win = self._grid.win_length if self.full_band else self.bundle.win_length
        self.tail_samples = int(math.ceil(win * self.sample_rate / stft_rate)) + 2 * plan.resample_delay

    def _allocate(self) -> None:
        """The block runner (everything between analysis input and synthesis output) and the
        input-conversion buffers."""
        b, a = self.block_frames, self.lookahead_frames
        if self._gpu is not None:
            self._runner = GpuRunner(self._gpu, self.visual, b, self.hop, self._emit_block)
        elif self.full_band:
            self._runner = FullBandRunner(self.bundle, self.backend, self.visual, b, a, self._grid, self._emit_block,
                                          side_gain=self.side_gain)
        else:
            self._runner = ModelRateRunner(self.bundle, self.backend, self.visual, b, a, self._emit_block,
                                           side_gain=self.side_gain)
        self._max_piece = self.sample_rate  # process huge chunks one second at a time
        # Input conversion in place, one piece at a time (_to_float).
        self._in_buf = np.zeros(self._max_piece, np.float32)
        self._in_mag = np.zeros(self._max_piece, np.float32)
        self._in_flag = np.zeros(self._max_piece, bool)

    def _make_gpu_runner(self, wanted, full_band):
        if self.visual.side_renderer is not None:  # so is the side renderer's blend
            if wanted:
                raise ValueError("gpu_pipeline=True does not blend a rendered side: pass side_renderer=False, or "
                                 "gpu_pipeline=False (the networks still run on the GPU)")
            return None
        if self.visual.mirror_average:  # the engine's mirror averaging runs on the CPU runners only
            if wanted:
                raise ValueError("gpu_pipeline=True does not do mirror averaging: pass mirror_average=False, or "
                                 "gpu_pipeline=False (the networks still run on the GPU)")
            return None
        if self.side_gain != 1.0:  # so is the side gain
            if wanted:
                raise ValueError(f"gpu_pipeline=True applies no side gain: pass side_gain=1 (this model's is "
                                 f"{self.side_gain:g}), or gpu_pipeline=False (the networks still run on the GPU)")
            return None
        on_cuda = self.backend.name == "torch" and self.backend.device == "cuda"
        possible = on_cuda and dsp.cuda_device_count() > 0
        if wanted and not possible:
            raise ValueError("gpu_pipeline=True needs backend='torch' on device 'cuda' and streambin._C built "
                             f"with CUDA (backend {self.backend.name} on {self.backend.device}, "
                             f"_C CUDA devices: {dsp.cuda_device_count()})")
        if not possible or wanted is False or (wanted is None and full_band):
            return None
        from streambin.gpu_engine import GpuBlockRunner

        return GpuBlockRunner(self.bundle, self.backend.model, self.block_frames, self.lookahead_frames)

    # ------------------------------------------------------------------ public API

    @property
    def latency_ms(self) -> float:
        """Fixed delay of the output relative to the input, in milliseconds."""
        return 1e3 * self.latency_samples / self.sample_rate

    def reset(self) -> None:
        """Forget all stream state (audio history, pending output, visual feature)."""
        # Full band: nothing is resampled (pass-through "resamplers" keep one code path).
        stft_rate = self.sample_rate if self.full_band else self.model_rate
        self._down = StreamResampler(self.sample_rate, stft_rate, 1, self.resample_quality)
        self._up = StreamResampler(stft_rate, self.sample_rate, 2, self.resample_quality)
        self._runner.reset()
        self._timing = self._runner.timing       # the runner's block and stage times, this stream
        self._fifo = _SampleFifo(2, self.sample_rate)
        self._fifo.push(np.zeros((self._fifo_prefill, 2), np.float32))
        self._fifo.push(self._up.push(np.zeros((self._engine_prefill, 2), np.float32)))
        self.visual.reset()
        self._counters = {"frames_received": 0, "frames_skipped": 0, "nonfinite_samples": 0,
                          "clipped_samples": 0, "underrun_samples": 0, "samples_in": 0}
        self._visual_credit = 1.0      # visual-net runs owed on the audio clock (the first frame runs)
        self._visual_clock = 0         # samples_in when the credit was last brought up to date
        self._warned_nonfinite = False
        self._warned_clipped = False

    def process(self, chunk, frame=None) -> np.ndarray:
        """Spatialize one chunk.

        Args:
            chunk: ``(n,)`` mono samples at ``sample_rate`` (n >= 0), float (or int16/int32 PCM).
            frame: the camera frame that goes with this chunk, or None to keep the last one.

        Returns:
            ``(2, n)`` float32, left then right, delayed by ``latency_samples``; always finite.

        Raises:
            TypeError/ValueError: a bad chunk or frame; nothing has changed.
            RuntimeError: after :meth:`close`; while another thread is inside process(); or a
                failure inside the pipeline, after which the stream has been reset.
        """
        if self._closed:
            raise RuntimeError("Spatializer is closed: create a new one (close() released its backend)")
        chunk = self._check_chunk(chunk)
        if frame is not None:
            frame = check_frame(frame, self.color)  # every argument is validated before any state changes
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("Spatializer.process() is one call at a time: another thread is inside it; "
                               "use one instance per thread or serialise the calls")
        try:
            return self._process_checked(chunk, frame)
        except BaseException as exc:
            # A half-done block would leave the rings and counters inconsistent with each other:
            # start over rather than poison every later call.
            self.reset()
            if isinstance(exc, Exception):
                raise RuntimeError(f"Spatializer.process() failed inside the pipeline ({type(exc).__name__}: "
                                   f"{exc}); the stream was reset, the next call starts a new one") from exc
            raise
        finally:
            self._busy.release()

    def _process_checked(self, chunk: np.ndarray, frame) -> np.ndarray:
        if frame is not None:
            self._counters["frames_received"] += 1
            if self._visual_due():  # only frames the visual net will see are resized
                renderer = self.visual.side_renderer
                self.visual.submit(convert_frame(frame, self.bundle.visual_size, self.color, self.mirror),
                                   None if renderer is None else
                                   convert_frame(frame, renderer.input_size, self.color, self.mirror))
            else:
                self._counters["frames_skipped"] += 1
        n = len(chunk)
        out = np.empty((2, 0), np.float32) if n == 0 else None
        # Convert, run and pop one piece at a time: the output FIFO never holds more than a
        # piece plus the latency, whatever the chunk's length.
        for start in range(0, n, self._max_piece):
            x = self._to_float(chunk[start:start + self._max_piece])
            self._counters["samples_in"] += len(x)
            self._process_piece(x)
            if out is None:  # made after the first piece's blocks: their scratch is freed by then
                out = np.empty((2, n), np.float32)
            self._fifo.pop_into(out[:, start:start + len(x)], self._counters)
        return out

    def flush(self) -> np.ndarray:
        """Return everything still owed for the input given so far: ``(2, latency_samples +
        tail_samples)`` float32. Its first ``latency_samples`` complete the output aligned with
        the input (``out[:, latency_samples:latency_samples + n]`` of the whole stream); the
        rest is the decay after the last input sample (overlap-add of the last frames), after
        which the output of silence is exactly zero. Feeds silence; call :meth:`reset` before
        reusing the stream."""
        return self.process(np.zeros(self.latency_samples + self.tail_samples, np.float32))

    @property
    def stats(self) -> dict:
        """Counters and timings of the stream so far."""
        timing = self._timing
        ms = np.array(timing.block_ms) if timing.block_ms else np.zeros(1)
        c = self._counters
        return {
            "backend": self.backend.name, "device": self.backend.device,
            "block_frames": self.block_frames, "lookahead_frames": self.lookahead_frames,
            "mirror_average": self.mirror_average, "side_gain": self.side_gain,
            "side_renderer": self.side_renderer, "camera_hfov_deg": self.camera_hfov_deg,
            # how likely the stream is in a room, as the side renderer's blend reads it (None:
            # the blend does not depend on it)
            "room_probability": getattr(self._runner, "room_probability", None),
            "latency_samples": self.latency_samples, "latency_ms": self.latency_ms,
            "blocks": timing.blocks,
            "block_ms_mean": float(ms.mean()), "block_ms_p99": float(np.percentile(ms, 99)),
            "block_ms_max": float(ms.max()), "block_budget_ms": 1e3 * self.block_frames * self.hop / self.model_rate,
            "visual_runs": self.visual.runs, "visual_ms_last": self.visual.last_ms,
            "frames_received": c["frames_received"], "frames_skipped": c["frames_skipped"],
            "frames_dropped": self.visual.dropped,
            "nonfinite_samples": c["nonfinite_samples"], "clipped_samples": c["clipped_samples"],
            "underrun_samples": c["underrun_samples"],
            "samples_in": c["samples_in"],
            # Total wall time per stage over the stream, in ms ("visual" ran per camera frame).
            "stage_ms": {**{k: 1e3 * v for k, v in timing.stage_s.items()}, "visual": self.visual.total_ms},
        }

    def close(self) -> None:
        """Stop the visual worker thread (threaded mode) and release the backend; later calls
        to :meth:`process` raise RuntimeError. Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        self.visual.close()
        close = getattr(self.backend, "close", None)
        if close:
            close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return (f"Spatializer(model={str(self.bundle.path)!r}, backend={self.backend.name!r}, "
                f"sample_rate={self.sample_rate}, block_frames={self.block_frames}, "
                f"lookahead_frames={self.lookahead_frames}, latency_ms={self.latency_ms:.1f})")

    # ------------------------------------------------------------------ internals

    def _check_chunk(self, chunk) -> np.ndarray:
        """Validate a chunk without converting it: ``(n,)`` float or int16/int32 PCM."""
        if not isinstance(chunk, np.ndarray):
            raise TypeError(f"chunk must be a numpy array (n,) float32 at {self.sample_rate} Hz, "
                            f"got {type(chunk).__name__}")
        if chunk.ndim == 2 and 1 in chunk.shape:
            chunk = chunk.reshape(-1)
        if chunk.ndim != 1:
            raise ValueError(f"chunk must be mono audio of shape (n,) (or (n, 1)), got shape {chunk.shape}; "
                             "mix multichannel input down to mono first")
        if chunk.dtype not in (np.int16, np.int32) and chunk.dtype.kind != "f":
            raise TypeError(f"chunk must be float32 (n,) audio (float64, int16 and int32 are converted), "
                            f"got dtype {chunk.dtype}")
        return chunk

    def _to_float(self, chunk: np.ndarray) -> np.ndarray:
        """A checked piece (at most ``_max_piece`` samples) -> ``(n,)`` float32 view of a buffer
        made in __init__ (valid until the next piece): finite, within +-MAX_ABS_SAMPLE, no
        denormals. Works in place, so a call allocates nothing per sample beyond its result."""
        n = len(chunk)
        x, mag, flag = self._in_buf[:n], self._in_mag[:n], self._in_flag[:n]
        if chunk.dtype == np.int16:
            np.multiply(chunk, np.float32(1 / 32768), out=x, casting="unsafe")
            return x  # PCM: finite and in range by construction
        if chunk.dtype == np.int32:
            np.multiply(chunk, 1 / 2147483648, out=x, casting="unsafe")  # computed in float64
            return x
        with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32's range -> inf
            np.copyto(x, chunk, casting="unsafe")
        np.abs(x, out=mag)
        np.isfinite(mag, out=flag)
        np.logical_not(flag, out=flag)
        if flag.any():
            np.putmask(x, flag, 0)
            np.putmask(mag, flag, 0)
            self._counters["nonfinite_samples"] += int(np.count_nonzero(flag))
            if not self._warned_nonfinite:
                warnings.warn("streambin: NaN/inf samples in the input were replaced by 0 "
                              "(counted in Spatializer.stats['nonfinite_samples'])", RuntimeWarning, stacklevel=4)
                self._warned_nonfinite = True
        np.greater(mag, MAX_ABS_SAMPLE, out=flag)
        if flag.any():
            np.clip(x, -MAX_ABS_SAMPLE, MAX_ABS_SAMPLE, out=x)
            self._counters["clipped_samples"] += int(np.count_nonzero(flag))
            if not self._warned_clipped:
                warnings.warn(f"streambin: input samples beyond +-{MAX_ABS_SAMPLE:g} were clipped "
                              "(counted in Spatializer.stats['clipped_samples'])", RuntimeWarning, stacklevel=4)
                self._warned_clipped = True
        np.less(mag, FLUSH_BELOW, out=flag)
        np.putmask(x, flag, 0)
        return x

    def _visual_due(self) -> bool:
        """Whether a frame arriving now may run the visual net (``visual_fps`` cap, audio clock).

        Credit: one run per period of audio, banked up to _VISUAL_MAX_CREDIT; a frame runs when
        at least 1 - _VISUAL_DUE_TOLERANCE is there. A camera at or above the cap then reaches
        it on average whatever the chunk size (frames are only seen at chunk starts).
        """
        if self.visual_fps is None:
            return True
        now = self._counters["samples_in"]
        period = self.sample_rate / self.visual_fps
        self._visual_credit = min(_VISUAL_MAX_CREDIT, self._visual_credit + (now - self._visual_clock) / period)
        self._visual_clock = now
        if self._visual_credit < 1.0 - _VISUAL_DUE_TOLERANCE:
            return False
        self._visual_credit -= 1.0
        return True

    def _process_piece(self, x: np.ndarray) -> None:
        t0 = time.perf_counter()
        x_stft = self._down.push(x)
        if x_stft.ndim == 2:
            x_stft = x_stft[:, 0]
        self._timing.stage_s["resample_in"] += time.perf_counter() - t0
        self._runner.push(x_stft)

    def _emit_block(self, block: np.ndarray) -> None:
        """A finished block from the runner, ``(n, 2)`` float32 at the STFT rate -> output FIFO."""
        self._fifo.push(self._up.push(block))


class _SampleFifo:
    """First-in first-out buffer of ``(n, channels)`` float32 samples, popped as ``(channels, n)``."""

    def __init__(self, channels: int, capacity: int):
        self._buf = np.zeros((max(capacity, 1), channels), np.float32)
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def push(self, x: np.ndarray) -> None:
        n = len(x)
        if n == 0:
            return
        if self._end + n > len(self._buf):
            live = self._buf[self._start:self._end].copy()
            if len(live) + n > len(self._buf):  # grow (rare: process() pops after every 1 s piece)
                self._buf = np.zeros((2 * (len(live) + n), self._buf.shape[1]), np.float32)
            self._buf[:len(live)] = live
            self._start, self._end = 0, len(live)
        self._buf[self._end:self._end + n] = x
        self._end += n

    def pop(self, n: int, counters: dict) -> np.ndarray:
        out = np.empty((self._buf.shape[1], n), np.float32)
        self.pop_into(out, counters)
        return out

    def pop_into(self, out: np.ndarray, counters: dict) -> None:
        """Fill ``out`` (channels, n) with the oldest n samples (zeros past an underrun)."""
        n = out.shape[1]
        have = min(n, len(self))
        out[:, :have] = self._buf[self._start:self._start + have].T
        out[:, have:] = 0
        self._start += have
        if have < n:  # cannot happen with a correct prefill; counted, never silent
            counters["underrun_samples"] += n - have


def _close_unclosed(visual: VisualFeature) -> None:
    """Finaliser of a Spatializer collected without close(): stop its worker thread."""
    if visual.threaded:
        warnings.warn("streambin: a Spatializer with threaded_visual=True was not closed; its worker "
                      "thread was stopped when it was collected (call close() or use 'with')",
                      ResourceWarning, stacklevel=2)
    visual.close()


def _open_model(model, backend, device, create_backend, options):
    """Resolve ``model`` to (bundle, backend)."""
    from streambin.bundle import load_bundle

    if isinstance(model, (str, Path)) and str(model) != "default" and Path(model).is_file():
        if backend not in ("auto", "torch"):
            raise ValueError(f"model {model} is a checkpoint file: it runs on the torch backend, "
                             f"got backend={backend!r}; export it to a bundle for other backends")
        from streambin.backends.checkpoint_bundle import bundle_from_checkpoint

        bundle = bundle_from_checkpoint(model)
        return bundle, create_backend(bundle, backend="torch", device=device, **options)
    bundle = load_bundle(model)
    return bundle, create_backend(bundle, backend=backend, device=device, **options)
