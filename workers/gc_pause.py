"""Pause Python's cyclic garbage collector around bulk work that creates no reference cycles.

A scan step decodes thousands of manifests into hundreds of thousands of dicts and lists. Each
allocation burst triggers collections that traverse every tracked object in the process, and
in a worker that is most of the run time; the objects a scan builds hold no cycles, so plain
reference counting frees them. The collector runs again as soon as the step ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block (restoring whatever state it was in)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
