"""Tests of the monitor agent, against the Kubernetes API emulator and a signing receiver."""
