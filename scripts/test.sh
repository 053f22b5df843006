#!/usr/bin/env bash
# Set up (as scripts/setup.sh) and run the whole test suite, JACK tests included.
# Two passes: the tests that need no JACK server on two workers (pytest-xdist; one torch thread
# each, so two workers fill two cores without oversubscribing them), then the JACK tests one
# at a time (they share one server and measure its timing: nothing else may run beside them).
# LIVEWAVE_TEST_WORKERS sets the first pass's workers (1: no xdist).
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || exit 1
export QT_QPA_PLATFORM=offscreen JACK_NO_START_SERVER=1
workers=${LIVEWAVE_TEST_WORKERS:-2}
parallel=()
[ "$workers" -gt 1 ] && parallel=(-n "$workers" --dist loadfile)
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python -m pytest -q -ra -m "not jack" "${parallel[@]}" "$@"
a=$?
.venv/bin/python -m pytest -q -ra -m jack "$@"
b=$?
# NB: 5 is "no test selected" (a selection with no JACK test, or only JACK tests)
if [ $a -eq 5 ] && [ $b -eq 5 ]; then exit 5; fi
[ $a -eq 5 ] && a=0
[ $b -eq 5 ] && b=0
[ $a -ne 0 ] && exit $a
exit $b
