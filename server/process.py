"""The ``dicomcache serve`` process's own settings: its garbage collector and its allocator.

Library code changes nothing process-wide; ``serve`` owns its process and calls
``tune()`` once, before the server starts. Both settings answer what a heap of
hundreds of thousands of cached objects does to a Python process (issue 11):

* **Collector.** A full collection walks every object the collector tracks: over a
  cache of about 700,000 nodes each took 140-380 ms, during which no other call
  ran, and found nothing to free (25 of them in the stall workload collected 0
  objects; the memory backend cuts each node's parent link when it drops it, so
  reference counting frees what leaves the cache). So after every collection of
  the middle generation its survivors are frozen (``gc.freeze``), and later
  collections walk only younger objects. What that gives up: a reference cycle
  that turns to garbage after it was frozen stays until the hourly full
  collection (``FULL_EVERY``), which also logs how many objects it found, so a
  leak of cycles shows in the log.
* **Allocator.** glibc's malloc keeps the pages of freed blocks inside its heaps
  when a live block sits above them; under a cache's churn of blocks of a few
  hundred bytes the free part of the heap grew by about 3 MiB a minute while the
  live part stayed flat. ``malloc_trim(0)`` every ``TRIM_EVERY`` seconds gives the
  pages that hold no live block back to the system.

Call ``tune`` once per process (it starts one daemon thread). Clock: ``time.monotonic``.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import threading
import time
from typing import Any

log = logging.getLogger("dicomcache")

FULL_EVERY = 3600.0  # seconds between full collections of the frozen heap
TRIM_EVERY = 2.0  # seconds between malloc_trim calls
_MIDDLE = 1  # the generation after whose collections the survivors are frozen


def tune() -> threading.Thread:
    """Freeze the long-lived heap after collections, trim the allocator; returns the thread."""
    gc.callbacks.append(_freeze_survivors)
    thread = threading.Thread(
        target=_housekeep, args=(_malloc_trim(),), name="dicomcache-process", daemon=True
    )
    thread.start()
    return thread


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    """A gc callback: once the middle generation was collected, freeze what survived."""
    if phase == "stop" and info["generation"] >= _MIDDLE:
        gc.freeze()


def full_collection() -> int:
    """Collect every generation, the frozen objects too, then freeze again; returns the count."""
    started = time.monotonic()
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    level = logging.INFO if found else logging.DEBUG
    log.log(level, "full collection: %d objects freed in %.0f ms", found, _ms(started))
    return found


def _housekeep(trim: Any) -> None:
    """Trim every TRIM_EVERY seconds and collect fully every FULL_EVERY, for ever."""
    last_full = time.monotonic()
    while True:
        time.sleep(TRIM_EVERY)
        if trim is not None:
            trim(0)  # ctypes lets go of the interpreter lock for the call
        if time.monotonic() - last_full >= FULL_EVERY:
            full_collection()
            last_full = time.monotonic()


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None on a C library without it (musl, macOS)."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # the process's own symbols
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
    return trim


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1e3
