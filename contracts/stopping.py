"""A stop request (SIGTERM, SIGINT) as a `threading.Event`, without a lock in the signal handler.

Python runs a signal handler in the main thread between two bytecodes, possibly while that
thread holds the very lock the handler needs: `threading.Event.set()` from a handler deadlocks
when the signal lands while the main thread is inside `Event.wait()` (the event's condition
lock is held around the timed wait). The Python documentation warns against locks in signal
handlers. Here the handler does nothing; the interpreter's C-level handler writes the signal
number to a pipe (`signal.set_wakeup_fd`), and a watcher thread, holding no lock of the main
thread, reads it and sets the event.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(
    *,
    signals: Iterable[signal.Signals] = STOP_SIGNALS,
    on_stop: Callable[[signal.Signals], None] | None = None,
) -> threading.Event:
    """Install the handlers (main thread only) and return the event the first signal sets.

    `on_stop` runs on the watcher thread with the signal that arrived first (a log line, for
    instance: logging takes locks too, so it never runs inside the handler).
    """
    wanted = {int(number) for number in signals}
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # a full pipe drops a byte, never blocks the handler
    stop = threading.Event()

    def watch() -> None:
        while True:
            received = os.read(read_end, 64)
            first = next((number for number in received if number in wanted), None)
            if first is not None:
                if on_stop is not None:
                    on_stop(signal.Signals(first))
                stop.set()
                return

    threading.Thread(target=watch, name="stop-signal-watcher", daemon=True).start()
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    for number in wanted:
        signal.signal(number, _do_nothing)
    return stop


def _do_nothing(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: the wake-up byte already carries the request."""
