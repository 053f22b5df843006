#!/usr/bin/env bash
# Make the vocoders that should ship: FluidR3 data, an iSTFT GAN vocoder, a MelGAN and a flow
# vocoder trained on it, each measured on held-out audio against Griffin-Lim, with its card, page
# and spectrogram; then the MIDI-to-mel piano and strings, played through the iSTFT vocoder.
# Meant for a GPU machine (one call, a fixed time budget); runs anywhere with small settings:
#   MINUTES=0.2 POLY_MINUTES=0.3 MELGAN_STEPS=4 ISTFT_STEPS=4 FLOW_STEPS=4 M2M_STEPS=4 GAN_START=2 \
#     ./scripts/train_vocoders.sh        (5 minutes on this 2-core VM, Griffin-Lim evaluations included)
# Knobs (environment): DEST (where the models go, default models/), WORK (data, default
# out/vocoders), DEVICE (auto), MINUTES (per instrument, default 4), MELGAN_STEPS (20000),
# POLY_MINUTES (polyphonic piano and strings, default 10), GAN_START (4000), ISTFT_STEPS (40000),
# FLOW_STEPS (20000), M2M_STEPS (8000), BATCH (16), PY (.venv/bin/python).
# Rerunning resumes every training where they stopped (OUT.train.pt beside each model).
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
ISTFT_STEPS=${ISTFT_STEPS:-40000}
M2M_STEPS=${M2M_STEPS:-8000}
POLY_MINUTES=${POLY_MINUTES:-10}
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
# polyphonic piano and strings with the pedal (MIDI-to-mel, and vocoder data too)
for spec in "0 piano_poly 7 1000" "48 strings_poly 7 1048"; do
  set -- $spec
  [ -f "$WORK/train/$2/dataset.json" ] || lw data soundfont --polyphonic --program "$1" --minutes "$POLY_MINUTES" \
      --seed "$3" --out "$WORK/train/$2"
  [ -f "$WORK/m2m_heldout/$2/dataset.json" ] || lw data soundfont --polyphonic --program "$1" --minutes 1 \
      --seed "$4" --out "$WORK/m2m_heldout/$2"
done

lw train istft --data "$WORK/train" --out "$DEST/istft-fluidr3.safetensors" --steps "$ISTFT_STEPS" \
   --gan-start "$GAN_START" --batch "$BATCH" --device "$DEVICE" \
   --name "iSTFT GAN vocoder (FluidR3: piano, strings, violin, trumpet, flute, cello)" -q
lw eval "$DEST/istft-fluidr3.safetensors" --data "$WORK/heldout" --write-card
for spec in "piano_poly piano-midi2mel 1.5 Piano" "strings_poly strings-midi2mel 1.0 Strings"; do
  set -- $spec
  lw train midi2mel --data "$WORK/train/$1" --heldout "$WORK/m2m_heldout/$1" --vocoder "$DEST/istft-fluidr3.safetensors" \
     --out "$DEST/$2.safetensors" --steps "$M2M_STEPS" --decay-steps "$M2M_STEPS" --tail "$3" --device "$DEVICE" \
     --name "$4 (FluidR3), MIDI to mel, through the iSTFT vocoder" -q
  lw eval "$DEST/$2.safetensors" --data "$WORK/m2m_heldout/$1" --write-card
done

lw train melgan --data "$WORK/train" --out "$DEST/melgan-fluidr3.safetensors" --steps "$MELGAN_STEPS" \
   --gan-start "$GAN_START" --discriminators msd+mpd --batch "$BATCH" --device "$DEVICE" \
   --name "MelGAN (FluidR3: piano, violin, trumpet, flute, cello)" -q
lw eval "$DEST/melgan-fluidr3.safetensors" --data "$WORK/heldout" --write-card

lw train flow --data "$WORK/train" --out "$DEST/flow-fluidr3.safetensors" --steps "$FLOW_STEPS" \
   --batch "$BATCH" --device "$DEVICE" --name "Flow vocoder (FluidR3: piano, violin, trumpet, flute, cello)" -q
lw eval "$DEST/flow-fluidr3.safetensors" --data "$WORK/heldout" --write-card
echo "train_vocoders: done; cards in $DEST/{istft-fluidr3,melgan-fluidr3,flow-fluidr3,piano-midi2mel,strings-midi2mel}.md"
