"""``livewave train ddsp`` and ``livewave eval``: the command-line side of training.

Only argument parsing and printing live here; torch and the trainer are imported when a
command runs, so ``livewave --help`` and the live commands stay fast.
"""
from __future__ import annotations

import argparse
import json
import sys


def add_parsers(sub) -> None:
    t = sub.add_parser("train", help="train a model on a dataset made by 'livewave data'")
    fam = t.add_subparsers(dest="family", required=True)
    d = fam.add_parser("ddsp", help="a DDSP instrument (harmonic-plus-noise decoder)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument("--data", required=True, help="dataset folder (livewave data soundfont|audio)")
    d.add_argument("--out", required=True, help="checkpoint to write, e.g. models/violin.safetensors; "
                                                 "OUT.train.pt holds the state a rerun resumes from")
    d.add_argument("--steps", type=int, default=3000)
    d.add_argument("--batch", type=int, default=16)
    d.add_argument("--crop-seconds", type=float, default=1.0)
    d.add_argument("--lr", type=float, default=2e-3)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--checkpoint-every", type=int, default=250)
    d.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    d.add_argument("--hidden", type=int, default=128, help="GRU width")
    d.add_argument("--name", help="instrument name in the model card (default: the file name)")
    d.add_argument("--init", default="", metavar="CHECKPOINT",
                   help="fine-tune: start from this trained DDSP instrument (its sizes replace --hidden; the data "
                        "must be at its rate), e.g. a shipped one on your own recordings")
    d.add_argument("-q", "--quiet", action="store_true")
    d.set_defaults(func=cmd_train_ddsp)
    m = fam.add_parser("melgan", help="a MelGAN vocoder (mel frames to audio), from any folder of audio",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _vocoder_options(m, steps=20000, lr=2e-4)
    m.add_argument("--gan-start", type=int, default=2000, help="steps of spectral loss alone before the GAN joins")
    m.add_argument("--discriminators", default="msd", choices=("msd", "msd+mpd"),
                   help="MelGAN's multi-scale, or with HiFi-GAN's multi-period discriminator as well")
    m.add_argument("--ngf", type=int, default=32, help="generator width (32: 4.3 M parameters)")
    m.add_argument("--ratios", default="8,8,2,2", help="upsampling ratios; their product is the hop")
    m.set_defaults(func=cmd_train_vocoder, family="melgan")
    h = fam.add_parser("hifigan", help="a HiFi-GAN generator (the reference V1/V2/V3; not causal: it streams with "
                                       "its lookahead), from any folder of audio",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _vocoder_options(h, steps=20000, lr=2e-4)
    h.add_argument("--version", default="v3", choices=("v1", "v2", "v3"), help="the reference generator's size")
    h.add_argument("--channels", type=int, default=0, help="upsample_initial_channel (0: the version's)")
    h.add_argument("--gan-start", type=int, default=4000, help="steps of spectral loss alone before the GAN joins")
    h.add_argument("--discriminators", default="msd+mpd", choices=("msd", "msd+mpd"))
    h.add_argument("--mel-weight", type=float, default=1.0, help="weight of the log-mel L1 loss")
    h.set_defaults(func=cmd_train_vocoder, family="hifigan")
    i = fam.add_parser("istft", help="a causal GAN vocoder with an inverse-STFT output (iSTFTNet/Vocos style: cheap, "
                                     "learns fast), from any folder of audio",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _vocoder_options(i, steps=20000, lr=5e-4)
    i.add_argument("--gan-start", type=int, default=4000, help="steps of spectral loss alone before the GAN joins")
    i.add_argument("--discriminators", default="msd+mpd", choices=("msd", "msd+mpd"))
    i.add_argument("--hop", type=int, default=256, help="mel hop in samples")
    i.add_argument("--n-fft", type=int, default=512, help="synthesis window: 2 or 4 hops")
    i.add_argument("--channels", type=int, default=256)
    i.add_argument("--blocks", type=int, default=6)
    i.add_argument("--phase", default="absolute", choices=("absolute", "integrated", "source"),
                   help="absolute: each frame's phase from the network (a held note's partials land on "
                        "multiples of rate / hop); source: the phases of the signal that drives it (its audio "
                        "in, or a harmonic reference of the notes played), trained teacher-forced on the "
                        "data's own; integrated: per-bin phase advances summed over frames (has not learnt "
                        "here). --init from an absolute model converts it")
    i.add_argument("--mel-weight", type=float, default=1.0, help="weight of the log-mel L1 loss")
    i.add_argument("--advance-weight", type=float, default=0.0,
                   help="weight of the error of the phase advances between frames against the audio's "
                        "(integrated phase only; 0: off)")
    i.add_argument("--betas", default="0.8,0.99", help="Adam's betas for the generator (HiFi-GAN's)")
    i.add_argument("--decay-steps", type=int, default=20000,
                   help="cosine decay of the learning rate to a tenth over this many steps (0: constant)")
    i.add_argument("--ema", type=float, default=0.999,
                   help="export a moving average of the weights with this decay (0: the last step's)")
    i.set_defaults(func=cmd_train_vocoder, family="istft")
    f = fam.add_parser("flow", help="a WaveGlow-style flow vocoder (exact likelihood), from any folder of audio",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _vocoder_options(f, steps=50000, lr=1e-4)
    f.add_argument("--hop", type=int, default=256, help="mel hop in samples")
    f.add_argument("--n-group", type=int, default=8, help="samples squeezed into one group")
    f.add_argument("--squeeze", choices=("groups", "mdct"), default="groups",
                   help="groups: WaveGlow's (--n-group samples a channel); mdct: each hop's MDCT coefficients, the "
                        "flow's channels the frequencies, with a Gaussian given the mel (and source) as its first "
                        "step (livewave/flow_vocoder.py; --n-group is then the hop)")
    f.add_argument("--n-flows", type=int, default=12)
    f.add_argument("--wn-layers", type=int, default=8, help="layers of each coupling's WaveNet")
    f.add_argument("--wn-channels", type=int, default=64, help="channels of each coupling's WaveNet")
    f.add_argument("--early-size", type=int, default=2, help="channels that leave early, every 4 flows")
    f.add_argument("--sample-weight", type=float, default=0.0,
                   help="weight of the STFT distance of a sample at the playing temperature against the audio, "
                        "beside the likelihood (0: likelihood only; it teaches a small flow slowly)")
    f.add_argument("--source-dropout", type=float, default=0.0, metavar="SHARE",
                   help="with --source-n-fft: share of training crops given a silent source, so the flow also "
                        "learns to play from the mel alone (0: none)")
    f.add_argument("--prior-weight", type=float, default=0.0,
                   help="with --squeeze mdct: weight of its Gaussian first step's own likelihood beside the flow's, "
                        "so the mean follows the source and the mel (0: none)")
    f.add_argument("--mel-weight", type=float, default=0.0,
                   help="weight of that sample's log-mel L1 (with --sample-weight)")
    f.add_argument("--low-weight", type=float, default=0.0,
                   help="weight of that sample's fine low band under 500 Hz (with --sample-weight): keeps a "
                        "frame-rate line out, which the mel term alone taught")
    f.add_argument("--decay-steps", type=int, default=0,
                   help="cosine decay of the learning rate to a tenth over this many steps (0: constant)")
    f.add_argument("--ema", type=float, default=0.0,
                   help="export a moving average of the weights with this decay (0: the last step's)")
    f.add_argument("--source-n-fft", type=int, default=0,
                   help="drive the flow by its source's excitation, from spectra of this window (e.g. 2 hops; "
                        "livewave/source_excitation.py); with --init, converts a flow trained without one")
    f.set_defaults(func=cmd_train_vocoder, family="flow")
    mm = fam.add_parser("midi2mel", help="MIDI to mel: the piano roll to a vocoder's mel frames (a vocoder you play "
                                         "from MIDI), from livewave data soundfont --polyphonic",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    mm.add_argument("--data", required=True, help="a polyphonic dataset folder, or a folder of them")
    mm.add_argument("--out", required=True, help="checkpoint to write; OUT.train.pt holds the state a rerun resumes from")
    mm.add_argument("--vocoder", help="vocoder checkpoint to play through (its mel settings are used); without one, "
                                      "add it later with livewave chain OUT VOCODER -o PLAYABLE")
    mm.add_argument("--heldout", help="held-out dataset(s) to measure on at the end (figures into the card)")
    mm.add_argument("--steps", type=int, default=4000)
    mm.add_argument("--decay-steps", type=int, default=4000, help="length of the learning rate's cosine decay")
    mm.add_argument("--batch-frames", type=int, default=1024, help="mel frames per step (any frames: no state)")
    mm.add_argument("--lr", type=float, default=2e-3)
    mm.add_argument("--seed", type=int, default=0)
    mm.add_argument("--checkpoint-every", type=int, default=500)
    mm.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    mm.add_argument("--hidden", type=int, default=192, help="width of the per-note network")
    mm.add_argument("--layers", type=int, default=3)
    mm.add_argument("--tail", type=float, default=1.5, help="seconds a released note still sounds")
    mm.add_argument("--name", help="name in the model card (default: the file name)")
    mm.add_argument("-q", "--quiet", action="store_true")
    mm.set_defaults(func=cmd_train_midi2mel)
    e = sub.add_parser("eval", help="measure a model on held-out data: a DDSP model against the default instrument, "
                                    "a vocoder by copy synthesis against Griffin-Lim, MIDI-to-mel against the "
                                    "analysed audio")
    e.add_argument("model")
    e.add_argument("--data", required=True, help="held-out folder: a dataset with the clips' .mid files (DDSP) or "
                                                 "any audio (vocoders)")
    e.add_argument("--rate", type=int, default=48000, help="engine rate for the renders")
    e.add_argument("--write-card", action="store_true",
                   help="store the figures in the model card and write MODEL.md and MODEL.png beside it")
    e.set_defaults(func=cmd_eval)


def cmd_train_ddsp(args) -> int:
    from .ddsp_training import TrainConfig, train_ddsp
    try:
        cfg = TrainConfig(steps=args.steps, batch=args.batch, crop_seconds=args.crop_seconds, learning_rate=args.lr,
                          seed=args.seed, checkpoint_every=args.checkpoint_every, device=args.device,
                          hidden=args.hidden, init=args.init)
        r = train_ddsp(args.data, args.out, cfg, name=args.name, progress=not args.quiet)
    except (ValueError, FileNotFoundError, FloatingPointError) as exc:
        print(f"livewave: error: {exc}", file=sys.stderr)
        return 2
    if r["steps"] >= args.steps:
        print(f"livewave: trained {r['out']}: {r['steps']} steps in {r['seconds']:.0f} s on {r['device']}, "
              f"loss {r['loss']:.4f}")
    return 0


def _vocoder_options(p, steps: int, lr: float) -> None:
    p.add_argument("--data", required=True, help="folder of audio files (a livewave dataset or your recordings)")
    p.add_argument("--out", required=True, help="checkpoint to write; OUT.train.pt holds the state a rerun resumes from")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop-frames", type=int, default=32, help="mel frames per training crop")
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--rate", type=int, default=22050, help="the model's sample rate")
    p.add_argument("--n-mels", type=int, default=80)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--name", help="name in the model card (default: the file name)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop after this many minutes of training, checkpoint written; the same command goes on")
    p.add_argument("--onsets", type=float, default=0.0, metavar="SHARE",
                   help="share of training crops made onsets after digital silence, at random gains (a stream "
                        "after a long silence meets what phrases that ring on never show); 0: none")
    p.add_argument("--lowpass", type=float, default=0.0, metavar="SHARE",
                   help="share of training crops low-passed at a random cutoff (150 Hz to 6 kHz), so the "
                        "vocoder meets notes of few partials, which recorded instruments never give; 0: none")
    p.add_argument("--init", default="", metavar="CHECKPOINT",
                   help="fine-tune: start from this trained vocoder of the same family (its architecture, rate, "
                        "bands and analysis replace the options here), e.g. a shipped one on your own recordings")


def cmd_train_vocoder(args) -> int:
    from .vocoder_training import VocoderTrainConfig, train_vocoder
    try:
        common = dict(family=args.family, steps=args.steps, batch=args.batch, crop_frames=args.crop_frames,
                      learning_rate=args.lr, seed=args.seed, checkpoint_every=args.checkpoint_every,
                      device=args.device, sample_rate=args.rate, n_mels=args.n_mels, init=args.init,
                      max_minutes=args.max_minutes, onsets=args.onsets,
                      lowpass=args.lowpass)
        if args.family == "hifigan":
            cfg = VocoderTrainConfig(**common, gan_start=args.gan_start, discriminators=args.discriminators,
                                     hifigan_version=args.version, hifigan_channels=args.channels,
                                     mel_weight=args.mel_weight)
        elif args.family == "istft":
            cfg = VocoderTrainConfig(**common, gan_start=args.gan_start, discriminators=args.discriminators,
                                     istft_hop=args.hop, istft_n_fft=args.n_fft, istft_channels=args.channels,
                                     istft_blocks=args.blocks, istft_phase=args.phase,
                                     advance_weight=args.advance_weight if args.phase == "integrated" else 0.0,
                                     mel_weight=args.mel_weight, ema=args.ema,
                                     betas=tuple(float(b) for b in args.betas.split(",")),
                                     decay_steps=args.decay_steps)
        elif args.family == "flow":
            cfg = VocoderTrainConfig(**common, flow_hop=args.hop, n_flows=args.n_flows,
                                     n_group=args.hop if args.squeeze == "mdct" else args.n_group,
                                     wn_layers=args.wn_layers, wn_channels=args.wn_channels,
                                     n_early_size=args.early_size, sample_weight=args.sample_weight,
                                     mel_weight=args.mel_weight, low_weight=args.low_weight,
                                     flow_source_n_fft=args.source_n_fft,
                                     decay_steps=args.decay_steps, ema=args.ema, flow_squeeze=args.squeeze,
                                     source_dropout=args.source_dropout, prior_weight=args.prior_weight)
        else:
            cfg = VocoderTrainConfig(**common, gan_start=args.gan_start, discriminators=args.discriminators,
                                     ngf=args.ngf, ratios=tuple(int(r) for r in args.ratios.split(",")))
        r = train_vocoder(args.data, args.out, cfg, name=args.name, progress=not args.quiet)
    except (ValueError, FileNotFoundError, FloatingPointError) as exc:
        print(f"livewave: error: {exc}", file=sys.stderr)
        return 2
    for line in r["skipped"]:
        print(f"livewave: skipped {line}", file=sys.stderr)
    print(f"livewave: trained {r['out']}: {r['steps']} steps in {r['seconds']:.0f} s on {r['device']}, "
          f"loss {r['loss']:.4f}" + (f"; stopped at --max-minutes {args.max_minutes:g}, of {args.steps} steps: the "
                                     f"same command goes on" if r.get("out_of_time") else ""))
    return 0


def cmd_train_midi2mel(args) -> int:
    from .checkpoint import CheckpointError
    from .midi_to_mel_training import MidiToMelTrainConfig, train_midi2mel
    from .soundfont_data import DatasetError
    try:
        cfg = MidiToMelTrainConfig(steps=args.steps, decay_steps=args.decay_steps, batch_frames=args.batch_frames,
                                   learning_rate=args.lr, seed=args.seed, checkpoint_every=args.checkpoint_every,
                                   device=args.device, hidden=args.hidden, layers=args.layers, tail=args.tail)
        r = train_midi2mel(args.data, args.out, cfg, vocoder=args.vocoder, name=args.name, heldout=args.heldout,
                           progress=not args.quiet)
    except (ValueError, FileNotFoundError, FloatingPointError, CheckpointError, DatasetError) as exc:
        print(f"livewave: error: {exc}", file=sys.stderr)
        return 2
    q = r["quality"]
    extra = (f"; held out: log-mel L1 {q['log_mel_l1']['all']} (mean-frame floor {q['floors']['mean_frame']['all']})"
             if q else "")
    print(f"livewave: trained {r['out']}: {r['steps']} steps in {r['seconds']:.0f} s, log-mel L1 {r['loss']:.4f}"
          f"{extra}{'' if args.vocoder else '; no vocoder yet: livewave chain OUT VOCODER -o PLAYABLE'}")
    return 0


def cmd_eval(args) -> int:
    from pathlib import Path

    from .checkpoint import CheckpointError, read_checkpoint
    from .ddsp_training import update_card
    png = Path(args.model).with_suffix(".png") if args.write_card else None
    try:
        family = read_checkpoint(args.model)[0]["family"]
        if family in VOCODER_FAMILIES:
            from .vocoder_evaluation import evaluate_vocoder
            q = evaluate_vocoder(args.model, args.data, plot=png)
        elif family == "midi2mel":
            from .midi_to_mel_training import evaluate_checkpoint
            q = evaluate_checkpoint(args.model, args.data, png=png)
        else:
            from .ddsp_evaluation import evaluate
            q = evaluate(args.model, args.data, render_rate=args.rate, plot=png)
        write_md = card_page_writer(family) or write_card_markdown
    except (ValueError, FileNotFoundError, CheckpointError) as exc:     # NB: DatasetError is a ValueError
        print(f"livewave: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(q, indent=1))
    if args.write_card:
        q["spectrogram"] = png.name
        update_card(args.model, q)
        md = write_md(args.model)
        print(f"livewave: figures written to the model card of {args.model}, {md} and {png}")
    return 0


VOCODER_FAMILIES = ("melgan", "istft", "flow", "hifigan")


def card_page_writer(family: str):
    """The function that writes a checkpoint's card page (``MODEL.md``) for ``family``, or None."""
    if family in VOCODER_FAMILIES:
        from .vocoder_evaluation import write_vocoder_card_markdown
        return write_vocoder_card_markdown
    if family == "midi2mel":
        from .midi_to_mel_training import write_midi2mel_card_markdown
        return write_midi2mel_card_markdown
    return write_card_markdown if family == "ddsp" else None


def write_card_markdown(model_path):
    """``MODEL.md`` beside the checkpoint: its card as a page a person reads."""
    from pathlib import Path

    from .checkpoint import read_checkpoint
    path = Path(model_path)
    meta, tensors = read_checkpoint(path)
    card, cfg = meta["card"], meta["config"]
    d, t, q = card.get("data", {}), card.get("training", {}), card.get("quality", {})
    cal = cfg.get("calibration", {})
    lines = [f"# {path.stem}: {card.get('instrument', '')} ({meta['family']})", "",
             f"`{path.name}`, {path.stat().st_size / 1e6:.2f} MB, {card.get('parameters', '?')} parameters, "
             f"trained at {card.get('sample_rate')} Hz; {card.get('note', '')}.", "",
             "## Data", "",
             f"- source: {d.get('source')}; GM program {d.get('program')} ({d.get('instrument')}) from "
             f"`{Path(str(d.get('soundfont', ''))).name}` rendered by fluidsynth",
             f"- {d.get('minutes')} minutes of generated phrases (seed {d.get('seed')}), keys {d.get('pitch_range')}",
             "", "## Training", "",
             f"- {t.get('steps')} steps (batch {t.get('batch')}, {t.get('crop_seconds')} s crops, lr "
             f"{t.get('learning_rate')}, seed {t.get('seed')}) on {t.get('device')} x {t.get('processes')}, "
             f"{(t.get('seconds') or 0) / 60:.1f} min; final loss {t.get('final_loss')}",
             *([f"- fine-tuned (`--init`) from {f.get('name')} ({f.get('instrument')}), itself trained "
                f"{f.get('steps')} steps; the steps above are the fine-tune's"] if (f := t.get("fine_tuned_from")) else []),
             f"- loudness calibration: {cal.get('velocity_db', ['?', '?'])[0]:.1f} + "
             f"{cal.get('velocity_db', ['?', '?'])[1]:.1f} x velocity dB plus a per-key offset "
             f"(fit rms error {cal.get('rms_error_db')} dB over {cal.get('held_frames')} held frames), "
             f"release {cal.get('release_s')} s to -40 dB",
             "", "## Held-out quality", ""]
    if q:
        lines += [f"Measured with `livewave eval {path.name} --data <held-out folder>` on {q['heldout_seconds']} s "
                  f"({q['heldout_clips']} clips) of phrases from MIDI the model never saw, rendered through the "
                  f"engine at {q['render_rate']} Hz.", "",
                  "| | spectral distance to the soundfont |", "| --- | ---: |",
                  f"| this model | {q['spectral_distance_model']} |",
                  f"| default instrument (level-matched) | {q['spectral_distance_default']} |", "",
                  f"The model is **{q['closer_than_default_pct']}% closer** than the default instrument. "
                  f"Pitch on sustained notes: median {q['pitch_median_abs_cents']} cents, "
                  f"95th percentile {q['pitch_p95_abs_cents']} cents ({q['pitch_frames']} frames).", ""]
    from .ddsp_evaluation import write_card_page
    return write_card_page(path, lines, q, card)
