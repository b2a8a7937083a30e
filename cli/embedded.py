"""The embedded server: ingest and the whole pipeline in one process (SQLite, no Redis).

`EmbeddedServer` migrates the database, serves the ingest app on a thread (werkzeug) with the
workers' in-process runner as its dispatcher, and can run the beat schedule in-process.
Used by `k8smon serve` (`make run`) and `python -m cli.demo` (`make demo`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from beat_schedule.schedule import build_schedule
from cli.wsgi import build_app
from settings import Settings, load_settings
from store import migrate
from store.db import make_engine, make_session_factory
from workers.context import WorkerContext
from workers.inprocess import InProcessDispatcher

log = logging.getLogger("k8smon.server")


@dataclass
class EmbeddedServer:
    """One process doing everything; start() returns once the server listens."""

    environ: Mapping[str, str]
    host: str = "127.0.0.1"
    port: int = 8000
    settings: Settings = field(init=False)
    runner: InProcessDispatcher = field(init=False)
    _server: BaseWSGIServer | None = field(default=None, init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        self.settings = load_settings(self.environ)
        engine = make_engine(self.settings.database_url)
        migrate.upgrade(engine)
        self.runner = InProcessDispatcher(
            WorkerContext(settings=self.settings, sessions_override=make_session_factory(engine))
        )

    @property
    def url(self) -> str:
        port = self._server.server_port if self._server else self.port
        return f"http://{self.host}:{port}"

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = build_app(self.environ)
        self._server = make_server(self.host, self.port, app, threaded=True)
        thread = threading.Thread(
            target=self._server.serve_forever, name="k8smon-http", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def start_schedule(self) -> None:
        """Run the beat schedule in-process (only when tasks run in-process: no Redis)."""
        entries = build_schedule(
            scan_interval_s=self.settings.scan_interval_hours * 3600,
            sweep_interval_s=self.settings.sweep_interval_minutes * 60,
            delivery_retry_s=self.settings.delivery_interval_seconds,
            watchdog_interval_s=self.settings.watchdog_interval_seconds,
        )
        for name, entry in entries.items():
            thread = threading.Thread(
                target=self._every, args=(name, entry), name=f"k8smon-beat-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _every(self, name: str, entry: dict[str, Any]) -> None:
        while not self._stop.wait(float(entry["schedule"])):
            try:
                self.runner.run(entry["task"], **entry["kwargs"])
            except Exception:
                log.exception("scheduled task %s failed", name)

    def wait(self) -> None:
        self._stop.wait()

    def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Stop the schedule and the HTTP server; never wait on the server past the grace."""
        self._stop.set()
        if self._server is None:
            return
        # `shutdown()` waits for the serving loop without a bound; a stop request (Ctrl-C,
        # SIGTERM) must end the process even if that loop is stuck.
        closer = threading.Thread(target=self._server.shutdown, name="k8smon-stop", daemon=True)
        closer.start()
        closer.join(grace_seconds)
        if closer.is_alive():
            log.warning("the HTTP server did not stop in %.0f s; stopping anyway", grace_seconds)
        self._server.server_close()
