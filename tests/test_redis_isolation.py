"""The suite's Redis use stays in its own database number and its own key prefix."""

from __future__ import annotations

import redis

from tests.conftest import TEST_REDIS_DB


def test_redis_fixture_uses_its_own_database(redis_url: str, redis_key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.connection_pool.connection_kwargs["db"] == TEST_REDIS_DB
    client.set(f"{redis_key_prefix}probe", "1", ex=60)
    assert client.get(f"{redis_key_prefix}probe") == b"1"
    client.close()
