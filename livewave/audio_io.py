"""Audio output through PortAudio (sounddevice): devices, the stream, the render placement policy.

Three placements, one engine:
- ``callback``: the sounddevice callback calls ``Engine.render`` straight into PortAudio's
  buffer (lowest latency; for cheap generators).
- ``thread``: a render thread keeps ``ahead`` blocks in a preallocated ring; a Python
  callback only copies one block out (robust for heavy or GPU generators; costs ``ahead``
  blocks).
- ``rtmixer``: as ``thread``, but the callback is rtmixer's, written in C: it copies from a
  PortAudio ring buffer and never takes the GIL, so no Python thread (GC, a busy GUI
  thread, the status loop) can make the audio thread wait.

Audio input (``input_channels``, for models driven by audio in) works in every placement: the
callback placement opens a duplex stream and renders each block with its own input; the ring
placements keep an input ring beside the output ring (a duplex sounddevice stream's callback,
or rtmixer's C recorder), and the render thread takes one block of input per block it renders,
so input reaches the output ``lead`` blocks later than in the callback placement. Input the
render side finds missing is silence (counted: ``input_underruns``); input piling up beyond
``lead + 2`` blocks (the render thread fell behind) is dropped oldest first (``input_dropped``)
so the delay cannot grow.

The lead (ring placements): the render thread keeps ``lead`` blocks rendered ahead, at least
``ahead``. A model whose worst blocks take longer than that lead can absorb (a vocoder computes
a whole frame of several ms in one 64-sample block) gets a longer one, ``lead_for`` its
render cost measured at load (``load_screen``), up to ``MAX_LEAD_S``: the latency grows (and is
reported) instead of the ring running dry at every frame. ``set_lead`` changes it while playing:
the render thread renders further ahead, or waits for the ring to drain; nothing is skipped.

Sample format: float32 (the default; PortAudio converts for devices that need it), or
``int16`` for an output that should be handed 16-bit integers: the engine still renders float32,
and the block is converted at the last step (``post_chain.to_int16``: clipped to +-1, rounded,
no wrap-around). Output only: a duplex int16 stream is refused, and rtmixer (float32 only) is refused with it.

Live MIDI is scheduled a fixed delay after its arrival on the output clock (one block, plus
the ring in thread mode), so events land on their exact sample instead of jittering to block
boundaries. The latency report adds what PortAudio measures for the device, that delay and
the engine's own look-ahead.

Threading: the callback runs on PortAudio's (here JACK's) real-time thread and touches only
preallocated buffers and plain counters. ``open``/``start``/``stop`` run on the caller's thread.
"""
from __future__ import annotations

import ctypes
import math
import os
import threading
import time

import numpy as np

from .config import PLACEMENTS, ConfigError
from .engine import Engine
from .jack_midi_client import frame_diff
from .post_chain import to_int16

SAMPLE_FORMATS = ("float32", "int16")

RENDER_NICE = -10     # the render thread's nice value where permitted (see AudioOutput._boost)
MAX_LEAD_S = 0.025    # the longest lead a model's cost may ask for (``lead_for``), seconds
LEAD_SAFETY = 2.5     # live blocks cost about twice what they cost at load (cold caches; RESULTS); 2.0 fell short
_JACK_NAME = ctypes.create_string_buffer(b"livewave")   # PortAudio keeps the pointer: keep it alive
_sd = None


class AudioDeviceError(RuntimeError):
    """An audio device could not be found or opened with the requested settings."""


def sounddevice():
    """Import sounddevice once, naming our JACK client 'livewave' (PaJack_SetClientName must
    run before PortAudio initialises, so re-initialise after setting it)."""
    global _sd
    if _sd is None:
        try:
            import sounddevice as sd
        except OSError as exc:
            raise AudioDeviceError(f"PortAudio is not available ({exc}); install libportaudio2") from exc
        try:
            fn = ctypes.CDLL(sd._libname).PaJack_SetClientName
            fn.argtypes = [ctypes.c_char_p]
            fn(_JACK_NAME)
            _restart_portaudio(sd)
        except (OSError, AttributeError):
            pass   # PortAudio built without JACK: nothing to name
        _sd = sd
    return _sd


def _restart_portaudio(sd) -> None:
    try:
        sd._terminate()
    except sd.PortAudioError:
        pass      # PortAudio was terminated already (re-opened after a close): just initialise
    sd._initialize()


def rescan_devices() -> None:
    """Start PortAudio again: it lists devices (and finds a JACK server) only when it starts.
    Only with no stream open (a stream whose device is gone cannot be closed)."""
    _restart_portaudio(sounddevice())


def list_output_devices() -> list[dict]:
    sd = sounddevice()
    apis = sd.query_hostapis()
    out = []
    for i, d in enumerate(sd.query_devices()):
        out.append({"index": i, "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
                    "inputs": d["max_input_channels"], "outputs": d["max_output_channels"],
                    "default_rate": d["default_samplerate"]})
    return out


def resolve_output_device(spec) -> int:
    """None = default output; an int or digit string = index; else a case-insensitive substring
    of '<host API> <name>'. Raises AudioDeviceError naming what exists."""
    sd = sounddevice()
    devs = [d for d in list_output_devices() if d["outputs"] > 0]
    listing = "; ".join(f"{d['index']}: {d['name']} ({d['hostapi']})" for d in devs) or "none"
    if not devs:
        raise AudioDeviceError("no audio output device found (is a sound card or a JACK server there?)")
    if spec is None or spec == "":
        idx = sd.default.device[1]
        if idx is None or idx < 0:
            return devs[0]["index"]
        return int(idx)
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        idx = int(spec)
        if any(d["index"] == idx for d in devs):
            return idx
        raise AudioDeviceError(f"no audio output device number {idx}; outputs: {listing}")
    key = str(spec).lower()
    hits = [d for d in devs if key in f"{d['hostapi']} {d['name']}".lower()]
    if not hits:
        raise AudioDeviceError(f"no audio output device matches {spec!r}; outputs: {listing}")
    return hits[0]["index"]


LOAD_BINS = 201


class AudioStats:
    def __init__(self):
        self.callbacks = 0
        self.xruns = 0                # PortAudio reported an output underflow
        self.ring_underruns = 0       # thread mode: the render thread fell behind
        self.load = 0.0               # render time / block time, smoothed
        self.load_peak = 0.0
        self.dac_delay = 0.0          # seconds, measured per callback by PortAudio
        self.bad_sizes = 0            # callbacks larger than the prepared maximum
        self.render_nice = None       # the render thread's nice value if it was raised, else None
        self.input_underruns = 0      # ring placements: a block rendered with no input captured yet
        self.input_dropped = 0        # ring placements: input blocks dropped to keep the delay bounded
        self.render_hangs = 0         # ring placements: render threads left stuck in a model (adopt_engine)
        # render time per block in % of the block's duration: bins 0..199, the last holds 200% and more
        self.load_hist = np.zeros(LOAD_BINS, np.int64)
        # the same in the rendering thread's own CPU time (time.thread_time): the wall time above
        # less the time the thread did not run (preempted by the OS, or a VM's CPU taken by its host)
        self.cpu_hist = np.zeros(LOAD_BINS, np.int64)
        self.cpu_peak = 0.0

    def load_percentile(self, q: float) -> float:
        """The q-th percentile (0..100) of the render time per block, % of the block (bin resolution 1%)."""
        return _percentile(self.load_hist, q)

    def cpu_percentile(self, q: float) -> float:
        """The q-th percentile of the render side's CPU time per block, % of the block."""
        return _percentile(self.cpu_hist, q)


def _percentile(h: np.ndarray, q: float) -> float:
    """The q-th percentile (0..100) of a histogram of 1% bins (``AudioStats.load_hist``)."""
    total = int(h.sum())
    if not total:
        return 0.0
    need = max(1, math.ceil(q / 100.0 * total - 1e-9))     # blocks at or under the answer
    k = int(np.searchsorted(np.cumsum(h), need))
    return float(min(k, LOAD_BINS - 1) + 1)


def lead_for(block_cost_s: float, block: int, sample_rate: int, ahead: int) -> int:
    """Blocks to keep rendered ahead so that a block costing ``block_cost_s`` (of the render
    thread's CPU time, at load) cannot drain the ring: ``LEAD_SAFETY`` times that, plus a block
    being played and one of margin; never under ``ahead``, never over ``MAX_LEAD_S`` of audio."""
    need = math.ceil(LEAD_SAFETY * max(0.0, block_cost_s) * sample_rate / block) + 2
    return int(min(max_lead(block, sample_rate, ahead), max(ahead, need)))


def max_lead(block: int, sample_rate: int, ahead: int) -> int:
    """The longest lead, in blocks: ``MAX_LEAD_S`` of audio, or ``ahead`` where that is more."""
    return max(ahead, int(MAX_LEAD_S * sample_rate // block))


class AudioOutput:
    def __init__(self, engine: Engine, device=None, sample_rate: int = 48000, block: int = 64,
                 channels: int = 2, policy: str = "callback", ahead: int = 2, input_channels: int = 0,
                 sample_format: str = "float32"):
        if policy not in PLACEMENTS:
            raise ConfigError(f"render placement {policy!r}: use one of {', '.join(PLACEMENTS)}")
        if sample_format not in SAMPLE_FORMATS:
            raise ConfigError(f"sample format {sample_format!r}: use one of {', '.join(SAMPLE_FORMATS)}")
        if sample_format != "float32" and input_channels:
            raise ConfigError(f"a {sample_format} device is supported for output only; audio input needs float32")
        if sample_format != "float32" and policy == "rtmixer":
            raise ConfigError(f"rtmixer's C callback plays float32 only (PortAudio converts for the device); "
                              f"for {sample_format} use --placement callback or thread")
        self.sample_format = sample_format
        self.input_channels = int(input_channels)
        self.engine = engine
        self.device_spec = device
        self.sample_rate = int(sample_rate)
        self.block = int(block)
        self.channels = int(channels)
        self.policy = policy
        self.ahead = max(1, int(ahead)) if policy != "callback" else 0
        self.lead = self.ahead        # blocks kept rendered ahead now (``set_lead``), at least ``ahead``
        self.max_lead = max_lead(self.block, self.sample_rate, self.ahead) if self.ahead else 0
        self.stats = AudioStats()
        self.stream = None
        self._thread = None
        self._epoch = 0           # the render thread's generation: one stuck in a model is left behind (adopt_engine)
        self._running = False
        self.device_index = None
        self.device_name = ""
        self._declared = 0.0      # PortAudio's declared output latency, kept after the stream closes
        self.pre_render = None    # called on the render side before each block (MIDI drain)
        # JACK's cycle clock (the first frame of the current cycle), see ``set_cycle_clock``
        self.cycle_clock = None
        self._cycle = -1
        self._cycle_sub = 0
        self._period = 0              # JACK's period (rtmixer's frame anchor)
        self._k_hist = np.zeros(16, np.int64)
        self._k_i = 0
        # Called on the render side after each block with the block just rendered
        # (float32 [frames, channels], valid only during the call: meters, scope). Same rules as the
        # callback: no allocation, no locks, no logging or I/O, no exceptions; copy into preallocated
        # memory (a nogil Numba kernel) and publish indices after the data.
        self.post_render = None

    # -- set-up --------------------------------------------------------------------
    def open(self) -> AudioOutput:
        sd = sounddevice()
        idx = resolve_output_device(self.device_spec)
        info = sd.query_devices(idx)
        self.device_index = idx
        self.device_name = f"{info['name']} ({sd.query_hostapis(info['hostapi'])['name']})"
        ch = min(self.channels, int(info["max_output_channels"]))
        self.channels = ch
        n_in = self.input_channels
        if n_in > int(info["max_input_channels"]):
            raise AudioDeviceError(f"{self.device_name} has {info['max_input_channels']} input channels; "
                                   f"{n_in} were asked for")
        try:
            sd.check_output_settings(device=idx, samplerate=self.sample_rate, channels=ch, dtype=self.sample_format)
        except Exception as exc:
            raise AudioDeviceError(
                f"{self.device_name} refuses {self.sample_rate} Hz / {ch} channels: {exc}. "
                f"Its default rate is {info['default_samplerate']:.0f} Hz") from None
        if self.engine.config.sample_rate != self.sample_rate or not self.engine.prepared \
                or self.engine.config.max_block < self.block \
                or self.engine.config.input_channels != n_in or self.engine.config.channels != ch:
            from dataclasses import replace
            self.engine.config = replace(self.engine.config, channels=ch, input_channels=n_in)
            self.engine.prepare(self.sample_rate, max(self.block, 1024))
        cb = self._callback_direct if self.policy == "callback" else self._callback_ring
        # int16: the engine renders here and each block is converted into PortAudio's buffer
        self._int16 = self.sample_format == "int16"
        # the callback placement renders here and converts into PortAudio's buffer (int16 only)
        self._f32 = np.zeros((max(self.block, 4096), ch), np.float32) \
            if self._int16 and self.policy == "callback" else None
        if self._int16:
            to_int16(np.zeros((1, ch), np.float32), np.zeros((1, ch), np.int16), 1)   # NB: compiled here
        self._in_tmp = np.zeros((self.block, max(1, n_in)), np.float32) if n_in else None
        self._input_seen = False      # input arrived once: from then on a short ring is an underrun
        if self.policy == "thread":
            size = 1
            while size < 2 * (self.max_lead + 1) * self.block:
                size <<= 1
            self._ring = np.zeros((size, ch), np.float32)
            self._ring_mask = size - 1
            self._w = 0
            self._r = 0
            self._tmp = np.zeros((self.block, ch), np.float32)
            if n_in:
                size = 1
                while size < 4 * (self.max_lead + 3) * self.block:
                    size <<= 1
                self._in_ring = np.zeros((size, n_in), np.float32)
                self._iw = 0
                self._ir = 0
                cb = self._callback_ring_duplex
        if self.policy == "rtmixer":
            self._open_rtmixer(idx, ch, n_in)
        else:
            try:
                if n_in:
                    self.stream = sd.Stream(device=(idx, idx), samplerate=self.sample_rate, blocksize=self.block,
                                            channels=(n_in, ch), dtype="float32", latency="low",
                                            callback=self._callback_duplex if self.policy == "callback" else cb)
                else:
                    self.stream = sd.OutputStream(device=idx, samplerate=self.sample_rate, blocksize=self.block,
                                                  channels=ch, dtype=self.sample_format, latency="low", callback=cb)
            except Exception as exc:
                raise AudioDeviceError(f"could not open {self.device_name} at {self.sample_rate} Hz, "
                                       f"block {self.block}: {exc}") from None
        self._set_midi_delay()
        return self

    def _set_midi_delay(self) -> None:
        """The one place the MIDI delay is set: a message sounds this many samples after its time
        on the output clock (one block, plus the ring in the thread placements, plus the rest of
        JACK's period where a block is shorter than it; see ``set_cycle_clock``)."""
        extra = self._period - self.block if self.cycle_clock is not None else 0
        self.engine.midi_delay = (self.lead + 1) * self.block + extra

    def set_lead(self, blocks: int) -> int:
        """Keep ``blocks`` rendered ahead from now on (clamped to ``ahead``..``max_lead``; the
        callback placement has no ring and ignores it); the MIDI delay and the reported latency
        follow. Any thread; returns the lead set."""
        if not self.ahead:
            return 0
        self.lead = int(min(self.max_lead, max(self.ahead, int(blocks))))
        self._set_midi_delay()
        return self.lead

    def set_lead_for(self, gen) -> str | None:
        """``set_lead`` as ``gen``'s render cost measured at load asks (``load_screen``'s
        ``block_cost_s``; none, as for the built-in instrument: ``ahead``). Returns a line for
        the performer when the lead grew beyond ``ahead``, else None."""
        cost = float(((gen.info.card or {}).get("load_screen") or {}).get("block_cost_s") or 0.0)
        lead = self.set_lead(lead_for(cost, self.block, self.sample_rate, self.ahead))
        if lead <= self.ahead:
            return None
        more = (lead - self.ahead) * self.block / self.sample_rate * 1000.0
        return (f"{gen.info.name} takes up to {cost * 1000:.1f} ms for a {self.block}-sample block (measured at "
                f"load): the engine renders {lead} blocks ahead instead of {self.ahead}, {more:.1f} ms more latency")

    def set_cycle_clock(self, clock, period: int) -> bool:
        """Pin the output to JACK frames (``clock()``: the first frame of JACK's current cycle)
        where that is exact: a JACK device and a block that divides the period, so PortAudio calls
        back in step with JACK's cycles. Call after ``open``. A message of JACK's cycle is only
        certain to be seen in the next one (JACK may run the MIDI client after the audio client),
        so with several blocks per period the MIDI delay grows to the whole period."""
        if "JACK" not in self.device_name or self.block > period or period % self.block:
            return False
        self._period = int(period)
        self.cycle_clock = clock
        self._set_midi_delay()
        return True

    def _open_rtmixer(self, idx: int, ch: int, n_in: int = 0) -> None:
        try:
            import rtmixer
        except ImportError as exc:
            raise AudioDeviceError(f"--placement rtmixer needs the rtmixer package ({exc})") from None
        size = 1
        while size < 4 * (self.max_lead + 1) * self.block:
            size <<= 1
        self._rb = rtmixer.RingBuffer(4 * ch, size)          # NB: rtmixer plays float32 only
        self._tmp = np.zeros((self.block, ch), np.float32)
        self._w = 0
        self._seen = 0
        self._rb_in = rtmixer.RingBuffer(4 * n_in, 4 * size) if n_in else None
        try:
            if n_in:
                self.stream = rtmixer.MixerAndRecorder(device=(idx, idx), samplerate=self.sample_rate,
                                                       blocksize=self.block, channels=(n_in, ch), latency="low")
            else:
                self.stream = rtmixer.Mixer(device=idx, samplerate=self.sample_rate, blocksize=self.block,
                                            channels=ch, latency="low")
        except Exception as exc:
            raise AudioDeviceError(f"could not open {self.device_name} at {self.sample_rate} Hz, "
                                   f"block {self.block}: {exc}") from None

    def start(self) -> None:
        if self.stream is None:
            self.open()
        self._running = True
        if self.policy == "thread":
            self._prefill()
            self._thread = threading.Thread(target=self._render_loop, name="livewave-render", daemon=True)
            self._thread.start()
        elif self.policy == "rtmixer":
            while self._w < self.lead * self.block:
                self._render_to_rb()
            self._action = self.stream.play_ringbuffer(self._rb)
            if self._rb_in is not None:
                self._rec_action = self.stream.record_ringbuffer(self._rb_in)
            self._thread = threading.Thread(target=self._rtmixer_loop, name="livewave-render", daemon=True)
            self._thread.start()
        self.stream.start()

    def adopt_engine(self, engine: Engine) -> None:
        """Control side, when the render thread is stuck in a model (``ModelWatchdog`` said
        "hung"): nothing can stop a thread inside a model, so it is left behind, and a new
        render thread plays ``engine`` (prepared with this engine's config: the fallback) into
        the same ring from the sample the stuck block would have filled. The stream never
        stopped: its callback played the ring out, then silence (counted as underruns). The
        stuck thread, if its block ever ends, writes nothing more (``_epoch``; the window
        between its check and its write is the few microseconds after a block that took
        ``HANG_AFTER`` or more). Ring placements only: under ``callback`` the stuck thread is
        the device's own."""
        if self.policy == "callback":
            raise RuntimeError("under --placement callback the model renders on the device's own thread: "
                               "a hung model stops the stream")
        if engine.config.sample_rate != self.sample_rate or not engine.prepared \
                or engine.config.max_block < self.block or engine.config.channels != self.channels:
            raise ValueError("adopt_engine: the engine must be prepared for this stream's rate, block and channels")
        self._epoch += 1
        engine.sample_time = self._w
        self.engine = engine
        self._set_midi_delay()
        self.stats.render_hangs += 1
        if self._running:
            loop = self._render_loop if self.policy == "thread" else self._rtmixer_loop
            self._thread = threading.Thread(target=loop, args=(self._epoch,), name="livewave-render", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self.stream is not None:
            try:
                self.stream.stop()
                self.stream.close()
            finally:
                self.stream = None

    @property
    def running(self) -> bool:
        return self._running and self.stream is not None

    def device_blocks(self) -> int:
        """Blocks the device has taken so far: the Python callback's count, or under rtmixer
        its C callback's own (a plain integer read without its lock: a stale read is one
        behind). What ``device_watch`` watches; a hung render thread does not stop it."""
        if self.policy == "rtmixer":
            stream = self.stream
            return int(stream._state.stats.blocks) if stream is not None else 0
        return self.stats.callbacks

    def abandon(self) -> None:
        """A lost device's stream is left as it is: PortAudio cannot stop a stream whose
        callbacks stopped (``Pa_StopStream`` waits for one), so the process that opened it ends
        without closing it (``device_watch``)."""
        self._running = False
        self._lost_stream, self.stream = self.stream, None     # NB: kept: collecting it would close it

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- measurements ----------------------------------------------------------------
    @property
    def device_latency(self) -> float:
        """Seconds from a callback to the DAC: PortAudio's measurement, else its declared latency."""
        if self.stats.dac_delay > 0:
            return self.stats.dac_delay
        if self.stream is not None:
            lat = self.stream.latency
            self._declared = float(lat[1] if isinstance(lat, (tuple, list)) else lat)   # duplex: (in, out)
            if self.policy == "rtmixer":
                # no time info reaches Python from the C callback; the DAC time PortAudio gives a
                # Python callback is its declared latency plus the block being played (measured
                # on JACK: 256 = 128 + 128 frames at a 128-frame period)
                self._declared += self.block / self.sample_rate
        return self._declared

    @property
    def latency(self) -> float:
        """MIDI event to sound, seconds: device + scheduling delay + engine look-ahead + how late
        recent MIDI messages reached the render side beyond that delay (measured by the MIDI
        drain: a message drained a block after its arrival is late by up to a block)."""
        sr = self.sample_rate
        eng = self.engine
        return self.device_latency + (eng.midi_delay + eng.midi_late + eng.latency_samples) / sr

    # -- real-time side ----------------------------------------------------------------
    def _account(self, t_start: float, c_start: float, frames: int, status) -> None:
        st = self.stats
        st.callbacks += 1
        if status.output_underflow:
            st.xruns += 1
        self._note_load(t_start, c_start, frames)

    def _note_load(self, t_start: float, c_start: float, frames: int) -> None:
        """Wall time (``t_start``: perf_counter) and the thread's CPU time (``c_start``:
        thread_time) of one block, into the stats' histograms."""
        st = self.stats
        per = self.sample_rate / max(1, frames)
        load = (time.perf_counter() - t_start) * per
        cpu = (time.thread_time() - c_start) * per
        st.load += (load - st.load) * 0.02
        if load > st.load_peak:
            st.load_peak = load
        if cpu > st.cpu_peak:
            st.cpu_peak = cpu
        st.load_hist[min(LOAD_BINS - 1, int(load * 100.0))] += 1
        st.cpu_hist[min(LOAD_BINS - 1, max(0, int(cpu * 100.0)))] += 1

    def _dac(self, time_info) -> None:
        d = time_info.outputBufferDacTime - time_info.currentTime
        if 0.0 < d < 1.0:
            self.stats.dac_delay = d

    def _frame_anchor(self, frames: int, sample: int) -> None:
        """Pin ``sample`` to the JACK frame this callback's block starts at: the cycle's first
        frame plus the blocks already played in this cycle (PortAudio calls a block that divides
        the period several times per cycle, in order)."""
        f = self.cycle_clock()
        if f != self._cycle:
            self._cycle = f
            self._cycle_sub = 0
        self.engine.frame_anchor = ((f + self._cycle_sub) & 0xFFFFFFFF, sample)
        self._cycle_sub += frames

    def _callback_direct(self, outdata, frames, time_info, status, indata=None):
        t_start = time.perf_counter()
        c_start = time.thread_time()
        eng = self.engine
        eng.clock_anchor = (t_start, eng.sample_time)
        if self.cycle_clock is not None:
            self._frame_anchor(frames, eng.sample_time)
        self._dac(time_info)
        if self.pre_render is not None:
            self.pre_render()
        f32 = self._f32
        if f32 is None:
            eng.render(outdata, indata)
            if self.post_render is not None:
                self.post_render(outdata)
        else:
            block = f32[:frames]
            eng.render(block, indata)
            if self.post_render is not None:
                self.post_render(block)
            to_int16(block, outdata, frames)
        self._account(t_start, c_start, frames, status)

    def _callback_duplex(self, indata, outdata, frames, time_info, status):
        self._callback_direct(outdata, frames, time_info, status, indata)

    def _callback_ring(self, outdata, frames, time_info, status):
        t_start = time.perf_counter()
        self._dac(time_info)
        r, w = self._r, self._w
        avail = w - r
        n = min(avail, frames)
        m = self._ring_mask
        i = r & m
        first = min(n, m + 1 - i)
        if not self._int16:
            outdata[:first] = self._ring[i:i + first]
            if n > first:
                outdata[first:n] = self._ring[:n - first]
        else:
            to_int16(self._ring[i:i + first], outdata, first)
            if n > first:
                to_int16(self._ring[:n - first], outdata[first:n], n - first)
        if n < frames:
            outdata[n:] = 0
            self.stats.ring_underruns += 1
        self._r = r + n
        self.engine.clock_anchor = (t_start, self._r)
        if self.cycle_clock is not None:
            self._frame_anchor(frames, self._r)
        self.stats.callbacks += 1
        if status.output_underflow:
            self.stats.xruns += 1

    def _callback_ring_duplex(self, indata, outdata, frames, time_info, status):
        """The thread placement with input: the block captured goes into the input ring (published
        after the copy), then the output block comes out of the output ring."""
        iw, ring = self._iw, self._in_ring
        size = ring.shape[0]
        if iw + frames - self._ir <= size:
            i = iw & (size - 1)
            first = min(frames, size - i)
            ring[i:i + first] = indata[:first]
            if frames > first:
                ring[:frames - first] = indata[first:]
            self._iw = iw + frames
        else:
            self.stats.input_dropped += 1          # the render thread is far behind: drop this block
        self._callback_ring(outdata, frames, time_info, status)

    def _take_input_ring(self) -> None:
        """One block of captured input into ``_in_tmp`` (render side, thread placement)."""
        tmp, ring, b = self._in_tmp, self._in_ring, self.block
        size = ring.shape[0]
        drop = self._input_check(self._iw - self._ir)
        if drop < 0:
            return
        self._ir += drop
        i = self._ir & (size - 1)
        first = min(b, size - i)
        tmp[:first] = ring[i:i + first]
        if b > first:
            tmp[first:] = ring[:b - first]
        self._ir += b

    def _take_input_rb(self) -> None:
        """One block of captured input into ``_in_tmp`` (render side, rtmixer placement)."""
        rb = self._rb_in
        drop = self._input_check(rb.read_available)
        if drop < 0:
            return
        if drop:
            rb.advance_read_index(drop)
        rb.readinto(self._in_tmp)

    def _input_check(self, avail: int) -> int:
        """How many captured samples to drop before reading one block (all but the newest block
        when more than ``lead + 2`` wait: the delay stays bounded), or -1 when no whole block is
        there (the block is silence, counted once input has started)."""
        b = self.block
        if avail > (self.lead + 2) * b:
            self.stats.input_dropped += 1
            return avail - b
        if avail < b:
            self._in_tmp[:] = 0.0
            if self._input_seen:
                self.stats.input_underruns += 1
            return -1
        self._input_seen = True
        return 0

    def _render_one(self, epoch: int = 0) -> None:
        t_start = time.perf_counter()
        c_start = time.thread_time()
        tmp = self._tmp
        if self.pre_render is not None:
            self.pre_render()
        if self._in_tmp is not None:
            self._take_input_ring()
        self.engine.render(tmp, self._in_tmp)
        if epoch != self._epoch:
            return          # this thread was left behind while its block hung (adopt_engine)
        if self.post_render is not None:
            self.post_render(tmp)
        m = self._ring_mask
        i = self._w & m
        b = tmp.shape[0]
        first = min(b, m + 1 - i)
        self._ring[i:i + first] = tmp[:first]
        if b > first:
            self._ring[:b - first] = tmp[first:]
        self._w += b   # NB: publish after the copy; the callback reads _w once
        self._note_load(t_start, c_start, b)

    def _prefill(self) -> None:
        while self._w - self._r < self.lead * self.block:
            self._render_one()

    def _boost(self) -> None:
        """The render thread (thread and rtmixer placements) asks for a higher CPU priority than
        the rest of the machine (the GUI, a browser) where it is permitted (root, CAP_SYS_NICE,
        or an RLIMIT_NICE as audio groups set up): a nice value, not a real-time class, so a
        thread it waits on for the GIL is never starved (SCHED_FIFO was tried: worse)."""
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RENDER_NICE)
            self.stats.render_nice = RENDER_NICE
        except (OSError, AttributeError):
            self.stats.render_nice = None

    def _render_loop(self, epoch: int = 0) -> None:
        self._boost()
        nap = self.block / self.sample_rate / 4.0
        while self._running and epoch == self._epoch:
            while self._running and epoch == self._epoch and self._w - self._r < self.lead * self.block:
                self._render_one(epoch)
            time.sleep(nap)

    # -- rtmixer placement: the C callback reads the ring; this thread keeps it filled ----------
    def _render_to_rb(self, epoch: int = 0) -> None:
        t_start = time.perf_counter()
        c_start = time.thread_time()
        if self.pre_render is not None:
            self.pre_render()
        if self._in_tmp is not None:
            self._take_input_rb()
        self.engine.render(self._tmp, self._in_tmp)
        if epoch != self._epoch:
            return          # this thread was left behind while its block hung (adopt_engine)
        if self.post_render is not None:
            self.post_render(self._tmp)
        self._rb.write(self._tmp)     # NB: never short: the loop only renders when a block fits
        self._w += self._tmp.shape[0]
        self._note_load(t_start, c_start, self._tmp.shape[0])

    def _rtmixer_frame_anchor(self, consumed: int) -> None:
        """Pin the output to JACK frames without a Python callback. The C callbacks of cycle C
        take the samples that play at frames C .. C+P (P: JACK's period), so sample s plays at
        frame s + K for a constant K. Seen from this thread during cycle C, ``consumed`` is
        C - K + P once that cycle's callbacks ran and C - K before: ``C + P - consumed`` is K or
        K + P. The smallest of the last 16 looks is K; an underrun (the ring ran dry, the cycles
        went on) raises K, which the window forgets within 16 looks."""
        c = self.cycle_clock()
        est = frame_diff(c + self._period, consumed)
        hist = self._k_hist
        hist[self._k_i & 15] = est
        self._k_i += 1
        k = int(hist.min()) if self._k_i >= 16 else int(hist[:self._k_i].min())
        self.engine.frame_anchor = ((consumed + k) & 0xFFFFFFFF, consumed)

    def _rtmixer_loop(self, epoch: int = 0) -> None:
        self._boost()
        nap = self.block / self.sample_rate / 4.0
        rb, st, eng, stream = self._rb, self.stats, self.engine, self.stream
        stall = 2.0 * self.block / self.sample_rate     # no block taken for this long: look why
        self._seen_t = time.perf_counter()
        while self._running and epoch == self._epoch:
            queued = rb.read_available
            consumed = self._w - queued
            if consumed != self._seen:
                # the C callback took blocks since the last look: the first sample it has not
                # taken plays next (anchor jitter: at most ``nap``)
                st.callbacks += max(1, (consumed - self._seen) // self.block)
                self._seen = consumed
                self._seen_t = time.perf_counter()
                eng.clock_anchor = (self._seen_t, consumed)
                if self.cycle_clock is not None:
                    self._rtmixer_frame_anchor(consumed)
                # NB: rtmixer's own counter of PortAudio's underflow flags, read without its
                # fetch action (a plain integer field; a stale read is one count behind)
                st.xruns = int(stream._state.stats.output_underflows)
            while self._running and epoch == self._epoch and queued < self.lead * self.block:
                self._render_to_rb(epoch)
                queued += self.block
            if time.perf_counter() - self._seen_t > stall and self._action not in stream.actions:
                # rtmixer ends a ring-buffer action when it finds the ring short (an underrun of
                # this thread): the gap played as silence; play on from the refilled ring
                st.ring_underruns += 1
                self._action = stream.play_ringbuffer(self._rb)
            if self._rb_in is not None and self._rec_action not in stream.actions:
                # rtmixer ends a recording action when the ring is full: record on
                st.input_dropped += 1
                self._rec_action = stream.record_ringbuffer(self._rb_in)
            time.sleep(nap)
