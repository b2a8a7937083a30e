"""Build the runtime pieces (settings, engine, sessions) for CLI commands from the environment."""

from __future__ import annotations

from dataclasses import dataclass

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from settings import ConfigError, Settings, load_settings
from store.db import make_engine, make_session_factory


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


def load_settings_or_exit() -> Settings:
    """Settings from the environment; a bad value stops the command with a one-line message."""
    try:
        return load_settings()
    except ConfigError as problem:
        raise click.ClickException(f"configuration error: {problem}") from None


def open_runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or load_settings_or_exit()
    engine = make_engine(settings.database_url)
    return Runtime(settings=settings, engine=engine, sessions=make_session_factory(engine))
