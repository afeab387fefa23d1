"""The cyclic garbage collector, paused while a cache hit's objects are built, on request.

A hit of 80 instances allocates thousands of container objects (elements, their
attribute dicts, tags, names, datasets, dicomtrolley objects), all of which
survive: they are the answer. Every 700 allocations start a collection that can
find nothing to free, and the survivors are promoted until a full collection
walks every object in the process. Paused for the build and resumed after, the
collector meets the answer once, after it is built; objects are collected as
usual from then on, and no cycle is created while it is paused. Measured with
``benchmarks/conversion.py`` (GC on, the last few answers held), that cuts the
mean time of a hit by a fifth to a third, mostly by running fewer full
collections; the median hit changes little.

It is opt-in (``CachedSearcher(..., pause_gc=True)``) because the collector is
process-wide: while any thread builds a hit, garbage cycles that other threads
make wait, and under a steady stream of overlapping hits the collector may stay
paused for long stretches.

Thread-safe: pauses nest across threads through one process-wide count under a
lock. The first entrant disables the collector, the last one out enables it
again only if it was enabled when the first came in. A program that disables or
enables the collector itself while a build is running may find that undone when
the last build ends. No clock.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0  # pauses in progress, in every thread
_resume = False  # whether the collector was enabled when the first of them began


@contextmanager
def paused() -> Iterator[None]:
    """Disable automatic collection for the block; the last block out restores it."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
