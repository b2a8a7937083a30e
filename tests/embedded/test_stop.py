"""Stopping the embedded server never hangs on a serving loop that does not end."""

from __future__ import annotations

import threading
from pathlib import Path

from cli.embedded import EmbeddedServer


class _StuckServer:
    """A server whose `shutdown()` never returns, as a wedged serving loop would."""

    def __init__(self) -> None:
        self.closed = False
        self._never = threading.Event()

    def shutdown(self) -> None:
        self._never.wait()

    def server_close(self) -> None:
        self.closed = True


def test_stop_returns_and_closes_even_when_the_serving_loop_is_stuck(tmp_path: Path) -> None:
    server = EmbeddedServer(
        environ={"K8SMON_ENV": "embedded", "K8SMON_INSTANCE_PATH": str(tmp_path)},
        host="127.0.0.1",
        port=0,
    )
    stuck = _StuckServer()
    server._server = stuck  # type: ignore[assignment]
    stopper = threading.Thread(target=server.stop, kwargs={"grace_seconds": 0.2}, daemon=True)
    stopper.start()
    stopper.join(30)
    assert not stopper.is_alive(), "stop() waited on the stuck serving loop"
    assert stuck.closed
