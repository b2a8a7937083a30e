"""The ingest service (Flask): verifies signed pushes, stores them, serves the admin API."""
