"""Shared vocabulary of k8s-monitor: wire schema, task names, severities, hashing (stdlib only)."""
