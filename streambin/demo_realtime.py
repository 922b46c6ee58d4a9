"""The live demo's real-time path: rings, the audio callback, the Spatializer worker thread.

Threads and who owns what::

    sound card (or the file-mode feeder)
        |  callback(indata, outdata, frames, time, status)   <- buffer work only
        |     indata  -> input ring   (full: overrun, the samples that do not fit are dropped)
        |     outdata <- output ring  (not enough ready: underrun, a whole block of silence)
        v
    worker thread: input ring -> Spatializer.process(chunk, latest frame) -> output ring
    camera/video thread: newest frame -> FrameSlot (the worker takes it when it is new)

Both rings are single-producer single-consumer: the callback writes the input ring and reads
the output ring, the worker does the opposite. Each side only ever moves its own index, and it
moves it after copying the samples, so no lock is needed (CPython runs one bytecode at a time
and attribute stores are atomic). The callback allocates nothing and never waits.

Jitter buffer policy (what happens on an underrun)
--------------------------------------------------
The callback must hand out output for the block it has just received, which the worker has not
processed yet, so the output starts with a pre-roll of silence: one callback block by default
(the first callback's size when the block size is variable). When, later, the output ring does
not hold a whole callback's worth, the callback plays one whole block of silence and consumes
nothing. Nothing is dropped: every later sample comes out one block later, i.e. the jitter
buffer has grown by one block and stays that deep, so a slow moment costs one gap instead of
a crackle on every block. Growth stops at ``max_jitter_samples``: past it, the audio that is
late is skipped (discarded as it arrives) to hold the latency at the cap, and counted in
``skipped_samples``. ``jitter_samples`` is the current buffering delay of the output stream
behind the engine (pre-roll + growth - skipped - input lost to overruns).
"""

from __future__ import annotations

import threading
import time

import numpy as np


class SampleRing:
    """Bounded single-producer single-consumer ring of ``(n, channels)`` float32 samples.

    Args:
        capacity: samples (per channel) the ring holds, >= 1.
        channels: channels per sample, >= 1.
    """

    def __init__(self, capacity: int, channels: int):
        if int(capacity) < 1 or int(channels) < 1:
            raise ValueError(f"capacity and channels must be >= 1, got {capacity}, {channels}")
        self._buf = np.zeros((int(capacity), int(channels)), np.float32)
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._write = 0  # total samples ever written (moved by the producer only)
        self._read = 0   # total samples ever read (moved by the consumer only)

    @property
    def available(self) -> int:
        """Samples ready to read."""
        return self._write - self._read

    @property
    def free(self) -> int:
        """Samples that can be written without overflowing."""
        return self.capacity - (self._write - self._read)

    def push(self, x: np.ndarray) -> int:
        """Producer: copy as much of ``x`` ``(n, channels)`` (or ``(n,)`` for one channel) as fits;
        returns the number of samples written (the rest is the caller's overrun)."""
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"push expects (n, {self.channels}) samples, got shape {x.shape}")
        n = min(len(x), self.free)
        if n <= 0:
            return 0
        start = self._write % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start:start + first] = x[:first]
        if n > first:
            self._buf[:n - first] = x[first:n]
        self._write += n  # publish only after the copy
        return n

    def pop_into(self, out: np.ndarray, n: int) -> int:
        """Consumer: copy up to ``n`` samples into ``out[:n]`` ``(>= n, channels)``; returns how many."""
        n = min(int(n), self.available)
        if n <= 0:
            return 0
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start:start + first]
        if n > first:
            out[first:n] = self._buf[:n - first]
        self._read += n  # release only after the copy
        return n

    def skip(self, n: int) -> int:
        """Consumer: discard up to ``n`` samples; returns how many."""
        n = min(int(n), self.available)
        if n > 0:
            self._read += n
        return max(n, 0)


class AudioBridge:
    """The audio callback and the two rings between it and the worker.

    Args:
        input_capacity: input ring size in samples (mono) at the device rate.
        output_capacity: output ring size in samples (stereo) at the device rate.
        preroll_samples: silence played before the first output sample; None = the first
            callback's ``frames`` (one block).
        max_jitter_samples: cap on the jitter buffer (see the module docstring).
        record_capacity: if > 0, a third ring receives a copy of every ``outdata`` (what was
            played), drained by the main thread to write ``--output-wav`` in live mode.
    """

    def __init__(self, input_capacity: int, output_capacity: int, preroll_samples: int | None = None,
                 max_jitter_samples: int = 1 << 30, record_capacity: int = 0):
        self.input = SampleRing(input_capacity, 1)
        self.output = SampleRing(output_capacity, 2)
        self.record = SampleRing(record_capacity, 2) if record_capacity > 0 else None
        if preroll_samples is not None and int(preroll_samples) < 0:
            raise ValueError(f"preroll_samples must be >= 0 or None, got {preroll_samples}")
        self.preroll_samples = preroll_samples
        self.max_jitter_samples = int(max_jitter_samples)
        self.data_ready = threading.Event()
        self._hold = None          # silence still owed before reading the output ring
        self._skip_debt = 0        # late samples to discard (jitter at its cap)
        self.callbacks = 0
        self.frames_total = 0
        self.samples_in = 0        # input samples accepted into the ring
        self.underruns = 0         # callbacks that played a silent block for want of output
        self.underrun_samples = 0
        self.overruns = 0          # callbacks whose input did not fit in the ring
        self.overrun_samples = 0
        self.silence_samples = 0   # pre-roll + growth
        self.skipped_samples = 0
        self.device_status = 0     # callbacks with PortAudio status flags (device xruns)
        self.record_lost = 0

    @property
    def jitter_samples(self) -> int:
        """Current delay of the played stream behind the engine's output, in device samples."""
        return self.silence_samples - self.skipped_samples - self.overrun_samples

    def callback(self, indata, outdata, frames, time_info, status) -> None:
        """sounddevice callback: ``indata (frames, 1)`` float32 in, ``outdata (frames, 2)`` out.

        Only buffer work: no allocation, no waiting, no model. ``time_info`` is unused;
        ``status`` (sounddevice CallbackFlags or None) is counted when it has any flag.
        """
        if status:
            self.device_status += 1
        self.callbacks += 1
        self.frames_total += frames
        pushed = self.input.push(indata[:frames, 0])
        if pushed < frames:
            self.overruns += 1
            self.overrun_samples += frames - pushed
        self.samples_in += pushed
        self.data_ready.set()

        if self._hold is None:  # first callback: pre-roll one block unless told otherwise
            self._hold = frames if self.preroll_samples is None else int(self.preroll_samples)
            self.silence_samples += self._hold
        n_sil = min(self._hold, frames)
        if n_sil:
            outdata[:n_sil] = 0
            self._hold -= n_sil
        need = frames - n_sil
        if need:
            if self._skip_debt:
                self._skip_debt -= self.output.skip(self._skip_debt)
            if self.output.available >= need:
                self.output.pop_into(outdata[n_sil:], need)
            else:
                # Underrun: a whole (remaining) block of silence, nothing consumed, so the
                # jitter buffer is `need` samples deeper from now on.
                outdata[n_sil:frames] = 0
                self.underruns += 1
                self.underrun_samples += need
                self.silence_samples += need
                over = self.jitter_samples - self.max_jitter_samples
                if over > 0:  # at the cap: discard as much late audio to hold the latency
                    self._skip_debt += over
                    self.skipped_samples += over
        if self.record is not None:
            written = self.record.push(outdata[:frames])
            self.record_lost += frames - written


class FrameSlot:
    """The newest camera frame, handed from the capture thread to the worker.

    ``put`` overwrites an untaken frame (counted in ``overwritten``): only the newest picture
    matters. ``latest`` is what the preview shows.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._frame = None
        self._new = False
        self.put_count = 0
        self.overwritten = 0

    def put(self, frame: np.ndarray) -> None:
        with self._lock:
            if self._new:
                self.overwritten += 1
            self._frame, self._new = frame, True
            self.put_count += 1

    def take_new(self):
        """The frame if it arrived since the last call, else None."""
        with self._lock:
            if not self._new:
                return None
            self._new = False
            return self._frame

    @property
    def latest(self):
        with self._lock:
            return self._frame


class SpatializerWorker(threading.Thread):
    """Runs the Spatializer on everything in the input ring and fills the output ring.

    Args:
        spatializer: a :class:`streambin.Spatializer` (driven from this thread only).
        bridge: the :class:`AudioBridge` whose rings it serves.
        frames: the :class:`FrameSlot` the newest camera frame is taken from.
        meter: optional object with ``push((2, n) float32)`` (the preview's ILD meter).
        deterministic: wait for the visual network after every new frame before processing
            the audio (file mode ``--no-pace``: makes the output reproducible).
        max_chunk: most samples processed per Spatializer call.
    """

    def __init__(self, spatializer, bridge: AudioBridge, frames: FrameSlot, meter=None,
                 deterministic: bool = False, max_chunk: int = 8192):
        super().__init__(name="streambin-demo-worker", daemon=True)
        self.sp, self.bridge, self.frames, self.meter = spatializer, bridge, frames, meter
        self.deterministic = deterministic
        self._in = np.zeros((max_chunk, 1), np.float32)
        self._stop_event = threading.Event()
        self.progress = threading.Condition()
        self.processed = 0        # input samples processed
        self.output_waits = 0     # times the output ring was full (the consumer is not reading)
        self.error = None

    def stop(self) -> None:
        self._stop_event.set()
        self.bridge.data_ready.set()

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # reported by the main thread; the stream plays silence
            self.error = exc
        finally:
            with self.progress:
                self.progress.notify_all()

    def _loop(self) -> None:
        ring, sp = self.bridge.input, self.sp
        while not self._stop_event.is_set():
            self.bridge.data_ready.wait(0.05)
            self.bridge.data_ready.clear()
            while ring.available and not self._stop_event.is_set():
                n = ring.pop_into(self._in, len(self._in))
                frame = self.frames.take_new()
                if frame is not None and self.deterministic:
                    sp.process(self._in[:0, 0], frame)  # hand the frame over, then wait for its feature
                    sp.visual.wait_idle()
                    frame = None
                y = sp.process(self._in[:n, 0], frame)
                if self.meter is not None:
                    self.meter.push(y)
                self._push_output(y.T)
                with self.progress:
                    self.processed += n
                    self.progress.notify_all()

    def _push_output(self, y: np.ndarray) -> None:
        done = self.bridge.output.push(y)
        while done < len(y) and not self._stop_event.is_set():
            self.output_waits += 1
            time.sleep(0.002)
            done += self.bridge.output.push(y[done:])

    def wait_processed(self, samples: int, timeout: float = 30.0) -> bool:
        """Block until ``samples`` input samples have been processed (or the worker failed)."""
        with self.progress:
            return self.progress.wait_for(lambda: self.processed >= samples or self.error is not None
                                          or not self.is_alive(), timeout)
