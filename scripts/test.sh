#!/usr/bin/env bash
# Set up (as scripts/setup.sh) and run the whole test suite, JACK tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export QT_QPA_PLATFORM=offscreen JACK_NO_START_SERVER=1
exec .venv/bin/python -m pytest -q -ra "$@"
