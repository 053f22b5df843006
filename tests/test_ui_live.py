"""The app on a real engine process on the JACK dummy server, played from a real JACK MIDI
port: a busy window (resized over and over, scope and spectrogram at their full rate, a model
loaded and crossfaded in) while MIDI plays for 20 s, MIDI learn from a real knob, and the
MIDI input picker finding a keyboard plugged in after the app started."""
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PyQt6")
pytest.importorskip("pytestqt")
pytestmark = pytest.mark.jack

ROOT = Path(__file__).resolve().parents[1]
# The most ring underruns the busy-window take may show on a quiet 2-core VM: 0.7% of the take's
# 15,000 blocks. Quiet takes showed 7-38 while the violin's decoder ran through TorchScript; its
# Numba step cut the engine-alone figure from 18-44 to 1-9 in 15 s (benchmarks/RESULTS.md,
# 2026-12-02). Beyond it, on a machine that was not busy, the engine is failing.
KNOWN_UNDERRUNS = 100
VIOLIN = ROOT / "models" / "violin.safetensors"
RATE = 48000


def take(seconds: float) -> list[tuple[int, bytes]]:
    """Chords every 250 ms; CC 21 turned at 2 s (to be learned), 3 s (to 127) and 9 s (to 0)."""
    ev, t = [], 4800
    chords = ((60, 64, 67), (62, 65, 69), (57, 60, 64), (59, 62, 67))
    for i in range(int(seconds * 4)):
        for n in chords[i % 4]:
            ev += [(t, bytes([0x90, n, 70 + i % 50])), (t + 11000, bytes([0x80, n, 0]))]
        t += 12000
    ev += [(2 * RATE, bytes([0xB0, 21, 64])), (3 * RATE, bytes([0xB0, 21, 127])), (9 * RATE, bytes([0xB0, 21, 0]))]
    return sorted(ev, key=lambda e: e[0])


@pytest.mark.skipif(not VIOLIN.exists(), reason="no shipped violin")
def test_a_busy_window_learns_a_knob_loads_a_model_and_the_engine_is_never_late(qtbot, tmp_path):
    if not shutil.which("jackd"):
        pytest.skip("jackd is not installed (Debian package jackd2)")
    pytest.importorskip("rtmixer")
    from jack_rig import JackServer, never_the_cause, on_time_or_slow_machine, sporadic, stall_count, xrun_culprits

    from livewave.engine_process import EngineProcess
    from ui.app import LIVE_DEFAULTS
    from ui.engine_client import EngineClient
    from ui.main_window import MainWindow

    (tmp_path / "jack").mkdir()
    with JackServer(RATE, 128, tmp_path / "jack") as server:
        client = EngineClient(EngineProcess(ready_timeout=120))
        client.start({**LIVE_DEFAULTS, "audio": "system", "midi": "all", "placement": "rtmixer"})   # the app's
        w = MainWindow(client, model_folders=[ROOT / "models"], session=None)
        qtbot.addWidget(w)
        w.resize(1100, 680)
        w.show()
        rig = None
        try:
            # a keyboard plugged in after the app started (a process of its own, as a keyboard's
            # driver is): hot-plug connects it, the picker lists it
            ev = take(20.0)
            (tmp_path / "take.json").write_text(json.dumps([(t, b.hex()) for t, b in ev]))
            rig = subprocess.Popen([sys.executable, str(ROOT / "tests" / "rig_process.py"), str(tmp_path / "take.json"),
                                    "21"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert rig.stdout.readline().strip() == "ready"

            def listed() -> str:
                box = w.devices.midi
                return " | ".join(box.itemText(i) for i in range(box.count()))
            qtbot.waitUntil(lambda: "lwtest:midi_out  (connected)" in listed(), timeout=5000)
            # the picker changes the inputs live: None lets the keyboard go, All inputs takes it back
            for choice, connected in (("none", False), ("all", True)):
                box = w.devices.midi
                box.setCurrentIndex(box.findData(choice))
                box.activated.emit(box.currentIndex())
                qtbot.waitUntil(lambda c=connected: ("lwtest:midi_out  (connected)" in listed()) == c, timeout=5000)
            # MIDI learn, as a performer does it: right-click "breath", choose learn, turn a knob
            w.controls.learn_menu("breath").actions()[0].trigger()
            qtbot.waitUntil(lambda: w.controls.learning == "breath", timeout=2000)
            before = client.engine.status()
            log_before = len(server.log_text())
            rig.stdin.write("go\n")
            rig.stdin.flush()
            t0 = time.monotonic()
            k, loaded_asked, breath_at_3s, late_at, seen = 0, False, None, [], before["ring_underruns"]
            while time.monotonic() - t0 < 21.5:
                k += 1
                u = client.engine.status()["ring_underruns"]
                if u != seen:
                    late_at.append(round(time.monotonic() - t0, 2))
                    seen = u
                w.resize(1000 + 150 * (k % 2), 620 + 80 * (k % 3))     # relayout, repaint, all views
                qtbot.wait(15)
                el = time.monotonic() - t0
                if breath_at_3s is None and el > 4.0:
                    breath_at_3s = w.controls.sliders["breath"].value
                if not loaded_asked and el > 5.0:
                    w.load(str(VIOLIN))
                    loaded_asked = True
            report = json.loads(rig.stdout.readline())
            assert report["done"] and report["sent"] == len(ev), report
            qtbot.waitUntil(lambda: w.model_info.get("path") == str(VIOLIN), timeout=10000)
            qtbot.wait(300)
            after = client.engine.status()
            culprits = xrun_culprits(server.log_text()[log_before:])
            print(f"latency {after['latency_ms']:.1f} ms; late at {late_at} s (load asked at 5 s); "
                  f"window rounds {k}, xruns {after['xruns'] - before['xruns']}, "
                  f"ring underruns {after['ring_underruns'] - before['ring_underruns']}, culprits {Counter(culprits)}")
            # learned from the knob, moved by it, and still bound on the next model
            assert w.controls.bindings == {"breath": (0, 21)}
            assert "CC21" in w.controls.names["breath"].text()
            knob_lost = len(ev) - (after["midi_messages"] - before["midi_messages"]) > 0 and \
                any(c.startswith("lwtest") for c in culprits)
            # the built-in's breath: 0..1, the knob at 127 by 3 s of the take (sampled after 4 s)
            if breath_at_3s != pytest.approx(1.0) and knob_lost:
                pytest.xfail(f"breath {breath_at_3s} at 4 s: MIDI was lost in the cycles JACK blamed on the "
                             f"test's own sender ({Counter(culprits)})")
            on_time_or_slow_machine(breath_at_3s == pytest.approx(1.0),
                                    f"breath {breath_at_3s} at 4 s, 1.0 expected (culprits {dict(Counter(culprits))})")
            if w.controls.sliders["breath"].value != pytest.approx(0.0) and knob_lost:
                # JACK drops what a late client wrote in that cycle: the knob's last turn may be among
                # the messages the rig's own (Python) sender lost
                pytest.xfail(f"breath {w.controls.sliders['breath'].value} after the load: MIDI was lost in the "
                             f"cycles JACK blamed on the test's own sender ({Counter(culprits)})")
            assert w.controls.sliders["breath"].value == pytest.approx(0.0)   # the violin's, knob at 0
            assert client.engine.settings["bindings"] == {"breath": [0, 21]}  # a restart keeps it
            # the music went on through all of it
            x = client.engine.scope(8192)
            assert after["generator_faults"] == before["generator_faults"]
            lost = len(ev) - (after["midi_messages"] - before["midi_messages"])
            assert 0 <= lost <= len(culprits), (lost, culprits)
            never_the_cause(culprits)
            # the engine's own lateness: none, unless the machine stalled everyone (jack_rig)
            stalls = stall_count(server.log_text()[log_before:])
            underruns = after["ring_underruns"] - before["ring_underruns"]
            assert np.isfinite(x).all()
            late = f"{underruns} ring underruns amid {stalls} machine stalls"
            if not sporadic(underruns, stalls) and underruns <= KNOWN_UNDERRUNS:
                # a known weakness, open in #6 (benchmarks/RESULTS.md, 2026-12-02): on this 2-core
                # VM the engine at 64-sample blocks underruns the ring now and then with the
                # machine quiet, and as much with no window at all (the engine process alone with
                # the violin: 1-9 in 15 s of three held notes; the default instrument 0-2).
                # Reported as such; an engine that cannot keep up at all still fails below.
                pytest.xfail(f"{late}: the engine's known underruns at 64-sample blocks on a 2-core machine (#6)")
            on_time_or_slow_machine(sporadic(underruns, stalls), late)
        finally:
            if rig is not None:
                rig.stdin.close()
                rig.wait(30)
            w.close()
        assert not client.engine.alive()


def test_the_window_reports_a_failing_model_and_shows_what_plays_instead(qtbot, tmp_path, monkeypatch):
    """#6 item 7, the GUI's side: a model that keeps raising is reported in the status bar and
    the header shows the built-in instrument that replaced it; a model that hangs stops the
    engine process, which the window reports and restarts, the built-in instrument in the
    header again. The MIDI bindings come through both."""
    if not shutil.which("jackd"):
        pytest.skip("jackd is not installed (Debian package jackd2)")
    pytest.importorskip("rtmixer")
    from jack_rig import JackServer

    from livewave.engine_process import EngineProcess
    from ui.app import LIVE_DEFAULTS
    from ui.engine_client import EngineClient
    from ui.main_window import MainWindow

    monkeypatch.setenv("LIVEWAVE_FAULTS", "1")          # the engine process accepts "fault" (tests only)
    (tmp_path / "jack").mkdir()
    with JackServer(RATE, 128, tmp_path / "jack"):
        client = EngineClient(EngineProcess(ready_timeout=120))
        client.start({**LIVE_DEFAULTS, "audio": "system", "midi": "none", "placement": "rtmixer",
                      "model": str(VIOLIN), "bindings": {"breath": [0, 2]}})
        w = MainWindow(client, model_folders=[ROOT / "models"], session=None)
        qtbot.addWidget(w)
        w.show()
        shown = []
        client.message.connect(shown.append)
        client.died.connect(lambda m: shown.append("died: " + m))
        client.load_failed.connect(lambda p, m: shown.append(f"did not load {p}: {m}"))
        try:
            def playing() -> str:
                return w.model_info.get("path") or w.model_info.get("family")

            assert playing() == str(VIOLIN) and "ddsp" in w.model_label.text()
            for kind, said in (("raise", "kept failing"), ("hang", "died: ")):
                if playing() != str(VIOLIN):
                    w.load(str(VIOLIN))
                    # NB: the loader is niced: on a busy machine (a training run beside it) it took over 30 s
                    qtbot.waitUntil(lambda: playing() == str(VIOLIN) or any("did not load" in m for m in shown),
                                    timeout=60000)
                    assert playing() == str(VIOLIN), shown
                client.engine.send("midi", 0x90, 62, 100)
                qtbot.wait(300)
                client.engine.send("fault", kind)
                qtbot.waitUntil(lambda s=said: any(s in m for m in shown), timeout=10000)
                qtbot.waitUntil(lambda: playing() == "default", timeout=10000)
                assert "default" in w.model_label.text()
                assert client.engine.settings["bindings"] == {"breath": [0, 2]}
            print("the window showed: " + " | ".join(m.splitlines()[0] for m in shown))
        finally:
            w.close()
        assert not client.engine.alive()


@pytest.mark.skipif(not VIOLIN.exists(), reason="no shipped violin")
def test_the_window_waits_for_a_lost_audio_device_and_plays_the_same_model_when_it_is_back(qtbot, tmp_path):
    """The JACK server killed under the app (a pulled interface, a crashed server): the engine
    process notices within its watch's 1 s, ends, and its successor waits for the device; the
    window says so and stays usable. A server started again: the engine plays again with the
    violin that played before, and the on-screen keyboard sounds through it."""
    if not shutil.which("jackd"):
        pytest.skip("jackd is not installed (Debian package jackd2)")
    pytest.importorskip("rtmixer")
    from audio_checks import cents, f0_spectral
    from jack_rig import JackServer
    from PyQt6.QtCore import Qt

    from livewave.engine_process import EngineProcess
    from ui.engine_client import EngineClient
    from ui.main_window import MainWindow

    (tmp_path / "jack").mkdir()
    first = JackServer(RATE, 128, tmp_path / "jack").__enter__()
    second = None
    said, back = [], []
    client = EngineClient(EngineProcess(ready_timeout=120, log_dir=tmp_path, spare=True))
    try:
        client.start({"audio": "system", "midi": "none", "block": 128, "placement": "rtmixer", "model": str(VIOLIN)})
        w = MainWindow(client, model_folders=[ROOT / "models"], session=None)
        qtbot.addWidget(w)
        w.show()
        client.message.connect(said.append)
        client.restarted.connect(back.append)
        qtbot.waitUntil(client.engine.spare_ready, timeout=120000)
        first.proc.kill()
        first.proc.wait(10)
        qtbot.waitUntil(lambda: any("when the device is back" in m for m in said), timeout=20000)
        assert client.engine.waiting and client.engine.alive()
        qtbot.waitUntil(lambda: "waiting for" in w.status_labels["device"].text(), timeout=2000)
        w.panic()                                   # the window stays usable: refused, not stuck
        qtbot.wait(1500)
        second = JackServer(RATE, 128, tmp_path / "jack").__enter__()
        qtbot.waitUntil(lambda: any("is back" in m for m in back), timeout=30000)
        assert w.model_info.get("path") == str(VIOLIN), w.model_info
        qtbot.waitUntil(lambda: "waiting" not in w.status_labels["device"].text(), timeout=2000)
        r = w.keyboard.key_rect(69)
        qtbot.mousePress(w.keyboard, Qt.MouseButton.LeftButton, pos=r.center().toPoint())
        time.sleep(0.8)
        x = client.engine.scope(16384)[-12000:]
        qtbot.mouseRelease(w.keyboard, Qt.MouseButton.LeftButton, pos=r.center().toPoint())
        assert np.sqrt(np.mean(x ** 2)) > 1e-3
        assert abs(cents(f0_spectral(x, RATE), 440.0)) < 30.0
        w.close()
        assert not client.engine.alive()
    finally:
        client.engine.stop()
        if second is not None:
            second.__exit__(None, None, None)
        first.__exit__(None, None, None)
    print("the window: " + " | ".join(m for m in said if "audio device" in m) + " || " + " | ".join(back))
