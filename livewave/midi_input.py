"""Live MIDI input through python-rtmidi: port selection, hot-plug, timestamping.

Threading: no Python runs on rtmidi's input thread. rtmidi queues each message in its own
C++ ring with a delta time (under JACK, measured on JACK's clock in JACK's real-time thread);
the render side drains the queues at the start of every block (``drain``, installed as the
audio stream's pre-render hook), so the JACK MIDI client never waits for the GIL.
Arrival times are rebuilt from the deltas: the running sum of a port's deltas is a clock
whose offset to ``perf_counter`` (the same monotonic clock) is bounded above by
``drain time - sum`` for every message ever drained; the smallest such bound is used, so
events keep their spacing to the microsecond and are never scheduled in the past.
A background thread polls the port list for hot-plug: ports that appear and match the
selection are opened; a port that vanishes is closed and the notes it was holding are
released, so the instrument plays on.

JACK: livewave does not use rtmidi. RtMidi 5 stamps a JACK message with the time its client
ran (the frame inside the period is lost), and python-rtmidi keeps the GIL during its JACK
calls, which deadlocks against a Python audio callback that JACK waits for. Instead one
``JackMidiClient`` (``jack_midi_client``: a compiled process callback, no GIL) with one input
port ``<name>-midi:in`` is made before the audio stream starts; it records each message's
absolute JACK frame. ``attach`` gives the audio output the JACK cycle clock, so the audio
callback (or, with rtmixer, the render thread) anchors the output to JACK frames and every
message lands on its exact sample, one block after its frame (``frame_anchor``); where that
anchor cannot be exact (a block that does not divide JACK's period), frames go through JACK's
frame timer to ``perf_counter``. Hot-plug connects and disconnects sources to the port through JACK-Client
(cffi releases the GIL around every JACK call). All sources share that port: when one
vanishes, the notes held through the port are released (with several keyboards, also those
of the others). Messages are re-validated (``MidiParser.parse_message``); malformed ones are
dropped, counted and reported.
"""
from __future__ import annotations

import re
import threading
import time
from collections import deque

import numpy as np

from .jack_midi_client import frame_diff, parse_records
from .midi_parser import MidiParser

_API_NAMES = {"alsa": "API_LINUX_ALSA", "jack": "API_UNIX_JACK", "coremidi": "API_MACOSX_CORE",
              "winmm": "API_WINDOWS_MM"}


class MidiPortError(RuntimeError):
    """A MIDI port or API could not be found or opened."""


def _rtmidi():
    try:
        import rtmidi
    except ImportError as exc:
        raise MidiPortError(f"python-rtmidi is not installed ({exc})") from exc
    return rtmidi


def api_id(api: str | None) -> int:
    rtmidi = _rtmidi()
    if api in (None, "", "auto"):
        return rtmidi.API_UNSPECIFIED
    key = _API_NAMES.get(api.lower())
    if key is None or not hasattr(rtmidi, key):
        raise MidiPortError(f"unknown MIDI API {api!r}; choose from auto, {', '.join(_API_NAMES)}")
    return getattr(rtmidi, key)


def stable_name(port: str) -> str:
    """Port name without the client:port numbers ALSA appends (they change on re-plug)."""
    return re.sub(r"\s+\d+:\d+$", "", port).strip()


def list_input_ports(api: str | None = None) -> list[str]:
    rtmidi = _rtmidi()
    try:
        probe = rtmidi.MidiIn(api_id(api), name="livewave-probe")
    except Exception as exc:
        raise MidiPortError(f"cannot open the MIDI system ({api or 'default'} API): {exc}") from None
    try:
        return list(probe.get_ports())
    finally:
        probe.delete()


class MidiInputs:
    def __init__(self, engine, selection: str = "all", api: str | None = None,
                 poll_interval: float = 0.1, client_name: str = "livewave", jack_ring_records: int = 1 << 14):
        self.engine = engine
        self.jack_ring_records = jack_ring_records     # JACK MIDI's ring (jack_midi_client), in messages
        self.selection = str(selection)
        self.api = api
        self.poll_interval = poll_interval
        self.client_name = client_name
        self.open_ports: dict[str, tuple] = {}     # stable name -> (MidiIn, port id)
        self._rt: tuple = ()                       # NB: replaced whole, read by the render side
        self._clock: dict[int, list] = {}          # port id -> [sum of deltas, offset bound]
        self._held: dict[int, np.ndarray] = {}     # port id -> bool[16, 128]
        self._parsers: dict[int, MidiParser] = {}
        self._next_id = 1
        self.reports: deque[str] = deque(maxlen=200)
        self.messages = 0
        self.malformed = 0
        self.late = 0               # messages that reached the render side after their sounding time
        self._lateness = np.zeros(64, np.int64)   # samples, last 64 messages (ring)
        self._lateness_i = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe = None
        self._jack = (api or "").lower() == "jack"
        self._ctl = None           # JACK-Client control client (JACK only)
        self._jack_in = None       # (JackMidiClient, port id) (JACK only)
        self._overflows = 0
        self.overflows = 0              # messages an input's queue dropped because it was full (reported)
        self._lost_releases = 0         # of those, releases (JACK's ring: its reserve was full too)
        self._jack_port = ""
        self.available: tuple[str, ...] = ()     # input ports seen by the last scan (replaced whole)
        self._selection_pending: str | None = None

    # -- selection --------------------------------------------------------------------
    def _wanted(self, index: int, name: str) -> bool:
        sel = self.selection.strip()
        if sel.lower() in ("all", "*", ""):
            return not name.startswith(self.client_name)   # never listen to ourselves
        if sel.isdigit():
            return index == int(sel)
        return sel.lower() in name.lower()

    def select(self, selection: str) -> None:
        """Change which inputs are open (any thread). The hot-plug poller applies it at its next
        scan: inputs that no longer match are closed (their held notes released), new matches
        opened. NB: only the poller touches the port table."""
        self._selection_pending = str(selection)

    def _apply_selection(self, ports: list[str], key) -> list[str]:
        """Poller thread: take a pending selection; return the open inputs it no longer wants
        (``ports``: the full port list; ``key``: port -> the name ``open_ports`` uses)."""
        sel, self._selection_pending = self._selection_pending, None
        if sel is None or sel == self.selection:
            return []
        self.selection = sel
        self.reports.append(f"MIDI input selection: {sel}")
        keep = {key(p) for i, p in enumerate(ports) if self._wanted(i, p)}
        return [n for n in self.open_ports if n not in keep]

    def start(self) -> MidiInputs:
        """Open the inputs. Under JACK, call this before the audio stream starts."""
        if self._jack:
            self._start_jack()
            self._thread = threading.Thread(target=self._poll, name="livewave-midi-hotplug", daemon=True)
            self._thread.start()
            return self
        rtmidi = _rtmidi()
        try:
            self._probe = rtmidi.MidiIn(api_id(self.api), name=f"{self.client_name}-probe")
        except Exception as exc:
            raise MidiPortError(f"cannot open the MIDI system ({self.api or 'default'} API): {exc}") from None
        ports = self._probe.get_ports()
        sel = self.selection.strip()
        if sel.lower() not in ("all", "*", "") and not any(self._wanted(i, p) for i, p in enumerate(ports)):
            listing = "; ".join(f"{i}: {p}" for i, p in enumerate(ports)) or "none"
            self.reports.append(f"no MIDI input matches {sel!r} yet (inputs: {listing}); "
                                "waiting for it to appear")
        self.scan()
        self._thread = threading.Thread(target=self._poll, name="livewave-midi-hotplug", daemon=True)
        self._thread.start()
        return self

    def _start_jack(self) -> None:
        from .jack_midi_client import JackMidiClient
        try:
            import jack
            self._ctl = jack.Client(f"{self.client_name}-ctl", no_start_server=True)
            jmc = JackMidiClient(f"{self.client_name}-midi", "in", ring_records=self.jack_ring_records)
        except Exception as exc:      # ImportError, jack.JackError, JackMidiError
            if self._ctl is not None:
                self._ctl.close()
                self._ctl = None
            raise MidiPortError(f"cannot open JACK MIDI (is the JACK server running?): {exc}") from None
        pid = self._next_id
        self._next_id += 1
        self._held[pid] = np.zeros((16, 128), np.bool_)
        self._parsers[pid] = MidiParser()
        self._jack_in = (jmc, pid)
        self._jack_port = jmc.port_name
        self.scan()

    def attach(self, out) -> None:
        """Drain into ``out``'s render side before every block and, under JACK, offer it JACK's
        cycle clock (``AudioOutput.set_cycle_clock``)."""
        out.pre_render = self.drain
        if self._jack_in is not None:
            jmc = self._jack_in[0]
            out.set_cycle_clock(jmc.cycle_frame, jmc.period)

    def _scan_jack(self) -> None:
        try:
            sources = [p.name for p in self._ctl.get_ports(is_midi=True, is_output=True)]
        except Exception as exc:
            self.reports.append(f"MIDI port scan failed: {exc}")
            return
        self.available = tuple(p for p in sources if not p.startswith(self.client_name))
        present = set(sources)
        mi, pid = self._jack_in
        for name in self._apply_selection(sources, str):
            self.open_ports.pop(name)
            try:
                self._ctl.disconnect(name, self._jack_port)
            except Exception as exc:
                self.reports.append(f"could not disconnect MIDI input {name!r}: {exc}")
            self._release_held(pid)
            self.reports.append(f"MIDI input closed (not selected): {name}")
        for name in list(self.open_ports):
            if name not in present:
                self.open_ports.pop(name)
                self._release_held(pid)
                self.reports.append(f"MIDI input vanished: {name} (its notes were released; "
                                    "it will be reconnected when it returns)")
        for i, name in enumerate(sources):
            if name not in self.open_ports and self._wanted(i, name):
                try:
                    self._ctl.connect(name, self._jack_port)
                except Exception as exc:
                    self.reports.append(f"could not connect MIDI input {name!r}: {exc}")
                    continue
                self.open_ports[name] = (mi, pid)
                self.reports.append(f"MIDI input connected: {name}")

    def _release_held(self, pid: int) -> None:
        held = self._held.get(pid)
        if held is not None:
            for ch, note in zip(*np.nonzero(held), strict=True):
                self.engine.push_midi(0x80 | int(ch), int(note), 0, pid)
            held[:] = False

    def scan(self) -> None:
        """Open new matching ports; close vanished ones (releasing their notes)."""
        if self._jack:
            self._scan_jack()
            return
        try:
            ports = self._probe.get_ports()
        except Exception as exc:
            self.reports.append(f"MIDI port scan failed: {exc}")
            return
        self.available = tuple(p for p in ports if not p.startswith(self.client_name))
        for name in self._apply_selection(ports, stable_name):
            self._close(name)
            self.reports.append(f"MIDI input closed (not selected): {name}")
        present = {stable_name(p) for p in ports}
        for name in list(self.open_ports):
            if name not in present:
                self._close(name, vanished=True)
        for i, p in enumerate(ports):
            name = stable_name(p)
            if name not in self.open_ports and self._wanted(i, p):
                self._open(i, p, name)

    def _open(self, index: int, port: str, name: str) -> None:
        rtmidi = _rtmidi()
        pid = self._next_id
        self._next_id += 1
        try:
            mi = rtmidi.MidiIn(api_id(self.api), name=self.client_name, queue_size_limit=16384)
            mi.ignore_types(sysex=True, timing=True, active_sense=True)
            self._held[pid] = np.zeros((16, 128), np.bool_)
            self._parsers[pid] = MidiParser()
            self._clock[pid] = [0.0, float("inf")]
            mi.open_port(index, name="in")
        except Exception as exc:
            self.reports.append(f"could not open MIDI input {port!r}: {exc}")
            return
        self.open_ports[name] = (mi, pid)
        self._rt = self._rt + ((mi, pid),)
        self.reports.append(f"MIDI input connected: {name}")

    def _close(self, name: str, vanished: bool = False) -> None:
        mi, pid = self.open_ports.pop(name)
        self._rt = tuple(e for e in self._rt if e[1] != pid)
        time.sleep(0.05)          # NB: let a drain that still holds the old tuple finish with it
        self._release_held(pid)
        try:
            mi.close_port()
            mi.delete()
        except Exception:
            pass
        if vanished:
            self.reports.append(f"MIDI input vanished: {name} (its notes were released; "
                                "it will be reconnected when it returns)")

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval):
            self.scan()

    def stop(self) -> None:
        """Close every input. Under JACK, call this after the audio stream has stopped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._jack:
            self.open_ports.clear()
            if self._jack_in is not None:
                self._release_held(self._jack_in[1])
                self._jack_in[0].close()
                self._jack_in = None
            if self._ctl is not None:
                self._ctl.close()
                self._ctl = None
            return
        for name in list(self.open_ports):
            self._close(name)
        if self._probe is not None:
            self._probe.delete()
            self._probe = None

    # -- render side ------------------------------------------------------------------------
    def drain(self) -> None:
        """Move every queued message into the engine (called at the start of each block)."""
        if self._jack_in is not None:
            self._drain_jack()
            return
        now = time.perf_counter()
        eng = self.engine
        for mi, pid in self._rt:
            item = mi.get_message()
            if item is None:
                continue
            clock = self._clock[pid]
            while item is not None:
                msg, delta = item
                clock[0] += delta
                bound = now - clock[0]
                if bound < clock[1]:
                    clock[1] = bound
                self._on_message(msg, pid, eng.live_time(clock[0] + clock[1]))
                item = mi.get_message()

    def _drain_jack(self) -> None:
        jmc, pid = self._jack_in
        records = jmc.read()
        lost = 0
        if jmc.overflows != self._overflows:
            lost = jmc.lost_releases - self._lost_releases
            self._lost_releases = jmc.lost_releases
            self.reports.append(f"MIDI input overflow: {jmc.overflows - self._overflows} messages dropped "
                                "(the render side fell behind)" + (
                                    f", {lost} of them note-offs or pedal-ups: every held note released"
                                    if lost else "; no note-off lost"))
            self.overflows += jmc.overflows - self._overflows
            self._overflows = jmc.overflows
        if len(records):
            self._deliver_jack(jmc, pid, records)
        if lost:            # after what did arrive: a cut, never a stuck note (jack_midi_client)
            self._release_held(pid)
            for ch in range(16):
                self.engine.push_midi(0xB0 | ch, 64, 0, pid)

    def _deliver_jack(self, jmc, pid: int, records) -> None:
        eng = self.engine
        anchor = eng.frame_anchor
        if anchor is None:
            jmc.sync_clock()
        for frame, msg in parse_records(records):
            if anchor is not None:
                t = anchor[1] + frame_diff(frame, anchor[0]) + eng.midi_delay
            else:
                t = eng.live_time(jmc.frame_to_perf(frame))
            self._on_message(msg, pid, t)

    def _on_message(self, msg, pid: int, t: int) -> None:
        """One message from port ``pid``, due at output sample ``t``."""
        parser = self._parsers.get(pid)
        if parser is None or not msg:
            return
        if msg[0] >= 0xF0:
            return       # system messages (clock, SysEx, ...) are fine, just not for us
        parsed = parser.parse_message(msg)
        if parsed is None:
            self.malformed += 1
            self.reports.append(f"malformed MIDI message dropped: {parser.last_error}")
            return
        status, d1, d2 = parsed
        kind = status & 0xF0
        if kind == 0x90 and d2 > 0:
            self._held[pid][status & 0x0F, d1] = True
        elif kind == 0x80 or kind == 0x90:
            self._held[pid][status & 0x0F, d1] = False
        self.messages += 1
        eng = self.engine
        late = eng.sample_time - t          # > 0: the block it was due in has begun
        if late > 0:
            self.late += 1
        lt = self._lateness
        lt[self._lateness_i & 63] = max(0, late)
        self._lateness_i += 1
        eng.midi_late = int(lt.max())
        eng.push_event(max(t, 0), status, d1, d2, pid)
