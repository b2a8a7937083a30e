"""Test doubles that speak real protocols: the Kubernetes API emulator and its objects."""
