"""Torture: a MIDI flood into ``livewave play`` over JACK MIDI (dummy driver).

10,000 channel messages a second (notes on and off, bends, controllers) with a 64 KB SysEx
every second among them, for 5 s (60 s with ``LIVEWAVE_TORTURE=full``). JACK carries at most
~32 KB per event at this period, so each SysEx goes as three events, as a bridge splits it.
A second, compiled JACK MIDI reader on the sender's port counts what JACK delivered: livewave
receives every delivered message, no delivered note-off is lost (no voice sounds once the
flood is over, but for notes whose note-off JACK itself dropped), the SysEx is skipped, no queue
overflows, and JACK blames no xrun on livewave. (The byte-level fuzz is in
``test_midi_parser.py``; ring overflow, counted and reported, in ``test_jack_midi_client.py``.)
"""
import os
from collections import Counter

import numpy as np
import pytest
from jack_rig import (
    Rig,
    machine_stalls,
    never_the_cause,
    on_time_or_slow_machine,
    require_jackd,
    served,
    sporadic,
    xrun_culprits,
    xrun_unfinished,
)

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


def delivered(records: np.ndarray) -> tuple[int, set]:
    """What JACK delivered, as an independent reader saw it: the channel messages, and the keys
    whose last delivered message was a note-on (a note-off JACK never delivered)."""
    from livewave.jack_midi_client import parse_records
    n, held = 0, set()
    for _, data in parse_records(records):
        if not data or data[0] >= 0xF0 or data[0] < 0x80:
            continue                              # a SysEx piece (over 8 bytes, or a continuation)
        n += 1
        if data[0] & 0xF0 == 0x90 and data[2] > 0:
            held.add(data[1])
        elif data[0] & 0xF0 in (0x80, 0x90):
            held.discard(data[1])
    return n, held


def test_ten_thousand_messages_a_second_with_64_kb_sysex(server, tmp_path):
    from test_live_jack import Instrument, counted_take

    from livewave.jack_midi_client import JackMidiClient
    ev, channel_msgs = flood(SECONDS)
    rig = Rig(seconds=SECONDS + 1.5, name="lwtest")      # NB: a full port buffer defers to the next cycle
    # NB: a second, compiled reader on the same port: what JACK delivered. JACK drops what a
    # client writes in a cycle it finished late, and on this shared VM even the compiled sender
    # is named late now and then; livewave must miss nothing that was delivered.
    monitor = JackMidiClient("lwmon", "in", ring_records=1 << (20 if SECONDS > 10 else 17))
    try:
        rig.client.connect(rig.midi_out, monitor.port_name)
        inst = Instrument(rig, tmp_path, "--placement", "rtmixer", "--ahead", "2")
        # NB: counted 1 s after the take: the last releases ring out
        before, after, log_after, _ = counted_take(server, rig, inst, ev, SECONDS * 4 + 30, settle=1.0)
        seen, held = delivered(monitor.read())
        overflows = monitor.overflows
    finally:
        monitor.close()
    received = after["midi_messages"] - before["midi_messages"]
    culprits = xrun_culprits(log_after)
    print(f"{len(rig.sent)} events sent ({channel_msgs} channel messages and {int(SECONDS)} SysEx of 64 KB) in "
          f"{SECONDS:.0f} s; JACK delivered {seen} channel messages ({len(held)} note-offs not delivered); "
          f"livewave received {received} (queue overflows {after['midi_overflows']}), malformed "
          f"{after['malformed'] - before['malformed']}, dropped "
          f"{after['dropped_events']}, voices after {after['voices']}, ring underruns "
          f"{after['ring_underruns'] - before['ring_underruns']}, JACK's culprits {Counter(culprits)}")
    assert len(rig.sent) == len(ev) and overflows == 0
    assert after["dropped_events"] == 0 and after["midi_overflows"] == 0
    if seen < channel_msgs:
        print(f"{channel_msgs - seen} messages were not delivered by JACK (late clients: "
              f"{dict(Counter(c for c in culprits if not c.startswith('livewave')))})")
    # every message JACK delivered reached the instrument, and every note whose note-off was
    # delivered is silent (one whose note-off JACK dropped is held, as it should be: the
    # instrument cannot know). A JACK MIDI reader that did not finish a cycle in time (late, or
    # not even started in a machine stall) loses that cycle's events: seen here of the compiled
    # monitor as much as of livewave's client. So a shortfall is allowed only where JACK listed
    # one of livewave's clients as unfinished in an xrun, and that goes through the probe.
    whole = received >= seen and after["voices"] <= len(held)
    listed = {c: n for c, n in xrun_unfinished(log_after).items() if c.startswith("livewave")}
    assert whole or listed, (f"livewave received {received} of the {seen} channel messages JACK delivered, "
                             f"{after['voices']} voices sound ({len(held)} note-offs undelivered), and no xrun "
                             "listed its clients")
    # a cycle or two that livewave's MIDI client did not finish (its messages lost) is as many
    # late events as a quiet moment of this shared machine shows (jack_rig.sporadic, as in the
    # other JACK tests; a clean-clone run here: one such xrun, 48 messages, steal 0.2%), so long as
    # no note is left sounding; more goes through the probe
    stalls, _ = machine_stalls()
    quiet_loss = after["voices"] <= len(held) and sporadic(sum(listed.values()), stalls)
    on_time_or_slow_machine(whole or quiet_loss,
                            f"livewave received {received} of the {seen} channel messages JACK delivered "
                            f"({after['voices']} voices sound, {len(held)} note-offs undelivered), in a take where "
                            f"JACK's xruns listed its clients as unfinished {listed}")
    never_the_cause(culprits)
