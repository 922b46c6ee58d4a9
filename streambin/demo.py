"""Live demo: ``python -m streambin.demo`` - speak into a mono mic in front of a webcam and hear
yourself placed where the camera sees you, on headphones.

Live mode (default): a sounddevice full-duplex stream (1 channel in, 2 out) at the devices'
native rate, an OpenCV capture thread (``--camera N``, or ``--video FILE`` / ``--frames DIR``
played at their own rate), a worker thread running the Spatializer, and a preview window with
a left/right level meter when a display exists. Ctrl-C (or q in the window) stops.

File mode (no mic, camera or display needed): ``--input-wav IN.wav (--video FILE | --frames DIR)
--output-wav OUT.wav``. A feeder thread plays the part of the sound card: it calls the SAME
callback in callback-size blocks, paced like a live stream (``--no-pace``: as fast as the
worker allows, for tests), so the rings, the worker and the jitter policy are what is
exercised. The output wav is the played stream, NOT latency-compensated: it is delayed by
``output_offset_samples`` = the engine's latency + the jitter buffer (see docs/demo.md).

The real-time path itself (rings, callback, worker, jitter policy) is in
:mod:`streambin.demo_realtime`; the preview in :mod:`streambin.demo_overlay`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

import numpy as np

from streambin import media
from streambin.cli_options import (add_camera_hfov_option, add_mirror_average_options, add_side_gain_option,
                                   add_side_renderer_option)
from streambin.spatializer import DEFAULT_LOOKAHEAD_FRAMES
from streambin.demo_overlay import NO_DISPLAY_MESSAGE, LevelHistory, PreviewWindow, render_overlay
from streambin.demo_realtime import AudioBridge, FrameSlot, SpatializerWorker

log = logging.getLogger("streambin.demo")

PORTAUDIO_MESSAGE = ("PortAudio is not installed: apt-get install libportaudio2 "
                     "(or use file mode: --input-wav/--output-wav)")
SOUNDDEVICE_MESSAGE = ("the Python package sounddevice is not installed: pip install sounddevice "
                       "(or pip install streambin[demo]; or use file mode: --input-wav/--output-wav)")
FILE_BLOCK_MS = 10.0      # callback size of file mode when --blocksize is 0 (same as the CLI's chunks)
RING_SECONDS = 2.0        # input and output ring capacity
METER_WINDOW_MS = 50.0


class DemoError(Exception):
    """A fatal, explained error: printed as ``streambin.demo: error: ...``, exit code 2."""


# ---------------------------------------------------------------------------- hardware edges

def import_sounddevice():
    """Import sounddevice, turning its import failures into :class:`DemoError` messages."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError('PortAudio library not found') at import
        raise DemoError(PORTAUDIO_MESSAGE) from exc
    except ImportError as exc:
        raise DemoError(SOUNDDEVICE_MESSAGE) from exc
    return sounddevice


def parse_device(value):
    """``--input-device``/``--output-device``: None, an index ("3") or a (sub)string of a name."""
    if value is None or value == "":
        return None
    value = str(value).strip()
    return int(value) if value.lstrip("-").isdigit() else value


def open_camera(index: int):
    """Open camera ``index`` with OpenCV; raises :class:`DemoError` when it cannot be opened."""
    import cv2

    if not isinstance(index, (int, np.integer)) or index < 0:
        raise DemoError(f"--camera must be a camera index >= 0, got {index!r}")
    cap = cv2.VideoCapture(int(index))
    if not cap.isOpened():
        cap.release()
        raise DemoError(f"camera {index} could not be opened: no such device, no permission, or another "
                        f"program is using it; use --video FILE or --frames DIR (or --no-camera)")
    return cap


class CameraThread(threading.Thread):
    """Reads an opened ``cv2.VideoCapture`` as fast as the camera delivers; newest frame -> slot (RGB)."""

    def __init__(self, capture, slot: FrameSlot):
        super().__init__(name="streambin-demo-camera", daemon=True)
        self.capture, self.slot = capture, slot
        self.stop_event = threading.Event()
        self.failures = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            ok, bgr = self.capture.read()
            if not ok:
                self.failures += 1
                if self.failures > 50:  # camera unplugged / stream ended
                    log.warning("camera stopped delivering frames; keeping the last picture")
                    return
                time.sleep(0.02)
                continue
            self.slot.put(np.ascontiguousarray(bgr[:, :, ::-1]))
        self.capture.release()


class TimedFramesThread(threading.Thread):
    """Live mode with ``--video``/``--frames``: frames -> slot at their timestamps (wall clock)."""

    def __init__(self, frames, slot: FrameSlot):
        super().__init__(name="streambin-demo-frames", daemon=True)
        self.frames, self.slot = frames, slot
        self.stop_event = threading.Event()

    def run(self) -> None:
        t0 = time.perf_counter()
        for t, rgb in self.frames:
            wait = t0 + t - time.perf_counter()
            if wait > 0 and self.stop_event.wait(wait):
                return
            self.slot.put(rgb)
            if self.stop_event.is_set():
                return


def _frame_source(video=None, frames_dir=None, fps: float = 10.0):
    if video is not None and frames_dir is not None:
        raise DemoError("give either --video or --frames, not both")
    if video is not None:
        return media.iter_video_frames(video)
    if frames_dir is not None:
        return media.iter_frame_dir(frames_dir, fps)
    return None


# ---------------------------------------------------------------------------- file mode

class FileFeeder(threading.Thread):
    """Plays the sound card in file mode: calls ``bridge.callback`` in ``block``-sample blocks.

    Before the callback of the block starting at sample ``pos`` it hands over the newest frame
    whose timestamp is ``<= pos / rate`` (what the offline CLI does per chunk). Paced: callback
    k runs at ``t0 + (k + 1) * block / rate`` (a block must have been "captured"). Not paced:
    it waits until the worker has processed all input so far (a machine infinitely fast
    relative to the stream clock). After the input it feeds silence until the played stream
    holds every input sample's output (``n + latency + jitter`` samples).
    """

    def __init__(self, mono, rate, block, bridge: AudioBridge, worker: SpatializerWorker, frames, slot,
                 latency_samples: int, pace: bool):
        super().__init__(name="streambin-demo-feeder", daemon=True)
        self.mono, self.rate, self.block = mono, rate, block
        self.bridge, self.worker, self.frames, self.slot = bridge, worker, frames, slot
        self.latency_samples, self.pace = latency_samples, pace
        self.stop_event = threading.Event()
        self.recorded = []
        self.recorded_samples = 0
        self.finished = False
        self.error = None

    def target_samples(self) -> int:
        return len(self.mono) + self.latency_samples + self.bridge.jitter_samples

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.error = exc

    def _run(self) -> None:
        block, rate, mono = self.block, self.rate, self.mono
        indata = np.zeros((block, 1), np.float32)
        outdata = np.zeros((block, 2), np.float32)
        next_frame = next(self.frames, None) if self.frames is not None else None
        t0 = time.perf_counter()
        pos = 0
        while not self.stop_event.is_set():
            if pos >= len(mono) and self.recorded_samples >= self.target_samples():
                self.finished = True
                return
            indata[:] = 0
            m = max(0, min(block, len(mono) - pos))
            indata[:m, 0] = mono[pos:pos + m]
            while next_frame is not None and next_frame[0] <= pos / rate:
                self.slot.put(next_frame[1])
                next_frame = next(self.frames, None)
            if self.pace:
                wait = t0 + (pos + block) / rate - time.perf_counter()
                if wait > 0 and self.stop_event.wait(wait):
                    return
            elif not self.worker.wait_processed(self.bridge.samples_in):
                raise RuntimeError("the worker did not keep up within 30 s")
            if self.worker.error is not None:
                return
            self.bridge.callback(indata, outdata, block, None, None)
            self.recorded.append(outdata.copy())
            self.recorded_samples += block
            pos += block

    def output(self) -> np.ndarray:
        """The played stream so far, ``(2, n)`` float32 (trimmed to the target when finished)."""
        if not self.recorded:
            return np.zeros((2, 0), np.float32)
        out = np.concatenate(self.recorded, axis=0).T
        return np.ascontiguousarray(out[:, :self.target_samples()] if self.finished else out)


def run_file_mode(input_wav, output_wav, video=None, frames_dir=None, fps: float = 10.0, model="default",
                  backend: str = "auto", device: str = "auto", block_frames=None,
                  lookahead_frames: int = DEFAULT_LOOKAHEAD_FRAMES,
                  blocksize: int = 0, pace: bool = True, preview: bool = False, max_jitter_ms: float = 250.0,
                  print_report: bool = True, mirror: bool = False, mirror_average: bool | None = None,
                  side_gain: float | None = None, side_renderer: bool | None = None,
                  camera_hfov_deg: float | None = None) -> dict:
    """Spatialize a wav through the live demo's real-time path; returns the report (see
    :func:`make_report`), also printed unless ``print_report`` is False.

    Args:
        input_wav: mono audio file (multichannel is averaged); its rate is the "device rate".
        output_wav: where the played binaural stream ``(2, n + output_offset_samples)`` is
            written as a float wav (also on Ctrl-C: what was played so far).
        video, frames_dir, fps: the pictures (a video file, or a directory of numbered images at
            ``fps``); neither = the model's neutral picture.
        blocksize: callback size in samples; 0 = ``FILE_BLOCK_MS`` (10 ms).
        pace: pace the callbacks like a live stream (False: as fast as possible, deterministic).
        preview: show the preview window if a display exists.
        max_jitter_ms: cap on the jitter buffer's growth (see streambin.demo_realtime).
        model, backend, device, block_frames, lookahead_frames, mirror, mirror_average, side_gain,
            side_renderer, camera_hfov_deg: as for Spatializer.
    """
    from streambin.spatializer import Spatializer

    if not isinstance(blocksize, (int, np.integer)) or blocksize < 0:
        raise DemoError(f"--blocksize must be an integer >= 0 (samples), got {blocksize!r}")
    mono, rate = media.read_mono(input_wav)
    frames = _frame_source(video, frames_dir, fps)
    if frames is None:
        log.warning("no --video/--frames: the model hears the scene with a neutral picture")
    block = int(blocksize) or max(1, int(round(rate * FILE_BLOCK_MS / 1e3)))
    sp = Spatializer(model=model, backend=backend, device=device, sample_rate=rate, block_frames=block_frames,
                     lookahead_frames=lookahead_frames, threaded_visual=True, mirror=mirror,
                     mirror_average=mirror_average, side_gain=side_gain, side_renderer=side_renderer,
                     camera_hfov_deg=camera_hfov_deg)
    ring = max(int(RING_SECONDS * rate), 4 * block)
    bridge = AudioBridge(ring, ring, preroll_samples=block,
                         max_jitter_samples=max(block, int(max_jitter_ms * rate / 1e3)))
    slot = FrameSlot()
    meter = LevelHistory(rate, METER_WINDOW_MS)
    worker = SpatializerWorker(sp, bridge, slot, meter=meter, deterministic=not pace)
    feeder = FileFeeder(mono, rate, block, bridge, worker, frames, slot, sp.latency_samples, pace)
    window = _open_preview(preview)
    interrupted = False
    worker.start()
    feeder.start()
    try:
        while feeder.is_alive():
            if window is not None:
                if not window.show(_overlay(sp, slot, meter, bridge)):
                    interrupted = True
                    break
            feeder.join(0.05)
    except KeyboardInterrupt:
        interrupted = True
        print("\nstopping (Ctrl-C): writing what was played so far", file=sys.stderr)
    finally:
        feeder.stop_event.set()
        feeder.join(5)
        worker.stop()
        worker.join(5)
        if window is not None:
            window.close()
        out = feeder.output()
        if worker.error is None and feeder.error is None:  # no partial file from a failed run
            media.write_wav(output_wav, out, rate)
        stats = sp.stats
        sp.close()
    for err in (worker.error, feeder.error):
        if err is not None:
            raise DemoError(f"the real-time path failed: {type(err).__name__}: {err}") from err
    report = make_report("file", stats, bridge, slot, rate, capture_ms=1e3 * block / rate,
                         callback_frames=block, interrupted=interrupted or not feeder.finished)
    report["output_samples"] = int(out.shape[1])
    report["output_wav"] = str(output_wav)
    if print_report:
        print(format_report(report))
    return report


# ---------------------------------------------------------------------------- live mode

NO_DEVICES_MESSAGE = ("no audio devices found (PortAudio sees none: no sound card, or no access to it); "
                      "use file mode: --input-wav/--output-wav")


def list_devices() -> str:
    sd = import_sounddevice()
    devices = sd.query_devices()
    return str(devices) if len(devices) else NO_DEVICES_MESSAGE


def _choose_rate(sd, in_dev, out_dev, samplerate):
    from streambin.spatializer import SUPPORTED_RATES

    if not len(sd.query_devices()):
        raise DemoError(NO_DEVICES_MESSAGE)
    try:
        in_info = sd.query_devices(in_dev, "input")
        out_info = sd.query_devices(out_dev, "output")
    except (ValueError, sd.PortAudioError) as exc:
        raise DemoError(f"audio device: {exc}; see --list-devices and pick --input-device/--output-device "
                        "(or use file mode: --input-wav/--output-wav)") from exc
    if samplerate:
        rate = int(samplerate)
    else:
        rate = int(out_info["default_samplerate"])
        if int(in_info["default_samplerate"]) != rate:
            log.warning("input device runs at %d Hz, output at %d Hz: using %d Hz for both (--samplerate to choose)",
                        int(in_info["default_samplerate"]), rate, rate)
    if rate not in SUPPORTED_RATES:
        raise DemoError(f"sample rate {rate} Hz is not supported; pass --samplerate with one of {SUPPORTED_RATES}")
    return rate, in_info, out_info


def run_live(args) -> dict:
    """Mic + camera -> headphones until Ctrl-C / q; returns the report."""
    from streambin.spatializer import Spatializer

    sd = import_sounddevice()
    in_dev, out_dev = parse_device(args.input_device), parse_device(args.output_device)
    rate, in_info, out_info = _choose_rate(sd, in_dev, out_dev, args.samplerate)
    if args.blocksize < 0:
        raise DemoError(f"--blocksize must be >= 0 (0 = variable), got {args.blocksize}")

    slot = FrameSlot()
    frames = _frame_source(args.video, args.frames, args.fps)
    if frames is not None:
        source = TimedFramesThread(frames, slot)
    elif args.no_camera:
        source = None
        log.warning("--no-camera: the model hears the scene with a neutral picture")
    else:
        source = CameraThread(open_camera(args.camera), slot)

    sp = Spatializer(model=args.model, backend=args.backend, device=args.device, sample_rate=rate,
                     block_frames=args.block_frames, lookahead_frames=args.lookahead_frames, threaded_visual=True,
                     mirror=args.mirror, mirror_average=args.mirror_average, side_gain=args.side_gain,
                     side_renderer=args.side_renderer, camera_hfov_deg=args.camera_hfov)
    ring = int(RING_SECONDS * rate)
    bridge = AudioBridge(ring, ring, preroll_samples=args.blocksize or None,
                         max_jitter_samples=int(args.max_jitter_ms * rate / 1e3),
                         record_capacity=int(4 * rate) if args.output_wav else 0)
    meter = LevelHistory(rate, METER_WINDOW_MS)
    worker = SpatializerWorker(sp, bridge, slot, meter=meter)
    window = _open_preview(not args.no_preview)
    recorded, rec_buf = [], np.zeros((ring, 2), np.float32)
    print(f"streambin demo: {in_info['name']} -> {out_info['name']} at {rate} Hz, "
          f"engine latency {sp.latency_ms:.1f} ms; Ctrl-C (or q in the preview) stops", file=sys.stderr)
    interrupted = False
    stream = None
    try:
        stream = sd.Stream(device=(in_dev, out_dev), samplerate=rate, blocksize=args.blocksize, channels=(1, 2),
                           dtype="float32", callback=bridge.callback)
    except sd.PortAudioError as exc:
        sp.close()
        raise DemoError(f"cannot open the audio stream at {rate} Hz: {exc}; try --samplerate, other devices "
                        "(--list-devices) or file mode (--input-wav/--output-wav)") from exc
    worker.start()
    if source is not None:
        source.start()
    last_status = time.monotonic()
    try:
        with stream:
            while worker.error is None:
                if bridge.record is not None:  # drain what was played into the recording
                    n = bridge.record.pop_into(rec_buf, len(rec_buf))
                    if n:
                        recorded.append(rec_buf[:n].copy())
                if window is not None:
                    if not window.show(_overlay(sp, slot, meter, bridge)):
                        break
                else:
                    time.sleep(0.05)
                if time.monotonic() - last_status > 5:
                    print(_status(bridge), file=sys.stderr)
                    last_status = time.monotonic()
            latency = stream.latency
    except KeyboardInterrupt:
        interrupted = True
        latency = stream.latency
        print("\nstopping (Ctrl-C)", file=sys.stderr)
    finally:
        worker.stop()
        worker.join(5)
        if source is not None:
            source.stop_event.set()
            source.join(2)
        if window is not None:
            window.close()
        if bridge.record is not None:
            n = bridge.record.pop_into(rec_buf, len(rec_buf))
            recorded.append(rec_buf[:n].copy())
            out = np.concatenate(recorded, axis=0).T if recorded else np.zeros((2, 0), np.float32)
            media.write_wav(args.output_wav, out, rate)
            print(f"wrote {args.output_wav} ({out.shape[1] / rate:.1f} s played)", file=sys.stderr)
        stats = sp.stats
        sp.close()
    if worker.error is not None:
        raise DemoError(f"the real-time path failed: {type(worker.error).__name__}: {worker.error}")
    device_ms = 1e3 * (float(latency[0]) + float(latency[1]))
    frames_per_cb = bridge.frames_total / max(bridge.callbacks, 1)
    return make_report("live", stats, bridge, slot, rate, capture_ms=device_ms, callback_frames=frames_per_cb,
                       interrupted=interrupted)


# ---------------------------------------------------------------------------- report, preview

def make_report(mode, stats, bridge: AudioBridge, slot: FrameSlot, rate, capture_ms, callback_frames,
                interrupted) -> dict:
    """The end-of-run figures.

    ``end_to_end_latency_ms`` = the engine's algorithmic latency + ``capture_ms`` (file mode:
    one callback block, the wait for a block to be captured before the callback sees it; live:
    PortAudio's reported input + output latency of the stream) + the jitter buffer (pre-roll +
    growth). ``output_offset_samples`` is the delay of the played stream (the output wav)
    behind the input: algorithmic + jitter (the capture wait is not visible in a file).
    """
    alg_ms = float(stats["latency_ms"])
    jitter_ms = 1e3 * bridge.jitter_samples / rate
    return {
        "mode": mode, "sample_rate": int(rate), "backend": f"{stats['backend']}/{stats['device']}",
        "block_frames": stats["block_frames"], "lookahead_frames": stats["lookahead_frames"],
        # the field of view the side renderer reads the pictures at (None: no side renderer)
        "camera_hfov_deg": stats.get("camera_hfov_deg"),
        "callbacks": bridge.callbacks, "callback_frames": callback_frames,
        "blocks": stats["blocks"], "block_ms_p99": stats["block_ms_p99"], "block_budget_ms": stats["block_budget_ms"],
        "underruns": bridge.underruns, "underrun_samples": bridge.underrun_samples,
        "overruns": bridge.overruns, "overrun_samples": bridge.overrun_samples,
        "skipped_samples": bridge.skipped_samples, "device_status_flags": bridge.device_status,
        "engine_underrun_samples": stats["underrun_samples"],
        "frames_in": slot.put_count, "frames_received": stats["frames_received"],
        "frames_dropped": stats["frames_dropped"], "frames_skipped": stats["frames_skipped"],
        "frames_overwritten": slot.overwritten,
        "algorithmic_latency_ms": alg_ms, "capture_ms": float(capture_ms), "jitter_ms": jitter_ms,
        "preroll_ms": 1e3 * (bridge.silence_samples - bridge.underrun_samples) / rate,
        "end_to_end_latency_ms": alg_ms + float(capture_ms) + jitter_ms,
        "output_offset_samples": int(stats["latency_samples"]) + bridge.jitter_samples,
        "interrupted": bool(interrupted),
    }


def format_report(r: dict) -> str:
    capture = "callback block" if r["mode"] == "file" else "device in+out"
    return "\n".join([
        f"streambin demo ({r['mode']} mode, {r['sample_rate']} Hz, {r['backend']}, "
        f"block {r['block_frames']} frames, lookahead {r['lookahead_frames']}"
        + (f", pictures read at {r['camera_hfov_deg']:g} degrees of view" if r.get("camera_hfov_deg") else "") + ")"
        + (" - stopped early" if r["interrupted"] else ""),
        f"  blocks processed   {r['blocks']} (p99 {r['block_ms_p99']:.2f} ms of {r['block_budget_ms']:.0f} ms budget),"
        f" {r['callbacks']} callbacks of ~{r['callback_frames']:.0f} samples",
        f"  underruns          {r['underruns']} ({r['underrun_samples']} samples of silence), "
        f"overruns {r['overruns']} ({r['overrun_samples']} samples lost), skipped {r['skipped_samples']}",
        f"  frames             {r['frames_in']} in, {r['frames_skipped']} skipped by the visual_fps cap, "
        f"{r['frames_dropped']} dropped by the visual worker, {r['frames_overwritten']} overwritten before use",
        f"  latency            algorithmic {r['algorithmic_latency_ms']:.1f} ms + {capture} {r['capture_ms']:.1f} ms"
        f" + jitter buffer {r['jitter_ms']:.1f} ms = end-to-end {r['end_to_end_latency_ms']:.1f} ms",
    ])


def _status(bridge: AudioBridge) -> str:
    return (f"underruns {bridge.underruns}  overruns {bridge.overruns}  "
            f"jitter buffer {bridge.jitter_samples} samples")


def _overlay(sp, slot, meter, bridge) -> np.ndarray:
    """The preview image: the latest picture, the side renderer's peaks on it, the ILD meter."""
    renderer = sp.visual.side_renderer
    return render_overlay(_bgr(slot.latest), meter.values, status=_status(bridge),
                          peaks=None if renderer is None else renderer.last_peaks,
                          hfov_deg=90.0 if renderer is None else renderer.hfov_deg, mirror=sp.mirror)


def _bgr(rgb):
    return None if rgb is None else np.ascontiguousarray(rgb[:, :, ::-1])


def _open_preview(wanted: bool):
    if not wanted:
        return None
    window = PreviewWindow()
    if window.open():
        return window
    print(f"{NO_DISPLAY_MESSAGE} [{window.reason}]", file=sys.stderr)
    return None


# ---------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m streambin.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list-devices", action="store_true", help="list the audio devices and exit")
    p.add_argument("--input-device", help="microphone: index or (part of the) name (default: system default)")
    p.add_argument("--output-device", help="headphones: index or (part of the) name (default: system default)")
    p.add_argument("--samplerate", type=int, default=None,
                   help="device rate in Hz (default: the output device's default rate)")
    p.add_argument("--blocksize", type=int, default=0,
                   help="callback size in samples; 0 = variable (live, most robust) / 10 ms (file mode)")
    p.add_argument("--max-jitter-ms", type=float, default=250.0,
                   help="cap on the jitter buffer's growth after underruns (default 250 ms)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, default=0, help="camera index (live mode, default 0)")
    src.add_argument("--video", help="video file whose picture drives the model (at its own rate)")
    src.add_argument("--frames", help="directory of numbered frame images (at --fps)")
    src.add_argument("--no-camera", action="store_true", help="no picture: the model's neutral picture")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate of --frames (default 10)")
    p.add_argument("--mirror", action="store_true",
                   help="flip the picture left-right before the model: for front (selfie) cameras, whose "
                        "picture is a mirror image")
    add_mirror_average_options(p)
    add_side_gain_option(p)
    add_side_renderer_option(p)
    add_camera_hfov_option(p)
    p.add_argument("--input-wav", help="file mode: mono input audio instead of the microphone")
    p.add_argument("--output-wav", help="file mode: binaural output; live mode: also record what is played")
    p.add_argument("--no-pace", action="store_true", help="file mode: run as fast as possible (tests)")
    p.add_argument("--no-preview", action="store_true", help="no preview window")
    p.add_argument("--model", default="default", help="'default', a bundle directory or a checkpoint")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt", "torch"],
                   help="inference backend (default auto: TensorRT, then ONNX Runtime, then torch)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="inference device")
    p.add_argument("--block-frames", type=int, default=None, help="STFT frames per network run (default: auto)")
    p.add_argument("--lookahead-frames", type=int, default=DEFAULT_LOOKAHEAD_FRAMES,
                   help=f"frames of future context the masks see (default {DEFAULT_LOOKAHEAD_FRAMES}; 10 ms "
                        "of latency each)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.list_devices:
            print(list_devices())
            return 0
        if args.input_wav or args.no_pace:
            if not (args.input_wav and args.output_wav):
                raise DemoError("file mode needs both --input-wav IN.wav and --output-wav OUT.wav")
            if args.samplerate:
                raise DemoError("file mode runs at the input wav's own rate: drop --samplerate")
            run_file_mode(args.input_wav, args.output_wav, video=args.video, frames_dir=args.frames, fps=args.fps,
                          model=args.model, backend=args.backend, device=args.device,
                          block_frames=args.block_frames, lookahead_frames=args.lookahead_frames,
                          blocksize=args.blocksize, pace=not args.no_pace, preview=not args.no_preview,
                          max_jitter_ms=args.max_jitter_ms, mirror=args.mirror, mirror_average=args.mirror_average,
                          side_gain=args.side_gain, side_renderer=args.side_renderer,
                          camera_hfov_deg=args.camera_hfov)
            print(f"wrote {args.output_wav}")
            return 0
        print(format_report(run_live(args)))
        return 0
    except DemoError as exc:
        print(f"streambin.demo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the stream started (while loading the model)
        print("\nstreambin.demo: interrupted before the stream started", file=sys.stderr)
        return 130
    except (media.MediaError, ValueError, FileNotFoundError) as exc:
        print(f"streambin.demo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
