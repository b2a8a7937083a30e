"""Security rules: pure functions over manifests, their registry and the scan engine."""
