"""Celery application and tasks: snapshot processing, sharded scans, purge, delivery."""
