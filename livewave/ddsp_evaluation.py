"""Held-out quality of a DDSP instrument, measured the way a performer would hear it.

For each clip of a held-out dataset (phrases rendered by fluidsynth from MIDI the model
never saw), the clip's MIDI is played through the engine's offline path (the live code,
virtual clock) once with the trained model and once with the hand-set default instrument,
and each is compared with the soundfont's rendering of the same MIDI:

- multi-scale spectral distance (``spectral_loss.spectral_distance_np``) at the dataset's
  rate. The default instrument has its own level, so its render is scaled to the
  reference's RMS first (the comparison favours it); the model's render is not touched.
- pitch: YIN on the model's render against the f0 the MIDI asks for (note + bend) on
  sustained notes (the middle half of each note longer than 0.2 s), in cents.
- timing: fluidsynth acts on an event at its next block, the engine on its sample; each
  render is delayed by the lag (0..20 ms) that best matches the reference's envelope.

``livewave eval MODEL --data HELDOUT`` prints the figures and, with ``--write-card``,
stores them in the checkpoint's model card.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def render_clip(generator, midi_path, render_rate: int, out_rate: int, block: int = 256,
                polyphony: int = 16) -> np.ndarray:
    """MIDI file -> mono float32 at ``out_rate`` through the engine (cropped by its latency)."""
    import soxr

    from .config import EngineConfig
    from .engine import Engine
    from .offline_render import render_song
    from .smf import read_midi_file
    eng = Engine(EngineConfig(sample_rate=render_rate, channels=1, max_block=block, polyphony=polyphony),
                 generator).prepare()
    audio = render_song(eng, read_midi_file(midi_path), block=block)[:, 0]
    audio = audio[eng.latency_samples:]
    if render_rate != out_rate:
        audio = soxr.resample(audio, render_rate, out_rate, quality="HQ").astype(np.float32)
    return audio


def midi_f0_frames(midi_path, sample_rate: int, hop: int, frames: int) -> np.ndarray:
    """The f0 the engine is asked to play, per frame (frame k at sample k*hop), from a
    monophonic MIDI file: the sounding note plus pitch bend (RPN 0 range, default 2); 0 in rests."""
    from .smf import read_midi_file
    song = read_midi_file(midi_path)
    f0 = np.zeros(frames, np.float64)
    note, bend, rng, rpn = -1, 0.0, 2.0, [127, 127]
    k = 0
    events = sorted(song.events, key=lambda e: e[0])
    for t, st, d1, d2 in [*events, (frames * hop / sample_rate + 1.0, 0, 0, 0)]:
        kk = min(frames, int(np.ceil(t * sample_rate / hop)))
        if kk > k:
            if note >= 0:
                f0[k:kk] = 440.0 * 2.0 ** ((note + bend * rng - 69.0) / 12.0)
            k = kk
        kind = st & 0xF0
        if kind == 0x90 and d2 > 0:
            note = d1
        elif kind == 0x80 or (kind == 0x90 and d2 == 0):
            if d1 == note:
                note = -1
        elif kind == 0xE0:
            bend = ((d2 << 7 | d1) - 8192) / 8192.0
        elif kind == 0xB0 and d1 in (101, 100):
            rpn[d1 == 100] = d2
        elif kind == 0xB0 and d1 == 6 and rpn == [0, 0]:
            rng = float(d2)
    return f0


def sustained_pitch_errors(audio: np.ndarray, sample_rate: int, hop: int, notes: np.ndarray,
                           f0_label: np.ndarray) -> np.ndarray:
    """Cents between YIN on ``audio`` and ``f0_label``, over the middle half of each note
    longer than 0.2 s (``notes`` rows: onset_s, offset_s, ...), on frames YIN calls voiced."""
    from .pitch_tracker import yin
    f0, _ = yin(audio, sample_rate, hop, fmax=min(4000.0, sample_rate / 5))
    fs = hop / sample_rate
    errs = []
    for on, off, *_ in notes:
        if off - on < 0.2:
            continue
        a = int((on + 0.25 * (off - on)) / fs)
        b = min(int((off - 0.25 * (off - on)) / fs), f0.size, f0_label.size)
        ok = (f0[a:b] > 0) & (f0_label[a:b] > 0)
        errs.append(1200.0 * np.log2(f0[a:b][ok] / f0_label[a:b][ok]))
    return np.concatenate(errs) if errs else np.zeros(0)


def align(x: np.ndarray, ref: np.ndarray, max_lag: int) -> np.ndarray:
    """``x`` delayed by the lag in 0..max_lag samples that best matches ``ref``'s envelope
    (fluidsynth acts on events a block late; the engine on their sample)."""
    step = 8
    def env(a):
        n = a.size // step * step
        return np.sqrt(np.mean(np.square(a[:n].reshape(-1, step), dtype=np.float64), axis=1))
    ex, er = env(x), env(ref)
    best, best_lag = -np.inf, 0
    for lag in range(0, max_lag // step + 1):
        n = min(er.size - lag, ex.size)
        c = float(np.dot(ex[:n], er[lag:lag + n]))
        if c > best:
            best, best_lag = c, lag * step
    return np.concatenate([np.zeros(best_lag, x.dtype), x])[:x.size]


def write_card_page(path, lines: list[str], q: dict | None, card: dict | None = None):
    """``PATH.md`` beside a checkpoint: ``lines`` (the card's data and training), then the
    measured figures' metric and the spectrogram picture, or 'Not measured yet.', then the
    load-time screen's figures where the ``card`` has them."""
    from pathlib import Path

    from .load_screen import card_lines
    path = Path(path)
    if q:
        lines = lines + [f"Metric: {q['metric']}.", "",
                         f"![spectrograms]({q.get('spectrogram', path.stem + '.png')})", ""]
    else:
        lines = lines + ["Not measured yet.", ""]
    lines = lines + card_lines(card)
    md = path.with_suffix(".md")
    md.write_text("\n".join(lines))
    return md


PLOT_LABELS = ("soundfont (reference)", "trained model, played from the MIDI", "default instrument, played from the MIDI")


def plot_comparison(ref: np.ndarray, model: np.ndarray, default: np.ndarray, sample_rate: int, path,
                    title: str, seconds: float = 12.0, labels: tuple[str, str, str] = PLOT_LABELS) -> None:
    """Spectrograms (dB) of the soundfont reference, the model and the default instrument (or what
    ``labels`` name), one above the other, over the first ``seconds`` of a held-out phrase."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = min(ref.size, int(seconds * sample_rate))
    fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True)
    for ax, name, x in zip(axes, labels, (ref, model, default), strict=True):
        with np.errstate(divide="ignore"):
            ax.specgram(x[:n] + 1e-9, NFFT=1024, Fs=sample_rate, noverlap=768, cmap="magma", vmin=-130, vmax=-20)
        ax.set_ylabel("Hz")
        ax.set_title(name, fontsize=10)
    axes[-1].set_xlabel("seconds")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def evaluate(model_path, heldout_dir, render_rate: int = 48000, block: int = 256, log=print,
             plot=None) -> dict:
    from .checkpoint import load_generator, read_checkpoint
    from .default_instrument import DefaultInstrument
    from .soundfont_data import load_dataset
    from .spectral_loss import spectral_distance_np
    meta, clips = load_dataset(heldout_dir)
    sr, hop = int(meta["sample_rate"]), int(meta["hop"])
    # The reference at the level of the model's training data (older datasets were peak-normalised).
    trained_scale = float(read_checkpoint(model_path)[0]["card"].get("data", {}).get("render_scale", 1.0))
    level = trained_scale / float(meta.get("render", {}).get("scale", 1.0))
    d_model, d_default, cents, seconds = [], [], [], 0.0
    for i, clip in enumerate(clips):
        midi = Path(heldout_dir) / f"{meta['clips'][i]}.mid"
        if not midi.is_file():
            raise FileNotFoundError(f"{midi}: held-out clips need the MIDI they were rendered from")
        ref = clip["audio"] * np.float32(level)
        n = ref.size
        y = render_clip(load_generator(model_path), midi, render_rate, sr, block)
        z = render_clip(DefaultInstrument(), midi, render_rate, sr, block)
        y = np.pad(y, (0, max(0, n - y.size)))[:n]
        z = np.pad(z, (0, max(0, n - z.size)))[:n]
        # Pitch against what the engine was asked to play (the MIDI), at the engine's timing.
        # (the notes' times follow the audio, a few ms later: the middle half of a note is unaffected)
        cents.append(sustained_pitch_errors(y, sr, hop, clip["notes"], midi_f0_frames(midi, sr, hop, n // hop)))
        rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)  # noqa: E731
        z = z * (rms(ref) / rms(z))
        lag = int(0.02 * sr)
        y, z = align(y, ref, lag), align(z, ref, lag)
        d_model.append(spectral_distance_np(y, ref))
        d_default.append(spectral_distance_np(z, ref))
        if plot and i == 0:
            plot_comparison(ref, y, z, sr, plot, f"{Path(model_path).name}: held-out {midi.name}")
        seconds += n / sr
        log(f"  {midi.name}: model {d_model[-1]:.3f}  default {d_default[-1]:.3f}")
    c = np.abs(np.concatenate(cents)) if cents else np.zeros(0)
    dm, dd = float(np.mean(d_model)), float(np.mean(d_default))
    return {
        "heldout_seconds": round(seconds, 1), "heldout_clips": len(clips),
        "spectral_distance_model": round(dm, 4), "spectral_distance_default": round(dd, 4),
        "closer_than_default_pct": round(100.0 * (1.0 - dm / dd), 1),
        "pitch_median_abs_cents": round(float(np.median(c)), 2) if c.size else None,
        "pitch_p95_abs_cents": round(float(np.percentile(c, 95)), 2) if c.size else None,
        "pitch_frames": int(c.size), "render_rate": render_rate,
        "metric": "multi-scale spectral distance (FFT 2048..64, lin + log magnitude) at the data rate; "
                  "the default instrument level-matched to the reference",
    }
