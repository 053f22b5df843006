"""The engine in its own process: the command protocol, the shared-memory layout, the null
engine, the child's command handling and loader without audio; and, on a real JACK server
(dummy driver), the whole thing: notes from a JACK MIDI port and from the pipe, a corrupt
checkpoint while a note plays, a frozen parent, a killed child."""
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from jack_rig import never_the_cause, on_time_or_slow_machine, unbroken_or_slow_machine
from shipped import shipped

from livewave.checkpoint import save_checkpoint
from livewave.engine_process import (
    RELEASED,
    RING_SIZE,
    STATE_RUNNING,
    CommandError,
    EngineError,
    EngineProcess,
    SharedState,
    check_command,
    check_settings,
)
from livewave.null_engine import NullEngine

ROOT = Path(__file__).resolve().parents[1]


# -- the command protocol ----------------------------------------------------------------------
def test_commands_are_normalised():
    assert check_command(("load", Path("/x/m.safetensors"))) == ("load", "/x/m.safetensors")
    assert check_command(["control", np.int64(2), np.float32(0.5)]) == ("control", 2, 0.5)
    assert check_command(("control", "breath", 1)) == ("control", "breath", 1.0)
    assert check_command(("midi", 0x90, 69)) == ("midi", 0x90, 69, 0)
    assert check_command(("midi", 0x80, 69, 0)) == ("midi", 0x80, 69, 0)
    assert check_command(("ping", np.int32(7))) == ("ping", 7)
    assert check_command(("midi_ports",)) == ("midi_ports",)
    for name in ("panic", "release_all", "stop"):
        assert check_command((name,)) == (name,)


@pytest.mark.parametrize("cmd, words", [
    ("stop", "tuple"), ((), "tuple"), ((3,), "tuple"),
    (("bogus",), "unknown command 'bogus'"),
    (("panic", 1), "panic takes 0 arguments"),
    (("control", "breath"), "control takes 2 arguments"),
    (("load",), "load takes 1 argument"),
    (("load", 3), "not a file path"), (("load", ""), "not a file path"),
    (("control", 1.5, 0.2), "neither a control name nor an index"),
    (("control", True, 0.2), "neither a control name nor an index"),
    (("control", "breath", "loud"), "not a finite number"),
    (("control", "breath", float("nan")), "not a finite number"),
    (("gain_db", float("inf")), "not a finite number"),
    (("gain_db", True), "not a finite number"),
    (("midi", 0xF8, 0, 0), "status"), (("midi", 0x90, 128, 1), "data1"), (("midi", 0x90, 60, -1), "data2"),
    (("midi", 0x90, 60.0, 1), "data1"), (("midi", 0x90, 1, 2, 3), "midi takes 2 to 3 arguments"),
    (("midi_ports", 5), "not a string"), (("ping", [1]), "token"),
])
def test_bad_commands_are_refused_with_the_reason(cmd, words):
    with pytest.raises(CommandError, match=words.replace("(", r"\(")):
        check_command(cmd)


def test_settings_are_checked_before_anything_starts():
    s = check_settings({"block": np.int64(128), "audio": "system"})
    assert s["block"] == 128 and s["audio"] == "system" and s["model"] is None
    with pytest.raises(EngineError, match="unknown engine setting 'blok'"):
        check_settings({"blok": 128})
    with pytest.raises(EngineError, match="rate"):
        check_settings({"rate": "fast"})
    with pytest.raises(EngineError, match="unknown engine setting"):
        EngineProcess().start({"nope": 1})


def test_the_gui_side_imports_nothing_heavy():
    code = ("import sys, livewave.engine_process; "
            "print(sorted(m for m in ('torch', 'sounddevice', 'rtmidi', 'numba', 'jack', 'livewave.engine_host') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


# -- shared memory -------------------------------------------------------------------------------
@pytest.fixture
def shm():
    s = SharedState.create()
    yield s
    s.close()
    s.unlink()


def test_status_round_trip_through_a_second_mapping(shm):
    reader = SharedState.attach(shm.name)
    try:
        notes = np.zeros((16, 128), np.uint8)
        notes[0, 69] = 100
        notes[9, 36] = 64 | RELEASED
        shm.write_status({"state": STATE_RUNNING, "voices": 2, "load": 12.5, "latency_ms": 5.25,
                          "xruns": 3, "sample_time": 2 ** 40, "heartbeat": time.monotonic()}, notes)
        st = reader.status()
        assert not st["torn"] and st["state_name"] == "running"
        assert (st["voices"], st["load"], st["latency_ms"], st["xruns"], st["sample_time"]) == (2, 12.5, 5.25, 3, 2 ** 40)
        assert 0 <= st["age_s"] < 1.0 and st["magic"] != 0
        assert reader.notes() == [(0, 69, 100, True), (9, 36, 64, False)]
    finally:
        reader.close()


def test_a_read_during_a_write_is_retried_and_a_dead_writer_is_flagged(shm):
    shm.write_status({"voices": 1, "xruns": 1})
    shm.begin_write()                     # the writer is interrupted half-way
    shm.hdr_i[SharedState._SLOTS["voices"][0]] = 2
    st = shm.status(tries=5)
    assert st["torn"]                     # never completed: flagged, not passed off as consistent
    shm.hdr_i[SharedState._SLOTS["xruns"][0]] = 2
    shm.end_write()
    st = shm.status()
    assert not st["torn"] and (st["voices"], st["xruns"]) == (2, 2)


def test_concurrent_writer_never_yields_a_torn_snapshot(shm):
    """A writer thread stores the same counter into every field, switching threads as often as
    Python allows; every snapshot the reader accepts has all fields equal."""
    fields = ("voices", "xruns", "ring_underruns", "generator_faults", "sample_time", "callbacks", "midi_messages")
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            shm.write_status(dict.fromkeys(fields, i))

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    t = threading.Thread(target=writer)
    t.start()
    raw_torn = ok = 0
    try:
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:
            st = shm.status()
            if not st["torn"]:
                ok += 1
                assert len({st[f] for f in fields}) == 1, st
            raw = shm._read_once(False)[2]            # the same copy without the seqlock
            raw_torn += len({raw[f] for f in fields}) > 1
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    print(f"{ok} consistent snapshots; unprotected copies torn: {raw_torn}")
    assert ok > 100


def _ramp_blocks(total: int, block: int, channels: int = 2):
    for start in range(0, total, block):
        n = min(block, total - start)
        b = np.zeros((n, channels), np.float32)
        b[:, 0] = np.arange(start, start + n, dtype=np.float32)
        b[:, 1:] = -1.0                               # only channel 0 goes to the scope (both to the meters)
        yield b


def test_ring_wraps_and_gives_the_last_n_samples_in_order(shm):
    from livewave.engine_host import _Scope
    scope = _Scope(shm, 2, 1000)
    assert np.array_equal(shm.scope(8), np.zeros(8, np.float32))
    first = next(_ramp_blocks(300, 300))
    scope.post_render(first)
    x = shm.scope(400)                                # more than written: zeros before
    assert np.array_equal(x[:100], np.zeros(100)) and np.array_equal(x[100:], np.arange(300))
    total = 3 * RING_SIZE + 777
    for b in _ramp_blocks(total - 300, 999):
        b[:, 0] += 300
        scope.post_render(b)
    assert shm.render_i[0] == total
    for n in (1, 1000, RING_SIZE - 1, RING_SIZE):
        assert np.array_equal(shm.scope(n), np.arange(total - n, total, dtype=np.float32)), n
    last = (total - 300) % 999 or 999
    st = shm.status()
    assert st["peak"] == total - 1 and st["write_index"] == total
    # the meters read left and right (the right is -1 here)
    both = np.concatenate([np.arange(total - last, total, dtype=np.float64), -np.ones(last)])
    assert math.isclose(st["rms"], np.sqrt(np.mean(both ** 2)), rel_tol=1e-6)
    with pytest.raises(ValueError):
        shm.scope(RING_SIZE + 1)


def test_scope_while_the_render_side_writes(shm):
    """The writer (a nogil kernel: truly in parallel) laps the ring over and over; every scope
    read comes back as consecutive samples."""
    from livewave.engine_host import _Scope
    scope = _Scope(shm, 1, 512)
    done = threading.Event()

    def render():
        try:
            for i, b in enumerate(_ramp_blocks(2 ** 21, 512, channels=1)):
                scope.post_render(b)
                if i % 64 == 0:
                    time.sleep(0.001)
        finally:
            done.set()

    t = threading.Thread(target=render)
    t.start()
    reads = 0
    while not done.is_set():
        w = int(shm.render_i[0])
        x = shm.scope(4096)
        if w >= 4096:
            assert np.all(np.diff(x) == 1.0), x
            reads += 1
    t.join()
    assert reads > 10


def test_scope_retries_when_the_writer_laps_the_copy(shm):
    """The write index moves by more than the ring's spare room during a copy: that copy is
    discarded and taken again."""
    from livewave.engine_host import _Scope
    scope = _Scope(shm, 1, 4096)
    for b in _ramp_blocks(2 * RING_SIZE, 4096, channels=1):
        scope.post_render(b)
    w = int(shm.render_i[0])

    class Index:                      # reads: before copy 1, after it (lapped), before copy 2, after it
        seen = [w, w + RING_SIZE, w, w]

        def __getitem__(self, i):
            return self.seen.pop(0)

    shm.render_i = Index()
    x = shm.scope(1000)
    assert Index.seen == [] and np.array_equal(x, np.arange(w - 1000, w, dtype=np.float32))


# -- the child's command handling and loader, without audio ------------------------------------------
class _Conn:
    def __init__(self):
        self.sent = []

    def send(self, ev):
        self.sent.append(ev)


@pytest.fixture
def host(shm):
    from livewave.config import EngineConfig
    from livewave.engine import Engine
    from livewave.engine_host import EngineHost
    h = EngineHost(_Conn(), shm.name, check_settings({"midi": "none"}))
    h.engine = Engine(EngineConfig(max_block=256, channels=1)).prepare()
    yield h
    h.loader.stop()
    h.shm.close()


def test_child_answers_bad_commands_with_errors_and_changes_nothing(host):
    eng = host.engine
    before = eng.cond.controls.copy()
    gain = eng.post.target_gain
    queued = eng.events._write
    bad = [("control", "loudness", 0.5), ("control", 9, 0.5), ("control", -1, 0.5), ("control", "breath"),
           ("gain_db", "loud"), ("midi", 0x90, 300, 1), ("panic", "now"), ("frobnicate",), "stop", None,
           ("midi_ports", "other")]
    for cmd in bad:
        host.handle(cmd)
    errors = host.conn.sent
    assert [e[0] for e in errors] == ["error"] * len(bad), errors
    text = " | ".join(e[1] for e in errors)
    for words in ("no control 'loudness'", "control index 9 out of range", "brightness, breath",
                  "control takes 2 arguments", "not a finite number", "data1", "panic takes 0",
                  "unknown command 'frobnicate'", "needs a restart"):
        assert words in text, (words, text)
    assert np.array_equal(eng.cond.controls, before) and not host.stopping
    assert eng.events._write == queued and not eng._panic
    assert eng.post.target_gain == gain
    host.conn.sent.clear()
    host.handle(("control", "breath", 5.0))          # clamped to its range, and said so
    host.handle(("control", 0, -0.25))
    host.handle(("gain_db", 40.0))
    host.handle(("ping", "t1"))
    host.handle(("midi", 0x90, 69, 100))
    host.handle(("midi_ports",))
    assert host.conn.sent == [("control", "breath", 1.0), ("control", "brightness", -0.25), ("gain_db", 12.0),
                              ("pong", "t1"), ("midi_ports", [], "none", [])]
    assert eng.events._write == queued + 1
    host.handle(("stop",))
    assert host.stopping


def test_child_records_a_take_on_command_and_says_where(host, tmp_path):
    import soundfile as sf

    from livewave.smf import read_midi_file
    eng = host.engine
    out = np.zeros((256, 1), np.float32)
    host.handle(("record_stop",))
    host.handle(("record", str(tmp_path / "missing" / "t.wav")))
    host.handle(("record", str(tmp_path / "t.flac")))
    assert [e[0] for e in host.conn.sent] == ["error"] * 3, host.conn.sent
    assert "no take" in host.conn.sent[0][1] and "no such folder" in host.conn.sent[1][1]
    assert "WAV" in host.conn.sent[2][1] and eng.take is None
    host.conn.sent.clear()
    host.handle(("record", str(tmp_path / "take.wav")))
    assert host.conn.sent == [("recording", str(tmp_path / "take.wav"), str(tmp_path / "take.mid"))]
    host.handle(("record", str(tmp_path / "other.wav")))
    assert host.conn.sent[-1][0] == "error" and "already" in host.conn.sent[-1][1]
    eng.push_event(eng.sample_time + 100, 0x90, 60, 100)
    eng.push_event(eng.sample_time + 9000, 0x80, 60, 0)
    for _ in range(60):
        eng.render(out)
    host.conn.sent.clear()
    host.handle(("record_stop",))
    (kind, summary), = host.conn.sent
    assert kind == "recorded" and summary["events"] == 2 and summary["seconds"] == pytest.approx(60 * 256 / 48000)
    assert summary["error"] is None and summary["dropped_samples"] == 0
    w, _ = sf.read(summary["audio"], dtype="float32")
    assert w.size == 60 * 256 and np.abs(w).max() > 0.01
    assert [e[1:] for e in read_midi_file(summary["midi"]).events] == [(0x90, 60, 100), (0x80, 60, 0)]
    host.handle(("record", str(tmp_path / "take.wav")))      # never over the first take
    assert host.conn.sent[-1] == ("recording", str(tmp_path / "take-2.wav"), str(tmp_path / "take-2.mid"))
    eng.stop_take().finish()
    host.handle(("record", str(tmp_path / "solo.wav"), False))     # the audio alone (play --no-record-midi)
    assert host.conn.sent[-1] == ("recording", str(tmp_path / "solo.wav"), None)
    eng.stop_take().finish()
    assert not (tmp_path / "solo.mid").exists()
    host.handle(("record", str(tmp_path / "solo.wav"), "no"))
    assert host.conn.sent[-1][0] == "error" and "True or False" in host.conn.sent[-1][1]


def test_child_sets_concert_pitch_and_transpose_and_says_what_it_set(host):
    eng = host.engine
    for cmd in (("tuning", 442.0), ("tuning", 1000.0), ("transpose", -5), ("transpose", 99)):
        host.handle(cmd)
    host.handle(("transpose", 2.5))
    host.handle(("tuning", float("nan")))
    sent = host.conn.sent
    assert sent[:4] == [("tuning", 442.0), ("tuning", 480.0), ("transpose", -5), ("transpose", 36)], sent
    assert sent[4][0] == "error" and "whole number" in sent[4][1]
    assert sent[5][0] == "error" and "finite" in sent[5][1]
    assert eng.tuning_hz == 480.0 and eng.transpose == 36
    with pytest.raises(EngineError, match="tuning"):
        check_settings({"tuning": 300.0})
    with pytest.raises(EngineError, match="transpose"):
        check_settings({"transpose": 40})


def test_a_program_change_loads_the_model_the_list_has_at_that_number(host):
    from livewave.checkpoint import BUILTIN
    eng = host.engine
    out = np.zeros((256, 1), np.float32)

    def program(ch: int, n: int) -> None:
        eng.push_event(eng.sample_time, 0xC0 | ch, n, 0)
        eng.render(out)
        host._watch_program()

    program(0, 1)                                        # no list yet: program changes are ignored
    assert host.conn.sent == [] and host.loader.requests.empty()
    host.handle(("programs", [BUILTIN, str(ROOT / "models" / "violin.safetensors")]))
    program(3, 1)
    assert host.conn.sent == [("program", 3, 1, str(ROOT / "models" / "violin.safetensors"))]
    assert host.loader.requests.get_nowait()[1] == str(ROOT / "models" / "violin.safetensors")
    host.conn.sent.clear()
    eng.push_event(eng.sample_time, 0xC0, 0, 0)          # two in one block: the last one counts
    eng.push_event(eng.sample_time + 10, 0xC0, 5, 0)
    eng.render(out)
    host._watch_program()
    assert host.conn.sent[0] == ("program", 0, 5, None) and "no model at that number" in host.conn.sent[1][1]
    assert host.loader.requests.empty()
    host.handle(("programs", "violin"))
    assert host.conn.sent[-1][0] == "error" and "list" in host.conn.sent[-1][1]


def test_child_binds_learns_and_tells_the_gui_what_a_knob_moved(host):
    eng = host.engine
    out = np.zeros((64, 1), np.float32)

    def knob(ch, cc, value):
        eng.push_event(eng.sample_time, 0xB0 | ch, cc, value)
        eng.render(out)
    host.watch_controls()                     # the GUI knows the values from here on
    host.handle(("bind", "breath", 0, 21))
    host.handle(("bind", "nope", 0, 22))
    host.handle(("bind", "breath", 0, 6))     # data entry: MIDI structure
    assert host.conn.sent[0] == ("bindings", {"breath": [0, 21]})
    assert [e[0] for e in host.conn.sent[1:]] == ["error", "error"]
    assert "no control 'nope'" in host.conn.sent[1][1] and "CC 6" in host.conn.sent[2][1]
    host.conn.sent.clear()
    knob(0, 21, 127)
    host.watch_controls()
    assert host.conn.sent == [("control", "breath", 1.0)]
    host.conn.sent.clear()
    host.handle(("learn", "brightness"))
    knob(5, 22, 0)
    host.watch_controls()
    assert host.conn.sent[:3] == [("learning", "brightness"), ("learned", "brightness", 5, 22),
                                  ("bindings", {"breath": [0, 21], "brightness": [5, 22]})]
    host.conn.sent.clear()
    host.handle(("control", "breath", 0.5))   # told once, by its answer, not again by the watch
    host.watch_controls()
    assert host.conn.sent == [("control", "breath", 0.5)]
    host.handle(("unbind", "breath"))
    assert host.conn.sent[-1] == ("bindings", {"brightness": [5, 22]})


def _finish(host, timeout=60.0):
    t_end = time.monotonic() + timeout
    n = len(host.conn.sent)
    while len(host.conn.sent) == n and time.monotonic() < t_end:
        host._finish_loads()
        time.sleep(0.01)
    return host.conn.sent[-1]


def test_child_loads_off_the_render_side_and_refuses_bad_files(host, tmp_path, monkeypatch):
    from livewave import heap_trim, model_loader
    host.loader.start()
    eng = host.engine
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    host.handle(("load", str(bad)))
    ev = _finish(host)
    assert ev[0] == "load_failed" and ev[1] == str(bad) and "corrupt.safetensors" in ev[2], ev
    assert eng._pending is None and eng.generator.info.name == "livewave default"
    host.handle(("load", str(tmp_path / "missing.safetensors")))
    ev = _finish(host)
    assert ev[0] == "load_failed" and "no such file" in ev[2]
    good = save_checkpoint(tmp_path / "dark.safetensors", "default", {"name": "dark", "brightness": -0.9}, {"by": "test"})
    host.handle(("load", str(good)))
    ev = _finish(host)
    assert ev[0] == "loaded" and ev[1] == str(good)
    info = ev[2]
    assert info["name"] == "dark" and info["family"] == "default" and info["card"]["by"] == "test"
    assert {c["name"]: c["default"] for c in info["controls"]}["brightness"] == -0.9
    assert {"name", "min", "max", "default", "unit", "cc"} <= set(info["controls"][0])
    assert eng._pending is not None and host.generation == 1      # swapped in at the next block
    eng.push_event(0, 0x90, 60, 90)
    eng.render(np.zeros((256, 1), np.float32))
    assert eng.generator.info.name == "dark"
    nm, sounding = host.note_map()
    assert nm[0, 60] == round(90 / 127 * 127) and np.count_nonzero(nm) == 1 and sounding == 1
    eng.push_event(300, 0x80, 60, 0)
    eng.render(np.zeros((256, 1), np.float32))
    assert host.note_map()[0][0, 60] == 90 | RELEASED            # ringing out
    # the swapped-out instrument is released after RETIRE_AFTER, and the freed memory given back
    # to the system on the loader thread (heap_trim)
    assert len(host.loader.retired) == 1 and host.loader.trims == 0
    monkeypatch.setattr(model_loader, "RETIRE_AFTER", 0.0)
    host._finish_loads()
    assert host.loader.retired == []
    t_end = time.monotonic() + 10.0
    while heap_trim.available() and host.loader.trims == 0 and time.monotonic() < t_end:
        time.sleep(0.01)
    assert host.loader.trims == int(heap_trim.available())


# -- the null engine -------------------------------------------------------------------------------
def test_null_engine_answers_like_the_real_one(tmp_path):
    e = NullEngine()
    info = e.start()
    assert e.alive() and info["model"]["family"] == "default"
    names = [c["name"] for c in info["model"]["controls"]]
    assert names[:2] == ["brightness", "breath"]
    e.send("control", "breath", 2.0)
    e.send("control", 0, 0.5)
    e.send("control", "loudness", 0.5)
    e.send_raw(("control", "breath"))
    e.send("ping", 3)
    evs = e.poll_events()
    assert evs[:2] == [("control", "breath", 1.0), ("control", "brightness", 0.5)]
    assert evs[2][0] == "error" and "loudness" in evs[2][1]
    assert evs[3][0] == "error" and "control takes 2 arguments" in evs[3][1]
    assert evs[4] == ("pong", 3) and e.poll_events() == []
    with pytest.raises(CommandError):
        e.send("control", "breath")
    e.send("midi", 0x90, 69, 100)
    e.send("midi", 0x91, 40, 30)
    assert e.notes() == [(0, 69, 100, True), (1, 40, 30, True)] and e.status()["voices"] == 2
    e.send("midi", 0x90, 69, 0)
    assert e.notes() == [(1, 40, 30, True)]
    e.send("panic")
    assert e.notes() == []
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage!" * 4)
    good = save_checkpoint(tmp_path / "soft.safetensors", "default", {"name": "soft", "breath": 0.8})
    e.load(bad)
    e.load(good)
    ev = e.poll_events()
    assert ev[0][:2] == ("load_failed", str(bad)) and "bad.safetensors" in ev[0][2]
    assert ev[1][:2] == ("loaded", str(good)) and ev[1][2]["name"] == "soft"
    st = e.status()
    assert st["model_generation"] == 1 and st["state_name"] == "running" and not st["torn"]
    assert np.array_equal(e.scope(64), np.zeros(64)) and e.check() is None
    info = e.restart()
    assert info["model"]["name"] == "soft" and e.poll_events()[0][0] == "restarted"
    final = e.stop()
    assert not e.alive() and final["state_name"] == "stopped" and e.send("ping", 1) is False
    with pytest.raises(EngineError, match="bad.safetensors"):
        NullEngine().start({"model": str(bad)})


def test_engine_process_reports_why_the_child_did_not_start(tmp_path):
    """A real child: it fails to open a device that does not exist and says so."""
    ep = EngineProcess(ready_timeout=120, log_dir=tmp_path)
    with pytest.raises(EngineError) as info:
        ep.start({"audio": "no-such-card-xyz", "midi": "none"})
    assert "no-such-card-xyz" in str(info.value) or "no audio output device" in str(info.value), info.value
    assert not ep.alive() and ep.check() is None
    ep.stop()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage!" * 4)
    with pytest.raises(EngineError, match="bad.safetensors"):
        ep.start({"model": str(bad), "midi": "none"})
    ep.stop()


def test_an_engine_waiting_for_its_audio_device_answers_and_stops(tmp_path):
    """A restart after the device went away (``wait_for_device``): the child does not fail, it
    says ("waiting", why) and lives on, looking for the device; the parent is not blocked
    (``DeviceUnavailable`` with ``waiting`` set) and does not count it dead. Queries are
    answered, commands that need a playing engine refused, and a stop ends it cleanly. Without
    the setting a missing device fails the start, as before (``DeviceUnavailable``)."""
    from livewave.engine_process import DeviceUnavailable
    ep = EngineProcess(ready_timeout=120, log_dir=tmp_path)
    with pytest.raises(DeviceUnavailable):
        ep.start({"audio": "no-such-card-xyz", "midi": "none"})
    assert not ep.alive() and not ep.waiting
    with pytest.raises(DeviceUnavailable, match="waits for it"):
        ep.start({"audio": "no-such-card-xyz", "midi": "none", "wait_for_device": True})
    try:
        assert ep.waiting and ep.alive()
        time.sleep(1.2)                                # a few looks for the device: still waiting
        assert ep.alive() and ep.check() is None and ep.ping(10.0) is not None
        ep.send("midi_ports")
        assert ep.wait_event("midi_ports", 10.0) == ("midi_ports", [], "none", [])
        ep.send("load", str(tmp_path / "m.safetensors"))
        ev = ep.wait_event("error", 10.0)
        assert ev is not None and "waits for its audio device" in ev[1], ev
    finally:
        final = ep.stop()
    assert not ep.alive() and final is not None


# -- live, on a JACK server ---------------------------------------------------------------------------
RATE, PERIOD = 48000, 128
have_jack = subprocess.run(["which", "jackd"], capture_output=True).returncode == 0


from jack_rig import wait_until as _wait  # noqa: E402


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("jack")
    if not have_jack:
        pytest.skip("jackd is not installed (Debian package jackd2)")
    from jack_rig import JackServer
    with JackServer(RATE, PERIOD, tmp_path_factory.mktemp("jack")) as s:
        yield s


@pytest.mark.jack
def test_engine_process_live(server, tmp_path):
    """One child on the JACK dummy device, MIDI from the rig's port, in five acts."""
    from audio_checks import cents, f0_spectral, longest_unbroken
    from jack_rig import Rig, driver_late, sporadic, xrun_culprits
    # rtmixer: the C callback never waits for the child's GIL (its render thread keeps 2 blocks
    # ahead): the robust placement on this shared 2-core machine, as in test_live_jack
    settings = {"audio": "system", "midi": "lwtest", "block": PERIOD, "placement": "rtmixer", "ahead": 2}
    ep = EngineProcess(ready_timeout=120, log_dir=tmp_path)
    rig = None
    try:
        t0 = time.monotonic()
        info = ep.start(settings)
        print(f"child ready in {time.monotonic() - t0:.1f} s: {info['device_name']}, "
              f"latency {info['latency_ms']:.1f} ms")
        rig = Rig(seconds=3.0)
        assert _wait(lambda: any(c.name.startswith("livewave") for c in
                                 rig.client.get_all_connections(rig.midi_out)), 10), "MIDI not connected"
        outs = sorted(rig.ports("livewave", is_audio=True, is_output=True))
        rig.connect_output(outs[0])
        time.sleep(0.3)

        # (1) a note from the rig sounds, notes() shows it while held, status() has voices and latency
        # (3) while it is held, a corrupt checkpoint is refused and the note plays on without a gap
        on_at, off_at = 4800, 4800 + 96000
        log_before = len(server.log_text())
        rig.schedule([(on_at, bytes([0x90, 60, 110])), (off_at, bytes([0x80, 60, 0]))])
        rig.start()
        t_rig = time.monotonic()
        held = _wait(lambda: ep.notes(), 5)
        assert held == [(0, 60, round(110 / 127 * 127), True)], held
        st = ep.status()
        assert st["voices"] == 1 and st["state_name"] == "running"
        on_time_or_slow_machine(st["age_s"] < 0.5, f"(1) the status was {st['age_s']:.2f} s old")
        assert 2.0 < st["latency_ms"] < 50.0, st
        time.sleep(0.3)
        bad = tmp_path / "corrupt.safetensors"
        bad.write_bytes(b"\xff" * 64)
        t_load = time.monotonic()
        assert ep.load(bad)
        ev = ep.wait_event(("load_failed", "loaded"), 10)
        assert ev is not None and ev[0] == "load_failed" and "corrupt.safetensors" in ev[2], ev
        print(f"load_failed after {(time.monotonic() - t_load) * 1e3:.0f} ms: {ev[2]}")
        assert ep.notes() and ep.status()["voices"] == 1
        # and a good model, prepared and test-played on the child's loader thread, crossfaded in
        good = save_checkpoint(tmp_path / "dark.safetensors", "default", {"name": "dark", "brightness": -0.8})
        ep.load(good)
        ev = ep.wait_event(("load_failed", "loaded"), 20)
        assert ev is not None and ev[0] == "loaded" and ev[2]["name"] == "dark", ev
        assert _wait(lambda: ep.status()["model_generation"] == 1, 1)
        swapped_s = time.monotonic() - t_rig      # the note must still sound across the swap, if it came in time
        if swapped_s < off_at / RATE - 0.1:
            assert ep.notes()
        else:
            on_time_or_slow_machine(False, f"the good model was in {swapped_s:.2f} s after the rig began, after the "
                                           f"note's release at {off_at / RATE:.2f} s")
        assert rig.wait_done(10)
        x = rig.recording[:, 0]
        assert np.abs(x[:on_at]).max() < 1e-4
        onset = on_at + int(np.flatnonzero(np.abs(x[on_at:]) > 1e-3)[0])
        held_part = x[onset + 2400:off_at]
        # no gap: every 10 ms window of the held note carries sound, except where the recording has
        # a hole (a run of exact zeros: a JACK cycle no client got to run, the machine's stall); a
        # gap of the child's own would be counted by it (ring underruns, generator faults)
        win = 480
        windows = held_part[:held_part.size // win * win].reshape(-1, win)
        holes = np.array([longest_unbroken(w).size < win for w in windows])
        w_rms = np.sqrt(np.mean(windows[~holes] ** 2, axis=1))
        end = ep.status()
        stalls = xrun_culprits(server.log_text()[log_before:])
        machine = driver_late(server.log_text()[log_before:])
        print(f"(1) onset {(onset - on_at) / RATE * 1e3:.2f} ms after the MIDI, reported latency "
              f"{st['latency_ms']:.2f} ms; quietest 10 ms window {w_rms.min():.4f}, loudest {w_rms.max():.4f}, "
              f"{holes.sum()} windows with recording holes; server xruns {dict(Counter(stalls))}, its driver late "
              f"{machine} times")
        never_the_cause(stalls)
        assert w_rms.min() > 0.2 * np.median(w_rms) and end["generator_faults"] == 0
        # a stalling machine (this VM is shared) delays notes, starves threads, drops cycles. NB: a
        # clean-clone CI take (2026-12-02) had one hole, no xrun and no underrun; the server's log
        # held two late wake-ups of jackd's own driver thread, nothing else: counted as the machine's
        if not stalls and not machine:
            assert onset - on_at <= st["latency_ms"] * RATE / 1000 + PERIOD
            assert end["ring_underruns"] == st["ring_underruns"] and holes.sum() == 0
        piece = longest_unbroken(held_part)
        # NB: the spectral f0 of a short piece is coarse (112 ms: 43 cents, seen amid 12 stalls)
        on_time_or_slow_machine(piece.size >= RATE // 4, f"(1) the held note's longest stretch without a "
                                f"recording hole is {piece.size} samples ({holes.sum()} windows with holes)")
        assert abs(cents(f0_spectral(piece, RATE), 261.6256)) < (20.0 if stalls or machine else 5.0)
        # a note-off JACK dropped in a cycle the test's own client missed leaves the voice held
        on_time_or_slow_machine(_wait(lambda: ep.status()["voices"] == 0, 2) and ep.notes() == [],
                                f"(1) voices still sound after the note-off: {ep.notes()}")
        assert ep.status()["generator_faults"] == 0
        rig.close()
        rig = None

        # (2) the on-screen keyboard path: a note through the pipe
        rig = Rig(seconds=1.0, name="lwrec")
        rig.connect_output(outs[0])
        time.sleep(0.2)
        rig.start()
        time.sleep(0.2)
        ep.send("midi", 0x90, 69, 100)
        assert _wait(lambda: ep.notes() == [(0, 69, 100, True)], 2)
        time.sleep(0.4)
        sc = ep.scope(9600)                           # the scope: the last 200 ms, as played
        st = ep.status()
        assert abs(cents(f0_spectral(sc, RATE), 440.0)) < 10.0 and 0.01 < _rms(sc) < 1.0
        assert 0.5 * _rms(sc) < st["rms"] < 2.0 * _rms(sc) and st["peak"] >= np.abs(sc[-PERIOD:]).max() * 0.5
        assert rig.wait_done(10)
        ep.send("midi", 0x80, 69, 0)
        y = rig.recording[:, 0]
        start = int(np.flatnonzero(np.abs(y) > 1e-3)[0])
        tone = y[start + 2400:]
        print(f"(2) pipe note: rms {_rms(tone):.3f}")
        assert _rms(tone) > 0.01
        assert abs(cents(f0_spectral(unbroken_or_slow_machine(tone, "(2) the pipe's A4"), RATE), 440.0)) < 5.0
        on_time_or_slow_machine(_wait(lambda: ep.status()["voices"] == 0, 2),
                                "(2) a voice still sounds 2 s after the pipe's note-off")
        assert ep.status()["peak"] < 1e-3
        rig.close()
        rig = None

        # (4) the parent holds its GIL for 2 s: the child plays on without an xrun
        ep.send("midi", 0x90, 57, 90)
        time.sleep(0.2)
        before = ep.status()
        log_before = len(server.log_text())
        t_end = time.perf_counter() + 2.0
        n = 0
        while time.perf_counter() < t_end:          # a frozen GUI: pure Python, no other thread here
            n += 1
        after = ep.status()
        log_after = server.log_text()[log_before:]
        ep.send("midi", 0x80, 57, 0)
        frames = after["sample_time"] - before["sample_time"]
        print(f"(4) parent busy 2 s ({n} loops): child rendered {frames / RATE:.2f} s, xruns "
              f"{after['xruns'] - before['xruns']}, "
              f"ring underruns {after['ring_underruns'] - before['ring_underruns']}, "
              f"load peak {after['load_peak']:.1f}%, server xruns by culprit {dict(Counter(xrun_culprits(log_after)))}, "
              f"status age after {after['age_s'] * 1e3:.1f} ms")
        # PortAudio flags an underflow for any xrun of the server, so the child's count includes the
        # machine's own stalls; the server's log tells who was late. On a quiet machine: no xrun.
        culprits = xrun_culprits(log_after)
        if not culprits:
            # NB: a stall too short for the server to log a culprit still flags PortAudio's underflow
            on_time_or_slow_machine(sporadic(after["xruns"] - before["xruns"]) and
                                    sporadic(after["ring_underruns"] - before["ring_underruns"]),
                                    f"(4) {after['xruns'] - before['xruns']} xruns and "
                                    f"{after['ring_underruns'] - before['ring_underruns']} ring underruns, "
                                    "none in the server's log")
        never_the_cause(culprits)
        # it played every cycle the server ran (a stalled server runs fewer than it logs)
        on_time_or_slow_machine(frames + len(culprits) * PERIOD > 1.9 * RATE,
                                f"(4) {frames} frames rendered in 2 s amid {len(culprits)} logged xruns")
        # and its own loop kept updating the status
        on_time_or_slow_machine(after["age_s"] < 0.1, f"(4) the status was {after['age_s']:.2f} s old")

        # (5) a killed child is noticed and restarted; sound comes back
        pid = ep.proc.pid
        os.kill(pid, signal.SIGKILL)
        assert _wait(lambda: ep.check(), 5)
        msg = ep.check()
        assert "SIGKILL" in msg, msg
        assert ep.send("ping", 1) is False or not ep.alive()
        died = [e for e in ep.poll_events() if e[0] == "died"]
        assert len(died) == 1
        t0 = time.monotonic()
        info = ep.restart()
        print(f"(5) {msg.splitlines()[0]}; restarted in {time.monotonic() - t0:.1f} s")
        assert ep.alive() and ep.proc.pid != pid and ep.restarts == 1
        assert any(e[0] == "restarted" for e in ep.poll_events())
        assert ep.ping(5) is not None
        rig = Rig(seconds=1.0, name="lwrec2")
        outs = sorted(rig.ports("livewave", is_audio=True, is_output=True))
        rig.connect_output(outs[0])
        time.sleep(0.2)
        rig.start()
        time.sleep(0.1)
        ep.send("midi", 0x90, 64, 100)
        assert rig.wait_done(10)
        z = rig.recording[:, 0]
        print(f"(5) after restart: rms {_rms(z[RATE // 2:]):.3f}")
        assert _rms(z[RATE // 2:]) > 0.01
        final = ep.stop()
        assert final is not None and final["state_name"] == "stopped"
        # the release rings out before the child exits: it waits up to a second past the release
        # for the audio side to render it, which a stalled machine may not do
        on_time_or_slow_machine(final["voices"] == 0, f"{final['voices']} voice(s) still sounding at the stop "
                                                      f"({final['xruns']} xruns)")
        assert ep.proc.exitcode == 0
    finally:
        if rig is not None:
            rig.close()
        ep.stop(timeout=5)


@pytest.mark.jack
def test_a_program_change_from_a_jack_midi_keyboard_switches_the_model_and_its_reverb_knob_is_told(server, tmp_path):
    """Real MIDI bytes: a program change from the rig's JACK MIDI port reaches the engine
    process, which loads the model the GUI's list has at that number and crossfades it in; the
    keyboard's reverb knob (CC 91) before it moves the reverb's send, and the GUI is told."""
    from jack_rig import Rig

    from livewave.checkpoint import BUILTIN
    violin = str(ROOT / "models" / "violin.safetensors")
    ep = EngineProcess(ready_timeout=120, log_dir=tmp_path)
    rig = None
    try:
        ep.start({"audio": "system", "midi": "lwtest", "block": PERIOD, "placement": "rtmixer", "ahead": 2})
        rig = Rig(seconds=1.0)
        assert _wait(lambda: any(c.name.startswith("livewave") for c in
                                 rig.client.get_all_connections(rig.midi_out)), 10), "MIDI not connected"
        ep.send("programs", [BUILTIN, violin])
        assert ep.ping() is not None                   # the list is in before the program change
        rig.schedule([(2400, bytes([0xB2, 91, 100])), (4800, bytes([0xC2, 1]))])   # CC 91, then program 2, channel 3
        rig.start()
        assert rig.wait_done(10)
        ev = ep.wait_event(("reverb",), 10)
        assert ev is not None and ev[1]["send"] == 100 / 127, ev
        assert ep.settings["reverb"]["send"] == 100 / 127          # a restart keeps it
        ev = ep.wait_event(("program",), 10)
        assert ev == ("program", 2, 1, violin), ev
        ev = ep.wait_event(("loaded", "load_failed"), 30)
        assert ev is not None and ev[0] == "loaded" and ev[1] == violin, ev
    finally:
        if rig is not None:
            rig.close()
        ep.stop()


@pytest.mark.jack
def test_the_same_freeze_inside_the_audio_process_costs_xruns(server):
    """The control for act (4): the engine in the freezing process itself (a Python callback),
    and one C call that holds the GIL for about half a second, as a GUI busy in its toolkit does."""
    from jack_rig import xrun_culprits

    from livewave import audio_io
    from livewave.audio_io import AudioOutput
    from livewave.engine import Engine
    out = AudioOutput(Engine(), device="system", block=PERIOD, policy="callback").open()
    try:
        out.start()
        out.engine.push_midi(0x90, 57, 90)
        time.sleep(0.3)
        before = out.stats.xruns
        log_before = len(server.log_text())
        t0 = time.perf_counter()
        sum(range(40_000_000))                    # NB: one C call: the GIL is not offered to anyone
        held = time.perf_counter() - t0
        time.sleep(0.1)
        xruns = out.stats.xruns - before
        culprits = xrun_culprits(server.log_text()[log_before:])
    finally:
        out.stop()
        audio_io.sounddevice()._terminate()      # NB: while the server is up (see test_live_jack)
        audio_io._sd = None
    print(f"GIL held {held * 1e3:.0f} ms in the audio process: {xruns} xruns, culprits {dict(Counter(culprits))}")
    assert held > 0.1
    assert xruns >= 1
    # amid the machine's own stalls JACK may name another client for the late cycle
    on_time_or_slow_machine(any(c.startswith("livewave") for c in culprits),
                            f"the frozen process was not named by JACK: {dict(Counter(culprits))}")


@pytest.mark.jack
def test_engine_process_opens_audio_input_in_the_rtmixer_placement(server, tmp_path):
    """The app's settings with an input (a vocoder driven by audio in): the child opens a JACK
    capture port beside its outputs and reports no missing input."""
    from jack_rig import Rig
    settings = {"audio": "system", "midi": "none", "block": PERIOD, "placement": "rtmixer", "ahead": 2,
                "input_channels": 1}
    ep = EngineProcess(ready_timeout=120, log_dir=tmp_path)
    rig = None
    try:
        ep.start(settings)
        rig = Rig(seconds=0.1)
        assert _wait(lambda: rig.ports("livewave", is_audio=True, is_input=True), 10)
        assert len(rig.ports("livewave", is_audio=True, is_output=True)) >= 1
    finally:
        if rig is not None:
            rig.close()
        ep.stop()


@pytest.mark.jack
@pytest.mark.parametrize("kernels", ["numba", "torch"])
def test_a_vocoder_at_64_sample_blocks_gets_the_lead_its_frames_need(server, tmp_path, monkeypatch, kernels):
    """A MIDI-to-mel vocoder computes a whole frame in one 64-sample block in nine. With torch
    computing it (``LIVEWAVE_CPU_KERNELS=0``: about 5 ms a frame on this CPU) and the configured 4
    blocks ahead (5.3 ms), its ring ran dry 913 times in 15 s (measured): the engine renders
    further ahead as its cost at load asks, says so, reports the latency, and the ring no longer
    runs dry. With its Numba kernels (the CPU path; about 0.5-1.4 ms a frame) it plays at the
    configured lead, or near it, without running dry."""
    from jack_rig import sporadic
    if kernels == "torch":
        monkeypatch.setenv("LIVEWAVE_CPU_KERNELS", "0")
    path = ROOT / "models" / "piano-midi2mel.safetensors"
    settings = {"audio": "system", "midi": "none", "block": 64, "placement": "rtmixer", "ahead": 4,
                "model": str(path)}
    ep = EngineProcess(ready_timeout=120, log_dir=tmp_path)
    try:
        info = ep.start(settings)
        base_ms = 4 * 64 / RATE * 1000
        if kernels == "torch":
            assert info["lead"] >= 8, info
        else:
            # 4-5 measured here (a frame 0.4-1.4 ms); the lead follows the cost measured at load, so
            # a load on a busy machine asks for more (8 once in CI, stop 33): the machine's, not the model's
            assert info["lead"] >= 4, info
            on_time_or_slow_machine(info["lead"] <= 7, f"lead {info['lead']} blocks for the Numba path")
        reports = []
        while info["lead"] > 4 and not any(f"{info['lead']} blocks ahead instead of 4" in r for r in reports):
            ev = ep.wait_event("report", timeout=5.0)
            assert ev is not None, f"no report of the longer lead: {reports}"
            reports.append(ev[1])
        time.sleep(1.0)
        for n in (60, 64, 67):
            ep.send("midi", 0x90, n, 90)
        before = ep.status()
        time.sleep(8.0)
        after = ep.status()
        assert after["latency_ms"] >= base_ms + (info["lead"] - 4) * 64 / RATE * 1000 - 0.5
        underruns = after["ring_underruns"] - before["ring_underruns"]
        on_time_or_slow_machine(sporadic(underruns), f"{underruns} ring underruns in 8 s at lead {info['lead']}")
    finally:
        ep.stop()


def test_the_lead_follows_the_model_s_cost_at_load_and_comes_back():
    """``lead_for``: a block's cost at load, times LEAD_SAFETY, in blocks, plus two; never under
    ``ahead`` nor over MAX_LEAD_S. ``set_lead_for`` applies it from a model's screen and the MIDI
    delay follows; a model without a cost (the built-in instrument) gets ``ahead`` back."""
    from types import SimpleNamespace

    from livewave.audio_io import LEAD_SAFETY, MAX_LEAD_S, AudioOutput, lead_for
    from livewave.config import EngineConfig
    from livewave.engine import Engine
    assert lead_for(0.0, 64, 48000, 4) == 4
    assert lead_for(0.001, 64, 48000, 4) == max(4, math.ceil(LEAD_SAFETY * 0.001 * 48000 / 64) + 2)
    assert lead_for(0.006, 64, 48000, 4) == math.ceil(LEAD_SAFETY * 0.006 * 750) + 2
    assert lead_for(10.0, 64, 48000, 4) == int(MAX_LEAD_S * 48000 // 64)
    assert lead_for(10.0, 4096, 48000, 2) == 2                       # the cap never goes under ahead
    eng = Engine(EngineConfig(sample_rate=48000, max_block=1024))
    out = AudioOutput(eng, sample_rate=48000, block=64, policy="thread", ahead=4)
    vocoder = SimpleNamespace(info=SimpleNamespace(name="voc", card={"load_screen": {"block_cost_s": 0.006}}))
    builtin = SimpleNamespace(info=SimpleNamespace(name="builtin", card={}))
    note = out.set_lead_for(vocoder)
    assert out.lead == lead_for(0.006, 64, 48000, 4) > 4 and eng.midi_delay == (out.lead + 1) * 64
    assert f"{out.lead} blocks ahead instead of 4" in note
    assert out.set_lead_for(builtin) is None and out.lead == 4 and eng.midi_delay == 5 * 64
    assert AudioOutput(eng, sample_rate=48000, block=64, policy="callback").set_lead(9) == 0


def test_render_time_percentiles_from_the_histogram():
    from livewave.audio_io import AudioStats
    st = AudioStats()
    assert st.load_percentile(99.9) == 0.0
    st.load_hist[10] = 998                 # 10-11% of the block
    st.load_hist[60] = 1                   # one block at 60%
    st.load_hist[200] = 1                  # one at 200% or more
    assert st.load_percentile(50) == 11.0 and st.load_percentile(99.9) == 61.0 and st.load_percentile(100) == 201.0


def test_the_render_side_keeps_its_wall_time_and_its_own_cpu_time_apart():
    """A block during which the rendering thread did not run (here it sleeps, as it does when
    the OS or a VM's host takes its core away) counts in the wall-time histogram, not in the
    CPU-time one: the soak reports both."""
    import time

    from livewave.audio_io import AudioOutput
    from livewave.engine import Engine
    out = AudioOutput(Engine(), block=64, policy="thread")          # not opened: no device needed
    t0, c0 = time.perf_counter(), time.thread_time()
    time.sleep(0.004)                                                # 3 blocks of 64 at 48 kHz
    out._note_load(t0, c0, 64)
    st = out.stats
    assert st.load_percentile(100) == 201.0 and st.load_peak >= 3.0
    assert st.cpu_percentile(100) <= 20.0 and st.cpu_peak < 0.2


class _ScriptedConn(_Conn):
    """A pipe from the GUI that stays quiet for ``rounds`` polls, then says stop."""

    def __init__(self, rounds: int):
        super().__init__()
        self.rounds = rounds

    def poll(self, timeout=0.0):
        self.rounds -= 1
        if self.rounds > 0:
            time.sleep(0.002)
        return self.rounds <= 0

    def recv(self):
        return ("stop",)


def test_a_bug_in_the_command_loop_is_logged_and_reported_once_and_the_loop_goes_on(host, monkeypatch, capsys):
    from livewave.audio_io import AudioOutput
    from livewave.engine_process import STATE_RUNNING
    from livewave.model_watchdog import ModelWatchdog, prepared_fallback
    host.out = AudioOutput(host.engine, sample_rate=48000, block=64)       # never opened: stats only
    host.watchdog = ModelWatchdog(host.engine, prepared_fallback(host.engine))
    host.conn = _ScriptedConn(rounds=40)
    calls = []

    def broken_loads():
        calls.append(1)
        raise KeyError("a bug in the loader's hand-over")

    monkeypatch.setattr(host, "_finish_loads", broken_loads)
    monkeypatch.setattr(host, "shutdown", lambda: 0)
    assert host.serve() == 0
    assert len(calls) >= 30, "the loop stopped at the first failure"
    reports = [e[1] for e in host.conn.sent if e[0] == "report"]
    assert len(reports) == 1 and "broken_loads failed (KeyError" in reports[0] and "plays on" in reports[0], reports
    assert sum(host.loop_errors.values()) == len(calls)
    assert "a bug in the loader's hand-over" in capsys.readouterr().err       # the traceback, in the log
    st = host.shm.status()
    assert st["state"] == STATE_RUNNING and st["age_s"] < 1.0       # the heartbeat went on


def test_the_command_loop_reads_the_playing_model_and_its_controls_as_one_across_swaps(host):
    """The render side swaps the model and its control array in two stores, and during a
    crossfade it briefly puts the old model's controls back to render it. The command loop
    (watch_controls, control commands) must never pair one model with the other's controls:
    it once did, a ValueError (shapes (6,) and (4,)) in the loop that, before the loop was
    guarded, ended the engine process with exit code 1."""
    from livewave.checkpoint import load_generator
    from livewave.default_instrument import DefaultInstrument
    eng = host.engine
    models = [load_generator(next(iter(shipped("ddsp")))), DefaultInstrument()]
    for g in models:
        c = eng.config
        g.prepare(c.sample_rate, c.max_block, c.polyphony, c.device)
    assert len(models[0].info.controls) != len(models[1].info.controls)
    for k in range(4):
        eng.push_event(0, 0x90, 48 + 7 * k, 90)
    stop, errors, blocks = threading.Event(), [], [0]

    def render():
        out = np.zeros((64, 1), np.float32)
        while not stop.is_set():
            eng.render(out)
            blocks[0] += 1

    t = threading.Thread(target=render, daemon=True)
    t.start()
    swaps, t_end = 0, time.monotonic() + 4.0
    try:
        while time.monotonic() < t_end:
            try:
                eng.swap_generator(models[swaps % 2])
                swaps += 1
            except RuntimeError:
                pass                                    # the last swap is not picked up yet
            for _ in range(20):
                try:
                    host.watch_controls()
                    host._cmd_control(0, 0.5)
                    gen, ctl = eng.playing
                    assert ctl.shape == (len(gen.info.controls),)
                except Exception as exc:                # noqa: BLE001 (what the loop would have died of)
                    errors.append(repr(exc))
                time.sleep(0.001)
    finally:
        stop.set()
        t.join(5)
    print(f"{swaps} swaps, {blocks[0]} blocks rendered, {len(errors)} errors")
    assert not errors, Counter(errors).most_common(3)
    assert swaps > 10 and blocks[0] > 200


def test_a_dead_engine_s_message_holds_its_whole_last_traceback(tmp_path):
    from livewave.engine_process import EngineProcess
    ep = EngineProcess(log_dir=tmp_path)
    ep.log_path = tmp_path / "engine.log"
    tb = ["Traceback (most recent call last):"] + [f'  File "x.py", line {i}, in f' for i in range(20)]
    ep.log_path.write_text("\n".join([f"started {i}" for i in range(30)] + tb + ["ValueError: the cause"]) + "\n")
    text = ep._tail_text()
    assert "Traceback (most recent call last)" in text and text.endswith("ValueError: the cause")
    assert "started" not in text
    ep.log_path.write_text("\n".join(f"line {i}" for i in range(100)) + "\n")
    text = ep._tail_text()
    assert text.count("\n") == 15 and "line 85" in text and "line 84" not in text


def test_the_reverb_command_is_checked_applied_answered_and_cc91_is_told(host):
    """("reverb", {...}) sets what it names, clamped, and is answered with every setting; a CC 91
    from a keyboard moves the send and the GUI is told; bad values change nothing."""
    eng = host.engine
    out = np.zeros((256, 1), np.float32)
    host.handle(("reverb", {"send": 0.5, "decay_s": 99.0}))
    assert host.conn.sent == [("reverb", {"send": 64 / 127, "decay_s": 20.0, "damping": 0.5, "predelay_ms": 10.0})]
    assert eng.reverb.send[0] == 64 / 127 and eng.reverb.decay_s == 20.0
    host.conn.sent.clear()
    for bad in ({"send": float("nan")}, {"size": 1.0}, [0.5], {"decay_s": "long"}):
        host.handle(("reverb", bad))
    assert [e[0] for e in host.conn.sent] == ["error"] * 4, host.conn.sent
    assert eng.reverb.send[0] == 64 / 127
    host.conn.sent.clear()
    host._watch_reverb()
    assert host.conn.sent == []                          # nothing moved
    eng.push_event(eng.sample_time, 0xB0, 91, 20)
    eng.render(out)
    host._watch_reverb()
    assert host.conn.sent == [("reverb", {"send": 20 / 127, "decay_s": 20.0, "damping": 0.5, "predelay_ms": 10.0})]
    with pytest.raises(EngineError, match="reverb"):
        check_settings({"reverb": {"send": "loud"}})
    assert check_settings({"reverb": {"damping": 0.0}})["reverb"] == {"damping": 0.05}


def test_the_velocity_curve_command_is_applied_clamped_and_answered(host):
    host.handle(("velocity_curve", 2.0))
    host.handle(("velocity_curve", 99.0))
    host.handle(("velocity_curve", float("nan")))
    assert host.conn.sent[:2] == [("velocity_curve", 2.0), ("velocity_curve", 4.0)]
    assert host.conn.sent[2][0] == "error" and host.engine.velocity_curve == 4.0
    assert host.engine.channels.velocity_curve == 4.0
    with pytest.raises(EngineError, match="velocity curve"):
        check_settings({"velocity_curve": 9.0})


def test_the_pan_command_is_applied_on_cc10s_grid_answered_and_a_keyboards_cc10_is_told(host):
    eng = host.engine
    host.handle(("pan", 0.3))
    host.handle(("pan", -9.0))
    host.handle(("pan", float("nan")))
    assert host.conn.sent[:2] == [("pan", 19 / 63), ("pan", -1.0)]
    assert host.conn.sent[2][0] == "error" and eng.pan[0] == -1.0
    host.conn.sent.clear()
    host._watch_pan()
    assert host.conn.sent == []                          # nothing moved
    eng.push_event(eng.sample_time, 0xB0, 10, 127)
    eng.render(np.zeros((256, 1), np.float32))
    host._watch_pan()
    assert host.conn.sent == [("pan", 1.0)]
    with pytest.raises(EngineError, match="pan"):
        check_settings({"pan": 2.0})
