#!/usr/bin/env bash
# The vocoders that need a GPU, sized for one call on a lent machine (15 minutes of device time
# in all, one command of at most 10): the shipped iSTFT vocoder fine-tuned with its GAN
# (MSD + MPD, which cost 18 to 107 spectral steps each on the 2-core CPU), and a flow vocoder.
# Three steps:
#   here:        ./scripts/gpu_vocoders.sh pack
#                  writes .gpu/ (ignored): 11 minutes of the FluidR3 training audio as 16-bit FLAC
#                  (SRC, default out/vocdata, made there first on a fresh machine: 15 s here;
#                  or a training folder such as scripts/train_vocoders.sh makes under $WORK/train,
#                  e.g. SRC=out/vocoders/train) and the wheels the device's image lacks
#                  (soundfile, cffi, pycparser, soxr; Python 3.12)
#   the device:  run(command="./scripts/gpu_vocoders.sh train", carry=[".gpu"], timeout_s=570)
#                  the CUDA tests (tests/test_vocoder_cuda.py, test_ddsp_cuda.py; 90 s at most),
#                  then 6 minutes of training (ISTFT_MINUTES 3.5 + FLOW_MINUTES 2.5), 8.5 in all; the
#                  checkpoints come back in $OUT, the flow's in two parts (a returned file holds
#                  16 MB at most). The flow is the sourced one the CPU got furthest with
#                  (4.6 M parameters), which the Numba kernel streams at 21-27% of a 512-sample
#                  block on one thread (benchmarks/RESULTS.md)
#   here:        ./scripts/gpu_vocoders.sh finish DIR     (DIR: where the device's files landed)
#                  copies them to models/ as istft-fluidr3-gan and flow-fluidr3, evaluates each
#                  against Griffin-Lim on the held-out audio (out/voc/heldout) and writes their
#                  cards. Whether they ship, beside or instead of istft-fluidr3, is decided on those cards.
# Every step of `train` also runs here on the CPU with DEVICE=cpu and small budgets, which is how
# it was tested (tests/test_gpu_vocoders_script.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
case "${1:-}" in
pack)
  PY=${PY_HERE:-.venv/bin/python}
  SRC=${SRC:-out/vocdata}
  # a fresh machine has no training audio: make the shipped vocoder's FluidR3 folders (as
  # scripts/train_vocoders.sh does, just the minutes packed below; pack took 15 s in all here)
  for spec in "0 piano 2" "40 violin 1" "56 trumpet 1" "73 flute 1" "42 cello 1"; do
    set -- $spec
    [ -f "$SRC/$2/dataset.json" ] || "$PY" -m livewave data soundfont --program "$1" --minutes "$3" --rate 22050 \
        --seed 7 --out "$SRC/$2"
  done
  for spec in "0 piano_poly 3" "48 strings_poly 2"; do
    set -- $spec
    [ -f "$SRC/$2/dataset.json" ] || "$PY" -m livewave data soundfont --polyphonic --program "$1" --minutes "$3" \
        --seed 7 --out "$SRC/$2"
  done
  rm -rf .gpu && mkdir -p .gpu/data .gpu/whl
  "$PY" - "$SRC" <<'EOF'
import sys
from pathlib import Path

import soundfile as sf

src = Path(sys.argv[1])
# minutes per folder: every instrument of the shipped vocoder's data, 11 minutes in all
share = {"piano": 2, "piano_poly": 3, "strings_poly": 2, "violin": 1, "trumpet": 1, "flute": 1, "cello": 1}
total = 0.0
for folder, minutes in share.items():
    files = sorted((src / folder).glob("*.wav"))
    if not files:
        sys.exit(f"gpu_vocoders: no audio in {src / folder} (scripts/train_vocoders.sh makes it)")
    left = minutes * 60.0
    for f in files:
        if left < 1.0:
            break
        x, sr = sf.read(str(f), dtype="float32")
        x = x[: int(left * sr)]
        (Path(".gpu/data") / folder).mkdir(parents=True, exist_ok=True)
        sf.write(str(Path(".gpu/data") / folder / (f.stem + ".flac")), x, sr, subtype="PCM_16")
        left -= x.shape[0] / sr
        total += x.shape[0] / sr
print(f"gpu_vocoders: {total / 60:.1f} min of audio in .gpu/data")
EOF
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .gpu/whl soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 soxr==1.1.0
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.gpu/' >> .git/info/exclude; }
  du -sh .gpu
  ;;
train)
  OUT=${OUT:-out/gpu}
  DEVICE=${DEVICE:-cuda}
  ISTFT_MINUTES=${ISTFT_MINUTES:-3.5}
  FLOW_MINUTES=${FLOW_MINUTES:-2.5}
  BATCH=${BATCH:-16}
  WORK=${WORK:-/tmp/lw-gpu}
  DATA=${DATA:-.gpu/data}
  mkdir -p "$OUT" "$WORK"
  if [ -d .gpu/whl ] && ! "$PY" -c "import soundfile, soxr" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  export PYTHONUNBUFFERED=1
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$OUT/env.txt"
  # first the CUDA tests, which no CI runs (the vocoders' GPU path has not run on a GPU yet): a
  # minute at most, their log comes back whatever they say
  if [ "$DEVICE" = cuda ]; then
    timeout 90 "$PY" -m pytest -q -p no:cacheprovider tests/test_vocoder_cuda.py tests/test_ddsp_cuda.py 2>&1 \
      | tee "$OUT/cuda_tests.log" || true
  fi
  # the synthetic sounds after silence the shipped model was last fine-tuned with (about 15% of
  # the audio; made here, numpy only, so they need not travel): with --onsets below, the onsets
  # after silence it learnt not to burst on (models/README.md)
  [ -d "$DATA/synth" ] || "$PY" -m livewave data synth --minutes 1.8 --seed 11 --out "$DATA/synth"
  # the state (.train.pt, with both discriminators and Adam: hundreds of MB) stays in $WORK.
  # The GAN fine-tune keeps the shipped model's source phase (its phases from the signal that
  # drives it, teacher-forced on the data's own: models/README.md), so that what it changes is
  # the GAN's doing: the magnitudes.
  "$PY" -m livewave train istft --init models/istft-fluidr3.safetensors --data "$DATA" \
     --out "$WORK/istft-fluidr3-gan.safetensors" --steps 1000000 --gan-start 0 --discriminators msd+mpd \
     --phase source --mel-weight 45 --lr 2e-4 --decay-steps 0 --batch "$BATCH" --device "$DEVICE" \
     --checkpoint-every 1000000 --onsets 0.25 \
     --max-minutes "$ISTFT_MINUTES" --name "iSTFT GAN vocoder (FluidR3), fine-tuned with its GAN on a GPU" -q \
     2>&1 | tee "$OUT/istft.log"
  # the flow the CPU got furthest with (models/README.md): driven by its source's excitation,
  # groups of 32, 8 couplings of 6 x 96 WaveNets, 8 channels out early (4.6 M parameters, 18 MB:
  # it comes back in two parts, a returned file holding 16 MB at most), trained on its likelihood and on a
  # sample's STFT distance and log-mel L1; its Numba kernel streams it at 21-27% of a 512-sample
  # block on one CPU thread (benchmarks/RESULTS.md)
  "$PY" -m livewave train flow --data "$DATA" --out "$WORK/flow-fluidr3.safetensors" --steps 1000000 \
     --n-group 32 --n-flows 8 --wn-layers 6 --wn-channels 96 --early-size 8 --source-n-fft 512 \
     --sample-weight 5 --mel-weight 5 --lr 3e-4 \
     --batch "$BATCH" --device "$DEVICE" --checkpoint-every 1000000 --max-minutes "$FLOW_MINUTES" \
     --name "Flow vocoder (FluidR3: piano, strings, violin, trumpet, flute, cello)" -q 2>&1 | tee "$OUT/flow.log"
  cp "$WORK/istft-fluidr3-gan.safetensors" "$OUT/"
  split -b 15000000 -d "$WORK/flow-fluidr3.safetensors" "$OUT/flow-fluidr3.safetensors.part"
  ls -la "$OUT"
  ;;
finish)
  PY=${PY_HERE:-.venv/bin/python}
  DIR=${2:?usage: gpu_vocoders.sh finish DIR}
  HELDOUT=${HELDOUT:-out/voc/heldout}
  # the held-out minute of every vocoder card (piano and violin phrases of other seeds)
  for spec in "0 piano 1000" "40 violin 1040"; do
    set -- $spec
    [ -f "$HELDOUT/$2/dataset.json" ] || "$PY" -m livewave data soundfont --program "$1" --minutes 0.5 --rate 22050 \
        --seed "$3" --out "$HELDOUT/$2"
  done
  cat "$DIR"/flow-fluidr3.safetensors.part* > "$DIR/flow-fluidr3.safetensors"
  for name in istft-fluidr3-gan flow-fluidr3; do
    cp "$DIR/$name.safetensors" "models/$name.safetensors"
    "$PY" -m livewave eval "models/$name.safetensors" --data "$HELDOUT" --write-card
    "$PY" -m livewave screen "models/$name.safetensors" --write-card
  done
  ;;
*)
  echo "usage: $0 pack | train | finish DIR" >&2
  exit 2
  ;;
esac
