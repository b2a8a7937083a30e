"""The floors the bench code measures beside its figures, on tiny inputs (no timing asserted)."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, text

from agent.normalise import normalise
from bench import ingest, scan
from bench.corpus import generate


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return [normalise(o) for o in generate(600)]


def test_parse_floor_counts_every_body(objects: list[dict]) -> None:
    rates = scan.parse_floor_rate([orjson.dumps(o) for o in objects], runs=2)
    assert len(rates) == 2
    assert all(rate > 0 for rate in rates)


def test_offline_corpus_is_deployments_and_services_in_equal_numbers(
    objects: list[dict], tmp_path: Path
) -> None:
    import yaml  # noqa: PLC0415

    count = scan.offline_corpus(objects, tmp_path)
    parsed = [
        doc
        for path in sorted(tmp_path.glob("*.yaml"))
        for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    ]
    kinds = [doc["kind"] for doc in parsed]
    assert len(parsed) == count > 0
    assert kinds.count("Deployment") == kinds.count("Service") == count // 2


def test_whole_process_rows_carry_their_floor_and_say_when_checkov_is_missing(
    objects: list[dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan, "CHECKOV_VENV", tmp_path / "no-checkov")
    ours, checkov = scan.whole_process_figures(objects, runs=1, install_checkov=False)
    assert ours.samples[0] > 0
    assert ours.floor is not None
    assert ours.floor > 0
    assert "libyaml" in ours.floor_of
    assert not checkov.measured
    assert "not installed" in checkov.note


def test_verification_rate_comes_with_the_bare_ed25519_floor() -> None:
    rate, floor = ingest.measure_verification_rate(count=50)
    assert rate > 0
    assert floor > 0


@pytest.mark.postgres
def test_document_floor_stores_one_row_in_a_table_like_snapshot_documents(
    pg_engine: Engine,
) -> None:
    assert ingest.document_floor_seconds(pg_engine, gzip.compress(b'{"objects": []}')) > 0
    with pg_engine.connect() as connection:  # the table was dropped, nothing else written
        tables = connection.execute(
            text("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'bench_floor_documents_%'")
        ).scalar()
        assert tables == 0
        assert connection.execute(text("SELECT count(*) FROM snapshot_documents")).scalar() == 0
