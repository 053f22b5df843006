"""Torture: the audio device goes away mid-set, live on JACK (dummy driver).

The JACK server is killed (SIGKILL) while livewave plays: what a pulled USB interface or a
crashed server looks like from inside. No error reaches Python, the callback is simply never
called again, and PortAudio cannot close the stream (``Pa_StopStream`` waits for good:
measured). ``device_watch`` notices from the control side.

- ``livewave play --isolate`` (and the app, on the same engine process): the engine process
  finishes its take and ends; the new one waits for the device and, once a server is back,
  plays again with the same model, its MIDI keyboard found again by name.
- plain ``livewave play``: says so, keeps its take, and ends with exit status 4 instead of
  hanging.

Each test runs servers of its own (the module's tests kill them).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from jack_rig import JackServer, require_jackd
from jack_rig import wait_until as _wait

pytestmark = [pytest.mark.jack, pytest.mark.torture]
RATE, PERIOD = 48000, 128
ROOT = Path(__file__).resolve().parents[1]

require_jackd()


def _stat(path: Path, key: str):
    try:
        return json.loads(path.read_text())[key]
    except (OSError, ValueError, KeyError):
        return None


def _play(args: list[str], log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "JACK_NO_START_SERVER": "1", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "livewave", "play", "--audio", "system", "--block", str(PERIOD),
                                 "--placement", "rtmixer", *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def _end(proc) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_play_isolate_waits_for_a_lost_device_and_plays_again_with_its_model(tmp_path):
    """The model it plays after is the one it played before, not the built-in instrument it
    falls back to when a model may have killed its engine (the app's test plays the violin
    through the same path, ``tests/test_ui_live.py``; here the built-in, for time)."""
    from audio_checks import cents, f0_spectral
    from jack_rig import Rig, unbroken_or_slow_machine

    stats, log_path, take = tmp_path / "stats.json", tmp_path / "play.log", tmp_path / "take.wav"
    proc = rig = None
    second = None
    first = JackServer(RATE, PERIOD, tmp_path).__enter__()
    try:
        proc = _play(["--isolate", "--midi", "lwback", "--record", str(take), "--stats-json", str(stats)], log_path)
        assert _wait(lambda: _stat(stats, "callbacks"), 180, 0.1), log_path.read_text()
        pid, name = _stat(stats, "engine_pid"), _stat(stats, "model")
        time.sleep(1.0)
        t_kill = time.monotonic()
        first.proc.kill()                                  # the device goes away
        first.proc.wait(10)
        assert _wait(lambda: _stat(stats, "waiting_for_device"), 20, 0.05), log_path.read_text()
        noticed = time.monotonic() - t_kill
        time.sleep(2.0)                                    # gone for a while
        assert proc.poll() is None, log_path.read_text()
        second = JackServer(RATE, PERIOD, tmp_path).__enter__()      # and back
        t_back = time.monotonic()
        rig = Rig(seconds=2.5, name="lwback")
        assert _wait(lambda: _stat(stats, "engine_pid") not in (None, pid) and not _stat(stats, "waiting_for_device")
                     and _stat(stats, "midi_ports"), 30, 0.05), log_path.read_text()
        playing_again = time.monotonic() - t_back
        outs = _wait(lambda: sorted(rig.ports("livewave", is_audio=True, is_output=True)), 10)
        assert outs, log_path.read_text()
        rig.connect_output(outs[0])
        rig.schedule([(int(0.3 * RATE), bytes([0x90, 76, 100])), (int(2.2 * RATE), bytes([0x80, 76, 0]))])
        rig.start()
        assert rig.wait_done(30)
        assert proc.poll() is None, log_path.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, log_path.read_text()
    finally:
        if rig is not None:
            rig.close()
        _end(proc)
        if second is not None:
            second.__exit__(None, None, None)
        first.__exit__(None, None, None)
    text = log_path.read_text()
    assert "has taken no audio for" in text and "Traceback" not in text, text
    assert _stat(stats, "model") == name and _stat(stats, "restarts") == 1, text
    x = rig.recording[:, 0]
    assert np.isfinite(x).all() and np.abs(x).max() <= 10 ** (-1 / 20) + 1e-6
    after = unbroken_or_slow_machine(x[int(0.8 * RATE):int(2.0 * RATE)], "the E5 after the device came back")
    assert abs(cents(f0_spectral(after, RATE), 659.26)) < 30.0
    import soundfile as sf
    kept, new = sf.info(str(take)), sf.info(str(tmp_path / "take-2.wav"))
    assert kept.frames > RATE and new.frames > 2 * RATE, (kept, new)
    print(f"device lost: noticed {noticed:.2f} s after the server was killed (1.0 s without a block is the "
          f"rule); {name} playing again {playing_again:.2f} s after a server was back; takes of "
          f"{kept.frames / RATE:.1f} s (kept) and {new.frames / RATE:.1f} s")


def test_plain_play_ends_with_status_4_and_keeps_its_take_when_the_device_goes_away(tmp_path):
    stats, log_path, take = tmp_path / "stats.json", tmp_path / "play.log", tmp_path / "take.wav"
    proc = None
    server = JackServer(RATE, PERIOD, tmp_path).__enter__()
    try:
        proc = _play(["--midi", "none", "--record", str(take), "--stats-json", str(stats)], log_path)
        assert _wait(lambda: (_stat(stats, "callbacks") or 0) > 200, 120, 0.1), log_path.read_text()
        t_kill = time.monotonic()
        server.proc.kill()
        server.proc.wait(10)
        code = proc.wait(20)
        ended = time.monotonic() - t_kill
    finally:
        _end(proc)
        server.__exit__(None, None, None)
    text = log_path.read_text()
    assert code == 4 and "has taken no audio for" in text and "exit status 4" in text, text
    assert "Traceback" not in text and "recorded" in text and _stat(stats, "final") is True, text
    import soundfile as sf
    assert sf.info(str(take)).frames > RATE // 2
    print(f"plain play: ended with status 4 {ended:.2f} s after the server was killed; the take kept")


def test_an_engine_that_crashes_as_its_device_goes_away_waits_for_the_device(tmp_path, qapp):
    """Every restart waits for the device the engine played on, not only one after its loss: a
    crash that comes with the device's loss (here a signal to the engine just after the server
    is killed, before its watch could notice) gives a child that waits and says ("ready", info)
    once a server is back, not a start that fails and has to be retried. Then the app's device
    picker: another device that does not start, while the one that played has gone too, goes
    back to that one and waits for it (it used to stay down until another choice)."""
    from livewave.engine_process import DeviceUnavailable, EngineProcess
    from ui.engine_client import EngineClient
    ep = EngineProcess(ready_timeout=120, log_dir=tmp_path)
    client = EngineClient(ep)
    said: list[str] = []
    client.message.connect(said.append)
    servers = [JackServer(RATE, PERIOD, tmp_path).__enter__()]

    def server_gone():
        servers[-1].proc.kill()
        servers[-1].proc.wait(10)

    def server_back_and_playing():
        servers.append(JackServer(RATE, PERIOD, tmp_path).__enter__())
        ready = ep.wait_event("ready", 30.0)
        assert ready is not None and ready[1]["device_name"], ep.log_tail()
        assert not ep.waiting and ep.alive() and ep.check() is None
        assert _wait(lambda: ep.status()["callbacks"] > 100, 10, 0.05), ep.status()

    try:
        ep.start({"audio": "system", "midi": "none", "block": PERIOD, "placement": "rtmixer", "ahead": 2})
        server_gone()                                      # the device goes away
        os.kill(ep.proc.pid, signal.SIGTERM)               # and the engine dies of something else
        assert _wait(lambda: ep.check() is not None, 10, 0.05)
        with pytest.raises(DeviceUnavailable, match="waits for it"):
            ep.restart()
        assert ep.waiting and ep.alive() and ep.check() is None
        assert ep.plays_when_back() == "the built-in instrument"
        time.sleep(1.0)
        assert ep.alive() and ep.check() is None           # still waiting, not counted dead
        server_back_and_playing()

        server_gone()
        assert client.reconfigure(audio="no-such-card-xyz") is None
        assert ep.waiting and ep.settings["audio"] == "system", said
        assert any("back to the previous settings" in m for m in said) and "when the device is back" in said[-1]
        server_back_and_playing()
    finally:
        ep.stop()
        for s in servers:
            s.__exit__(None, None, None)
