"""The cyclic garbage collector, paused while a cache hit's objects are built.

A hit of 80 instances allocates some 4,000 container objects (elements, their
attribute dicts, tags, names, datasets, dicomtrolley objects), all of which
survive: they are the answer. Each 700 allocations start a collection that can
find nothing to free, and every tenth promotes them and walks older objects
too; in a process that holds a few earlier answers, measured with
``benchmarks/conversion.py``, that costs more than building the objects. So the
collector is paused for the build, as Mercurial does while parsing, and resumed
after: the objects are collected as usual from then on, no cycle is created
while it is paused, and nothing else changes.

Thread-safe in the sense that matters: concurrent builds leave the collector
enabled if it was enabled before the first of them. A program that disables the
collector itself, from another thread, while a build is running, may find it
enabled again when the build ends. No clock.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """Disable automatic collection for the block, if it was enabled; restore it after."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
