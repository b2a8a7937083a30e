"""Errors the store raises; callers turn them into HTTP answers or task outcomes."""


class StoreError(Exception):
    """Base class of store errors."""


class ClusterNotFound(StoreError):
    """No cluster with that id."""


class ClusterExists(StoreError):
    """A cluster with that id is already registered."""


class KeyExists(StoreError):
    """A key with that key id is already registered."""


class KeyNotFound(StoreError):
    """No key with that key id."""


class UnknownBaseSnapshot(StoreError):
    """A delta names a base digest that is not the cluster's latest stored state."""


class InvalidSnapshot(StoreError):
    """A snapshot's content is inconsistent (duplicate objects, digest that does not match)."""
