"""The in-cluster monitor agent: collects read-only manifests and telemetry, pushes them signed."""

__version__ = "0.1.0"
