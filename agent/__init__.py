"""In-cluster agent: collects read-only manifests and telemetry and pushes them, signed."""
