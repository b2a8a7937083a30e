"""A stop signal sets the event even when it lands while the main thread holds the event's lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# The main thread holds the event's condition lock when the signal arrives, as it does for a
# moment inside every `Event.wait()`; Python then runs the handler in that same thread.
_SIGNAL_WHILE_THE_LOCK_IS_HELD = """
import os, signal, sys, threading
{install}
with stop._cond:
    os.kill(os.getpid(), signal.{signal_name})
    for _ in range(10_000):
        pass  # the Python-level handler runs between these bytecodes, in this thread
print("handler returned", flush=True)
print("stopped" if stop.wait(10) else "never stopped", flush=True)
"""

_THIS_MODULE = """
from contracts.stopping import stop_on_signals
received = []
stop = stop_on_signals(on_stop=received.append)
"""

# What serve, the demo and the agent did before: Event.set() inside the handler.
_EVENT_SET_IN_THE_HANDLER = """
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
"""


def _run(install: str, *, signal_name: str = "SIGTERM", timeout: float) -> str:
    script = _SIGNAL_WHILE_THE_LOCK_IS_HELD.format(
        install=textwrap.dedent(install), signal_name=signal_name
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_signal_while_the_lock_is_held_still_stops(signal_name: str) -> None:
    output = _run(_THIS_MODULE, signal_name=signal_name, timeout=30)
    assert output.splitlines() == ["handler returned", "stopped"]


def test_on_stop_is_told_which_signal_arrived() -> None:
    script = _THIS_MODULE + "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n"
    script += "stop.wait(10)\nprint(received)\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.strip() == "[<Signals.SIGINT: 2>]"


def test_the_scenario_deadlocks_an_event_set_in_the_handler() -> None:
    """The scenario above is the hazard: the former handlers never returned from it."""
    with pytest.raises(subprocess.TimeoutExpired):
        _run(_EVENT_SET_IN_THE_HANDLER, timeout=5)
