"""The PyQt6 app against the null engine (pytest-qt, offscreen): loading through the browser
and by drag-and-drop, a corrupt file's error while the current model stays, the control panel
built from the model's controls, the on-screen keyboard (mouse and computer keys), panic."""
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PyQt6")
pytest.importorskip("pytestqt")

from PyQt6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PyQt6.QtGui import QDropEvent  # noqa: E402

from livewave.checkpoint import BUILTIN  # noqa: E402
from livewave.null_engine import NullEngine  # noqa: E402
from ui.engine_client import EngineClient  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402
from ui.piano_keyboard import key_note  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VIOLIN = ROOT / "models" / "violin.safetensors"


@pytest.fixture
def window(qtbot, tmp_path):
    client = EngineClient(NullEngine())
    client.start({})
    w = MainWindow(client, model_folders=[ROOT / "models", tmp_path])
    qtbot.addWidget(w)
    w.resize(1000, 640)
    w.show()
    yield w
    w.close()


def loaded_name(w):
    return w.model_info.get("name")


def test_load_through_the_browser_builds_the_controls(window, qtbot):
    w = window
    assert "vibrato_rate" in w.controls.sliders        # the built-in instrument's controls
    item = w.browser.item_for(str(VIOLIN))
    assert item is not None
    w.browser.list.setCurrentItem(item)
    assert "violin" in w.browser.card.text().lower() and "closer" in w.browser.card.text()
    w.browser.list.itemActivated.emit(item)
    qtbot.waitUntil(lambda: w.model_info.get("path") == str(VIOLIN), timeout=5000)
    assert set(w.controls.sliders) >= {"vibrato_depth", "breath", "velocity_brightness"}
    # A slider sends the control; the engine's answer (clamped) is shown.
    s = w.controls.sliders["breath"]
    s.slider.setValue(s.slider.maximum())
    qtbot.waitUntil(lambda: abs(s.value - 2.0) < 1e-6, timeout=2000)
    # And back to the built-in instrument, like any model.
    w.browser.list.itemActivated.emit(w.browser.item_for(BUILTIN))
    qtbot.waitUntil(lambda: w.model_info.get("path") == BUILTIN, timeout=5000)
    assert "brightness" in w.controls.sliders


def drop(w, path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    ev = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier)
    w.dropEvent(ev)


def test_drag_and_drop_loads_a_checkpoint(window, qtbot, tmp_path):
    mine = tmp_path / "my-flute.safetensors"
    mine.write_bytes((ROOT / "models" / "flute.safetensors").read_bytes())
    drop(window, mine)
    qtbot.waitUntil(lambda: window.model_info.get("path") == str(mine), timeout=5000)
    assert window.browser.item_for(str(mine)) is not None
    n = window.browser.list.count()
    other = str(ROOT / "models" / ".." / "models" / "flute.safetensors")   # another spelling: no second entry
    window.load(other)
    qtbot.waitUntil(lambda: window.model_info.get("path") == other, timeout=5000)
    assert window.browser.list.count() == n


def test_a_corrupt_file_shows_an_error_and_the_model_stays(window, qtbot, tmp_path):
    w = window
    drop(w, VIOLIN)
    qtbot.waitUntil(lambda: w.model_info.get("path") == str(VIOLIN), timeout=5000)
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(VIOLIN.read_bytes()[:5000])
    drop(w, bad)
    qtbot.waitUntil(lambda: w.error_box is not None and w.error_box.isVisible(), timeout=5000)
    assert "broken.safetensors" in w.error_box.text()
    assert w.error_box.informativeText()           # the reason, from the loader
    assert w.model_info.get("path") == str(VIOLIN)
    assert w.client.engine.model_info["path"] == str(VIOLIN)   # the engine plays on with it
    w.error_box.close()


def test_on_screen_keyboard_reaches_the_engine_and_shows_its_notes(window, qtbot):
    w = window
    eng = w.client.engine
    r = w.keyboard.key_rect(60)
    qtbot.mousePress(w.keyboard, Qt.MouseButton.LeftButton, pos=r.center().toPoint())
    assert (0, 60) in {(c, k) for c, k, _, _ in eng.notes()}
    qtbot.waitUntil(lambda: w.keyboard.sounding.get(60) is True, timeout=2000)   # held, from the engine's map
    qtbot.mouseRelease(w.keyboard, Qt.MouseButton.LeftButton, pos=r.center().toPoint())
    assert not eng.notes()
    # Computer keys: Q is the upper row's C; ']' shifts an octave up.
    assert key_note("q", 48) == 60 and key_note("z", 48) == 48 and key_note("k", 48) is None
    qtbot.keyPress(w, "q")
    assert [k for _, k, _, _ in eng.notes()] == [60]
    qtbot.keyRelease(w, "q")
    qtbot.keyClick(w, "]")
    qtbot.keyPress(w, "q")
    assert [k for _, k, _, _ in eng.notes()] == [72]
    # Panic clears everything, including what the mouse or keys hold.
    w.panic()
    assert not eng.notes() and not w.keyboard.held


def test_closing_the_window_stops_the_engine(qtbot, tmp_path):
    client = EngineClient(NullEngine())
    client.start({})
    w = MainWindow(client, model_folders=[tmp_path])
    qtbot.addWidget(w)
    w.show()
    w.close()
    assert not client.engine.alive()


def test_the_livewave_command_opens_the_app_only_with_a_display(monkeypatch):
    from ui.launcher import wants_app
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert wants_app([]) is None
    assert wants_app(["render", "x.mid"]) == "a sub-command"
    assert wants_app(["--model", "m.safetensors"]) is not None
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert wants_app([]) == "no display"


@contextmanager
def live_window(qtbot, tmp_path):
    """The window on a real engine process on a JACK dummy server (48 kHz, period 128, rtmixer)."""
    import shutil

    from jack_rig import JackServer

    from livewave.engine_process import EngineProcess
    if not shutil.which("jackd"):
        pytest.skip("jackd is not installed (Debian package jackd2)")
    pytest.importorskip("rtmixer")
    (tmp_path / "jack").mkdir()
    with JackServer(48000, 128, tmp_path / "jack"):
        client = EngineClient(EngineProcess(ready_timeout=120, log_dir=tmp_path))
        client.start({"audio": "system", "midi": "none", "block": 128, "placement": "rtmixer"})
        w = MainWindow(client, model_folders=[tmp_path])
        qtbot.addWidget(w)
        w.show()
        yield w


@pytest.mark.jack
def test_on_screen_keyboard_plays_through_the_real_engine_process(qtbot, tmp_path):
    """The window on a real engine process on the JACK dummy device: a click on A4 sounds
    at 440 Hz in the engine's own output (its scope ring), the status bar shows the device."""
    import time

    from audio_checks import cents, f0_spectral
    with live_window(qtbot, tmp_path) as w:
        client = w.client
        try:
            r = w.keyboard.key_rect(69)
            qtbot.mousePress(w.keyboard, Qt.MouseButton.LeftButton, pos=r.center().toPoint())
            qtbot.waitUntil(lambda: 69 in w.keyboard.sounding, timeout=5000)
            time.sleep(0.6)
            x = client.engine.scope(16384)[-12000:]
            qtbot.mouseRelease(w.keyboard, Qt.MouseButton.LeftButton, pos=r.center().toPoint())
            assert np.sqrt(np.mean(x ** 2)) > 1e-3
            assert abs(cents(f0_spectral(x, 48000), 440.0)) < 10.0
            qtbot.waitUntil(lambda: "voices" in w.status_labels["voices"].text(), timeout=2000)
            assert "JACK" in w.status_labels["device"].text() or "system" in w.status_labels["device"].text()
            qtbot.waitUntil(lambda: not client.engine.notes(), timeout=5000)
        finally:
            w.close()
        assert not client.engine.alive()


def test_the_record_button_follows_the_engine_s_answers(window, qtbot, tmp_path):
    """REC asks the engine for a take in the takes folder and shows it recording only once the
    engine says so; the null engine (no audio) refuses, and the button stays off."""
    w = window
    w.takes_dir = tmp_path / "takes"
    qtbot.mouseClick(w.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "nothing to record" in w.statusBar().currentMessage(), timeout=2000)
    assert not w.record_button.isChecked() and w.take is None and (tmp_path / "takes").is_dir()
    # what the real engine answers (tests/test_engine_process.py), as its events
    w.client.engine._events.append(("recording", str(tmp_path / "takes" / "t.wav"), str(tmp_path / "takes" / "t.mid")))
    qtbot.waitUntil(lambda: w.take is not None, timeout=2000)
    assert w.record_button.isChecked() and w.record_action.text() == "Stop recording"
    qtbot.waitUntil(lambda: "REC 0:0" in w.status_labels["take"].text(), timeout=2000)
    w.client.engine._events.append(("recorded", {"audio": str(tmp_path / "takes" / "t.wav"),
                                                 "midi": str(tmp_path / "takes" / "t.mid"), "seconds": 3.25,
                                                 "events": 12, "dropped_samples": 0, "dropped_events": 0,
                                                 "error": None}))
    qtbot.waitUntil(lambda: w.take is None, timeout=2000)
    assert not w.record_button.isChecked() and w.status_labels["take"].text() == ""
    assert "take saved" in w.statusBar().currentMessage() and "12 MIDI events" in w.statusBar().currentMessage()


@pytest.mark.jack
def test_takes_recorded_from_the_window_through_the_real_engine_process(qtbot, tmp_path):
    """REC, a note on the on-screen keyboard, REC again: the take holds the note at 440 Hz and
    its MIDI. A second take left running when the window closes is saved by the engine's stop."""
    import soundfile as sf
    from audio_checks import cents, f0_spectral

    from livewave.smf import read_midi_file
    with live_window(qtbot, tmp_path) as w:
        client = w.client
        w.takes_dir = tmp_path / "takes"
        summaries = []
        client.recorded.connect(summaries.append)
        try:
            qtbot.mouseClick(w.record_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: w.take is not None, timeout=5000)
            r = w.keyboard.key_rect(69)
            qtbot.mousePress(w.keyboard, Qt.MouseButton.LeftButton, pos=r.center().toPoint())
            qtbot.wait(700)
            qtbot.mouseRelease(w.keyboard, Qt.MouseButton.LeftButton, pos=r.center().toPoint())
            qtbot.wait(400)
            qtbot.mouseClick(w.record_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: len(summaries) == 1, timeout=5000)
            assert not w.record_button.isChecked() and "take saved" in w.statusBar().currentMessage()
            qtbot.mouseClick(w.record_button, Qt.MouseButton.LeftButton)      # a second take, left running
            qtbot.waitUntil(lambda: w.take is not None, timeout=5000)
            qtbot.mousePress(w.keyboard, Qt.MouseButton.LeftButton, pos=r.center().toPoint())
            qtbot.wait(300)
        finally:
            w.close()
        assert not client.engine.alive()
    first = summaries[0]
    assert first["error"] is None and first["events"] == 2 and first["seconds"] > 1.0
    both, sr = sf.read(first["audio"], dtype="float32")
    assert both.ndim == 2 and both.shape[1] == 2
    np.testing.assert_array_equal(both[:, 0], both[:, 1])           # stereo, and dry: the same both sides
    x = both[:, 0]
    loud = np.flatnonzero(np.abs(x) > 1e-3)
    assert sr == 48000 and loud.size > 0
    assert abs(cents(f0_spectral(x[loud[0] + 4800:loud[0] + 4800 + 16384], sr), 440.0)) < 10.0
    assert [e[1:3] for e in read_midi_file(first["midi"]).events] == [(0x90, 69), (0x80, 69)]
    takes = sorted((tmp_path / "takes").glob("*.wav"))
    assert len(takes) == 2
    second, _ = sf.read(str(takes[1] if str(takes[0]) == first["audio"] else takes[0]), dtype="float32")
    assert np.abs(second).max() > 1e-3                   # the note, and its release when the engine stopped


def test_presets_save_and_restore_model_and_values_and_the_last_session(qtbot, tmp_path):
    from ui.presets import PresetError, load_preset
    session = tmp_path / "last-session.json"

    def window():
        client = EngineClient(NullEngine())
        client.start({})
        w = MainWindow(client, model_folders=[ROOT / "models"], session=session)
        qtbot.addWidget(w)
        w.show()
        return w

    w = window()
    w.load(str(VIOLIN))
    qtbot.waitUntil(lambda: w.model_info.get("path") == str(VIOLIN), timeout=5000)
    w.controls.sliders["breath"].slider.setValue(750)          # 1.5 of 0..2
    w.controls.volume.slider.setValue(500)                     # -27 dB of -60..6
    w.reverb.send.setValue(40)
    w.reverb.decay.setValue(3.2)
    w.devices.pan.setValue(-20)
    qtbot.waitUntil(lambda: abs(w.controls.sliders["breath"].value - 1.5) < 1e-6, timeout=2000)
    w.save_preset_to(tmp_path / "p.json")
    p = load_preset(tmp_path / "p.json")
    assert p["model"] == str(VIOLIN) and p["controls"]["breath"] == 1.5 and p["gain_db"] == -27.0
    assert p["reverb"] == {"damping": 0.5, "decay_s": 3.2, "predelay_ms": 10.0, "send": 40 / 127}
    assert p["pan"] == -20 / 63
    w.close()                                                  # saves the session
    assert load_preset(session)["controls"]["breath"] == 1.5

    w2 = window()                                              # restores it: model, then values
    qtbot.waitUntil(lambda: w2.model_info.get("path") == str(VIOLIN), timeout=5000)
    qtbot.waitUntil(lambda: abs(w2.controls.sliders["breath"].value - 1.5) < 1e-6, timeout=2000)
    assert w2.controls.volume.value == -27.0
    qtbot.waitUntil(lambda: w2.reverb.send.value() == 40, timeout=2000)     # the room came back too
    assert w2.reverb.decay.value() == 3.2 and w2.client.engine.settings["reverb"]["decay_s"] == 3.2
    qtbot.waitUntil(lambda: w2.devices.pan.value() == -20, timeout=2000)        # and the pan
    assert w2.client.engine.settings["pan"] == -20 / 63
    # A broken preset is refused with the reason; nothing changes.
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "livewave-preset", "format": 1, "controls": {"breath": "loud"}}')
    with pytest.raises(PresetError, match="breath"):
        load_preset(bad)
    worse = tmp_path / "worse.json"
    worse.write_text('{"kind": "livewave-preset", "format": 1, "reverb": {"send": "lots"}}')
    with pytest.raises(PresetError, match="reverb"):
        load_preset(worse)
    worst = tmp_path / "worst.json"
    worst.write_text('{"kind": "livewave-preset", "format": 1, "pan": "left"}')
    with pytest.raises(PresetError, match="pan"):
        load_preset(worst)
    w2.load_preset_from(bad)
    assert w2.error_box is not None and "bad.json" in w2.error_box.text()
    assert w2.model_info.get("path") == str(VIOLIN) and w2.controls.sliders["breath"].value == 1.5
    # A preset of another model, then another model asked for before that one loads: the engine
    # loads only the last (model_loader: the latest request wins), so the preset's values wait for
    # nothing; they must not land on the preset's model if it is loaded later by hand.
    w2.apply_preset({**p, "model": str(ROOT / "models" / "cello.safetensors")})
    assert w2.pending_preset is not None
    w2.load(str(ROOT / "models" / "flute.safetensors"))
    assert w2.pending_preset is None
    w2.close()


def test_midi_learn_binds_a_knob_and_presets_keep_the_bindings(window, qtbot, tmp_path):
    """Learn through the right-click menu; the CC (sent as the engine receives it) moves the
    slider; forget removes it; a preset saves the binding and restores it."""
    from ui.presets import load_preset
    w = window
    menu = w.controls.learn_menu("breath")
    assert [a.text() for a in menu.actions()] == ["MIDI learn (then move a knob)"]
    menu.actions()[0].trigger()
    qtbot.waitUntil(lambda: w.controls.learning == "breath", timeout=2000)
    assert "move a knob" in w.controls.names["breath"].text()
    w.client.send("midi", 0xB0, 101, 0)               # RPN select: structure, never learned
    w.client.send("midi", 0xB3, 21, 10)               # a knob on channel 4
    qtbot.waitUntil(lambda: w.controls.bindings == {"breath": (3, 21)}, timeout=2000)
    assert w.controls.learning is None and "CC21/4" in w.controls.names["breath"].text()
    w.client.send("midi", 0xB3, 21, 127)
    qtbot.waitUntil(lambda: w.controls.sliders["breath"].value == pytest.approx(1.0), timeout=2000)
    w.save_preset_to(tmp_path / "learned.json")
    assert load_preset(tmp_path / "learned.json")["midi_bindings"] == {"breath": [3, 21]}
    assert "Forget MIDI CC 21 (channel 4)" in [a.text() for a in w.controls.learn_menu("breath").actions()]
    w.controls.learn_menu("breath").actions()[1].trigger()
    qtbot.waitUntil(lambda: w.controls.bindings == {}, timeout=2000)
    w.client.send("midi", 0xB3, 21, 0)
    qtbot.wait(50)
    assert w.controls.sliders["breath"].value == pytest.approx(1.0)     # unbound: nothing moves
    w.load_preset_from(tmp_path / "learned.json")
    qtbot.waitUntil(lambda: w.controls.bindings == {"breath": (3, 21)}, timeout=2000)
    assert w.client.engine.settings["bindings"] == {"breath": [3, 21]}


def test_device_pickers_restart_the_engine_and_are_remembered(qtbot, tmp_path):
    from PyQt6.QtCore import QSettings
    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    client = EngineClient(NullEngine())
    client.start({"rate": 48000, "block": 64})
    w = MainWindow(client, model_folders=[ROOT / "models"], settings=store, session=None)
    qtbot.addWidget(w)
    w.show()
    d = w.devices
    assert d.choice()["rate"] == 48000 and d.choice()["block"] == 64
    d.block.setCurrentIndex(d.block.findData(256))
    d.block.activated.emit(d.block.currentIndex())
    assert client.engine.restarts == 1 and client.engine.settings["block"] == 256
    assert int(store.value("block")) == 256
    # MIDI: the list the engine reports, "All inputs" first; a pick goes to the engine, live
    client.engine._events.append(("midi_ports", ["Keystation 49:0"], "all", ["Keystation 49:0", "Nord 2"]))
    client.poll()
    texts = [d.midi.itemText(i) for i in range(d.midi.count())]
    assert texts[:2] == ["All inputs", "None"] and "Keystation 49:0  (connected)" in texts and "Nord 2" in texts
    d.midi.setCurrentIndex(d.midi.findData("Nord 2"))
    d.midi.activated.emit(d.midi.currentIndex())
    assert client.engine.settings["midi"] == "Nord 2" and store.value("midi") == "Nord 2"
    w.close()


def test_the_master_volume_is_learnable_too(window, qtbot):
    w = window
    w.controls.learn_menu("volume").actions()[0].trigger()
    w.client.send("midi", 0xB0, 7 + 20, 127)          # CC 27, full up
    qtbot.waitUntil(lambda: w.controls.bindings == {"volume": (0, 27)}, timeout=2000)
    assert "CC27" in w.controls.names["volume"].text()
    w.client.send("midi", 0xB0, 27, 0)
    qtbot.waitUntil(lambda: w.controls.volume.value == pytest.approx(-60.0), timeout=2000)
    w.load(str(VIOLIN))                                # a model change keeps it
    qtbot.waitUntil(lambda: w.model_info.get("path") == str(VIOLIN), timeout=5000)
    w.client.send("midi", 0xB0, 27, 127)
    qtbot.waitUntil(lambda: w.controls.volume.value == pytest.approx(6.0), timeout=2000)
    assert "CC27" in w.controls.names["volume"].text()


def test_vocoders_show_their_cards_and_controls(window, qtbot, tmp_path):
    """A flow vocoder (sigma on the panel at 0.6) and a chain, from the browser like any model."""
    from test_vocoder_instrument import tiny_flow, tiny_vocoder_checkpoint

    from livewave.checkpoint import save_checkpoint
    from livewave.vocoder_chain import make_chain
    w = window
    config, tensors = tiny_flow().checkpoint_parts()
    flow = save_checkpoint(tmp_path / "flow.safetensors", "flow", config, {"instrument": "tiny flow"}, tensors)
    chain = make_chain(BUILTIN, tiny_vocoder_checkpoint(tmp_path / "v.safetensors"), tmp_path / "chain.safetensors")
    w.browser.refresh()
    w.browser.list.setCurrentItem(w.browser.item_for(str(flow)))
    assert "driven by audio in" in w.browser.card.text()
    w.browser.list.setCurrentItem(w.browser.item_for(str(chain)))
    assert "re-rendered by" in w.browser.card.text()
    w.browser.list.itemActivated.emit(w.browser.item_for(str(flow)))
    qtbot.waitUntil(lambda: w.model_info.get("path") == str(flow), timeout=5000)
    assert set(w.controls.sliders) == {"input_gain", "sigma"}
    assert w.controls.sliders["sigma"].value == pytest.approx(0.6)
    w.browser.list.itemActivated.emit(w.browser.item_for(str(chain)))
    qtbot.waitUntil(lambda: w.model_info.get("path") == str(chain), timeout=5000)
    assert {"brightness", "input_gain"} <= set(w.controls.sliders)


def test_a_vocoder_played_from_midi_shows_its_card_and_the_vocoders_controls(window, qtbot, tmp_path):
    """A midi2mel model through a flow vocoder: its card says it plays from MIDI; its panel has
    the flow's sigma and no input gain (there is no audio in); the keyboard plays it."""
    from test_vocoder_instrument import tiny_flow

    from livewave.checkpoint import save_checkpoint
    from livewave.midi_to_mel import MidiToMel, MidiToMelConfig
    from livewave.midi_to_mel_instrument import MidiToMelInstrument
    w = window
    inst = MidiToMelInstrument(MidiToMel(MidiToMelConfig(sample_rate=22050, hop=64, n_mels=20, hidden=16, layers=2)),
                               tiny_flow(), name="tiny piano")
    config, tensors = inst.checkpoint_parts()
    path = save_checkpoint(tmp_path / "m2m.safetensors", "midi2mel", config, {"instrument": "tiny piano",
                                                                             "vocoder": "tiny-flow"}, tensors)
    w.browser.refresh()
    w.browser.list.setCurrentItem(w.browser.item_for(str(path)))
    assert "played from MIDI, through the vocoder tiny-flow" in w.browser.card.text()
    w.browser.list.itemActivated.emit(w.browser.item_for(str(path)))
    qtbot.waitUntil(lambda: w.model_info.get("path") == str(path), timeout=5000)
    assert set(w.controls.sliders) == {"sigma"}
    assert w.controls.sliders["sigma"].value == pytest.approx(0.6)
    assert w.model_info.get("family") == "midi2mel"


def test_tuning_and_transpose_reach_the_engine_and_are_remembered(qtbot, tmp_path):
    from PyQt6.QtCore import QSettings
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    client = EngineClient(NullEngine())
    client.start({"tuning": 415.0, "transpose": -2})
    w = MainWindow(client, model_folders=[tmp_path], settings=store)
    qtbot.addWidget(w)
    w.show()
    try:
        assert w.devices.tuning.value() == 415.0 and w.devices.transpose.value() == -2   # as the engine starts
        w.devices.tuning.setValue(442.5)
        w.devices.transpose.setValue(3)
        w.devices.velocity.setValue(0.7)
        qtbot.waitUntil(lambda: client.engine.settings["velocity_curve"] == 0.7, timeout=2000)
        assert client.engine.settings["tuning"] == 442.5 and client.engine.settings["transpose"] == 3
        qtbot.waitUntil(lambda: store.value("velocity_curve") is not None, timeout=2000)
        assert float(store.value("tuning")) == 442.5 and int(store.value("transpose")) == 3
        assert float(store.value("velocity_curve")) == 0.7
    finally:
        w.close()


def test_the_pan_reaches_the_engine_shows_a_keyboards_cc10_and_is_remembered(qtbot, tmp_path):
    from PyQt6.QtCore import QSettings
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    client = EngineClient(NullEngine())
    client.start({"pan": -0.5})
    w = MainWindow(client, model_folders=[tmp_path], settings=store)
    qtbot.addWidget(w)
    w.show()
    try:
        d = w.devices
        assert d.pan.value() == round(-0.5 * 63) and d.pan_label.text() == "L51"      # as the engine starts
        d.pan.setValue(63)
        qtbot.waitUntil(lambda: client.engine.settings["pan"] == 1.0, timeout=2000)
        qtbot.waitUntil(lambda: store.value("pan") is not None, timeout=2000)
        assert float(store.value("pan")) == 1.0 and d.pan_label.text() == "R100"
        client.pan_changed.emit(0.0)                 # as the engine says when a keyboard's CC 10 centres it
        assert d.pan.value() == 0 and d.pan_label.text() == "C"
        assert client.engine.settings["pan"] == 1.0  # shown, not sent back
        d.pan.setValue(-40)
        qtbot.mouseDClick(d.pan, Qt.MouseButton.LeftButton)      # a double-click centres it
        qtbot.waitUntil(lambda: client.engine.settings["pan"] == 0.0, timeout=2000)
        assert d.pan.value() == 0
    finally:
        w.close()


def test_the_reverb_panel_reaches_the_engine_shows_its_answers_and_is_remembered(qtbot, tmp_path):
    from PyQt6.QtCore import QSettings
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    client = EngineClient(NullEngine())
    client.start({"reverb": {"send": 0.25, "decay_s": 3.5}})
    w = MainWindow(client, model_folders=[tmp_path], settings=store)
    qtbot.addWidget(w)
    w.show()
    try:
        r = w.reverb
        assert r.send.value() == 32 and r.decay.value() == 3.5 and r.send_label.text() == "25%"   # as it starts
        r.send.setValue(100)
        r.damping.setValue(0.3)
        r.predelay.setValue(45)
        qtbot.waitUntil(lambda: client.engine.settings["reverb"].get("predelay_ms") == 45.0, timeout=2000)
        assert client.engine.settings["reverb"]["send"] == 100 / 127
        assert client.engine.settings["reverb"]["damping"] == 0.3
        qtbot.waitUntil(lambda: store.value("reverb_predelay_ms") is not None, timeout=2000)
        assert float(store.value("reverb_send")) == 100 / 127 and float(store.value("reverb_damping")) == 0.3
        w.on_reverb({"send": 0.0})                    # as when the keyboard's CC 91 goes to 0
        assert r.send.value() == 0 and r.send_label.text() == "off"
        assert client.engine.settings["reverb"]["send"] == 100 / 127    # shown, not sent back
    finally:
        w.close()


def test_a_program_change_from_a_keyboard_loads_that_model_of_the_browser(window, qtbot):
    """The browser numbers the models as program changes select them (the built-in instrument
    is program 1); a program change (here through the engine's MIDI input) loads that one."""
    w = window
    paths = w.browser.programs()
    violin = next(i for i, p in enumerate(paths) if p.endswith("violin.safetensors"))
    assert w.browser.list.item(violin).text().startswith(f"{violin + 1}  violin")
    w.client.send("midi", 0xC0, violin, 0)            # program {violin + 1} on channel 1
    qtbot.waitUntil(lambda: w.model_info.get("path") == paths[violin], timeout=5000)
    w.client.send("midi", 0xC0, 0, 0)
    qtbot.waitUntil(lambda: w.model_info.get("path") == BUILTIN, timeout=5000)
    w.client.send("midi", 0xC0, 127, 0)               # past the list: said so, nothing changes
    qtbot.waitUntil(lambda: "no model at that number" in w.statusBar().currentMessage(), timeout=2000)
    assert w.model_info.get("family") == "default"
    w.client.reconfigure(block=128)                   # a new engine process gets the list too
    w.client.send("midi", 0xC0, violin, 0)
    qtbot.waitUntil(lambda: w.model_info.get("path") == paths[violin], timeout=5000)


def test_a_long_model_name_never_widens_the_window(window, qtbot, tmp_path):
    """A card's name of any length: the header cuts it with an ellipsis (the whole name in its
    tooltip) and the card scrolls, so the window still fits a 1180-pixel screen and the model
    list keeps its rows (flow-fluidr3's card pushed the window past 1180 px, stop 32)."""
    from test_vocoder_instrument import tiny_flow

    from livewave.checkpoint import save_checkpoint
    w = window
    name = "A flow vocoder " + "with a very long name, " * 12 + "the end"
    config, tensors = tiny_flow().checkpoint_parts()
    path = save_checkpoint(tmp_path / "long.safetensors", "flow", config,
                           {"instrument": name, "data_notes": "notes " * 400}, tensors)
    w.browser.refresh()
    w.browser.list.setCurrentItem(w.browser.item_for(str(path)))
    w.browser.list.itemActivated.emit(w.browser.item_for(str(path)))
    qtbot.waitUntil(lambda: w.model_info.get("path") == str(path), timeout=5000)
    w.resize(1180, 700)
    qtbot.wait(50)
    assert w.minimumSizeHint().width() <= 1180, w.minimumSizeHint()
    assert w.width() <= 1180
    label = w.model_label
    assert name in label.full_text() and name in label.toolTip()
    assert label.text() != label.full_text() and label.text().endswith("…")
    assert label.fontMetrics().horizontalAdvance(label.text()) <= label.width()
    assert w.browser.list.height() >= 5 * w.browser.list.fontMetrics().lineSpacing()
    # and a short name is shown whole
    w.browser.list.itemActivated.emit(w.browser.item_for(str(VIOLIN)))
    qtbot.waitUntil(lambda: w.model_info.get("path") == str(VIOLIN), timeout=5000)
    assert label.text() == label.full_text() and "Violin" in label.text()


def test_the_status_bar_says_when_nothing_plays_until_it_plays_again(window, qtbot):
    """Where the device is shown: "no audio" in red while the engine waits for its device
    (``waiting``) or is down (a restart that failed), the device again once it plays.
    The live version, a JACK server killed under the app, is in ``tests/test_ui_live.py``."""
    w = window
    label = w.status_labels["device"]
    qtbot.waitUntil(lambda: "null (no audio)" in label.text(), timeout=2000)
    assert "ff5252" not in label.styleSheet()
    w.client.engine.waiting = "the audio device is not there"
    qtbot.waitUntil(lambda: "no audio: waiting for" in label.text(), timeout=2000)
    assert "ff5252" in label.styleSheet() and label.toolTip() == "the audio device is not there"
    w.client.engine.waiting = ""
    w.client.engine.stop()
    qtbot.waitUntil(lambda: "no audio: the engine stopped" in label.text(), timeout=2000)
    w.client.engine.start({})
    qtbot.waitUntil(lambda: "null (no audio)" in label.text(), timeout=2000)
    assert "ff5252" not in label.styleSheet() and label.toolTip() == ""
