import os
import sys
from pathlib import Path

os.environ.setdefault("JACK_NO_START_SERVER", "1")
sys.path.insert(0, str(Path(__file__).parent))


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _jack_log_mark():
    """Each test's share of a running JACK server's log starts here (jack_rig.machine_stalls);
    after it, the test's machine stalls go to $LIVEWAVE_STALL_LOG when set (for the stall
    figures in benchmarks/RESULTS.md)."""
    import jack_rig
    jack_rig.mark_test_start()
    yield
    out = os.environ.get("LIVEWAVE_STALL_LOG")
    if out and jack_rig._SERVING is not None:
        stalls, seconds = jack_rig.machine_stalls()
        with open(out, "a") as f:
            f.write(f"{os.environ.get('PYTEST_CURRENT_TEST', '?').split(' ')[0]}\t{stalls}\t{seconds:.1f}\t"
                    f"{jack_rig.machine_steal():.4f}\n")
