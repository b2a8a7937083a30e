"""Helpers shared by the test suite (servers, databases, fixtures data)."""
