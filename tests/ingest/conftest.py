"""Ingest test rig: a real server (werkzeug in a thread) on the test PostgreSQL and Redis,
agents and admins that sign with real Ed25519 keys, and a dispatcher that records tasks."""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import requests
from nacl.signing import SigningKey
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from contracts.httpsig import HttpRequest, sign_request
from ingest.app import create_app
from settings import Settings
from store import admin_keys, clusters, migrate
from store.db import make_engine, make_session_factory
from tests.support.clock import ShiftedClock
from tests.support.factories import make_cluster
from tests.support.services import ThrowawayDatabase


@pytest.fixture(scope="session")
def postgres_database(postgres_server_url: str) -> Iterator[ThrowawayDatabase]:
    """The ingest tests' own throwaway database: the live servers here commit for real (no
    per-test SAVEPOINT), so their clusters, manifests and exemptions must not leak into the
    other areas' tests, which expect only their own seeded data."""
    database = ThrowawayDatabase.create(postgres_server_url)
    yield database
    database.drop()


@pytest.fixture(scope="session")
def pg_engine(postgres_database: ThrowawayDatabase) -> Iterator[Engine]:
    """Engine on the ingest tests' database, migrated to head once."""
    engine = make_engine(postgres_database.url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@dataclass
class RecordingDispatcher:
    calls: list[tuple[str, list[Any], dict[str, Any]]] = field(default_factory=list)
    fail: bool = False

    def __call__(
        self, task_name: str, *, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None
    ) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.calls.append((task_name, list(args or []), dict(kwargs or {})))


@dataclass
class Signer:
    """Signs requests to the server the way any client must (docs/protocol.md)."""

    base_url: str
    key: SigningKey
    key_id: str

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        content_type: str | None = "application/json",
        extra_headers: dict[str, str] | None = None,
        sign_kwargs: dict[str, Any] | None = None,
        tamper: Any = None,
    ) -> requests.Response:
        url = self.base_url + path
        headers = [("Host", self.base_url.split("://", 1)[1])]
        if content_type:
            headers.append(("Content-Type", content_type))
        for name, value in (extra_headers or {}).items():
            headers.append((name, value))
        components = ("@method", "@authority", "@path", "@query")
        if body or content_type:
            components = (*components, "content-type", "content-digest")
        options = {"components": components, **(sign_kwargs or {})}
        added = sign_request(
            HttpRequest(method, url, headers, body),
            key_id=self.key_id,
            sign=lambda b: self.key.sign(b).signature,
            **options,
        )
        final = dict(headers[1:])
        final.update(added)
        if tamper is not None:
            final, body = tamper(final, body)
        return requests.request(method, url, data=body, headers=final, timeout=30)

    def json(self, method: str, path: str, payload: Any = None, **kwargs: Any) -> requests.Response:
        if payload is None:
            return self.request(method, path, b"", content_type=None, **kwargs)
        return self.request(method, path, json.dumps(payload).encode(), **kwargs)


@dataclass
class Agent(Signer):
    cluster_id: str = ""

    def push(
        self, kind: str, document: Any, *, compress: bool = True, **kwargs: Any
    ) -> requests.Response:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        extra = dict(kwargs.pop("extra_headers", None) or {})
        if compress:
            body = gzip.compress(body)
            extra["Content-Encoding"] = "gzip"
        return self.request(
            "POST", f"/v1/clusters/{self.cluster_id}/{kind}", body, extra_headers=extra, **kwargs
        )


@dataclass
class Server:
    base_url: str
    app: Any
    sessions: sessionmaker[Session]
    dispatcher: RecordingDispatcher
    settings: Settings
    clock: ShiftedClock = field(default_factory=ShiftedClock)

    def register_cluster(self, *, keys: int = 1, status: str = "active") -> Agent:
        cluster_id = f"c-{uuid.uuid4().hex[:10]}"
        signing = [SigningKey.generate() for _ in range(keys)]
        with self.sessions() as session:
            make_cluster(session, cluster_id, team="platform")
            for index, key in enumerate(signing):
                clusters.add_cluster_key(
                    session,
                    cluster_id,
                    key_id=f"{cluster_id}-k{index}",
                    public_key=bytes(key.verify_key),
                )
            if status != "active":
                clusters.update_cluster(session, cluster_id, status=status)
            session.commit()
        return Agent(self.base_url, signing[0], f"{cluster_id}-k0", cluster_id=cluster_id)

    def admin(self, *, role: str = "admin") -> Signer:
        key = SigningKey.generate()
        name = f"admin-{uuid.uuid4().hex[:8]}"
        with self.sessions() as session:
            admin_keys.create_admin_key(
                session, name, role=role, key_id=f"{name}-key", public_key=bytes(key.verify_key)
            )
            session.commit()
        return Signer(self.base_url, key, f"{name}-key")


def start_server(app: Any) -> tuple[Any, threading.Thread, str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def ingest_settings(test_settings: Settings, redis_url: str) -> Settings:
    return test_settings.replace(
        redis_url=redis_url,
        max_body_bytes=2 * 1024 * 1024,
        max_decompressed_bytes=8 * 1024 * 1024,
        rate_limit_per_minute=1000,
    )


@pytest.fixture
def server(
    pg_engine: Engine, ingest_settings: Settings, redis_url: str, redis_key_prefix: str
) -> Iterator[Server]:
    """A live ingest server on 127.0.0.1 (real PostgreSQL and Redis)."""
    sessions = make_session_factory(pg_engine)
    dispatcher = RecordingDispatcher()
    client = redis.Redis.from_url(redis_url)
    clock = ShiftedClock()
    app = create_app(
        ingest_settings,
        store=sessions,
        dispatch=dispatcher,
        redis_client=client,
        redis_prefix=redis_key_prefix,
        clock=clock,
    )
    http, thread, base_url = start_server(app)
    try:
        yield Server(base_url, app, sessions, dispatcher, ingest_settings, clock)
    finally:
        http.shutdown()
        thread.join(timeout=5)
        client.close()
