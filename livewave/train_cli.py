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
    d.add_argument("-q", "--quiet", action="store_true")
    d.set_defaults(func=cmd_train_ddsp)
    e = sub.add_parser("eval", help="measure a DDSP model on held-out data against the default instrument")
    e.add_argument("model")
    e.add_argument("--data", required=True, help="held-out dataset folder (with the clips' .mid files)")
    e.add_argument("--rate", type=int, default=48000, help="engine rate for the renders")
    e.add_argument("--write-card", action="store_true", help="store the figures in the model card")
    e.set_defaults(func=cmd_eval)


def cmd_train_ddsp(args) -> int:
    from .ddsp_training import TrainConfig, train_ddsp
    try:
        cfg = TrainConfig(steps=args.steps, batch=args.batch, crop_seconds=args.crop_seconds, learning_rate=args.lr,
                          seed=args.seed, checkpoint_every=args.checkpoint_every, device=args.device,
                          hidden=args.hidden)
        r = train_ddsp(args.data, args.out, cfg, name=args.name, progress=not args.quiet)
    except (ValueError, FileNotFoundError, FloatingPointError) as exc:
        print(f"livewave: error: {exc}", file=sys.stderr)
        return 2
    if r["steps"] >= args.steps:
        print(f"livewave: trained {r['out']}: {r['steps']} steps in {r['seconds']:.0f} s on {r['device']}, "
              f"loss {r['loss']:.4f}")
    return 0


def cmd_eval(args) -> int:
    from .ddsp_evaluation import evaluate
    from .ddsp_training import update_card
    try:
        q = evaluate(args.model, args.data, render_rate=args.rate)
    except (ValueError, FileNotFoundError) as exc:
        print(f"livewave: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(q, indent=1))
    if args.write_card:
        update_card(args.model, q)
        print(f"livewave: figures written to the model card of {args.model}")
    return 0
