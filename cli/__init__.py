"""The `k8smon` command: the composition root that wires settings, store, ingest and workers."""
