"""Torture: a MIDI flood into ``livewave play`` over JACK MIDI (dummy driver).

10,000 channel messages a second (notes on and off, bends, controllers) with a 64 KB SysEx
every second among them, for 5 s (60 s with ``LIVEWAVE_TORTURE=full``). JACK carries at most
~32 KB per event at this period, so each SysEx goes as three events, as a bridge splits it.
Every message is received, no note-off is lost (no voice sounds once the flood is over), the
SysEx is skipped, and JACK blames no xrun on livewave. (The byte-level fuzz is in
``test_midi_parser.py``; ring overflow, counted and reported, in ``test_jack_midi_client.py``.)
"""
import os

import numpy as np
import pytest
from jack_rig import Rig, never_the_cause, require_jackd, served, xrun_culprits

pytestmark = [pytest.mark.jack, pytest.mark.torture]
RATE, PERIOD = 48000, 128
SECONDS = 60.0 if os.environ.get("LIVEWAVE_TORTURE") == "full" else 5.0
PER_SECOND = 10_000
CHUNK = 30_000          # bytes of SysEx per JACK MIDI event (JACK's limit here: 32,720)

require_jackd()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from served(tmp_path_factory, RATE, PERIOD)


def flood(seconds: float, seed: int = 0) -> tuple[list, int]:
    rng = np.random.default_rng(seed)
    n = int(seconds * PER_SECOND)
    times = np.sort(rng.integers(4800, 4800 + int(seconds * RATE), n))
    ev, channel_msgs, i = [], 0, 0
    while i < n:
        t = int(times[i])
        kind = rng.random()
        if kind < 0.8 and i + 1 < n:                           # a short note: on, then its off
            key = int(rng.integers(24, 108))
            ev.append((t, bytes([0x90, key, int(rng.integers(1, 128))])))
            ev.append((int(times[i + 1]), bytes([0x80, key, 0])))
            i += 2
            channel_msgs += 2
            continue
        if kind < 0.9:
            ev.append((t, bytes([0xE0, int(rng.integers(0, 128)), int(rng.integers(0, 128))])))
        else:
            ev.append((t, bytes([0xB0, int(rng.choice([1, 11, 7])), int(rng.integers(0, 128))])))
        channel_msgs += 1
        i += 1
    sysex = b"\xf0" + bytes(rng.integers(0, 128, 64 * 1024 - 2, dtype=np.uint8)) + b"\xf7"
    chunks = [sysex[i:i + CHUNK] for i in range(0, len(sysex), CHUNK)]
    for s in range(int(seconds)):
        t = 4800 + s * RATE + RATE // 3
        ev += [(t + k * PERIOD, c) for k, c in enumerate(chunks)]
    ev.sort(key=lambda e: e[0])
    return ev, channel_msgs


def test_ten_thousand_messages_a_second_with_64_kb_sysex(server, tmp_path):
    from test_live_jack import Instrument, counted_take
    ev, channel_msgs = flood(SECONDS)
    rig = Rig(seconds=SECONDS + 1.5, name="lwtest")      # NB: a full port buffer defers to the next cycle
    inst = Instrument(rig, tmp_path, "--placement", "rtmixer", "--ahead", "2")
    # NB: counted 1 s after the take: the last releases ring out
    before, after, log_after, _ = counted_take(server, rig, inst, ev, SECONDS * 4 + 30, settle=1.0)
    received = after["midi_messages"] - before["midi_messages"]
    culprits = xrun_culprits(log_after)
    print(f"{len(rig.sent)} events sent ({channel_msgs} channel messages and {int(SECONDS)} SysEx of 64 KB) in "
          f"{SECONDS:.0f} s; received {received}, malformed {after['malformed'] - before['malformed']}, "
          f"dropped {after['dropped_events']}, voices after {after['voices']}, ring underruns "
          f"{after['ring_underruns'] - before['ring_underruns']}, JACK's culprits {culprits}")
    assert len(rig.sent) == len(ev)
    rig_late = sum(c == "lwtest" for c in culprits)
    if received < channel_msgs and rig_late:
        # JACK drops what a client that missed its deadline wrote in that cycle: the test's own
        # sender (Python, on this shared machine) lost them before they reached livewave
        pytest.xfail(f"{channel_msgs - received} messages lost in the {rig_late} cycles JACK blamed on the test's "
                     "own MIDI sender (a late client's output is dropped)")
    assert received >= channel_msgs
    assert after["voices"] == 0, "a note-off was lost"
    assert after["dropped_events"] == 0
    never_the_cause(culprits)
