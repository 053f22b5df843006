"""The engine: the one place sound is made. Live and offline both call ``Engine.render``.

Per block: events due inside the block are applied at their exact sample (the block is cut
into segments at event times); each segment runs the envelopes, the generator and the reverb
(``reverb``; off until its send is raised, by ``set_reverb`` or CC 91, which acts at its own
sample); the post chain (gain, DC blocker, limiter) runs over the whole block. The generator
renders a mono mix; on a device of two channels or more the engine is stereo: that mix in the
middle of both channels, the reverb's two uncorrelated tails around it, a linked limiter, and
the output channels take left, right, left, right... (one channel: the mono chain). The pan
(``stereo_pan``: CC 10, ``set_pan``) moves that dry mix between the two; the reverb stays around
the centre.

Threading model:
- render side (the audio callback or the render thread; exactly one at a time): ``render``.
- producers (MIDI threads, GUI, offline feeder): ``push_midi`` / ``push_event``; they go
  through the lock-free-for-the-consumer ``EventQueue``.
- control side (GUI, CLI): ``set_control``, ``set_master_gain_db``, ``set_reverb``, ``panic``,
  ``release_all``, ``swap_generator``. Each is a single store of a float, a flag or a whole
  prepared object (NB: atomic under the GIL); the render side picks it up at the next block.
Nothing the render side calls allocates arrays, locks, logs or does I/O.
"""
from __future__ import annotations

import math
import time
from collections import deque

import numpy as np

from .channel_state import ChannelState
from .config import (
    EngineConfig,
    clamp_room,
    clamp_transpose,
    clamp_tuning,
    clamp_velocity_curve,
    pan_from_cc,
    pan_to_cc,
    pan_value,
    send_value,
)
from .envelope import KILL, KILL_SECONDS, envelope_block, envelope_coefficients
from .event_queue import NO_EVENT, EventQueue
from .generator import RESTART_FRESH, Conditioning, Generator
from .midi_learn import MASTER, ControlBindings
from .post_chain import PostChain, crossfade, fade_out, guard
from .reverb import Reverb
from .reverb import warm_up as warm_up_reverb
from .stereo_pan import glide_coefficient, pan_dry, pan_gains
from .stereo_pan import warm_up as warm_up_pan
from .take_recorder import panic_events, push_audio, push_column, push_event, push_state, release_events
from .take_recorder import warm_up as warm_up_takes
from .voice_allocator import VoiceAllocator

ROOM_RING_S = 2.0      # seconds the reverb's room may ring on when a stream closes (ring_out)


class EngineStats:
    """Counters written by the render side, read by anyone (plain numbers; no locking)."""

    def __init__(self):
        self.blocks = 0
        self.voices = 0
        self.generator_faults = 0        # blocks muted because the generator raised or emitted NaN/Inf
        self.last_fault = ""
        self.render_seconds = 0.0        # last block
        self.render_peak = 0.0           # since last read_and_reset_peak
        self.render_samples = 0
        self.render_started = 0.0        # perf_counter() when the block being rendered began; 0 between
                                         # blocks (a watchdog reads it: a block that never ends is a hang)


class Engine:
    def __init__(self, config: EngineConfig | None = None, generator: Generator | None = None):
        self.config = (config or EngineConfig()).validate()
        if generator is None:
            from .default_instrument import DefaultInstrument
            generator = DefaultInstrument()
        self.generator = generator
        self.events = EventQueue(self.config.event_capacity)
        self.stats = EngineStats()
        self.reports: deque[str] = deque(maxlen=200)
        self.sample_time = 0
        self.prepared = False
        self._pending: tuple | None = None
        self._fade: tuple | None = None       # (old generator, its controls, first sample, length)
        self._panic = False
        self._release_all = False
        self.clock_anchor = (time.perf_counter(), 0)   # (perf_counter seconds, sample time)
        self.midi_delay = 0      # samples between a live event's arrival and its sounding (set by audio_io)
        # (JACK frame, output sample) pinned by the audio callback under JACK, else None: live
        # JACK MIDI then lands at its frame's sample + midi_delay (midi_input)
        self.frame_anchor: tuple[int, int] | None = None
        self.midi_late = 0       # recent worst lateness of live events, samples (set by the MIDI drain)
        self.bindings = ControlBindings()   # MIDI CC -> control (see midi_learn)
        self.take = None         # a TakeRecorder the render side copies into (take_recorder)
        # concert pitch and transpose as set (the config's, then set_tuning / set_transpose; a
        # new prepare keeps them)
        self.tuning_hz, self.transpose = float(self.config.tuning_hz), int(self.config.transpose)
        self.velocity_curve = float(self.config.velocity_curve)
        self._tuning_asked = self._tuning_applied = 0   # control side counts, render side catches up
        # the last program change (render side writes: [count, channel, program]); the control
        # side reads it (poll_program) and loads the model it names (engine_host)
        self.program = np.zeros(3, np.int64)
        self._program_seen = 0
        c = self.config      # the reverb's room as set (the config's, then set_reverb; a new prepare keeps it)
        self.reverb_room = {"decay_s": c.reverb_decay_s, "damping": c.reverb_damping, "predelay_ms": c.reverb_predelay_ms}
        # its send: the one place it lives, shared with each Reverb made (set_reverb and CC 91 write it)
        self.reverb_send = np.array([send_value(c.reverb_send)], np.float64)
        self._send_taken = -1.0  # render side: the send a take last recorded
        # the pan of the dry mix (stereo_pan), on CC 10's grid: set_pan and CC 10 write it
        self.pan = np.array([pan_value(c.pan)], np.float64)
        self._pan_taken = 0.0    # render side: the pan a take last recorded

    # -- set-up (off the audio path) -------------------------------------------------
    def prepare(self, sample_rate: int | None = None, max_block: int | None = None) -> Engine:
        from dataclasses import replace
        cfg = self.config
        if sample_rate is not None or max_block is not None:
            cfg = replace(cfg, sample_rate=int(sample_rate or cfg.sample_rate),
                          max_block=int(max_block or cfg.max_block)).validate()
            self.config = cfg
        sr, mb, p = cfg.sample_rate, cfg.max_block, cfg.polyphony
        self.generator.prepare(sr, mb, p, cfg.device)
        n_ctl = len(self.generator.info.controls)
        self.cond = Conditioning(p, mb, n_ctl, cfg.input_channels)
        self.cond.controls[:] = self.generator.default_controls()
        # NB: the model playing and its control array, published together in one store. The
        # render side swaps ``generator`` and ``cond.controls`` in two stores, and while it
        # crossfades it puts the old model's controls in ``cond`` to render that one: a reader
        # on another thread takes both from here, never from those two.
        self.playing = (self.generator, self.cond.controls)
        self.voices = VoiceAllocator(self.cond)
        mask = np.zeros(16, np.bool_)
        mask[list(cfg.midi_channels)] = True
        self.channels = ChannelState(self.cond, self.voices, cfg.bend_range, mask)
        self.channels.set_tuning(self.tuning_hz)
        self.channels.transpose = self.transpose
        self.channels.velocity_curve = self.velocity_curve
        self._first_channel = int(np.argmax(mask))    # where a take writes the engine's own messages
        self.env_coef = self._envelope_for(self.generator)
        # stereo where the device has two channels or more: the generator's mono mix in the
        # middle of both, the reverb's two uncorrelated tails around it, a linked limiter
        self.stereo = cfg.channels >= 2
        self.post = PostChain(sr, cfg.ceiling_dbfs, cfg.master_gain_db, cfg.dc_cutoff_hz,
                              channels=2 if self.stereo else 1)
        self.reverb = Reverb(sr, send_cell=self.reverb_send, **self.reverb_room)
        self.mix = np.zeros((2 if self.stereo else 1, mb), np.float32)   # [left, right] or [mono]
        self.mono = self.mix[0]          # what the generator renders into (then the left channel)
        self._right = self.mix[1] if self.stereo else None
        self._dry = np.zeros(mb, np.float32)           # the dry mix of a segment, while the reverb adds to it
        self._pan_state = np.array(pan_gains(float(self.pan[0])), np.float64)   # no glide at the start
        self._pan_coef = glide_coefficient(sr)
        self._xbuf = np.zeros(mb, np.float32)          # the outgoing generator during a crossfade
        # All Sound Off for a generator with a pipeline (_sound_off): samples of its fade left, -1 none
        self._hush_len = max(1, int(round(KILL_SECONDS * sr)))
        self._hush_left = -1
        self._restart_hold = np.zeros(p, np.int8)
        self.sample_time = 0
        self.clock_anchor = (time.perf_counter(), 0)
        self.frame_anchor = None
        self.prepared = True
        self._warm_up()
        return self

    def _envelope_for(self, generator: Generator) -> np.ndarray:
        e = generator.info.envelope or self.config.envelope
        return envelope_coefficients(self.config.sample_rate, e.attack_s, e.decay_s, e.sustain, e.release_s)

    @property
    def release_s(self) -> float:
        """Release time of the envelope in use (the generator's own, or the configured one)."""
        return (self.generator.info.envelope or self.config.envelope).release_s

    def _warm_up(self) -> None:
        """Compile and run every kernel once (a note, a bend, a release) and forget it all."""
        sr = self.config.sample_rate
        buf = np.zeros((min(256, self.config.max_block), self.config.channels), np.float32)
        self.push_event(0, 0x90, 69, 100)
        self.push_event(10, 0xE0, 0, 80)
        self.push_event(64, 0x80, 69, 0)
        for _ in range(max(1, sr // 50 // buf.shape[0])):
            self.render(buf)
        # the swap's kernels too: compiled (or read from Numba's cache) here, not at the first
        # swap on the render side (measured: that first swap block took 4 ms instead of 1)
        n = buf.shape[0]
        crossfade(self.mono[:n], self._xbuf[:n], n, 0, 2 * n)
        fade_out(self._xbuf[:n], n, n // 2, n)
        self.post.fade_before(self.mix, n // 2, 4)      # a fault's fade (_segment)
        warm_up_takes()          # and a take's copies, so that recording compiles nothing
        warm_up_reverb()         # and the reverb's, which runs only once a send is raised
        warm_up_pan()            # and the pan's, which runs only off the centre
        self.warmup_faults = self.stats.generator_faults
        self.warmup_fault = self.stats.last_fault
        self.hard_reset()
        self.stats = EngineStats()

    def hard_reset(self) -> None:
        """Back to the state after ``prepare`` (before the stream starts: it takes the event
        queue's producer lock)."""
        self.events.restart_clock()
        self._fade = None
        self._hush_left = -1
        self.voices.kill_all()
        self.channels.reset()
        self.generator.reset()
        self.post.reset()
        self.reverb.reset()
        self._pan_state[:] = pan_gains(float(self.pan[0]))
        self.cond.restart[:] = 0
        self.sample_time = 0
        self.clock_anchor = (time.perf_counter(), 0)

    # -- producers --------------------------------------------------------------------
    def push_event(self, sample_time: int, status: int, d1: int, d2: int = 0, port: int = 0) -> bool:
        return self.events.push(int(sample_time), status, d1, d2, port)

    def push_midi(self, status: int, d1: int, d2: int = 0, port: int = 0,
                  when: float | None = None) -> bool:
        """A live message received at ``when`` (perf_counter seconds, default now), scheduled
        ``midi_delay`` samples after the matching point of the output clock (see audio_io)."""
        return self.events.push(max(self.live_time(when), 0), status, d1, d2, port)

    def live_time(self, when: float | None = None) -> int:
        """The output sample at which a live message that arrived at ``when`` (perf_counter
        seconds, default now) takes effect: ``midi_delay`` after the matching output sample."""
        if when is None:
            when = time.perf_counter()
        t_ref, s_ref = self.clock_anchor
        return s_ref + int((when - t_ref) * self.config.sample_rate) + self.midi_delay

    # -- control side -----------------------------------------------------------------
    def control_index(self, name: str, generator: Generator | None = None) -> int:
        gen = generator if generator is not None else self.playing[0]
        for i, c in enumerate(gen.info.controls):
            if c.name == name:
                return i
        names = ", ".join(c.name for c in gen.info.controls)
        raise KeyError(f"no control {name!r} on {gen.info.name} (controls: {names})")

    def set_control(self, name_or_index, value: float, playing: tuple | None = None) -> float:
        """Set a control of the model playing (any thread; ``playing``: the caller's read of
        ``self.playing``, to act on the model it checked): clamped to its range, returned."""
        gen, controls = playing if playing is not None else self.playing
        i = name_or_index if isinstance(name_or_index, int) else self.control_index(name_or_index, gen)
        v = gen.info.controls[i].clamp(float(value))
        controls[i] = v
        return v

    def _generators(self) -> tuple:
        pending = self._pending
        return (self.generator, pending[0] if pending is not None else None)

    def bind_cc(self, name: str, channel: int, cc: int) -> None:
        """MIDI CC ``cc`` on ``channel`` (0..15) drives control ``name`` over its range
        (``midi_learn.MASTER``, "volume": the master volume)."""
        if name != MASTER and name not in {c.name for g in self._generators() if g is not None for c in g.info.controls}:
            self.control_index(name)            # the error names the controls there are
        self.bindings.bind(name, channel, cc, self._generators())

    def unbind_cc(self, name: str) -> None:
        self.bindings.unbind(name, self._generators())

    def set_bindings(self, bindings: dict) -> None:
        self.bindings.set_all(bindings, self._generators())

    def learn_cc(self, name: str | None) -> None:
        """The next CC that arrives binds to ``name`` (see ``poll_learned``); None cancels."""
        if name and name != MASTER:
            self.control_index(name)
        self.bindings.learn(name)

    def poll_learned(self) -> tuple[str, int, int] | None:
        return self.bindings.poll_learned(self._generators())

    def refresh_bindings(self) -> None:
        """Control side, now and then: after a swap, drop the outgoing generator's table (it
        would keep the old model alive)."""
        if self._pending is None and not (len(self.bindings._tables) == 1 and self.bindings.covers(self.generator)):
            self.bindings.publish((self.generator,))

    def set_master_gain_db(self, gain_db: float) -> None:
        if gain_db != gain_db:
            return
        self.post.set_gain_db(min(12.0, max(-90.0, float(gain_db))))

    def set_reverb(self, send: float | None = None, decay_s: float | None = None, damping: float | None = None,
                   predelay_ms: float | None = None) -> dict:
        """The reverb (``reverb``): what is given changes, each clamped to its range (the send to
        its 7-bit grid, as CC 91 sets it); returns every setting as set."""
        if send is not None:
            self.reverb_send[0] = send_value(send)       # NB: one float store, read per sample
        r = self.reverb_room
        if decay_s is not None or damping is not None or predelay_ms is not None:
            room = (r["decay_s"] if decay_s is None else decay_s, r["damping"] if damping is None else damping,
                    r["predelay_ms"] if predelay_ms is None else predelay_ms)
            r["decay_s"], r["damping"], r["predelay_ms"] = (self.reverb.set_room(*room) if self.prepared
                                                            else clamp_room(*room))
        return {"send": float(self.reverb_send[0]), **r}

    def set_pan(self, pan: float) -> float:
        """Where the dry mix sits, -1 (left) .. +1 (right), on CC 10's grid (clamped; NaN: the
        centre); it glides there over 10 ms from the next block. Returns the pan set."""
        self.pan[0] = pan_value(pan)         # NB: one float store, read per segment
        return float(self.pan[0])

    def set_tuning(self, a4_hz: float) -> float:
        """Concert pitch (A4 in Hz), clamped to its range; held notes follow from the next block.
        Returns the value set."""
        if a4_hz != a4_hz:
            return self.tuning_hz
        self.tuning_hz = clamp_tuning(a4_hz)
        self._tuning_asked += 1          # after the value: the render side reads the latest one
        return self.tuning_hz

    def set_velocity_curve(self, curve: float) -> float:
        """The exponent a note's velocity is raised to from the next note on, clamped to its
        range (NaN: 1, as played). Returns the value set."""
        self.velocity_curve = clamp_velocity_curve(curve)
        if self.prepared:
            self.channels.velocity_curve = self.velocity_curve     # one store, read at each note-on
        return self.velocity_curve

    def set_transpose(self, semitones: float) -> int:
        """Semitones added to every key from the next note on (held notes keep theirs),
        rounded and clamped to its range. Returns the value set."""
        if semitones != semitones:
            return self.transpose
        self.transpose = clamp_transpose(semitones)
        if self.prepared:
            self.channels.transpose = self.transpose     # one store, read at each note-on
        return self.transpose

    def panic(self) -> None:
        self._panic = True

    def release_all(self) -> None:
        self._release_all = True

    def swap_generator(self, generator: Generator) -> None:
        """Install a generator prepared by the caller (off the audio path). It takes over at
        the next block: every sounding voice restarts fresh on it while the old generator goes
        on rendering them, fading out over ``config.crossfade_s`` (raised cosine)."""
        if self._pending is not None:
            raise RuntimeError("a generator swap is already pending")
        controls = generator.default_controls()
        self.bindings.publish((self.generator, generator))
        self._pending = (generator, controls, self._envelope_for(generator))

    @property
    def reverb_on(self) -> bool:
        """The reverb is fed or still ringing (control side: a plain read)."""
        return self.prepared and (self.reverb_send[0] > 0.0 or not self.reverb.idle)

    @property
    def tail_s(self) -> float:
        """Seconds for everything to fall silent after every note is released: the envelope's
        release, and with the reverb on its room falling 60 dB (decay and pre-delay)."""
        room = self.reverb_room
        return self.release_s + ((room["decay_s"] + room["predelay_ms"] / 1000.0) if self.reverb_on else 0.0)

    def ring_out(self, wait=time.sleep) -> None:
        """Before a stream closes, once every note's release has rung: with the reverb on, its
        room rings up to ``ROOM_RING_S`` more, then the master gain goes down to -90 dB over about
        50 ms (the post chain's gain glide), so the room's tail ends without a click."""
        if self.reverb_on:
            wait(min(self.tail_s - self.release_s, ROOM_RING_S))
            self.post.set_gain_db(-90.0)
            wait(0.08)

    @property
    def latency_samples(self) -> int:
        """Samples of delay the engine itself adds (limiter look-ahead + generator lookahead)."""
        return self.post.latency + int(self.generator.info.lookahead)

    def poll_program(self) -> tuple[int, int] | None:
        """(channel, program) of the last MIDI program change since the last call, else None
        (control side; two in quick succession: the last one)."""
        count = int(self.program[0])
        if count == self._program_seen:
            return None
        self._program_seen = count
        return int(self.program[1]), int(self.program[2])

    def start_take(self, recorder) -> None:
        """Record from the next block on: a started ``take_recorder.TakeRecorder``."""
        if self.take is not None:
            raise RuntimeError("a take is already being recorded")
        recorder.tuning = (self.tuning_hz, self.transpose)     # replayed so (smf.MidiSong.take_tuning)
        recorder.velocity_curve = self.velocity_curve          # and so (take_velocity_curve)
        recorder.pan = float(self.pan[0])                      # and so (take_pan; then CC 10)
        r = self.reverb_room
        recorder.room = (float(self.reverb_send[0]), r["decay_s"], r["damping"],
                         r["predelay_ms"])     # and the room (smf.MidiSong.take_room)
        self.take = recorder

    def stop_take(self, timeout_s: float = 1.0):
        """Stop recording; returns the recorder (then ``finish()`` it) once the render side
        has let go of it: a block in progress may still copy into it, so wait for that block
        to end (live), or not at all (offline, between renders)."""
        rec, self.take = self.take, None
        if rec is None:
            return None
        st = self.stats
        blocks, deadline = st.blocks, time.monotonic() + timeout_s
        while st.render_started != 0.0 and st.blocks == blocks and time.monotonic() < deadline:
            time.sleep(0.0005)
        return rec

    def take_reports(self) -> list[str]:
        out = []
        while self.reports:
            out.append(self.reports.popleft())
        return out

    # -- render side ------------------------------------------------------------------
    def render(self, out: np.ndarray, audio_in: np.ndarray | None = None) -> None:
        """Fill ``out`` (float32 ``[frames, channels]`` or ``[frames]``) and advance the clock.
        ``audio_in`` (``[frames, input channels]``, duplex streams) reaches the generator as
        ``cond.audio_in``."""
        n = out.shape[0]
        mb = self.config.max_block
        pos = 0
        while pos < n:
            m = min(n - pos, mb)
            if audio_in is not None:
                k = min(audio_in.shape[1], self.cond.audio_in.shape[1])
                self.cond.audio_in[:m, :k] = audio_in[pos:pos + m, :k]
            self._render_block(out[pos:pos + m], m)
            pos += m

    def _control_flags(self, t: int, rec=None) -> None:
        asked = self._tuning_asked
        if asked != self._tuning_applied:
            self._tuning_applied = asked
            self.channels.set_tuning(self.tuning_hz)
        if self._pending is not None:
            gen, controls, env_coef = self._pending
            self.env_coef = env_coef
            length = int(self.config.crossfade_s * self.config.sample_rate)
            self._fade = (self.generator, self.cond.controls, t, length, True) if length > 0 else None
            self.generator = gen
            self.bindings.carry_over(gen, controls)       # the knobs' positions, not the defaults
            self.cond.controls = controls
            self.playing = (gen, controls)
            self._restart_voices()
            self._pending = None
        if self._panic:
            self._panic = False
            if rec is not None:          # in the MIDI take as what it does (ChannelState.reset)
                panic_events(rec.events, rec.epos, t, self.channels.default_bend_range)
            self._fade = None
            self.voices.kill_all()
            self.channels.reset()
            self.generator.reset()
            self.reverb.reset()          # a panic is silence now: the room's tail too
        if self._release_all:
            self._release_all = False
            if rec is not None:          # pedal up, then All Notes Off: every note released
                release_events(rec.events, rec.epos, t)
            self.voices.release_all(t)
        q = self.events
        if q.overflow_pending:      # releases the full queue kept, once what came before them is read
            q.due_releases(lambda status, d1, d2: self._event(status, d1, d2, t, rec))

    def _event(self, status: int, d1: int, d2: int, t: int, rec) -> None:
        """One MIDI event at sample ``t`` (render side): from the queue, or a release the full
        queue kept (``EventQueue.due_releases``), which acts the same."""
        on = self.channels.mask[status & 0x0F]
        kind = status & 0xF0
        sound_off = False
        if kind == 0xB0 and on:
            cc, value = d1 & 0x7F, d2 & 0x7F
            bound = self.bindings.on_cc(self.generator, self.cond.controls, status & 0x0F, cc, value, self.post)
            if cc == 91 and not bound:       # GM's Reverb Send Level (a learnt binding takes it first)
                send = value / 127.0
                self.reverb_send[0] = send
                self._send_taken = send      # the CC itself goes into a take
            elif cc == 10 and not bound:     # GM's Pan: the whole instrument (stereo_pan)
                pan = pan_from_cc(value)
                self.pan[0] = pan
                self._pan_taken = pan
            elif cc == 120:                  # All Sound Off: silence now, the room's tail too
                self.reverb.reset()
                sound_off = True
        if rec is not None and 0x80 <= status < 0xF0 and on:
            push_event(rec.events, rec.epos, t, status, d1 & 0x7F, d2 & 0x7F)
        if kind == 0xC0 and on:
            prog = self.program
            prog[1] = status & 0x0F
            prog[2] = d1 & 0x7F
            prog[0] += 1             # last: a reader that sees the count sees the rest
        self.channels.handle(status, d1, d2, t)
        if sound_off:
            self._sound_off()        # after its voices were killed

    def _render_block(self, out: np.ndarray, n: int) -> None:
        t_start = time.perf_counter()
        self.stats.render_started = t_start
        t0 = self.sample_time
        end = t0 + n
        rec = self.take              # read after render_started: see stop_take
        if rec is not None and rec.first_sample < 0:
            rec.first_sample = t0    # the take opens with the channels' state here
            c = self.channels
            push_state(rec.events, rec.epos, t0, c.bend, c.bend_range, c.mod, c.volume, c.expression, c.sustain,
                       c.sostenuto, c.soft, c.pressure)
            self._send_taken = rec.room[0] if rec.room is not None else 0.0   # the marker's: a change goes below
            self._pan_taken = rec.pan    # the marker's: a change goes below as CC 10
        if rec is not None and self.reverb_send[0] != self._send_taken:
            # the send as CC 91 (set by the app or a command, or at the take's start): in the MIDI
            # exactly, since the send lives on CC 91's 7-bit grid
            send = self.reverb_send[0]
            self._send_taken = send
            push_event(rec.events, rec.epos, t0, 0xB0 | self._first_channel, 91, int(round(send * 127.0)))
        if rec is not None and self.pan[0] != self._pan_taken:      # the pan as CC 10, the same way
            pan = self.pan[0]
            self._pan_taken = pan
            push_event(rec.events, rec.epos, t0, 0xB0 | self._first_channel, 10, pan_to_cc(pan))
        self._control_flags(t0, rec)
        q = self.events
        pos = 0
        while pos < n:
            t = t0 + pos
            while q.peek_time() <= t:
                status, d1, d2, _ = q.pop()
                self._event(status, d1, d2, t, rec)      # NB: called in place: no bound-method object per block
            nt = q.peek_time()
            seg_end = n if (nt == NO_EVENT or nt >= end) else nt - t0
            self._segment(pos, seg_end - pos, t)
            # the reverb segment by segment too: a CC 91 or 120 acts at its own sample
            right = self._right
            st = self._pan_state
            panned = right is not None and (self.pan[0] != 0.0 or st[0] != 1.0 or st[1] != 1.0)
            if right is not None:
                right[pos:seg_end] = self.mono[pos:seg_end]     # the dry mix in the middle
                right = right[pos:seg_end]
            if panned:                                          # kept: the reverb adds to both sides
                self._dry[:seg_end - pos] = self.mono[pos:seg_end]
            self.reverb.process(self.mono[pos:seg_end], seg_end - pos, t, right)
            if panned:                                          # then the dry part moves
                pan_dry(self.mono[pos:seg_end], right, self._dry, seg_end - pos, self.pan[0], st, self._pan_coef)
            pos = seg_end
        mix = self.mix
        self.post.process(mix, n)
        if rec is not None:
            push_audio(rec.ring, rec.apos, mix, n)
            if rec.in_ring is not None:        # the input the generator heard in this block
                push_column(rec.in_ring, rec.ipos, self.cond.audio_in, 0, n)
        if out.ndim == 1:
            out[:] = mix[0, :n]
        else:                            # left, right, left, right... (mono: the one channel to all)
            rows = mix.shape[0]
            for c in range(out.shape[1]):
                out[:, c] = mix[c % rows, :n]
        self.sample_time = end
        st = self.stats
        st.render_started = 0.0
        st.blocks += 1
        st.voices = self.voices.active_count
        el = time.perf_counter() - t_start
        st.render_seconds = el
        st.render_samples = n
        if el > st.render_peak:
            st.render_peak = el

    def _segment(self, pos: int, m: int, t: int) -> None:
        cond = self.cond
        cond.sample_time = t
        cond.frames = m
        cond.audio_in_offset = pos
        envelope_block(self.voices.stage, self.voices.level, cond.env, m, self.env_coef)
        seg = self.mono[pos:pos + m]
        try:
            self.generator.render(cond, seg)
            ok = guard(seg, m, self._guard_limit())
        except Exception as exc:  # a broken generator must never stop the stream
            ok = False
            self.stats.last_fault = f"{type(exc).__name__}: {exc}"
        if not ok:
            seg[:] = 0.0
            self.post.fade_before(self.mix, pos, self._hush_len)   # a 1 ms fade into the silence, not a step
            self.stats.generator_faults += 1
            if not self.stats.last_fault:
                self.stats.last_fault = "non-finite or out-of-range output"
            try:
                self.generator.reset()
            except Exception:
                pass
            self._restart_voices()
        elif self._fade is not None:
            self._crossfade(seg, m, t)
        if self._hush_left >= 0:
            self._hush(seg, m)
        if ok:
            cond.restart[:] = 0
        self.voices.free_finished()

    def _sound_off(self) -> None:
        """All Sound Off (CC 120), after its voices were killed: a generator whose sound runs
        through a pipeline (frames and delay lines: a vocoder, a MIDI-to-mel model, a chain, an
        audio-driven model) would play on for its look-ahead and more (measured: the piano
        played from MIDI, 0.07-0.17 for 8 blocks of 128 and on). Where no voice of another
        channel plays on, it fades out over ``KILL_SECONDS`` (the voices' own kill fade) and is
        reset; where one does, they share the pipeline, and it drains instead."""
        info = self.generator.info
        if info.lookahead <= 0 and info.conditioning != "audio":
            return                   # the voices' 1 ms kill is the whole sound
        v = self.voices
        for i in range(v.polyphony):
            if self.cond.active[i] and v.stage[i] != KILL:
                return
        if self._hush_left < 0:
            self._hush_left = self._hush_len

    def _hush(self, seg: np.ndarray, m: int) -> None:
        """The fade of ``_sound_off``, then the generator's reset (render side)."""
        self._hush_left = left = fade_out(seg, m, self._hush_left, self._hush_len)
        if left == 0:
            self._hush_left = -1
            self.generator.reset()
            self.reverb.reset()      # what the fade fed it
            self._restart_voices()

    def _restart_voices(self) -> None:
        """Every sounding voice starts afresh in the generator (a new or reset generator)."""
        cond = self.cond
        for v in range(cond.active.shape[0]):
            if cond.active[v]:
                cond.restart[v] = RESTART_FRESH

    def _guard_limit(self) -> float:
        v = self.voices.active_count
        return self.config.guard_limit * (math.sqrt(v) if v > 1 else 1.0)

    def _crossfade(self, seg: np.ndarray, m: int, t: int) -> None:
        """Mix the outgoing generator under the incoming one (render side). It renders with its
        own controls and without the swap's restarts (its voices play on as they were); any
        fault of it ends the fade at once."""
        old, old_ctl, t0, length, first = self._fade
        cond = self.cond
        xb = self._xbuf[:m]
        new_ctl = cond.controls
        hold = self._restart_hold
        hold[:] = cond.restart
        if first:
            cond.restart[:] = 0
            self._fade = (old, old_ctl, t0, length, False)
        cond.controls = old_ctl
        try:
            old.render(cond, xb)
            ok = guard(xb, m, self._guard_limit())
        except Exception:
            ok = False
        cond.controls = new_ctl
        cond.restart[:] = hold
        if not ok:
            xb[:] = 0.0
        crossfade(seg, xb, m, t - t0, length)
        if not ok or t + m - t0 >= length:
            self._fade = None
