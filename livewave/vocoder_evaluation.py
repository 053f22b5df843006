"""Held-out quality of a vocoder by copy synthesis: audio -> mel -> vocoder, against Griffin-Lim.

For each held-out clip (any audio folder; resampled to the model's rate), the mel frames come
from the engine's own analysis (``mel_analysis.analyse``, the model's mel settings). The vocoder
renders them offline, and Griffin-Lim gets the same frames as the floor: ``librosa``'s
mel-to-STFT inversion (Slaney mels, magnitudes) then 32 Griffin-Lim iterations. The two outputs
are scored against the original with:
- the multi-resolution STFT distance (``spectral_loss.spectral_distance_np``, FFT sizes scaled
  to the rate), and
- the log-mel L1 distance (natural log, the model's own mel analysis, mean over frames and
  bands).
Griffin-Lim's output is centred on its frames while livewave's analysis is causal (measured:
256 samples late at n_fft 1024, hop 256), so each output is aligned to the original by the lag
(within one analysis window) that maximises the cross-correlation of their energy envelopes
before it is scored. The vocoder's output is taken where the instrument plays it: shifted by its
declared content delay where it was trained on livewave's frames (0 for a causal MelGAN, flow
or HiFi-GAN, one hop for the iSTFT vocoder), not searched for: a search on the envelope picked
lags up to 4 hops off on a sustained violin (measured), which scored a fair model as a poor one.
An imported model (trained on centred frames) is aligned by the search, like Griffin-Lim.

A vocoder that takes its phases from its source (``takes_source``: an iSTFT model with
``phase="source"``, or a flow driven by its source's excitation, ``source_excitation``) is scored as
it plays audio in: the mel and the phases of the original. That
is not a like-for-like comparison with Griffin-Lim, which has the mel alone, so it is also scored
from the mel alone (its network's own phases: ``*_own_phase``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def griffin_lim(log_mel: np.ndarray, sample_rate: int, mel_cfg: dict, n_iter: int = 32) -> np.ndarray:
    """``log_mel``: ``[frames, n_mels]`` natural-log magnitudes (``mel_cfg['log10']`` honoured)."""
    import librosa
    mag = np.power(10.0, log_mel) if mel_cfg.get("log10") else np.exp(log_mel)
    n_fft, hop = int(mel_cfg["n_fft"]), int(mel_cfg["hop"])
    stft = librosa.feature.inverse.mel_to_stft(mag.T.astype(np.float64), sr=sample_rate, n_fft=n_fft, power=1.0,
                                               fmin=float(mel_cfg.get("fmin") or 0.0), fmax=mel_cfg.get("fmax"),
                                               htk=False, norm="slaney")
    y = librosa.griffinlim(stft, n_iter=n_iter, hop_length=hop, win_length=n_fft, window="hann", center=True,
                           random_state=0)
    return y.astype(np.float32)


def _envelope(x: np.ndarray, width: int = 256) -> np.ndarray:
    e = np.convolve(x.astype(np.float64) ** 2, np.ones(width) / width, "same")
    return e - e.mean()


def align(y: np.ndarray, ref: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Shift ``y`` by the lag in -max_lag..max_lag whose energy envelope best matches ``ref``'s
    (phase-blind: Griffin-Lim's phases are its own); both cut to the overlap."""
    n = min(y.size, ref.size)
    a, b = _envelope(ref[:n]), _envelope(y[:n])
    size = 1 << int(np.ceil(np.log2(2 * n)))
    xc = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    vals = np.concatenate([xc[:max_lag + 1], xc[-max_lag:]])
    lag = int(lags[int(np.argmax(vals))])        # ref[k] ~ y[k - lag]
    return shift(y, ref, lag)


def shift(y: np.ndarray, ref: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``y`` and ``ref`` cut to their overlap with ``ref[k] ~ y[k - lag]``."""
    n = min(y.size, ref.size)
    if lag >= 0:
        return y[:n - lag], ref[lag:n], lag
    return y[-lag:n], ref[:n + lag], lag


def band_groups(n_mels: int, parts: int = 4) -> list[tuple[int, int]]:
    """The mel bands in ``parts`` equal runs (for the log-mel L1 by frequency range)."""
    cuts = np.linspace(0, n_mels, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def band_edges_hz(groups: list[tuple[int, int]], sample_rate: int, mel_cfg: dict) -> list[list[int]]:
    """Each run of bands as [low, high] Hz: from the lower edge of its first triangle to the upper
    edge of its last (``mel_analysis.mel_filterbank``'s edges)."""
    from .mel_analysis import hz_to_mel, mel_to_hz
    n = int(mel_cfg["n_mels"])
    fmin = float(mel_cfg.get("fmin") or 0.0)
    fmax = float(mel_cfg.get("fmax") or sample_rate / 2.0)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n + 2))
    return [[int(round(float(edges[a]))), int(round(float(edges[b + 1])))] for a, b in groups]


VALLEY_DEPTH = 4.0     # nats below its frame's loudest band: a mel cell from there down is a valley


def level_split(log_out: np.ndarray, log_ref: np.ndarray, depth: float = VALLEY_DEPTH) -> dict:
    """The log-mel error ``log_out - log_ref`` (``[frames, bands]``) split by where the reference
    cell lies: on the partials (within ``depth`` nats of its frame's loudest band) or in the
    valleys between them. Mean absolute and mean signed error in each, and the valleys' share of
    the cells. A positive signed error in the valleys is energy where the original has none:
    noise or smeared partials filling the gaps."""
    err = log_out - log_ref
    valley = log_ref < log_ref.max(axis=1, keepdims=True) - depth
    out = {"valley_share": float(valley.mean())}
    for name, sel in (("valleys", valley), ("partials", ~valley)):
        out[f"{name}_abs"] = float(np.abs(err[sel]).mean()) if sel.any() else 0.0
        out[f"{name}_signed"] = float(err[sel].mean()) if sel.any() else 0.0
    return out


def evaluate_vocoder(model_path, heldout_dir, plot=None, log=print, max_seconds: float = 120.0) -> dict:
    from .checkpoint import load_generator
    from .ddsp_evaluation import plot_comparison
    from .held_note import HELD_NOTE_HZ, held_notes
    from .mel_analysis import analyse
    from .spectral_loss import spectral_distance_np
    from .vocoder_training import load_audio_folder
    gen = load_generator(model_path)
    if gen.info.conditioning != "audio" or not hasattr(gen, "offline"):
        raise ValueError(f"{model_path}: a {gen.info.family} model; vocoder evaluation takes a vocoder")
    sr, m = int(gen.info.sample_rate), gen.mel_cfg
    kw = {k: m[k] for k in ("n_fft", "hop", "n_mels", "fmin", "fmax", "floor", "log10")}
    clips, skipped = load_audio_folder(heldout_dir, sr)
    source = bool(getattr(gen, "takes_source", False))
    total = {"model": [0.0, 0.0], "gl": [0.0, 0.0], "own": [0.0, 0.0]}
    groups = band_groups(int(m["n_mels"]))
    by_band = {"model": np.zeros(len(groups)), "gl": np.zeros(len(groups))}
    by_level = {"model": {}, "gl": {}}
    seconds, lags = 0.0, {"model": [], "gl": []}
    for i, x in enumerate(clips):
        if seconds >= max_seconds:
            break
        mel = analyse(x, sr, **kw)
        outs = {"model": gen.offline(mel, x), "gl": griffin_lim(mel, sr, m)}
        if source:
            outs["own"] = gen.offline(mel)
        w = x.size / sr
        seconds += w
        shown = {}
        for name, out in outs.items():
            if name != "gl" and hasattr(gen, "content_delay") and not getattr(gen, "centred", False):
                a, ref, lag = shift(out, x, -int(gen.content_delay))       # where the instrument puts it
            else:
                a, ref, lag = align(out, x, int(m["n_fft"]))
            total[name][0] += w * spectral_distance_np(a, ref, sr)
            la, lr = analyse(a, sr, **kw), analyse(ref, sr, **kw)
            err = np.abs(la - lr)
            total[name][1] += w * float(err.mean())
            if name == "own":               # from the mel alone: the two distances only
                continue
            lags[name].append(lag)
            shown[name] = a
            by_band[name] += w * np.array([err[:, b0:b1].mean() for b0, b1 in groups])
            for k, v in level_split(la, lr).items():
                by_level[name][k] = by_level[name].get(k, 0.0) + w * v
        if plot and i == 0:
            plot_comparison(x, shown["model"], shown["gl"], sr, plot, f"{Path(model_path).name}: copy synthesis of a "
                            "held-out clip", labels=("original (held out)", "vocoder, from the mel"
                                                     + (" and the original's phases" if source else ""),
                                                     "Griffin-Lim (32 iterations), from the same mel"))
        log(f"clip {i}: {w:.1f} s, model lag {lags['model'][-1]}, Griffin-Lim lag {lags['gl'][-1]}")
    q = {"heldout_seconds": round(seconds, 1), "heldout_clips": len(lags["model"]), "sample_rate": sr,
         "mrstft_model": round(total["model"][0] / seconds, 4),
         "mrstft_griffin_lim": round(total["gl"][0] / seconds, 4),
         "logmel_l1_model": round(total["model"][1] / seconds, 4),
         "logmel_l1_griffin_lim": round(total["gl"][1] / seconds, 4),
         "lags_model": sorted(set(lags["model"])), "skipped": skipped[:10],
         "logmel_l1_bands_hz": band_edges_hz(groups, sr, m),
         "logmel_l1_bands_model": [round(float(v) / seconds, 4) for v in by_band["model"]],
         "logmel_l1_bands_griffin_lim": [round(float(v) / seconds, 4) for v in by_band["gl"]],
         "logmel_by_level": {who: {k: round(v / seconds, 4) for k, v in by_level[name].items()}
                             for who, name in (("model", "model"), ("griffin_lim", "gl"))},
         "logmel_valley_depth_nats": VALLEY_DEPTH,
         "metric": "copy synthesis (audio -> livewave mel -> vocoder); multi-resolution STFT distance "
                   "(spectral_loss, FFT sizes scaled to the rate) and log-mel L1 (natural log) against the "
                   "original; a model trained on livewave's frames taken at its declared delay, Griffin-Lim "
                   "and imported models aligned by their energy envelope's cross-correlation; Griffin-Lim: "
                   "librosa mel_to_stft + 32 iterations on the same mel"}
    if source:
        q["phase"] = "source"
        q["mrstft_model_own_phase"] = round(total["own"][0] / seconds, 4)
        q["logmel_l1_model_own_phase"] = round(total["own"][1] / seconds, 4)

    def copy_synthesis(x: np.ndarray, who: str) -> np.ndarray:
        mel = analyse(x, sr, **kw)
        if who == "griffin_lim":
            return griffin_lim(mel, sr, m)
        return gen.offline(mel, x if who == "model" else None)

    q["held_note_hz"] = list(HELD_NOTE_HZ)
    for who in ("model", "griffin_lim") + (("model_own_phase",) if source else ()):
        q[f"held_note_cents_{who}"], q[f"held_note_spur_db_{who}"] = held_notes(
            lambda x, who=who: copy_synthesis(x, who), sr)
    log("held notes, cents off: model " + " ".join(f"{c:+.1f}" for c in q["held_note_cents_model"]))
    from .onset_burst import onset_figures  # out-of-training sounds after silence (onset_burst)
    q["onsets"] = onset_figures(lambda x: copy_synthesis(x, "model"), sr)
    net = getattr(gen, "model", None)
    if getattr(net, "level_fb", None) is not None:  # and the network alone, without the level bound
        fb = net.level_fb
        net.set_level_reference(None)
        try:
            q["onsets_network_alone"] = onset_figures(lambda x: copy_synthesis(x, "model"), sr)
        finally:
            net.set_level_reference(fb, net.mel_log10)
    if gen.info.family == "flow":
        q.update(flow_figures(gen.model, clips, sr, kw, max_seconds))
    q["mrstft_better_than_griffin_lim_pct"] = round(100 * (1 - q["mrstft_model"] / q["mrstft_griffin_lim"]), 1)
    q["logmel_better_than_griffin_lim_pct"] = round(100 * (1 - q["logmel_l1_model"] / q["logmel_l1_griffin_lim"]),
                                                    1)
    return q


FLOW_SIGMAS = (0.0, 0.3, 0.6, 0.9)


def flow_figures(model, clips, sr: int, kw: dict, max_seconds: float, sigmas=FLOW_SIGMAS) -> dict:
    """A flow vocoder's density on the held-out audio, and what its temperature does.

    - ``nll_nats_per_sample``: -log p(audio | mel) under z ~ N(0, 1), the quantity training
      minimises, over each whole clip (each audio frame with the mel frame that ends with it, as
      in training; a model driven by a source: the clip's own source spectra, and the audio
      ``output_delay`` late, as it plays), weighted by length; beside it the same audio under the
      identity flow (an untrained one: the standard normal density of the samples themselves);
    - ``sigma_rms_ratio``: for each sampling temperature, the RMS of the copy synthesis over the
      original's (the same noise seed at every sigma)."""
    import math

    import torch

    from .mel_analysis import analyse
    from .source_phase import source_spectrum
    nll = base = n_total = 0.0
    rms = {s: 0.0 for s in sigmas}
    ref_energy = 0.0
    seconds = 0.0
    hop, delay = int(model.config.hop), int(model.output_delay)
    with torch.inference_mode():
        for x in clips:
            if seconds >= max_seconds:
                break
            seconds += x.size / sr
            mel = torch.from_numpy(np.ascontiguousarray(analyse(x, sr, **kw).T[None], np.float32))
            frames = mel.shape[2]
            clip = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None]
            source = source_spectrum(clip, model.config.source_n_fft, hop)[:, :, :frames] if model.takes_source \
                else None
            # as the model plays it (an MDCT flow's frame 0 begins a hop early: audio_lead)
            audio = torch.nn.functional.pad(clip, (delay, 0))[:, :frames * hop + model.audio_lead]
            nll += float(model.negative_log_likelihood(audio, mel, source=source)) * frames * hop
            audio = audio[:, :frames * hop]
            base += float((0.5 * audio.double() ** 2).sum()) + audio.numel() * 0.5 * math.log(2 * math.pi)
            n_total += audio.numel()
            ref_energy += float((audio.double() ** 2).sum())
            z = model.noise(mel, 1.0, generator=torch.Generator().manual_seed(0))
            for s in sigmas:
                model.reset()
                rms[s] += float((model.infer(mel, z=s * z, source=source).double() ** 2).sum())
    return {"nll_nats_per_sample": round(nll / n_total, 4), "nll_identity_flow": round(base / n_total, 4),
            "sigma_rms_ratio": {f"{s:g}": round(math.sqrt(rms[s] / max(ref_energy, 1e-30)), 4) for s in sigmas}}


def write_vocoder_card_markdown(model_path) -> Path:
    """``MODEL.md`` beside a vocoder checkpoint: its card as a page a person reads."""
    from .checkpoint import read_checkpoint
    path = Path(model_path)
    meta, _ = read_checkpoint(path)
    card, cfg = meta["card"], meta["config"]
    d, t, q = card.get("data", {}), card.get("training", {}), card.get("quality", {})
    mc, mel = cfg.get("melgan", {}), cfg.get("mel", {})
    if meta["family"] == "hifigan":
        hc = cfg.get("hifigan", {})
        from .checkpoint import load_generator
        lag = load_generator(path).info.card.get("stream_lag_frames", "?")
        arch = (f"A HiFi-GAN generator (resblock {hc.get('resblock')}, {hc.get('upsample_initial_channel')} channels, "
                f"rates {hc.get('upsample_rates')}), not causal: the engine streams it with its lookahead "
                f"({lag} frames)")
    elif meta["family"] == "istft":
        ic = cfg.get("istft", {})
        arch = (f"A causal iSTFT GAN vocoder ({ic.get('blocks')} residual blocks of {ic.get('channels')} channels at "
                f"the frame rate, then an inverse FFT of {ic.get('n_fft')} with overlap-add)")
    elif meta["family"] == "flow":
        fc = cfg.get("flow", {})
        arch = (f"A causal WaveGlow-style flow ({fc.get('n_flows')} flows, groups of {fc.get('n_group')}, WaveNets of "
                f"{fc.get('wn_layers')} layers x {fc.get('wn_channels')} channels), sampled at sigma 0.6"
                + (f", driven by its source's excitation (spectra of {fc['source_n_fft']} samples): it sounds "
                   f"{fc['source_n_fft'] - fc['hop']} samples behind its input (declared as latency)"
                   if fc.get("source_n_fft") else ""))
    else:
        arch = f"A causal MelGAN (ngf {mc.get('ngf')}, ratios {mc.get('ratios')})"
    lines = [f"# {path.stem}: {card.get('instrument', '')} ({meta['family']})", "",
             f"`{path.name}`, {path.stat().st_size / 1e6:.2f} MB, {card.get('parameters', '?')} parameters, "
             f"{card.get('sample_rate')} Hz. {arch}, hop {mel.get('hop')}, on {mel.get('n_mels')} log-mel bands "
             f"(n_fft {mel.get('n_fft')}), the engine's own analysis. "
             + {"istft": "It sounds one hop behind its input (declared as latency).",
                "hifigan": "Its lookahead is declared as latency.",
                "flow": "" if cfg.get("flow", {}).get("source_n_fft") else "It streams with no lookahead.",
                }.get(meta["family"], "It streams with no lookahead."),
             "",
             "## Data", "",
             f"- {d.get('seconds')} s of audio from {d.get('files')} files under `{d.get('folder')}`"
             + (f" ({len(d.get('skipped') or [])} skipped)" if d.get("skipped") else ""),
             *[f"- {line}" for line in card.get("data_notes", [])],
             "", "## Training", "",
             f"- {t.get('steps')} steps (batch {t.get('batch')}, crops of {t.get('crop_frames')} frames, lr "
             f"{t.get('learning_rate')}, seed {t.get('seed')}) on {t.get('device')}, "
             f"{(t.get('seconds') or 0) / 60:.1f} min; final loss {t.get('final_loss')}",
             "- the exact negative log-likelihood, z ~ N(0, 1)"
             + (f", plus the multi-resolution STFT distance (weight {t.get('sample_weight')}) and log-mel L1 (weight "
                f"{t.get('mel_weight')}) of a sample drawn at sigma 0.6 against the audio" if t.get("sample_weight")
                else "")
             + (f"; lr decayed to a tenth over {t.get('decay_steps')} steps" if t.get("decay_steps") else "")
             + (f"; the weights exported are a moving average (decay {t.get('ema')})" if t.get("ema") else "")
             if meta["family"] == "flow" else
             "- multi-resolution STFT loss"
             + (f" plus the log-mel L1 (weight {t.get('mel_weight')})" if t.get("mel_weight") else "")
             + f"; the GAN ({t.get('discriminators')}) from step {t.get('gan_start')}"
             + (" (not reached)" if (t.get("gan_start") or 0) >= (t.get("steps") or 0) else ""),
             *([f"- fine-tuned (`--init`) from {f.get('name')}, itself trained {f.get('steps')} steps on "
                f"{f.get('data_seconds')} s of audio under `{f.get('data')}`; the steps above are the fine-tune's"]
               if (f := t.get("fine_tuned_from")) else []),
             *[f"- {line}" for line in card.get("training_notes", [])],
             "", "## Held-out quality (copy synthesis)", ""]
    if q:
        src = q.get("phase") == "source"
        lines += [f"Measured with `livewave eval {path.name} --data <held-out folder>` on {q['heldout_seconds']} s "
                  f"({q['heldout_clips']} clips) the model never saw.", "",
                  *([("This flow is driven by its source's excitation (its phases, its levels flattened; "
                      "`source_excitation`)" if meta["family"] == "flow" else
                      "This vocoder takes its phases from its source (`phase: source`)")
                     + ". Played from audio in, that source is the input itself, so \"this vocoder\" below had the "
                     "original's phases: not a like-for-like comparison with Griffin-Lim, which has the mel alone. "
                     "The row \"from the mel alone\" is " + ("with a silent excitation." if meta["family"] == "flow"
                                                           else "(the network's own phases, as with no source)."),
                     ""] if src else []),
                  "| | multi-resolution STFT distance | log-mel L1 |", "| --- | ---: | ---: |",
                  f"| this vocoder{', with the source phases' if src else ''} | {q['mrstft_model']} | "
                  f"{q['logmel_l1_model']} |",
                  *([f"| this vocoder, from the mel alone | {q['mrstft_model_own_phase']} | "
                     f"{q['logmel_l1_model_own_phase']} |"] if src else []),
                  f"| Griffin-Lim, 32 iterations (the floor) | {q['mrstft_griffin_lim']} | {q['logmel_l1_griffin_lim']} |",
                  "", f"Against Griffin-Lim{' (this vocoder with the source phases)' if src else ''}: "
                  f"{q['mrstft_better_than_griffin_lim_pct']}% lower STFT distance, "
                  f"{q['logmel_better_than_griffin_lim_pct']}% lower log-mel L1 (negative: worse).", ""]
        if q.get("logmel_l1_bands_model"):
            bands = q["logmel_l1_bands_hz"]
            lines += ["The log-mel L1 by frequency range (mel bands in four equal runs):", "",
                      "| | " + " | ".join(f"{lo}-{hi} Hz" for lo, hi in bands) + " |",
                      "| --- |" + " ---: |" * len(bands),
                      "| this vocoder | " + " | ".join(str(v) for v in q["logmel_l1_bands_model"]) + " |",
                      "| Griffin-Lim | " + " | ".join(str(v) for v in q["logmel_l1_bands_griffin_lim"]) + " |", ""]
        if q.get("logmel_by_level"):
            lv, depth = q["logmel_by_level"], q.get("logmel_valley_depth_nats")
            lines += [f"The log-mel error on the partials (cells within {depth:g} nats of their frame's loudest band) "
                      f"and in the valleys between them ({100 * lv['model']['valley_share']:.0f}% of the cells); "
                      "a positive signed error in the valleys is energy where the original has none:", "",
                      "| | partials | signed | valleys | signed |", "| --- | ---: | ---: | ---: | ---: |",
                      *[f"| {label} | {lv[who]['partials_abs']} | {lv[who]['partials_signed']:+} | "
                        f"{lv[who]['valleys_abs']} | {lv[who]['valleys_signed']:+} |"
                        for label, who in (("this vocoder", "model"), ("Griffin-Lim", "griffin_lim"))], ""]
        held_rows = (("this vocoder" + (", the tone's own phases" if src else ""), "held_note_cents_model"),
                     *([("this vocoder, from the mel alone", "held_note_cents_model_own_phase")] if src else []),
                     ("Griffin-Lim", "held_note_cents_griffin_lim"))
        if q.get("held_note_cents_model"):
            lines += ["Held notes: steady tones of 8 harmonics (1/k amplitudes, 2 s) through analysis and the "
                      "vocoder; where the strongest peak near the fundamental lies in the second second, in cents "
                      "from the note:", "",
                      "| Hz | " + " | ".join(f"{f:g}" for f in q["held_note_hz"]) + " |",
                      "| --- |" + " ---: |" * len(q["held_note_hz"]),
                      *[f"| {label} | " + " | ".join("silent" if c is None else f"{c:+.1f}" for c in q[key]) + " |"
                        for label, key in held_rows], ""]
            if q.get("held_note_spur_db_model"):
                lines += ["How clean each held tone is: the strongest other peak within half an octave of the "
                          "fundamental (more than 50 cents from it), in dB against the fundamental's:", "",
                          "| Hz | " + " | ".join(f"{f:g}" for f in q["held_note_hz"]) + " |",
                          "| --- |" + " ---: |" * len(q["held_note_hz"]),
                          *[f"| {label} | " + " | ".join("silent" if c is None else f"{c:+.1f}"
                                                         for c in q[key.replace("cents", "spur_db")])
                            + " |" for label, key in held_rows], ""]
    if q.get("nll_nats_per_sample") is not None:
        lines += [f"The density: the held-out audio's negative log-likelihood under the flow (z ~ N(0, 1), what "
                  f"training minimises) is {q['nll_nats_per_sample']} nats per sample, against "
                  f"{q['nll_identity_flow']} under the identity flow (an untrained one: the samples' own standard "
                  "normal density). The sampling temperature sigma (the `sigma` control), the copy synthesis's RMS "
                  "over the original's, the same noise at every sigma:", "",
                  "| sigma | " + " | ".join(q["sigma_rms_ratio"]) + " |",
                  "| --- |" + " ---: |" * len(q["sigma_rms_ratio"]),
                  "| RMS / original's | " + " | ".join(f"{v:g}" for v in q["sigma_rms_ratio"].values()) + " |", ""]
    if q.get("onsets"):
        alone = q.get("onsets_network_alone") or {}
        lines += ["Onsets after silence (`onset_burst`): sounds out of any training, each after 1 s of digital "
                  "silence, through copy synthesis; the largest sample in the first 0.25 s after the onset and "
                  "the RMS from 0.5 to 1.5 s, over the input's own (1: as loud as what came in)"
                  + ("; the network alone is this model without its level bound (`istft_vocoder`, Level)"
                     if alone else "") + ":", "",
                  "| sound | onset peak | sustained RMS |" + (" network alone: onset peak | sustained RMS |"
                                                              if alone else ""),
                  "| --- | ---: | ---: |" + (" ---: | ---: |" if alone else ""),
                  *[f"| {name} | {v[0]:g} | {v[1]:g} |" + (f" {alone[name][0]:g} | {alone[name][1]:g} |"
                                                          if name in alone else "")
                    for name, v in q["onsets"].items()], ""]
    from .ddsp_evaluation import write_card_page
    return write_card_page(path, lines, q, card)
