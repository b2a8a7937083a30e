"""What a task run needs: settings, a session factory, the rules engine and a dispatcher.

One WorkerContext per process. The engine and the session factory are created lazily and
re-created after a fork (Celery's prefork pool), so no connection is ever shared between
processes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from contracts.tasks import TaskDispatcher
from settings import Settings
from store.db import make_engine, make_session_factory
from workers.engine import EngineHandle, load_engine


@dataclass
class WorkerContext:
    """Per-process resources for task runs (never shared across forks)."""

    settings: Settings
    dispatch: TaskDispatcher | None = None
    engine_factory: Callable[[], EngineHandle] | None = None
    sessions_override: sessionmaker[Session] | None = None
    _pid: int = field(default=-1, repr=False)
    _db: Engine | None = field(default=None, repr=False)
    _sessions: sessionmaker[Session] | None = field(default=None, repr=False)
    _rules: EngineHandle | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            if self._db is not None:
                self._db.dispose(close=False)
            self._db = None
            self._sessions = None

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self.sessions_override is not None:
            return self.sessions_override
        with self._lock:
            self._check_fork()
            if self._sessions is None:
                self._db = make_engine(self.settings.database_url)
                self._sessions = make_session_factory(self._db)
            return self._sessions

    @property
    def rules(self) -> EngineHandle:
        with self._lock:
            if self._rules is None:
                factory = self.engine_factory or (
                    lambda: load_engine(self.settings.rules_config_path)
                )
                self._rules = factory()
            return self._rules

    def send(self, task_name: str, **kwargs: Any) -> None:
        """Enqueue a follow-up task by name with named arguments (after the caller committed)."""
        if self.dispatch is not None:
            self.dispatch(task_name, kwargs=kwargs)
