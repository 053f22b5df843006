"""The engine driven offline: sample-exact scheduling, block-size independence, pitch, voices."""
import numpy as np
import pytest
from audio_checks import cents, f0_spectral, first_sample_above

from livewave.config import EngineConfig
from livewave.engine import Engine

SR = 48000


def make_engine(**kw) -> Engine:
    return Engine(EngineConfig(sample_rate=SR, max_block=4096, **kw)).prepare()


def render(engine: Engine, events, frames: int, block: int = 256) -> np.ndarray:
    for t, s, d1, d2 in events:
        engine.push_event(t, s, d1, d2)
    out = np.zeros((frames, engine.config.channels), np.float32)
    for i in range(0, frames, block):
        engine.render(out[i:i + block])
    return out[:, 0]


PERFORMANCE = [  # chords, a bend, pedal, CCs, a retrigger, a steal-free release: 1 second
    (100, 0x90, 60, 100), (100, 0x90, 64, 90), (333, 0x90, 67, 80), (2000, 0xB0, 64, 127),
    (4001, 0xE0, 0, 90), (6000, 0x80, 60, 0), (7777, 0xB0, 1, 110), (9000, 0x90, 72, 127),
    (12000, 0xB0, 11, 60), (15000, 0x90, 64, 70), (20000, 0xB0, 64, 0), (24000, 0xD0, 90, 0),
    (26000, 0xA0, 72, 100), (30000, 0x80, 64, 0), (30001, 0x80, 67, 0), (33000, 0xE0, 127, 127),
    (38000, 0x80, 72, 0), (40000, 0x90, 48, 1),
]


def test_block_sizes_give_identical_samples():
    ref = render(make_engine(), PERFORMANCE, SR, block=64)
    assert np.abs(ref).max() > 0.01
    for block in (1, 17, 256, 4096):
        x = render(make_engine(), PERFORMANCE, SR, block=block)
        assert np.abs(x - ref).max() <= 1e-6, f"block {block} differs"


def test_onset_lands_on_the_requested_sample():
    for at in (1000, 1001, 1237):
        e = make_engine()
        x = render(e, [(at, 0x90, 69, 127)], 4000, block=64)
        expected = at + e.latency_samples
        assert np.all(x[:expected] == 0.0)
        assert first_sample_above(x, 0.0) == expected


@pytest.mark.parametrize("note", [33, 48, 60, 69, 81, 96])
def test_pitch_within_5_cents(note):
    e = make_engine()
    e.set_control("vibrato_depth", 0.0)
    x = render(e, [(0, 0x90, note, 100)], SR, block=256)
    f = f0_spectral(x[SR // 4:], SR)
    ref = 440.0 * 2 ** ((note - 69) / 12)
    assert abs(cents(f, ref)) < 5.0, (note, f, ref)


def test_pitch_bend_and_rpn_range():
    e = make_engine()
    # RPN 0 = 12 semitones, then full bend up: one octave above
    ev = [(0, 0xB0, 101, 0), (0, 0xB0, 100, 0), (0, 0xB0, 6, 12), (0, 0xB0, 38, 0),
          (0, 0xE0, 127, 127), (10, 0x90, 57, 100)]
    x = render(e, ev, SR, block=128)
    expected = 220.0 * 2 ** (12 * (8191 / 8192) / 12)   # A3 bent up by a whole (14-bit) octave
    assert abs(cents(f0_spectral(x[SR // 4:], SR), expected)) < 5.0


def test_note_off_releases_and_voice_frees():
    e = make_engine()
    x = render(e, [(0, 0x90, 60, 100), (SR // 4, 0x80, 60, 0)], SR, block=256)
    rel = e.config.envelope.release_s
    tail = x[int(SR * (0.25 + rel + 0.01)):]
    assert np.abs(tail).max() < 1e-4
    assert e.voices.active_count == 0


def test_sustain_pedal_holds_then_releases():
    e = make_engine()
    ev = [(0, 0xB0, 64, 127), (0, 0x90, 60, 100), (4800, 0x80, 60, 0), (SR // 2, 0xB0, 64, 0)]
    x = render(e, ev, SR, block=256)
    held = x[int(0.3 * SR):int(0.45 * SR)]
    assert np.sqrt(np.mean(held ** 2)) > 0.01               # still sounding after note-off
    assert np.abs(x[int((0.5 + e.config.envelope.release_s + 0.02) * SR):]).max() < 1e-4
    assert e.voices.active_count == 0


@pytest.mark.torture
def test_cc123_respects_pedal_and_cc120_silences_within_a_block():
    e = make_engine()
    ev = [(0, 0xB0, 64, 127), (0, 0x90, 60, 100), (0, 0x90, 64, 100), (4800, 0xB0, 123, 0)]
    x = render(e, ev, 9600, block=64)
    assert np.sqrt(np.mean(x[-2400:] ** 2)) > 0.01            # pedal keeps them
    assert e.voices.active_count == 2
    ev2 = [(9600 + 100, 0xB0, 120, 0)]
    y = render(e, ev2, 4800, block=64)
    cut = 100 + e.latency_samples + 64
    # After the cut only the DC blocker's own sub-audio decay is left: no audible content
    # (sample-to-sample change under -100 dBFS) and under -80 dBFS by the end.
    assert np.abs(np.diff(y[cut:])).max() < 1e-5
    assert np.abs(y[-100:]).max() < 1e-4
    assert e.voices.active_count == 0


@pytest.mark.torture
@pytest.mark.parametrize("family,route", [("midi2mel", "queue"), ("istft", "queue"), ("midi2mel", "overflow")])
def test_cc120_silences_a_pipeline_within_a_block(family, route):
    """A generator whose sound runs through frames and delay lines (the piano played from
    MIDI; a vocoder played from audio in): CC 120 fades it out over the voices' 1 ms kill and
    resets it, instead of letting its pipeline play on (it did: 0.07-0.17 for 8 blocks and on).
    Audio in then comes back through the pipeline, its latency later. ``overflow``: the CC
    arrives when the engine's queue is full, is kept (``EventQueue.due_releases``) and acts at
    the next block's start the same way (it only reset the reverb there: the piano played on)."""
    from shipped import shipped

    from livewave.checkpoint import load_generator
    cap = 4 if route == "overflow" else 65536
    e = Engine(EngineConfig(sample_rate=SR, max_block=128, event_capacity=cap),
               load_generator(shipped(family)[0])).prepare()
    noise = (0.2 * np.random.default_rng(0).standard_normal((128, 1))).astype(np.float32)
    out = np.zeros((128, e.config.channels), np.float32)
    for k in (60, 64, 67):
        e.push_event(100, 0x90, k, 110)
    ys = []
    for b in range(140):
        if b == 100:
            if route == "overflow":                              # the queue full of pressure messages
                for j in range(e.events.capacity):
                    assert e.push_event(e.sample_time + 2 + j, 0xD0, 90, 0)
            assert e.push_event(e.sample_time + 10, 0xB0, 120, 0) == (route == "queue")
        e.render(out, noise)
        ys.append(out[:, 0].copy())
    y = np.concatenate(ys)
    at = 100 * 128 + 10 if route == "queue" else 101 * 128       # kept: acts at the next block's start
    assert np.abs(y[at - 4800:at]).max() > 0.05                  # it was playing
    assert route == "queue" or e.events.kept == 1
    lim = e.post.latency
    # audio in: until the input's new frames come through (a frame and the resampler: ~700 samples)
    quiet = y[at + lim + 128:at + lim + 128 + 512] if family == "istft" else y[at + lim + 128:]
    assert quiet.size >= 512 and np.abs(quiet).max() < 2e-3, np.abs(quiet).max()
    if family == "istft":                                        # and the input plays again
        assert np.abs(y[at + e.latency_samples + 1024:]).max() > 0.05


def test_stealing_prefers_released_then_oldest():
    e = make_engine(polyphony=4)
    ev = [(i * 10, 0x90, 60 + i, 100) for i in range(4)]
    ev += [(1000, 0x80, 62, 0), (2000, 0x90, 70, 100)]   # the released voice (62) is taken
    render(e, ev, 3000)
    notes = sorted(int(e.voices.note_int[v]) for v in range(4) if e.cond.active[v])
    assert notes == [60, 61, 63, 70]
    render(e, [(3000, 0x90, 71, 100)], 1000)             # none released: the oldest (60) goes
    notes = sorted(int(e.voices.note_int[v]) for v in range(4) if e.cond.active[v])
    assert notes == [61, 63, 70, 71]


def test_retrigger_reuses_the_voice():
    e = make_engine()
    render(e, [(0, 0x90, 60, 100), (1000, 0x90, 60, 50)], 2000)
    assert e.voices.active_count == 1
    render(e, [(2000, 0x80, 60, 0)], SR // 2)
    assert e.voices.active_count == 0


@pytest.mark.torture
def test_no_stuck_notes_in_any_order_of_events():
    rng = np.random.default_rng(7)
    e = make_engine(polyphony=8)
    t = 0
    ev = []
    for _ in range(3000):
        t += int(rng.integers(0, 40))
        kind = rng.choice([0x90, 0x80, 0xB0, 0xE0])
        ch = int(rng.integers(0, 3))
        if kind == 0xB0:
            ev.append((t, 0xB0 | ch, int(rng.choice([64, 1, 7, 11, 120, 121, 123])), int(rng.integers(0, 128))))
        else:
            ev.append((t, kind | ch, int(rng.integers(40, 50)), int(rng.integers(0, 128))))
    for ch in range(3):                   # the performer lifts everything at the end
        ev.append((t + 1, 0xB0 | ch, 64, 0))
        for k in range(40, 50):
            ev.append((t + 1, 0x80 | ch, k, 0))
    render(e, ev, t + SR, block=256)
    assert e.voices.active_count == 0


@pytest.mark.torture
def test_thousand_note_ons_in_one_block():
    e = make_engine()
    ev = [(100, 0x90 | (i % 16), i % 128, 1 + i % 127) for i in range(1000)]
    x = render(e, ev, 4096, block=4096)
    assert np.isfinite(x).all()
    assert np.abs(x).max() <= 10 ** (-1 / 20) + 1e-7
    assert e.voices.active_count == 16
    off = [(5000, 0xB0 | ch, 123, 0) for ch in range(16)]
    render(e, off, SR, block=4096)
    assert e.voices.active_count == 0


def test_channel_filter():
    e = make_engine(midi_channels=(0,))
    x = render(e, [(0, 0x91, 60, 100)], 4800)
    assert np.abs(x).max() == 0.0 and e.channels.ignored == 1


def test_out_of_range_values_are_clamped():
    e = make_engine()
    x = render(e, [(0, 0x90, 200, 300), (10, 0xE0, 255, 255), (20, 0xB0, 7, 999)], 4800)
    assert np.isfinite(x).all()
    e.set_control("brightness", float("nan"))
    e.set_control("breath", float("inf"))
    assert e.cond.controls[0] == 0.0 and e.cond.controls[1] == 1.0


class PassThrough:
    """A minimal audio-driven generator: half the input's first channel."""

    def __new__(cls):
        from livewave.generator import Generator, GeneratorInfo

        class _P(Generator):
            info = GeneratorInfo(family="test", name="pass-through", sample_rate=None, hop=1,
                                 conditioning="audio")

            def prepare(self, sample_rate, max_block, voices, device="cpu"):
                pass

            def reset(self):
                pass

            def render(self, cond, out):
                o, n = cond.audio_in_offset, cond.frames
                out[:n] = 0.5 * cond.audio_in[o:o + n, 0]
        return _P()


def test_audio_input_reaches_the_generator_sample_exactly():
    t = np.arange(SR // 2)
    x = (0.6 * np.sin(2 * np.pi * 1000 * t / SR)).astype(np.float32)[:, None]
    outs = []
    for block in (17, 256):
        e = Engine(EngineConfig(sample_rate=SR, max_block=512, input_channels=1), PassThrough()).prepare()
        y = np.zeros((len(x), 2), np.float32)
        for i in range(0, len(x), block):
            e.push_event(i + 5, 0x90, 60, 100)          # events cut blocks into segments too
            e.render(y[i:i + block], x[i:i + block])
        outs.append(y[:, 0])
    assert np.abs(outs[0] - outs[1]).max() <= 1e-6
    lat = e.latency_samples
    y = outs[1]
    err = y[SR // 4 + lat:] - 0.5 * x[SR // 4:len(x) - lat, 0]
    assert np.abs(err).max() < 0.01          # only the 10 Hz DC blocker's phase shift remains


@pytest.mark.torture
def test_panic_and_release_all_from_the_control_side():
    e = make_engine()
    x = render(e, [(0, 0xB0, 64, 127), (0, 0x90, 60, 100), (0, 0x90, 67, 100)], 4800)
    assert e.voices.active_count == 2 and np.abs(x).max() > 0.01
    e.release_all()                                   # Ctrl-C: released despite the pedal
    render(e, [], SR // 2)
    assert e.voices.active_count == 0
    render(e, [(SR, 0x90, 60, 100)], 4800)
    e.panic()                                         # panic: silent at the next block
    y = render(e, [], 4800, block=256)
    assert e.voices.active_count == 0 and not e.channels.sustain.any()
    assert np.abs(np.diff(y[256 + e.latency_samples:])).max() < 1e-5


def _swap_take(crossfade_s: float, block: int = 64, onset: int = 0) -> tuple[np.ndarray, int]:
    """A held A3 from ``onset``, then a swap to a darker preset of the default instrument at 0.3 s."""
    from livewave.default_instrument import DefaultInstrument
    e = Engine(EngineConfig(sample_rate=SR, max_block=4096, crossfade_s=crossfade_s)).prepare()
    e.push_event(onset, 0x90, 57, 100)
    out = np.zeros((SR, 2), np.float32)
    swap_at = int(0.3 * SR) // block * block
    for i in range(0, SR, block):
        if i == swap_at:
            new = DefaultInstrument({"brightness": -1.0, "breath": 0.0})
            new.prepare(SR, 4096, e.config.polyphony)
            e.swap_generator(new)
        e.render(out[i:i + block])
        if i == swap_at + int(0.05 * SR) // block * block:
            assert e._fade is None                       # the old generator is let go after the fade
    return out[:, 0], swap_at


def test_generator_swap_crossfades_without_a_click():
    # How big a hard swap's step is depends on the phase the old note is at: try a few onsets
    # (phases); the crossfade must be smooth at every one, the hard swap click at one at least
    # (so the test can tell a click from the note's own steps).
    worst_during, worst_jump = 0.0, 0.0
    for onset in (0, 16, 32, 48, 64):
        x, at = _swap_take(0.03, onset=onset)
        hard, _ = _swap_take(0.0, onset=onset)
        before = np.abs(np.diff(x[at - 4800:at])).max()      # steady playing: the largest step
        during = np.abs(np.diff(x[at - 1:at + 2400])).max()
        jump = np.abs(np.diff(hard[at - 1:at + 2400])).max()
        assert during <= 1.2 * before, (onset, during, before)   # no step beyond what the note makes anyway
        worst_during, worst_jump = max(worst_during, during / before), max(worst_jump, jump / before)
    print(f"largest step over the steady one: crossfaded swap {worst_during:.2f}x, hard swap {worst_jump:.2f}x")
    assert worst_jump > 1.5                              # the test can tell a click (phase restart)
    assert np.sqrt(np.mean(x[at + 4800:at + 9600] ** 2)) > 0.01   # the new generator plays on


def test_generator_swap_fade_ends_and_is_block_size_independent():
    a, at = _swap_take(0.03, block=64)
    b, _ = _swap_take(0.03, block=64 * 3)     # same swap sample (a multiple of both), other blocks
    assert at % (64 * 3) == 0
    assert np.abs(a - b).max() <= 1e-6
