"""A real JACK server (dummy driver) and a test client that plays MIDI bytes into the
instrument and records its audio on JACK's own frame clock.

Threading: ``Rig``'s process callbacks (compiled, ``compiled_rig``) run on JACK's real-time
thread; they only copy into preallocated arrays and write the scheduled MIDI bytes at their
exact frame.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np

XRUN_RE = re.compile(r"JackEngine::XRun: client = (.+?) was not finished")
XRUN_STATE_RE = re.compile(r"JackEngine::XRun: client = (.+?) was not finished, state = (\w+)")
# jackd's own driver thread woke late (the dummy driver's timer): no client had any part in it
DRIVER_LATE_RE = re.compile(r"JackTimedDriver::Process XRun")

# Sporadic lateness a test tolerates on a machine quiet by every measure (on_time_or_slow_machine):
# SPORADIC events in a take, plus one per ten machine stalls. A systematic fault (a render over
# budget, a lock on the audio path) misses hundreds of cycles; a shared VM's scheduler, with no
# stall or steal to show for it, has cost single ones: clean-clone CI on 2026-12-02 (steal 0.2-0.6%)
# saw 2 ring underruns in the 20-s chords take, 1 input underrun, 2 xruns of livewave's MIDI
# client amid 10,000 messages a second. The soak (benchmarks) measures the rate; zero is its target.
SPORADIC = 2


def sporadic(n: int, stalls: int = 0) -> bool:
    """``n`` late events are no more than a quiet moment of a shared machine explains (SPORADIC)."""
    return n <= SPORADIC + stalls // 10


def driver_late(log: str) -> int:
    """How many times jackd's driver thread woke late in a jackd log excerpt (DRIVER_LATE_RE): the
    machine's lateness, with no client named (test_engine_process_live saw a recording hole with
    only these in the log)."""
    return len(DRIVER_LATE_RE.findall(log))


def xrun_unfinished(log: str) -> Counter:
    """How many xruns listed each client as not finished, whatever its state. A client still
    Triggered had not started at all: that cycle's MIDI at its input is gone when it next runs
    (the port buffer holds the next cycle's), even when the xrun names no culprit."""
    return Counter(m.group(1) for m in XRUN_STATE_RE.finditer(log))


class JackServer:
    def __init__(self, rate: int = 48000, period: int = 128, log_dir: Path | None = None):
        self.rate, self.period = rate, period
        self.log_path = Path(log_dir or "/tmp") / f"jackd-{os.getpid()}-{period}.log"
        self.proc = None

    def __enter__(self) -> JackServer:
        subprocess.run(["pkill", "-x", "jackd"], capture_output=True)
        for _ in range(50):
            if subprocess.run(["pgrep", "-x", "jackd"], capture_output=True).returncode != 0:
                break
            time.sleep(0.1)
        for rt in (["-R"], ["--no-realtime"]):
            cmd = ["jackd", *rt, "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)]
            if shutil.which("stdbuf"):
                cmd = ["stdbuf", "-oL", "-eL", *cmd]
            log = open(self.log_path, "w")
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "JACK_NO_START_SERVER": "1"})
            if self._wait_ready():
                self.realtime = rt == ["-R"]
                global _SERVING
                _SERVING = self
                mark_test_start()
                return self
            self._stop()
        raise RuntimeError(f"jackd did not start; log: {self.log_text()}")

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        import jack
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if self.proc.poll() is not None:
                return False
            try:
                c = jack.Client("lw-probe", no_start_server=True)
                c.close()
                return True
            except jack.JackError:
                time.sleep(0.1)
        return False

    def _stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __exit__(self, *exc) -> None:
        global _SERVING
        if _SERVING is self:
            _SERVING = None
        self._stop()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def xrun_clients(self) -> list[str]:
        return XRUN_RE.findall(self.log_text())


def xrun_groups(log: str) -> list[list[tuple[str, str]]]:
    """Per xrun in a jackd log excerpt, the clients jackd listed as not finished when the cycle
    ended, with their states, in graph order (each group ends at 'Process error')."""
    groups, group = [], []
    for line in log.splitlines() + ["Process error"]:
        m = XRUN_STATE_RE.search(line)
        if m:
            group.append((m.group(1), m.group(2)))
        elif "Process error" in line and group:
            groups.append(group)
            group = []
    return groups


def xrun_culprits(log: str) -> list[str]:
    """One name per xrun in a jackd log excerpt. jackd lists every client that had not finished
    when the cycle ended, in graph order, followed by 'Process error'. A client in state
    Running was still inside its cycle (late: it is the culprit; the first one listed, as the
    clients after it waited for it). When every listed client is still Triggered, none of them
    had started: their real-time threads were woken and got no CPU within the period (the
    machine's scheduler, not a client, was late); such an xrun is named '(no client ran)'."""
    culprits = []
    for group in xrun_groups(log):
        running = [c for c, st in group if st == "Running"]
        culprits.append(running[0] if running else "(no client ran)")
    return culprits


def is_machine_stall(group: list[tuple[str, str]]) -> bool:
    """An xrun that is the machine's own evidence: no listed client had started, and one of
    them is not livewave's (a test client in another process). A frozen livewave alone also
    leaves its client Triggered (tests/test_engine_process.py freezes one on purpose), so an
    xrun that lists livewave's clients only is not counted."""
    return all(st == "Triggered" for _, st in group) and any(not c.startswith("livewave") for c, _ in group)


class Rig:
    """A test keyboard and a recorder on JACK's frame clock.

    ``split=False``: one client ``name`` with one MIDI out and ``channels`` audio ins (the
    client both sends and records, so JACK's graph runs it after the instrument's audio
    client, and MIDI it sends reaches the instrument's MIDI client after the instrument has
    rendered that cycle: a worst case of one extra period).
    ``split=True``: the MIDI out is on its own client ``name`` (a source, like a hardware
    keyboard's capture port, which JACK runs before everything) and the audio ins on
    ``name-rec``. Event times are frames after the recording's first frame.

    The process callbacks are compiled (``compiled_rig``): the rig takes no GIL on JACK's
    thread, so it is not the client that is late. Port queries and connections go through a
    JACK-Client client ``name-ctl`` that is never activated (it never runs in a cycle).
    """

    def __init__(self, seconds: float, channels: int = 1, name: str = "lwtest", split: bool = False):
        import jack
        from compiled_rig import CompiledRig
        self.core = None
        self.client = jack.Client(f"{name}-ctl", no_start_server=True)
        self.rate = self.client.samplerate
        try:
            self.core = CompiledRig(name, int(seconds * self.rate), channels, split)
        except BaseException:
            self.client.close()
            raise
        self.midi_out = self.client.get_port_by_name(f"{self.core.name}:midi_out")
        self.ins = [self.client.get_port_by_name(f"{self.core.rec_name}:in_{i + 1}") for i in range(channels)]
        self.recording = self.core.recording_cm.T        # [frames, channels], written by the callback

    def schedule(self, events: list[tuple[int, bytes]]) -> None:
        self.core.schedule(sorted(events, key=lambda e: e[0]))

    def start(self) -> None:
        self.core.arm()

    @property
    def start_frame(self) -> int:
        return self.core.start_frame

    @property
    def sent(self) -> list[tuple[int, int]]:
        """(frame offset, absolute frame) of each event sent."""
        return self.core.sent

    @property
    def recorded(self) -> bool:
        return self.core.recorded

    @property
    def done(self) -> bool:
        """The recording is full and every scheduled event has gone out (events due after the
        recording's end, or skipped over by a stalled cycle, are sent all the same)."""
        return self.core.recorded and self.core.all_sent

    def wait_done(self, timeout: float) -> bool:
        t_end = time.monotonic() + timeout
        while not self.done and time.monotonic() < t_end:
            time.sleep(0.05)
        return self.done

    def ports(self, pattern: str, **kw) -> list[str]:
        return [p.name for p in self.client.get_ports(pattern, **kw)]

    def connect_output(self, source: str, index: int = 0) -> None:
        """``source`` into the rig's audio input ``index`` (0: the first)."""
        self.client.connect(source, self.ins[index])

    def close(self) -> None:
        try:
            if self.core is not None:
                self.core.close()
        finally:
            self.client.close()


def never_the_cause(culprits: list[str]) -> None:
    """livewave (an engine process or instrument) was not the one late. This VM is shared: a cycle in which no client
    got the CPU is the machine's stall (jack_rig.xrun_culprits). In a storm of those, JACK's
    cycle timing slips and a client caught mid-cycle is named now and then: the child may be
    named, rarely, never as the main cause."""
    own = [c for c in culprits if c.startswith("livewave")]
    stalls = len(culprits) - len(own)
    # NB: sporadic at most (SPORADIC); amid stalls, one caught mid-cycle (seen 1 in 4 runs here).
    # Beyond that, the machine is measured (on_time_or_slow_machine): CI's 2-core runner, slower
    # still than this VM, had the test's own trivial client late 10 times and livewave 3.
    ok = sporadic(len(own), stalls)
    rig_late = sum(c.startswith("lw") for c in culprits)      # the test's own clients: lwtest, lwfaults, ...
    if not ok and rig_late >= len(own):
        import pytest
        # the reference: a Python client that does next to nothing was late as often as livewave
        pytest.xfail(f"xruns blamed on {dict(Counter(culprits))}: the test's own trivial client was late "
                     f"{rig_late} times, livewave {len(own)}")
    on_time_or_slow_machine(ok, f"xruns blamed on {dict(Counter(culprits))}")


# The default instrument's DSP load at 16 voices, 64-sample blocks, 48 kHz, measured now (the
# benchmark's "DSP load" row): 6-8% of a block on quiet days of this shared 2-core VM, 14-18% on
# slow ones (2026-11-22, 2026-12-01), when the same code gets half the CPU.
QUIET_DAY_LOAD = 0.09


def dsp_load_probe(blocks: int = 600, repeats: int = 3) -> float:
    """Render time of a block over its duration (see QUIET_DAY_LOAD): the smallest of
    ``repeats`` medians, the machine at its best right now."""
    import time as _time

    from livewave.config import EngineConfig
    from livewave.engine import Engine
    e = Engine(EngineConfig(sample_rate=48000, max_block=64, polyphony=16)).prepare()
    for k in range(16):
        e.push_event(0, 0x90, 36 + (k * 7) % 48, 90)
    out = np.zeros((64, 2), np.float32)
    best = float("inf")
    for _ in range(repeats):
        ts = np.zeros(blocks)
        for i in range(blocks):
            t = _time.perf_counter()
            e.render(out)
            ts[i] = _time.perf_counter() - t
        best = min(best, float(np.median(ts[blocks // 5:])) * 48000 / 64)
    return best


def stall_count(log: str) -> int:
    """Machine stalls in a jackd log excerpt: xruns that are the machine's (is_machine_stall) and
    the driver's late wake-ups (driver_late)."""
    return sum(is_machine_stall(g) for g in xrun_groups(log)) + driver_late(log)


# The JACK server now running (JackServer sets it) and where the current test's share of its log
# begins (conftest's autouse fixture calls mark_test_start before each test).
_SERVING: JackServer | None = None
_MARK: tuple[int, float, tuple[int, int]] = (0, 0.0, (0, 0))

# Machine stalls (is_machine_stall: a JACK cycle in which no client got the CPU, a test client
# among them) during a test that mark the machine as busy (on_time_or_slow_machine): at least
# STALL_STORM_MIN, and at least STALL_STORM_PER_S a second of the test. Counted on this VM on
# 2026-12-02 (benchmarks/RESULTS.md, "machine stalls during the JACK tests"): 0-5 in most tests
# with the hypervisor taking 0-1.3% of the CPU, up to 476 in the 20-s chords take with it taking
# 21%; CI's failing take of stop 19 had 363 in 20 s while the probe, run after the take, read
# the machine at its best (7.6%).
STALL_STORM_MIN = 3
STALL_STORM_PER_S = 0.5
# The share of the machine's CPU time the hypervisor took during a test (machine_steal) that
# marks it as busy: 0-1.3% in the quieter run above, 1-21% in the busy ones.
STEAL_BUSY = 0.03


def cpu_ticks() -> tuple[int, int]:
    """(stolen, total) CPU ticks of the whole machine so far, from /proc/stat (Linux; zeros
    elsewhere). Steal is time a virtual CPU was ready to run and the hypervisor ran someone else."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (v[7] if len(v) > 7 else 0), sum(v[:8])


def mark_test_start() -> None:
    """Where the server's log and the machine's CPU ticks stand as a test begins (see
    machine_stalls, machine_steal)."""
    global _MARK
    _MARK = (len(_SERVING.log_text()) if _SERVING is not None else 0, time.monotonic(), cpu_ticks())


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU time the hypervisor took between two ``cpu_ticks()``."""
    return (after[0] - before[0]) / (after[1] - before[1]) if after[1] > before[1] else 0.0


def machine_steal() -> float:
    """The share of the machine's CPU time the hypervisor took since the current test began."""
    return steal_share(_MARK[2], cpu_ticks())


def machine_stalls() -> tuple[int, float]:
    """(machine stalls, seconds) since the current test began (stall_count), from the server's
    log. Zero where the server runs without real-time scheduling: there a client's thread waits
    behind ordinary threads, livewave's own included, so a stall is no evidence."""
    if _SERVING is None or not _SERVING.realtime:
        return 0, 0.0
    offset, t0, _ = _MARK
    return stall_count(_SERVING.log_text()[offset:]), time.monotonic() - t0


def on_time_or_slow_machine(ok: bool, what: str, holes: int = 0) -> None:
    """Assert the engine kept its deadlines (``ok``). Where it did not, measure the machine,
    three ways: the CPU time the hypervisor took during this test (machine_steal, STEAL_BUSY),
    JACK's own count of machine stalls during this test (machine_stalls: a storm,
    STALL_STORM_MIN and STALL_STORM_PER_S, is a busy machine whoever else was late; so are
    stalls enough to explain each of ``holes``, the gaps a live recording shows), and the probe
    now (above QUIET_DAY_LOAD: a slow day). Either marks the test xfail with the figures
    instead of failing, since timing on a shared machine belongs in the benchmarks
    (DEVELOPERS.md); on a machine quiet by every measure it fails."""
    if ok:
        return
    import pytest
    stalls, seconds = machine_stalls()
    steal = machine_steal()
    if steal >= STEAL_BUSY:
        pytest.xfail(f"{what}, on a busy machine: the hypervisor took {steal:.1%} of the CPU during this test "
                     f"({stalls} machine stalls in JACK's log)")
    if stalls >= max(STALL_STORM_MIN, STALL_STORM_PER_S * seconds):
        pytest.xfail(f"{what}, on a busy machine: JACK logged {stalls} machine stalls (cycles in which no client, "
                     f"a test client among them, got the CPU; late wake-ups of its driver) during this test's "
                     f"{seconds:.0f} s")
    if 0 < holes <= stalls:
        pytest.xfail(f"{what}, on a stalling machine: each of the recording's {holes} holes may be one of the "
                     f"{stalls} machine stalls in JACK's log of this test")
    load = dsp_load_probe()
    if load > QUIET_DAY_LOAD:
        pytest.xfail(f"{what}, on a slow machine: the probe's DSP load is {load:.1%} (quiet days: 6-8%)")
    raise AssertionError(f"{what}; the machine measures quiet (probe DSP load {load:.1%}, "
                         f"{stalls} machine stalls in {seconds:.0f} s, {steal:.1%} stolen)")


def unbroken_or_slow_machine(x: np.ndarray, what: str, need: int = 4800) -> np.ndarray:
    """The longest stretch of a live recording ``x`` without a hole (audio_checks.longest_unbroken),
    for a pitch or level check. A hole is a cycle nobody filled: a machine stall or a block the
    engine missed. Where no stretch reaches ``need`` frames (default 100 ms at 48 kHz: enough to
    resolve a low note's harmonics) the take is judged by on_time_or_slow_machine, not by a pitch
    estimate made from a few periods."""
    from audio_checks import holes, longest_unbroken
    piece = longest_unbroken(x)
    n = len(holes(x))
    on_time_or_slow_machine(piece.size >= need, f"{what}: its longest stretch without a hole is {piece.size} "
                                                f"of {x.size} frames (a pitch check needs {need}; {n} holes)", holes=n)
    return piece


def wait_until(pred, timeout: float, step: float = 0.01):
    """``pred()``'s first truthy value within ``timeout`` seconds (polled every ``step``), else
    its value at the deadline."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def require_jackd() -> None:
    """Skip the calling test module where JACK-Client or jackd is missing."""
    import pytest
    pytest.importorskip("jack")
    if subprocess.run(["which", "jackd"], capture_output=True).returncode != 0:
        pytest.skip("jackd is not installed (Debian package jackd2)", allow_module_level=True)


def served(tmp_path_factory, rate: int, period: int):
    """A module fixture's body: a JACK server for the module's tests."""
    with JackServer(rate, period, tmp_path_factory.mktemp("jack")) as s:
        yield s
