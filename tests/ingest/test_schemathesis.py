"""Property-based fuzzing of every documented operation (schemathesis, from /openapi.json):
no input, signed or not, may produce a 5xx. A WSGI middleware signs each generated request with
a real admin key (or the fuzz cluster's agent key) so the fuzzing reaches past authentication."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from nacl.signing import SigningKey
from schemathesis.checks import not_a_server_error
from sqlalchemy import Engine

from contracts.httpsig import HttpRequest, sign_request
from ingest.app import create_app
from settings import Settings
from store import admin_keys, clusters
from store.db import make_session_factory
from tests.ingest.conftest import RecordingDispatcher
from tests.support.factories import make_cluster

FUZZ_CLUSTER = "fuzz"


class SigningMiddleware:
    """Signs each incoming request before the app sees it (test only)."""

    def __init__(
        self, app: Any, *, admin: tuple[str, SigningKey], agent: tuple[str, SigningKey]
    ) -> None:
        self.app = app
        self.admin = admin
        self.agent = agent

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        path = environ.get("PATH_INFO", "/")
        if path.startswith("/v1/clusters/"):
            # Aim every push at the fuzz cluster so the generated bodies get past the key check.
            parts = path.split("/")
            path = "/".join([*parts[:3], FUZZ_CLUSTER, *parts[4:]])
            environ["PATH_INFO"] = path
            environ.pop("RAW_URI", None)
            environ.pop("REQUEST_URI", None)
        if path.startswith("/v1/"):
            host = environ.get("HTTP_HOST", "localhost")
            query = environ.get("QUERY_STRING", "")
            raw_uri = (
                environ.get("RAW_URI")
                or environ.get("REQUEST_URI")
                or (path + (f"?{query}" if query else ""))
            )
            headers = [("Host", host)]
            if environ.get("CONTENT_TYPE"):
                headers.append(("Content-Type", environ["CONTENT_TYPE"]))
            components = ["@method", "@authority", "@path", "@query"]
            if environ.get("CONTENT_TYPE"):
                components += ["content-type", "content-digest"]
            key_id, key = self.agent if path.startswith("/v1/clusters/") else self.admin
            try:
                added = sign_request(
                    HttpRequest(
                        environ["REQUEST_METHOD"], f"http://{host}{raw_uri}", headers, body
                    ),
                    key_id=key_id,
                    sign=lambda b: key.sign(b).signature,
                    components=components,
                )
            except Exception:
                added = {}
            for name, value in added.items():
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        return self.app(environ, start_response)


@pytest.fixture
def fuzz_app(
    pg_engine: Engine, test_settings: Settings, redis_url: str, redis_key_prefix: str
) -> Iterator[Any]:
    sessions = make_session_factory(pg_engine)
    admin_key, agent_key = SigningKey.generate(), SigningKey.generate()
    suffix = redis_key_prefix.split(":")[1]
    admin_id, agent_id = f"fuzz-admin-{suffix}", f"fuzz-agent-{suffix}"
    with sessions() as session:
        if session.get(clusters.Cluster, FUZZ_CLUSTER) is None:
            make_cluster(session, FUZZ_CLUSTER)
        clusters.add_cluster_key(
            session, FUZZ_CLUSTER, key_id=agent_id, public_key=bytes(agent_key.verify_key)
        )
        admin_keys.create_admin_key(
            session, admin_id, role="admin", key_id=admin_id, public_key=bytes(admin_key.verify_key)
        )
        session.commit()
    client = redis.Redis.from_url(redis_url)
    settings_ = test_settings.replace(
        redis_url=redis_url, max_body_bytes=1024 * 1024, rate_limit_per_minute=100_000
    )
    app = create_app(
        settings_,
        store=sessions,
        dispatch=RecordingDispatcher(),
        redis_client=client,
        redis_prefix=redis_key_prefix,
    )
    app.wsgi_app = SigningMiddleware(
        app.wsgi_app,
        admin=(admin_id, admin_key),  # type: ignore
        agent=(agent_id, agent_key),
    )
    yield app
    client.close()


def test_no_input_produces_a_server_error(fuzz_app: Any) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def exercise(case: Any) -> None:
            response = case.call()
            case.validate_response(response, checks=[not_a_server_error])

        exercise()
