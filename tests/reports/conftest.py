"""Reuse the pipeline fixtures: reports are delivered by the real pipeline in these tests."""

from tests.workers.conftest import make_pipeline, make_sqlite_pipeline, pipeline, rules_engine

__all__ = ["make_pipeline", "make_sqlite_pipeline", "pipeline", "rules_engine"]
