"""celery-beat's schedule as plain data: fleet scans, purge, report delivery, sweep."""
