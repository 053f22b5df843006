"""Training and measuring a MIDI-to-mel model: ``livewave train midi2mel --data DIR --out OUT``.

Data: ``livewave data soundfont --polyphonic`` folders (or monophonic soundfont data: the notes
are all it reads), ``DIR`` itself or every dataset folder directly under it. The audio is
resampled to the model's rate and analysed once by the engine's own mel analysis
(``mel_analysis.analyse``, the vocoder's settings); the roll of each frame comes from
``piano_roll.roll_pairs``, the definition the live instrument uses. The model has no state, so
a batch is any set of frames: each step draws ``batch_frames`` frames at random (seeded by
(seed, step): a resumed run continues exactly) with every note sounding in them.

``torchrun`` runs it data-parallel (``distributed``: each rank its own frames, gradients
averaged, rank 0 writes).

Loss: L1 between log-mels (the vocoder's input domain), the measure the card reports.
Adam, cosine decay to a tenth over ``decay_steps`` (then level). Every ``checkpoint_every`` steps the state goes to
``OUT.train.pt`` (tensors only, ``weights_only`` readable) and a playable checkpoint to ``OUT``,
both atomically. With ``vocoder``, that checkpoint carries the vocoder (it plays); without,
``livewave chain OUT VOCODER -o PLAYABLE`` adds one later.

Evaluation (:func:`evaluate_midi2mel`): on held-out clips, log-mel L1 against the analysed
audio over all frames and over sounding frames, beside two floors that know nothing of the
notes: the training data's mean frame, and silence.
Threading: plain blocking functions.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write, save_checkpoint

STATE_VERSION = 1


@dataclass(frozen=True)
class MidiToMelTrainConfig:
    steps: int = 4000
    decay_steps: int = 4000     # the cosine's length: not ``steps``, so a longer rerun resumes exactly
    batch_frames: int = 1024
    learning_rate: float = 2e-3
    seed: int = 0
    checkpoint_every: int = 500
    device: str = "auto"
    hidden: int = 192
    layers: int = 3
    tail: float = 1.5

    def validate(self) -> MidiToMelTrainConfig:
        if not 1 <= self.steps <= 10_000_000:
            raise ValueError(f"steps={self.steps}: need 1..10000000")
        if not 1 <= self.decay_steps <= 10_000_000:
            raise ValueError(f"decay_steps={self.decay_steps}: need 1..10000000")
        if not 8 <= self.batch_frames <= 1_000_000:
            raise ValueError(f"batch_frames={self.batch_frames}: need 8..1000000")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate={self.learning_rate}: need 0..1")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        return self


def dataset_folders(data) -> list[Path]:
    """``data`` if it is a dataset, else its dataset subfolders (sorted)."""
    data = Path(data)
    if (data / "dataset.json").is_file():
        return [data]
    found = sorted(p.parent for p in data.glob("*/dataset.json")) if data.is_dir() else []
    if not found:
        raise FileNotFoundError(f"{data}: no dataset here (make one with livewave data soundfont --polyphonic)")
    return found


class RollFrames:
    """Every frame of a set of datasets: target log-mel ``[F, n_mels]`` and the sounding notes of
    each frame (features ``[P, N_FEATURES]`` sorted by frame, ``start[F + 1]`` offsets)."""

    def __init__(self, data, mcfg, log=None):
        import soxr

        from .mel_analysis import analyse
        from .piano_roll import roll_pairs
        from .roll_data import load_roll_dataset
        mels, feats, frames_of, n, self.seconds, self.sources = [], [], [], 0, 0.0, []
        for folder in dataset_folders(data):
            meta, clips = load_roll_dataset(folder)
            self.sources.append({"folder": str(folder), "instrument": meta.get("instrument"),
                                 "minutes": meta.get("minutes"), "seed": meta.get("seed")})
            for clip in clips:
                x = clip["audio"]
                if meta["sample_rate"] != mcfg.sample_rate:
                    x = soxr.resample(x, meta["sample_rate"], mcfg.sample_rate, quality="HQ").astype(np.float32)
                mel = analyse(x, mcfg.sample_rate, **mcfg.mel_settings())
                idx, f = roll_pairs(clip["notes"], clip["pedal"], mel.shape[0], mcfg.sample_rate, mcfg.hop,
                                    mcfg.tail)
                mels.append(mel)
                feats.append(f)
                frames_of.append(idx + n)
                n += mel.shape[0]
                self.seconds += x.shape[0] / mcfg.sample_rate
        self.mel = np.concatenate(mels).astype(np.float32)
        self.features = np.concatenate(feats).astype(np.float32)
        frame = np.concatenate(frames_of)
        self.start = np.searchsorted(frame, np.arange(n + 1), side="left").astype(np.int64)
        self.clip_frames = [m.shape[0] for m in mels]

    @property
    def frames(self) -> int:
        return self.mel.shape[0]

    def gather(self, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(features of the notes in frames ``which``, their row in ``which``)."""
        a, b = self.start[which], self.start[which + 1]
        counts = b - a
        rows = np.repeat(np.arange(len(which)), counts)
        offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return self.features[a[rows] + offs], rows

    def predict(self, model, dev, chunk: int = 4096) -> np.ndarray:
        import torch
        out = np.zeros_like(self.mel)
        with torch.inference_mode():
            for s in range(0, self.frames, chunk):
                which = np.arange(s, min(self.frames, s + chunk))
                f, rows = self.gather(which)
                y = model(torch.from_numpy(f).to(dev), torch.from_numpy(rows).to(dev), len(which))
                out[s:s + len(which)] = y.float().cpu().numpy()
        return out


def _vocoder_spec(path):
    """(mel config of a vocoder checkpoint, its config entry, its prefixed tensors)."""
    from .checkpoint import load_generator, read_checkpoint
    voc = load_generator(path)
    if voc.info.conditioning != "audio" or not hasattr(voc, "mel_cfg"):
        raise ValueError(f"{path}: {voc.info.name} ({voc.info.family}) is not a vocoder")
    meta, tensors = read_checkpoint(path)
    return (voc.mel_cfg, voc.info.sample_rate, {"family": meta["family"], "config": meta["config"], "card": meta["card"]},
            {f"vocoder/{k}": v for k, v in tensors.items() if k != "_empty"})


def model_config(cfg: MidiToMelTrainConfig, vocoder=None):
    from .midi_to_mel import MidiToMelConfig
    mel, rate = ({}, 22050) if vocoder is None else (vocoder[0], vocoder[1])
    keys = ("n_fft", "hop", "n_mels", "fmin", "fmax", "floor", "log10")
    return MidiToMelConfig(sample_rate=rate, hidden=cfg.hidden, layers=cfg.layers, tail=cfg.tail,
                           **{k: mel[k] for k in keys if k in mel}).check()


def train_midi2mel(data, out, cfg: MidiToMelTrainConfig, vocoder=None, name: str | None = None,
                   heldout=None, progress: bool = True) -> dict:
    """Train (or resume) and write ``out``; with ``heldout``, measure and put it in the card."""
    import torch

    from .midi_to_mel import MidiToMel
    cfg = cfg.validate()
    out = Path(out)
    state_path = out.with_name(out.name + ".train.pt")
    voc = _vocoder_spec(vocoder) if vocoder else None
    mcfg = model_config(cfg, voc)
    from .distributed import average_gradients, finish, setup
    ranks = setup(cfg.device)
    dev = ranks.device
    data_frames = RollFrames(data, mcfg)
    torch.manual_seed(cfg.seed)
    model = MidiToMel(mcfg).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.decay_steps))))
    step, seconds, last = 0, 0.0, float("nan")
    key = repr(sorted({**asdict(cfg), "steps": None, "device": None, "checkpoint_every": None}.items()))
    if state_path.exists():
        st = torch.load(state_path, map_location=dev, weights_only=True)
        if int(st.get("version", -1)) != STATE_VERSION or st.get("config") != key:
            raise ValueError(f"{state_path}: training state of another run or version; delete it to start over")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        step, seconds = int(st["step"]), float(st["seconds"])
    mean_frame = data_frames.mel.mean(axis=0)

    def save(step_now: int, loss: float, quality: dict | None = None) -> None:
        config = {"midi2mel": mcfg.to_dict(), "name": name or out.stem}
        tensors = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        if voc is not None:
            config["vocoder"] = voc[2]
            tensors.update(voc[3])
        card = {"instrument": name or out.stem, "family": "midi2mel", "sample_rate": mcfg.sample_rate,
                "parameters": model.parameter_count(),
                "data": {"sources": data_frames.sources, "seconds": round(data_frames.seconds, 1),
                         "frames": data_frames.frames},
                "training": {**{k: v for k, v in asdict(cfg).items() if k != "device"}, "steps": step_now,
                             "processes": ranks.world,
                             "target_steps": cfg.steps, "seconds": round(seconds, 3), "device": str(dev),
                             "final_loss": round(loss, 5) if math.isfinite(loss) else None},
                "mean_frame": [round(float(v), 4) for v in mean_frame]}
        if voc is not None:
            card["vocoder"] = voc[2]["card"].get("instrument") or voc[2]["family"]
        if quality:
            card["quality"] = quality
        save_checkpoint(out, "midi2mel", config, card, tensors)
        state = {"version": STATE_VERSION, "config": key, "step": step_now, "seconds": seconds,
                 "model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}
        atomic_write(state_path, lambda tmp: torch.save(state, tmp))

    model.train()
    t_run, start = time.perf_counter(), step
    target = torch.from_numpy(data_frames.mel)
    while step < cfg.steps:
        t0 = time.perf_counter()
        rng = np.random.default_rng(ranks.seed(cfg.seed, step))
        which = rng.integers(0, data_frames.frames, cfg.batch_frames)
        f, rows = data_frames.gather(which)
        y = model(torch.from_numpy(f).to(dev), torch.from_numpy(rows).to(dev), len(which))
        loss = (y - target[which].to(dev)).abs().mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {float(loss)} at step {step}; the last checkpoint is kept")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(model.parameters(), ranks)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        step += 1
        seconds += time.perf_counter() - t0
        last = float(loss.detach())
        if progress and ranks.main:
            rate = (step - start) / max(1e-9, time.perf_counter() - t_run)
            sys.stderr.write(f"\rtrain midi2mel step {step}/{cfg.steps} log-mel L1 {last:.4f} {rate:.1f} steps/s "
                             f"ETA {(cfg.steps - step) / max(rate, 1e-9) / 60:.1f} min ")
            sys.stderr.flush()
        if (step % cfg.checkpoint_every == 0 or step == cfg.steps) and ranks.main:
            save(step, last)
    if progress and ranks.main:
        sys.stderr.write("\n")
    quality = None
    if ranks.main:
        if heldout is not None:
            model.eval()
            quality = evaluate_midi2mel(model, heldout, mean_frame, dev)
        save(step, last, quality)
    finish(ranks)
    return {"out": str(out), "steps": step, "seconds": seconds, "loss": last, "quality": quality}


def evaluate_midi2mel(model, heldout, mean_frame: np.ndarray, dev=None, png=None) -> dict:
    """Log-mel L1 on held-out clips (all frames; sounding frames: any note sounding) beside the
    mean-frame and silence floors; with ``png``, the first clip's mels side by side."""
    import torch
    dev = dev or torch.device("cpu")
    cfg = model.config
    frames = RollFrames(heldout, cfg)
    pred = frames.predict(model, dev)
    err = np.abs(pred - frames.mel).mean(axis=1)
    sounding = (frames.start[1:] - frames.start[:-1]) > 0
    silence = math.log(cfg.floor) / (math.log(10) if cfg.log10 else 1)
    floors = {"mean_frame": np.abs(mean_frame[None] - frames.mel).mean(axis=1),
              "silence": np.abs(silence - frames.mel).mean(axis=1)}

    def summary(e):
        return {"all": round(float(e.mean()), 4), "sounding": round(float(e[sounding].mean()), 4)}
    q = {"heldout": [s["folder"] for s in frames.sources], "seconds": round(frames.seconds, 1),
         "log_mel_l1": summary(err), "floors": {k: summary(v) for k, v in floors.items()},
         "log": "log10" if cfg.log10 else "natural"}
    if png is not None:
        n = min(frames.clip_frames[0], int(12 * cfg.sample_rate / cfg.hop))
        write_mel_png(png, frames.mel[:n], pred[:n], cfg.sample_rate / cfg.hop)
        q["png"] = Path(png).name
    return q


def write_mel_png(path, target: np.ndarray, pred: np.ndarray, frame_rate: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    lo, hi = float(np.percentile(target, 2)), float(target.max())
    for a, m, title in ((ax[0], target, "rendered by FluidR3 (analysed)"), (ax[1], pred, "MIDI to mel (predicted)")):
        a.imshow(m.T, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma",
                 extent=(0, m.shape[0] / frame_rate, 0, m.shape[1]))
        a.set_title(title, fontsize=9)
        a.set_ylabel("mel band")
    ax[1].set_xlabel("seconds")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


def load_midi2mel_model(path):
    """(the ``MidiToMel`` of a midi2mel checkpoint, its card): no vocoder needed."""
    from .checkpoint import CheckpointError, read_checkpoint
    from .midi_to_mel import MidiToMel, MidiToMelConfig
    from .vocoder_instrument import _load_state
    meta, tensors = read_checkpoint(path)
    if meta["family"] != "midi2mel":
        raise CheckpointError(f"{path}: a {meta['family']} checkpoint, not midi2mel")
    try:
        model = MidiToMel(MidiToMelConfig.from_dict(meta["config"].get("midi2mel") or {}))
        _load_state(model, {k: v for k, v in tensors.items() if not k.startswith("vocoder/")})
    except ValueError as exc:
        raise CheckpointError(f"{path}: invalid midi2mel checkpoint: {exc}") from None
    return model.eval(), meta["card"]


HELD_NOTES = (45, 57, 64, 69, 76)      # MIDI keys held 2.5 s for the card's pitch measure


def evaluate_checkpoint(path, heldout, png=None, max_seconds: float = 60.0) -> dict:
    """:func:`evaluate_midi2mel` of a checkpoint (its card's training mean frame as the floor);
    with a vocoder in it, :func:`evaluate_playing` and how soon a note sounds (``note_onset``) too."""
    from .checkpoint import read_checkpoint
    model, card = load_midi2mel_model(path)
    mean = np.asarray(card.get("mean_frame") or [], np.float32)
    if mean.shape != (model.config.n_mels,):
        raise ValueError(f"{path}: the card has no training mean frame to compare with")
    q = evaluate_midi2mel(model, heldout, mean, png=png)
    if read_checkpoint(path)[0]["config"].get("vocoder"):
        audio_png = None if png is None else Path(png).with_name(Path(png).stem + "-audio.png")
        q["playing"] = evaluate_playing(path, heldout, audio_png, max_seconds)
        from .checkpoint import load_generator
        from .note_onset import onset_times
        try:
            q["onset"] = onset_times(load_generator(path))
        except ValueError as exc:            # a model that stays silent: said, not measured
            q["onset_error"] = str(exc)
        from .held_note import held_midi_note
        q["held_notes"], q["held_note_spurs_db"] = {}, {}
        for n in HELD_NOTES:
            try:
                cents, spur = held_midi_note(load_generator(path), n)
                q["held_notes"][str(n)], q["held_note_spurs_db"][str(n)] = round(cents, 1), round(spur, 1)
            except ValueError:                  # silent there: no pitch to read
                q["held_notes"][str(n)] = q["held_note_spurs_db"][str(n)] = None
    q["metric"] = ("mean absolute difference of log-mel frames (natural log) between the model's frames and the "
                   "engine's analysis of the held-out audio, over all frames and over frames where a note sounds")
    return q


def evaluate_playing(path, heldout, png=None, max_seconds: float = 60.0, render_rate: int = 48000) -> dict:
    """The instrument as a performer hears it: each held-out clip's MIDI rendered through the
    engine (MIDI to mel, the vocoder, 32 voices, cropped by the declared latency) against the
    FluidR3 audio it came from, beside the default instrument on the same MIDI (level-matched):
    the multi-scale spectral distance (FFT sizes scaled to the data rate), each render aligned
    to the reference by its envelope within 20 ms (fluidsynth acts on events a block late)."""
    from .checkpoint import load_generator
    from .ddsp_evaluation import align, plot_comparison, render_clip
    from .default_instrument import DefaultInstrument
    from .roll_data import load_roll_dataset
    from .spectral_loss import spectral_distance_np
    d_model, d_default, seconds = [], [], 0.0
    for folder in dataset_folders(heldout):
        meta, clips = load_roll_dataset(folder)
        sr = int(meta["sample_rate"])
        for name, clip in zip(meta["clips"], clips, strict=True):
            if seconds >= max_seconds:
                break
            midi = Path(folder) / f"{name}.mid"
            if not midi.is_file():
                raise FileNotFoundError(f"{midi}: held-out clips need the MIDI they were rendered from")
            ref = clip["audio"]
            n = ref.size
            y = render_clip(load_generator(path), midi, render_rate, sr, polyphony=32)
            z = render_clip(DefaultInstrument(), midi, render_rate, sr, polyphony=32)
            y, z = (np.pad(a, (0, max(0, n - a.size)))[:n] for a in (y, z))
            rms = lambda a: float(np.sqrt(np.mean(np.square(a, dtype=np.float64))) + 1e-12)  # noqa: E731
            z = z * (rms(ref) / rms(z))
            lag = int(0.02 * sr)
            y, z = align(y, ref, lag), align(z, ref, lag)
            d_model.append(spectral_distance_np(y, ref, sr))
            d_default.append(spectral_distance_np(z, ref, sr))
            if png is not None and seconds == 0.0:
                plot_comparison(ref, y, z, sr, png, f"{Path(path).name}: held-out {midi.name}",
                                labels=("FluidR3 (reference)", "this model, played from the MIDI",
                                        "default instrument, played from the MIDI"))
            seconds += n / sr
    dm, dd = float(np.mean(d_model)), float(np.mean(d_default))
    q = {"seconds": round(seconds, 1), "spectral_distance_model": round(dm, 4),
         "spectral_distance_default": round(dd, 4), "closer_than_default_pct": round(100.0 * (1.0 - dm / dd), 1),
         "metric": "multi-scale spectral distance (FFT sizes scaled to the data rate) of the engine's render from "
                   "the MIDI against the FluidR3 audio; the default instrument level-matched"}
    if png is not None:
        q["png"] = Path(png).name
    return q


def write_midi2mel_card_markdown(model_path) -> Path:
    """``MODEL.md`` beside a midi2mel checkpoint: its card as a page a person reads."""
    from .checkpoint import read_checkpoint
    path = Path(model_path)
    meta, _ = read_checkpoint(path)
    card, cfg = meta["card"], meta["config"]
    c, t, q = cfg.get("midi2mel", {}), card.get("training", {}), card.get("quality", {})
    voc = cfg.get("vocoder")
    grid_ms = 1000 * c.get("hop", 0) / max(1, c.get("sample_rate", 1))
    voc_line = f"{voc['family']} ({card.get('vocoder')})" if voc else "none (add one with livewave chain)"
    lines = [f"# {path.stem}: {card.get('instrument', '')} (midi2mel)", "",
             f"`{path.name}`, {path.stat().st_size / 1e6:.2f} MB. A MIDI-to-mel model of {card.get('parameters')} "
             f"parameters (one {c.get('layers')}-layer, {c.get('hidden')}-wide network per sounding note over a "
             f"fixed harmonic comb; the frame is the sum over notes) making {c.get('n_mels')}-band log-mel frames at "
             f"{c.get('sample_rate')} Hz, hop {c.get('hop')} (onsets on a {grid_ms:.1f} ms grid); "
             f"a released note rings {c.get('tail')} s.",
             "", f"Vocoder: {voc_line}.",
             "", "## Data", "",
             *[f"- {s.get('instrument')}: {s.get('minutes')} min, seed {s.get('seed')}, `{s.get('folder')}`"
               for s in card.get("data", {}).get("sources", [])],
             "", "## Training", "",
             f"- {t.get('steps')} steps of {t.get('batch_frames')} random frames, lr {t.get('learning_rate')} "
             f"(cosine to a tenth), seed {t.get('seed')}, on {t.get('device')}, {(t.get('seconds') or 0) / 60:.1f} min; "
             f"final training log-mel L1 {t.get('final_loss')}",
             "", "## Held-out quality", ""]
    if not q:
        lines += ["Not measured yet.", ""]
    else:
        fl = q["floors"]
        lines += [f"On {q['seconds']} s the model never saw (`{', '.join(q['heldout'])}`):", "",
                  "| log-mel L1 | all frames | frames with a note |", "| --- | ---: | ---: |",
                  f"| this model | {q['log_mel_l1']['all']} | {q['log_mel_l1']['sounding']} |",
                  f"| the training data's mean frame | {fl['mean_frame']['all']} | {fl['mean_frame']['sounding']} |",
                  f"| silence | {fl['silence']['all']} | {fl['silence']['sounding']} |", "",
                  f"Metric: {q.get('metric', 'log-mel L1')}.", "",
                  f"![the mel frames]({q.get('png', path.stem + '.png')})", ""]
        pl = q.get("playing")
        if pl:
            lines += ["## Played from MIDI, through the vocoder", "",
                      f"{pl['seconds']} s of the held-out MIDI rendered by the engine (`livewave eval`), against "
                      "the FluidR3 audio:", "",
                      "| | multi-scale spectral distance |", "| --- | ---: |",
                      f"| this model | {pl['spectral_distance_model']} |",
                      f"| the default instrument (level-matched) | {pl['spectral_distance_default']} |", "",
                      f"{pl['closer_than_default_pct']}% closer than the default instrument. Metric: {pl['metric']}.",
                      "", f"![played from MIDI]({pl.get('png', '')})", ""]
        on = q.get("onset")
        if on:
            lines += ["## From a note-on to its sound", "",
                      f"Key {on['key']}, velocity {on['velocity']}, at {on['rate']} Hz, {on['phases']} note-ons spread "
                      "over one frame, each through a fresh engine (`livewave/note_onset.py`; medians):", "",
                      "| declared latency | to 5% of the peak | range | to 50% of the peak |",
                      "| ---: | ---: | ---: | ---: |",
                      f"| {on['declared_ms']} ms | {on['first_ms']} ms | {on['first_range_ms'][0]}-"
                      f"{on['first_range_ms'][1]} ms | {on['half_ms']} ms |", "",
                      "The wait for the next frame (up to one hop) and the model's own attack make the "
                      "difference from the declared latency.", ""]
        held = q.get("held_notes")
        if held:
            lines += ["## Held notes", "",
                      "Each key held 2.5 s at velocity 100 through the engine at 48 kHz; where the strongest peak "
                      "near its fundamental lies from 1.35 to 2.4 s (`livewave/held_note.py`), in cents from the "
                      "key's equal-tempered pitch:", "",
                      "| key | " + " | ".join(held) + " |", "| --- |" + " ---: |" * len(held),
                      "| cents | " + " | ".join("silent" if v is None else f"{v:+.1f}" for v in held.values())
                      + " |",
                      *(["| strongest other peak within half an octave, dB | "
                         + " | ".join("-" if v is None else f"{v:+.1f}" for v in spurs.values()) + " |"]
                        if (spurs := q.get("held_note_spurs_db")) else []), ""]
    from .load_screen import card_lines
    lines += card_lines(card)
    md = path.with_suffix(".md")
    md.write_text("\n".join(lines))
    return md
