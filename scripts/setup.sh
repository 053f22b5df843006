#!/usr/bin/env bash
# Set up livewave on a Debian/Ubuntu machine: system packages, a venv in .venv, the package.
# Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
APT_PACKAGES="libportaudio2 libsndfile1 jackd2 fluidsynth fluid-soundfont-gm"
# What the PyQt6 wheels' Qt needs from the system (offscreen and X11/xcb platforms).
APT_PACKAGES="$APT_PACKAGES libegl1 libgl1 libfontconfig1 libfreetype6 libdbus-1-3 libglib2.0-0 libxkbcommon0
  libxkbcommon-x11-0 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-shape0 libxcb-xkb1"
missing=""
for p in $APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages:$missing"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
  else
    echo "setup: please install the equivalents of:$missing" >&2
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first: a CPU build where there is no GPU (a bare 'torch' pulls several GB of CUDA).
# GPU users who already have a CUDA torch in the venv keep it: pyproject asks for a range.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q "torch>=2.10,<3"
  else
    .venv/bin/python -m pip install -q torch==2.13.0
  fi
fi
.venv/bin/python -m pip install -q -e ".[test]"
echo "setup: done (.venv ready; run .venv/bin/livewave)"
