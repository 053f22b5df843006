#!/usr/bin/env bash
# Make the vocoders that should ship: FluidR3 data, a MelGAN and a flow vocoder trained on it,
# each measured on held-out audio against Griffin-Lim, with its card, page and spectrogram.
# Meant for a GPU machine (one call, a fixed time budget); runs anywhere with small settings:
#   MINUTES=0.2 MELGAN_STEPS=4 FLOW_STEPS=4 GAN_START=2 ./scripts/train_vocoders.sh
# Knobs (environment): DEST (where the models go, default models/), WORK (data, default
# out/vocoders), DEVICE (auto), MINUTES (per instrument, default 4), MELGAN_STEPS (20000),
# GAN_START (4000), FLOW_STEPS (20000), BATCH (16), PY (.venv/bin/python).
# Rerunning resumes both trainings where they stopped (OUT.train.pt beside each model).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEST=${DEST:-models}
WORK=${WORK:-out/vocoders}
DEVICE=${DEVICE:-auto}
MINUTES=${MINUTES:-4}
MELGAN_STEPS=${MELGAN_STEPS:-20000}
GAN_START=${GAN_START:-4000}
FLOW_STEPS=${FLOW_STEPS:-20000}
BATCH=${BATCH:-16}
lw() { "$PY" -m livewave "$@"; }

mkdir -p "$WORK/train" "$WORK/heldout" "$DEST"
# piano, violin, trumpet, flute, cello, at the vocoders' rate; held out: other seeds
for spec in "0 piano" "40 violin" "56 trumpet" "73 flute" "42 cello"; do
  set -- $spec
  [ -f "$WORK/train/$2/dataset.json" ] || lw data soundfont --program "$1" --minutes "$MINUTES" --rate 22050 \
      --seed 7 --out "$WORK/train/$2"
done
for spec in "0 piano 1000" "40 violin 1040"; do
  set -- $spec
  [ -f "$WORK/heldout/$2/dataset.json" ] || lw data soundfont --program "$1" --minutes 0.5 --rate 22050 \
      --seed "$3" --out "$WORK/heldout/$2"
done

lw train melgan --data "$WORK/train" --out "$DEST/melgan-fluidr3.safetensors" --steps "$MELGAN_STEPS" \
   --gan-start "$GAN_START" --discriminators msd+mpd --batch "$BATCH" --device "$DEVICE" \
   --name "MelGAN (FluidR3: piano, violin, trumpet, flute, cello)" -q
lw eval "$DEST/melgan-fluidr3.safetensors" --data "$WORK/heldout" --write-card

lw train flow --data "$WORK/train" --out "$DEST/flow-fluidr3.safetensors" --steps "$FLOW_STEPS" \
   --batch "$BATCH" --device "$DEVICE" --name "Flow vocoder (FluidR3: piano, violin, trumpet, flute, cello)" -q
lw eval "$DEST/flow-fluidr3.safetensors" --data "$WORK/heldout" --write-card
echo "train_vocoders: done; cards in $DEST/melgan-fluidr3.md and $DEST/flow-fluidr3.md"
