"""Alembic migrations of the k8s-monitor schema (run unchanged on PostgreSQL and SQLite)."""
