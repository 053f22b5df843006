"""A vocoder played from MIDI: the ``midi2mel`` family (MIDI-to-mel model, then a vocoder).

Per render call, on the render side:
    the engine's voices (pitch with bend, velocity, onset, held or released and when, gain)
    -> for each mel frame that ends inside this call, every sounding voice's roll features
       (``piano_roll.note_features``, the training definition, at the frame's end time)
    -> ``MidiToMel``: one log-mel frame holding the whole chord
    -> the vocoder's streamed step (``melgan``, ``flow``, ``hifigan``, ...: its own state; an
       iSTFT vocoder with a source phase also gets each frame's harmonic reference: below)
    -> resample to the device rate (``streaming_resampler``) -> ``DelayLine`` -> out.
On a CPU the network and an iSTFT vocoder run as Numba kernels (``midi_to_mel_kernel``,
``istft_vocoder_kernel``): the same numbers, 3-10x less time a frame than torch's steps
(``benchmarks/RESULTS.md``); ``LIVEWAVE_CPU_KERNELS=0`` runs torch's (``generator.cpu_kernels``).

Timing: model frame ``t`` spans model samples ``[t * hop, (t + 1) * hop)``, i.e. device samples
``[s_t, e_t)`` with ``s_t = t * hop * device_rate / model_rate`` counted from the first call
after a reset. It is made in the call holding ``s_t``, from the voices' state there: every event
at or before ``s_t`` (the engine splits its calls at events). Its sound is therefore ready when
its span begins, and the delay line pays out only the resampler's delay (the worst shortfall of
the frame clock and the resampler, measured with silence at block sizes 1, 17, 64 and the
largest, 45 samples at 48 kHz): that delay is the declared lookahead. An event waits for the
next frame to begin (onsets fall on the frame grid: ``hop`` model samples, 11.6 ms at 22.05 kHz
and hop 256), and the output does not depend on the block size.

Reading the roll ahead: the MIDI-to-mel model was trained on frames of causal analysis windows
that end at each frame's end, and a vocoder sounds its input ``content_delay`` model samples
late (the iSTFT vocoder one hop). Audio would have to wait for both; a piano roll need not,
because until the next event it is known in advance (a held note only ages). So frame ``t``'s
roll is read at ``e_t + ahead`` (``ahead``: the vocoder's content delay) from the state at
``s_t``, and the vocoder's output for it lines up with the frame's own span. An event reaches the
first frame that begins at or after it, with its own time (the notes' ages are exact); within
that frame the roll is what the notes will be at its read time.

Measured with ``python -m benchmarks.run --latency-only`` (48 kHz; a fresh engine per note,
seven note-ons spread over one frame; medians of the ms from the note-on to the first sample
over 5% and over 50% of the note's peak; the engine's whole declared latency), piano / strings:

    frames made and read at their end (before 2026-12-02)   24.9 / 32.5, 22.7 / 31.7   declared 24.8
    made at their end, read ahead                           21.5 / 27.5, 17.0 / 27.2   declared 13.2
    made when they begin, read ahead                        15.9 / 27.1, 16.8 / 28.4   declared 1.6
    the same, the vocoder's phases from the notes           14.4 / 27.8, 24.5 / 27.7   declared 1.6
    the same, the vocoder trained on onsets                 20.9 / 27.7, 19.3 / 30.7   declared 1.6
      (the piano's earlier 5% time was its first frame's overshoot: +1.0 dBFS on a chord, then -5.4)
    the same, the reference's partials scattered            21.6 / 30.4, 19.7 / 27.9   declared 1.6
    the same, the last frame made again at an onset (this)  11.1 / 17.0,  8.8 / 20.4   declared 1.6
      (times against the sample peak: without the pulse, the piano's peak is 3.6 dB lower on a
      chord and its half-peak time later, its RMS envelope the same; source_phase)

FluidR3's piano on the same note: 3.1 / 7.1. What remains is the model's own attack, learned
from causal 46 ms analysis windows; reading a further one to three hops ahead moved the half-peak
time by under 1.5 ms and made the held-out distance worse (a first measurement, 2026-12-02).

Onsets (since 2026-12-02): the iSTFT vocoder was trained to sound its input one hop late
(``output_delay``): synthesis frame ``t`` renders the audio of the last two hops of mel frame
``t``'s window, and a sound that begins in mel frame ``t`` (silence before it in frame ``t - 1``)
it puts in the frame's second half, one hop after the frame begins. Reading the roll ahead cannot
move that: the note was not known when frame ``t - 1`` was made. So when a call finds a note that
began after the last frame was made, it makes that frame again first, from the vocoder's state
before it (``save_stream``/``restore_stream``: its convolutions' histories and overlap-add tail,
and the reference's running phases) and the voices as they are now, and drops its first hop (it
has been played); its second hop, which the next frame overlap-adds onto, now holds the new
note, which therefore sounds from the frame that begins after it, a hop sooner. Measured on the
shipped piano (one note from silence, 22.05 kHz): 5% of the peak 17.5 -> 5.6 ms after the
note-on, half the peak 22.9 -> 12.3 ms. It costs one more frame per call that brings notes.

Phase from the notes: an iSTFT vocoder with ``phase="source"`` (``source_phase``) takes its phases
from a harmonic reference of the sounding notes (``fill_reference``), so a held note sounds at its
own pitch (an absolute phase puts every partial on a multiple of the frame rate). Synthesis
frame ``t`` is overlap-added from device sample ``s_t`` for ``n_fft`` model samples, so its
reference is the spectrum of that span: every voice the roll of frame ``t`` holds, as a
sawtooth-like tone at its pitch (with bend) whose fundamental phase at the span's centre is the
voice's running phase (kept per voice from its onset, starting at a phase set by the key so that
notes struck together do not start aligned, advanced at its pitch between frames); level: gain
times velocity, fading to 0 over ``tail`` after the release.

The engine's envelope is a gate here (the model makes the attack, decay and release): a voice
lives ``tail`` seconds past its release, the time the model was trained to ring out.

Checkpoint: config ``{"midi2mel": MidiToMelConfig, "vocoder": {family, config, card}, "name"}``,
tensors: the model's and the vocoder's prefixed ``vocoder/``. A model saved without a vocoder
cannot sound; ``livewave chain MODEL VOCODER -o OUT`` adds one.
Threading: ``render`` on the render side only; torch is bound in ``prepare``.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from numba import njit

from .config import EnvelopeConfig
from .generator import Generator, GeneratorInfo, cpu_kernels
from .midi_to_mel import MidiToMel, MidiToMelConfig
from .piano_roll import N_FEATURES, ONSET_TAUS, RELEASE_TAUS, note_features
from .source_phase import harmonic_reference
from .streaming_resampler import DelayLine, Resampler

TRAINING_GAIN = (100 / 127) ** 2     # the engine's channel gain at the data's CC7 100, CC11 127


@njit(nogil=True, cache=True)
def fill_roll(active, gate, note, velocity, gain, onset_time, release_time, taus, k, rate, tail,
              onset_taus, release_taus, feats, rows, gains):
    """The sounding voices' features at the ``k`` frame end times ``taus`` (device samples,
    absolute) into ``feats``/``rows``/``gains``; returns how many rows."""
    p = 0
    for j in range(k):
        tau = taus[j]
        for v in range(active.shape[0]):
            if not active[v] or onset_time[v] >= tau:
                continue
            held = gate[v]
            t_rel = 0.0
            if not held:
                rel = release_time[v] if release_time[v] >= 0 else onset_time[v]
                t_rel = (tau - rel) / rate
                if t_rel > tail:
                    continue
            note_features(note[v], velocity[v], (tau - onset_time[v]) / rate, held, t_rel, onset_taus,
                          release_taus, feats[p])
            rows[p] = j
            gains[p] = gain[v] / TRAINING_GAIN
            p += 1
    return p


@njit(nogil=True, cache=True)
def fill_reference(active, gate, note, velocity, gain, onset_time, release_time, taus, centres, k, rate, tail,
                   model_rate, n_fft, run_phase, run_time, run_onset, f0, phase, level, out):
    """The harmonic reference (``source_phase.harmonic_reference``) of the ``k`` frames into
    ``out[:k]``: the voices ``fill_roll`` would hold at ``taus``, each at its running phase at the
    frame's span centre ``centres[j]`` (device samples, absolute). ``run_phase``/``run_time``/
    ``run_onset``: each voice's phase, when it held, for which onset (reset with a new note)."""
    out[:k] = 0.0
    for j in range(k):
        tau, c, n = taus[j], centres[j], 0
        for v in range(active.shape[0]):
            if not active[v] or onset_time[v] >= tau:
                continue
            lvl = gain[v] * velocity[v]
            if not gate[v]:
                rel = release_time[v] if release_time[v] >= 0 else onset_time[v]
                t_rel = (tau - rel) / rate
                if t_rel > tail:
                    continue
                lvl *= 1.0 - t_rel / tail if tail > 0 else 0.0
            f = 440.0 * 2.0 ** ((note[v] - 69.0) / 12.0)
            if run_onset[v] != onset_time[v]:       # a new note: its own starting phase (by key)
                run_onset[v], run_time[v] = onset_time[v], onset_time[v]
                run_phase[v] = 2.0 * np.pi * ((0.618034 * round(note[v])) % 1.0)
            run_phase[v] = (run_phase[v] + 2.0 * np.pi * f * (c - run_time[v]) / rate) % (2.0 * np.pi)
            run_time[v] = c
            f0[n], phase[n], level[n] = f, run_phase[v], lvl
            n += 1
        harmonic_reference(f0, phase, level, n, n_fft, model_rate, out, j)


@njit(nogil=True, cache=True)
def onset_after(active, onset_time, t):
    """Whether a sounding voice's note began after sample ``t``."""
    for v in range(active.shape[0]):
        if active[v] and onset_time[v] > t:
            return True
    return False


class MidiToMelInstrument(Generator):
    def __init__(self, model: MidiToMel, vocoder, name: str = "", card: dict | None = None):
        c = model.config
        if vocoder.info.conditioning != "audio" or not hasattr(vocoder, "synthesize"):
            raise ValueError(f"{vocoder.info.name} ({vocoder.info.family}) is not a vocoder")
        vm, vr = vocoder.mel_cfg, vocoder.info.sample_rate
        mine = c.mel_settings()
        diff = [k for k in mine if vm.get(k) != mine[k]]
        if vr != c.sample_rate or diff:
            raise ValueError(f"the vocoder's mel ({vr} Hz, {', '.join(f'{k}={vm.get(k)}' for k in diff) or 'same'}) "
                             f"is not the model's ({c.sample_rate} Hz, "
                             f"{', '.join(f'{k}={mine[k]}' for k in diff) or 'same'})")
        self.model, self.vocoder, self.mcfg = model.eval(), vocoder, c
        self.voc_index = [i for i, ctl in enumerate(vocoder.info.controls) if ctl.name != "input_gain"]
        controls = tuple(vocoder.info.controls[i] for i in self.voc_index)
        self.info = GeneratorInfo(
            family="midi2mel", name=name or "midi2mel", sample_rate=c.sample_rate, hop=c.hop, polyphonic=True,
            conditioning="voices", controls=controls, card=dict(card or {}),
            envelope=EnvelopeConfig(attack_s=0.002, decay_s=1.0, sustain=1.0, release_s=c.tail + 0.05))
        self.device = "cpu"

    @staticmethod
    def warm_up() -> None:
        """Every Numba kernel this family runs (the roll, the harmonic reference, the network's
        and the vocoder's kernels), compiled before any stream (``generator.preload_families``): a
        tiny instrument prepared, which plays its notes once."""
        from .vocoder_instrument import tiny_istft_instrument
        vocoder = tiny_istft_instrument()
        c = MidiToMelConfig(sample_rate=8000, n_fft=128, hop=32, n_mels=8, hidden=8, layers=3)
        MidiToMelInstrument(MidiToMel(c), vocoder).prepare(8000, 64, 2, "cpu")     # its own rate, as above

    @classmethod
    def from_checkpoint(cls, config: dict, card: dict, tensors: dict) -> MidiToMelInstrument:
        from .generator import family_class
        from .vocoder_instrument import _load_state
        model = MidiToMel(MidiToMelConfig.from_dict(config.get("midi2mel") or {}))
        _load_state(model, {k: v for k, v in tensors.items() if not k.startswith("vocoder/")})
        spec = config.get("vocoder")
        if not isinstance(spec, dict) or "family" not in spec:
            raise ValueError("this MIDI-to-mel model has no vocoder to sound through; add one with "
                             "livewave chain MODEL VOCODER -o OUT")
        sub = {k[len("vocoder/"):]: v for k, v in tensors.items() if k.startswith("vocoder/")}
        vocoder = family_class(spec["family"]).from_checkpoint(spec.get("config") or {}, spec.get("card") or {}, sub)
        return cls(model, vocoder, str(config.get("name", "midi2mel"))[:200], card)

    # -- set-up --------------------------------------------------------------------------------
    def prepare(self, sample_rate: int, max_block: int, voices: int, device: str = "cpu") -> None:
        import torch

        from .generator import torch_device
        self._torch = torch            # NB: the render side uses this; it never imports
        self.dev = torch_device(device)
        self.model.to(self.dev)
        self.vocoder.prepare(sample_rate, max_block, 1, str(self.dev))
        if hasattr(self.vocoder, "prime_silence"):     # see ISTFTVocoder.prime
            self.vocoder.prime_silence()
        self.device = str(self.dev)
        self.sample_rate, self.max_block = int(sample_rate), int(max_block)
        c, mr = self.mcfg, self.mcfg.sample_rate
        self.frame_num, self.frame_den = c.hop * self.sample_rate, mr      # e_t = (t + 1) * num / den
        self.rs_out = Resampler(mr, self.sample_rate)
        self.lag = int(self.vocoder.lag_frames)
        self.line = DelayLine(self.chain_delay(max_block))
        self.ahead = self.vocoder.content_delay * self.sample_rate / mr     # device samples (see Timing)
        self.info = replace(self.info, lookahead=self.line.delay)
        max_k = max_block * mr // (self.sample_rate * c.hop) + 2
        self.taus = np.zeros(max_k, np.float64)
        self.feats = np.zeros((max_k * voices, N_FEATURES), np.float32)
        self.rows = np.zeros(max_k * voices, np.int64)
        self.gains = np.zeros(max_k * voices, np.float32)
        self.t_feats, self.t_rows, self.t_gains = (torch.from_numpy(a) for a in (self.feats, self.rows, self.gains))
        self.kernel = None               # the CPU path: the network as a Numba kernel (midi_to_mel_kernel)
        if self.dev.type == "cpu" and self.mcfg.layers > 1 and cpu_kernels():
            from .midi_to_mel_kernel import MelKernel
            self.kernel = MelKernel(self.model, max_k * voices, max_k)
        self.reference = None
        self.centres = np.zeros(max_k, np.float64)
        if getattr(self.vocoder, "takes_source", False):       # phase from the notes (see the docstring)
            self.run_phase, self.run_time = np.zeros(voices, np.float64), np.zeros(voices, np.float64)
            self.run_onset = np.full(voices, -1, np.int64)
            self.ref_f0, self.ref_phase, self.ref_level = (np.zeros(voices, np.float64) for _ in range(3))
            self.reference = np.zeros((max_k, self.vocoder.source_bins), np.complex64)
            self.t_reference = torch.from_numpy(self.reference).T[None]     # [1, bins, max_k]: a view
        self.vcontrols = self.vocoder.default_controls()
        # a new note makes the last frame again (docstring: Onsets)
        self.remake = hasattr(self.vocoder, "save_stream")
        self.remake_tau, self.remake_centre = np.zeros(1, np.float64), np.zeros(1, np.float64)
        self.half = 0.0
        if self.reference is not None:
            self.half = self.vocoder.source_n_fft / 2 * self.sample_rate / self.mcfg.sample_rate
            self.saved_run = (self.run_phase.copy(), self.run_time.copy(), self.run_onset.copy())
        self.reset()
        from .generator import Conditioning
        cond = Conditioning(voices, max_block, len(self.info.controls))
        cond.controls[:] = self.default_controls()
        cond.active[:] = True
        cond.gate[:] = True
        cond.velocity[:] = 0.5
        cond.note[:] = 60.0
        cond.gain[:] = TRAINING_GAIN
        out = np.zeros(max_block, np.float32)
        for i in range(8):             # every kernel, the model at full polyphony, the vocoder
            cond.sample_time, cond.frames = i * max_block, max_block
            self.render(cond, out)
        self.reset()

    def chain_delay(self, max_block: int) -> int:
        """The smallest delay the output never runs short with (the frame clock, each frame made
        when it begins; the vocoder's lag and the resampler, with silence) at block sizes 1, 17,
        64 and ``max_block``."""
        hop, worst = self.mcfg.hop, 0
        for block in sorted({1, 17, 64, max_block}):
            rs = Resampler(self.mcfg.sample_rate, self.sample_rate)
            fed = got = made = 0
            while fed < 2 * self.sample_rate:
                fed += block
                k = max(0, -((-fed * self.frame_den) // self.frame_num) - self.lag) - made   # frames begun
                made += k
                got += rs.process(np.zeros(k * hop, np.float32)).shape[0]
                worst = max(worst, fed - got)
        return worst

    def reset(self) -> None:
        self.rs_out.reset()
        self.line.reset()
        self.vocoder.reset_model()
        self.next_frame = 0
        self.anchor = -1
        self.made_at = -1          # the call (its first sample) that made the last frame; -1: none yet
        self.remaking = False
        if getattr(self, "reference", None) is not None:
            self.run_onset[:] = -1
        if getattr(self, "remake", False):
            self._save()

    # -- render side -------------------------------------------------------------------------------
    def render(self, cond, out: np.ndarray) -> None:
        n = cond.frames
        if self.anchor < 0:
            self.anchor = cond.sample_time
        end = cond.sample_time - self.anchor + n
        last = -((-end * self.frame_den) // self.frame_num)    # frames that begin before end
        k = min(last - self.next_frame, self.taus.shape[0])
        if k > 0:
            for j in range(k):
                self.taus[j] = self.anchor + (self.next_frame + j + 1) * self.frame_num / self.frame_den + self.ahead
            if self.reference is not None:          # each synthesis frame's span centre
                for j in range(k):
                    self.centres[j] = self.anchor + (self.next_frame + j) * self.frame_num / self.frame_den + self.half
            if self.remake and onset_after(cond.active, cond.onset_time, self.made_at):
                self._remake_last(cond)
            self.next_frame += k
            if self.remake:            # the state before the last frame, which a new note may make again
                if k > 1:
                    self._frames(cond, k - 1, self.taus, self.centres)
                self._save()
                self._frames(cond, 1, self.taus[k - 1:k], self.centres[k - 1:k])
            else:
                self._frames(cond, k, self.taus, self.centres)
            self.made_at = cond.sample_time
        self.line.pull(out, n)

    def _save(self) -> None:
        self.vocoder.save_stream()
        if self.reference is not None:
            phase, time, onset = self.saved_run
            np.copyto(phase, self.run_phase)
            np.copyto(time, self.run_time)
            np.copyto(onset, self.run_onset)

    def _remake_last(self, cond) -> None:
        """The frame made last (-1 after a reset: the one before the first) made again with the
        voices as they are now, its first hop (already played) dropped: what it leaves for the
        next hop to overlap-add now holds the new notes (docstring: Onsets)."""
        self.vocoder.restore_stream()
        if self.reference is not None:
            phase, time, onset = self.saved_run
            np.copyto(self.run_phase, phase)
            np.copyto(self.run_time, time)
            np.copyto(self.run_onset, onset)
        t = self.next_frame - 1
        self.remake_tau[0] = self.anchor + (t + 1) * self.frame_num / self.frame_den + self.ahead
        self.remake_centre[0] = self.anchor + t * self.frame_num / self.frame_den + self.half
        self.remaking = True           # (for tests that watch the frames)
        self._frames(cond, 1, self.remake_tau, self.remake_centre, keep=False)
        self.remaking = False

    def _frames(self, cond, k: int, taus, centres, keep: bool = True) -> None:
        """Make ``k`` frames, read at ``taus`` (their span centres ``centres``); their audio goes
        to the delay line unless ``keep`` is False (the vocoder's state still moves on)."""
        torch = self._torch
        p = fill_roll(cond.active, cond.gate, cond.note, cond.velocity, cond.gain, cond.onset_time,
                      cond.release_time, taus, k, float(self.sample_rate), self.mcfg.tail, ONSET_TAUS,
                      RELEASE_TAUS, self.feats, self.rows, self.gains)
        for i, j in enumerate(self.voc_index):
            self.vcontrols[j] = cond.controls[i]
        source = None
        if self.reference is not None:
            fill_reference(cond.active, cond.gate, cond.note, cond.velocity, cond.gain, cond.onset_time,
                           cond.release_time, taus, centres, k, float(self.sample_rate), self.mcfg.tail,
                           float(self.mcfg.sample_rate), self.vocoder.source_n_fft, self.run_phase, self.run_time,
                           self.run_onset, self.ref_f0, self.ref_phase, self.ref_level, self.reference)
            source = self.t_reference[:, :, :k].to(self.dev) if self.kernel is None else self.reference[:k]
        if self.kernel is not None:          # the CPU path: numpy in and out, no torch where kernels exist
            mel = self.kernel.frames(self.feats, self.rows, self.gains, p, k)
            y = self.vocoder.synthesize_frames(mel, self.vcontrols, source)
        else:
            with torch.inference_mode():
                mel = self.model(self.t_feats[:p].to(self.dev), self.t_rows[:p].to(self.dev), k,
                                 self.t_gains[:p].to(self.dev))
                y = self.vocoder.synthesize(mel.T[None].contiguous(), self.vcontrols, source).float().cpu().numpy()
        if keep:
            self.line.push(self.rs_out.process(y))

    def checkpoint_parts(self) -> tuple[dict, dict]:
        vconf, vtens = self.vocoder.checkpoint_parts()
        config = {"midi2mel": self.mcfg.to_dict(), "name": self.info.name,
                  "vocoder": {"family": self.vocoder.info.family, "config": vconf, "card": self.vocoder.info.card}}
        tensors = {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}
        tensors.update({f"vocoder/{k}": v for k, v in vtens.items()})
        return config, tensors

