"""The operator area's loader, shrunk: its SQL image index (`bench.operator.IMAGE_INDEX_SQL`)
holds exactly what the product's function computes for the same bodies, and the searches it
times answer on it as the generic evaluation does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bench import operator
from store.db import make_engine
from store.image_index import image_occurrences
from store.models import BodyImage, ManifestBody, ManifestVersion
from store.search import Period, run_search
from tests.support.services import ThrowawayDatabase

pytestmark = [pytest.mark.postgres]

OBJECTS = 400


@pytest.fixture(scope="module")
def loaded(postgres_server_url: str) -> Iterator[Any]:
    database = ThrowawayDatabase.create(postgres_server_url)
    operator._fill(database.url, objects=OBJECTS)
    engine = make_engine(database.url)
    yield engine
    engine.dispose()
    database.drop()


def test_the_sql_index_equals_the_product_function_on_every_body(loaded: Any) -> None:
    with Session(loaded) as session:
        stored = {
            (h, o, s, repr(v))
            for h, o, s, v in session.execute(
                select(BodyImage.content_hash, BodyImage.ord, BodyImage.shape, BodyImage.value)
            )
        }
        expected = {
            (h, o, s, repr(v))
            for h, body in session.execute(select(ManifestBody.content_hash, ManifestBody.body))
            for o, (s, v) in enumerate(image_occurrences(body, jsonb_order=True))
        }
        # 70% Deployments with two containers (i % 10 < 7); those with i % 10 < 3 (30% of the
        # objects) have two earlier bodies as well.
        assert len(expected) == 2 * (OBJECTS * 7 // 10) + 2 * 2 * (OBJECTS * 3 // 10)
        assert stored == expected
        # Several versions per object, spread over days.
        versions = session.scalar(select(func.count()).select_from(ManifestVersion))
        assert versions > OBJECTS * 1.3
        spread = session.execute(
            text("SELECT count(DISTINCT date_trunc('hour', superseded_at)) FROM manifest_versions")
        ).scalar_one()
        assert spread > 48


def _answer(result: Any) -> Any:
    return (
        result.truncated,
        [(m.cluster_id, m.ref, m.values, m.validity) for m in result.matches],
        [(v.value, v.occurrences, v.clusters) for v in result.values],
    )


def test_the_timed_searches_answer_as_the_generic_evaluation(loaded: Any) -> None:
    end = datetime.now(UTC) - timedelta(days=operator.HISTORY_DAYS_AGO)
    for path, distinct, period in (
        (operator.IMAGE_PATH, True, None),
        (operator.IMAGE_PATH, True, Period(end, end)),
        (operator.IMAGE_PATH, True, Period(end - timedelta(days=1), end)),
        ("$..image", False, Period(end - timedelta(days=1), end)),
    ):
        with Session(loaded) as session:
            indexed = run_search(
                session, path, distinct=distinct, limit=500, timeout_seconds=60, period=period
            )
        with operator.generic_evaluation(), Session(loaded) as session:
            generic = run_search(
                session, path, distinct=distinct, limit=500, timeout_seconds=60, period=period
            )
        assert indexed.values or indexed.matches
        assert _answer(indexed) == _answer(generic), (path, period)
