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
* **Allocator.** glibc's malloc keeps freed blocks inside its heaps for reuse, one
  heap per arena, and gives a thread an arena of its own (up to 8 per core): the
  cache's blocks of a few hundred bytes, written by 16 serving threads, churned
  holes into many heaps that no other thread could fill. Soak at 64 MiB: free
  space inside the heaps 15-19 MiB and rising about 3 MiB a minute while the live
  part stayed flat. So the process uses ``ARENAS`` arenas (free space then
  5-6 MiB), and a fixed mmap threshold (glibc otherwise raises it to the largest
  block freed, and a message's buffer of some MiB then lands in a heap and leaves a
  hole). A periodic ``malloc_trim`` was tried and left out: it freed little more
  and held an arena's lock up to 70 ms over a heap of 1.5 GB; at the soak's 58 MiB
  of heaps, one every 10 s took 0.5-14 ms and gave back 1-6 MiB that the next
  10 s touched again (RSS at the end 179 MiB with and without it).
  What the heaps' free space does, read every 10 s in soaks (``mallinfo2``,
  ``malloc_info``, ``sys._debugmallocstats``, tracemalloc): it grows while the
  cache first fills and begins to evict (4-6 to 8-10 MiB). Over the last half, in
  soaks of 6,500-8,900 operations it did not (7.1 -> 6.4, 5.5 -> 5.0, 8.0 -> 8.4
  MiB; heaps' size 55.2 -> 56.0, 51.8 -> 51.8, 58.5 -> 58.5 MiB; slopes 0.00-0.03x);
  in two of 12,700 and 14,800 it did (7.5 -> 10.1 and 7.9 -> 10.1 MiB, heaps 57.7
  -> 60.8 and 57.1 -> 60.7 MiB: nearly all the RSS gained; slopes 0.09x, 0.08x),
  while Python's live heap stays flat (tracemalloc 121.1 -> 120.7 MB; pymalloc's
  arenas 78 -> 79 MiB). The heaps' long-lived blocks are mostly the cache's
  serialized attributes (21.5 MiB in blocks of 570-1,400 bytes, too large for
  pymalloc); the free space at a soak's end by size: 2.0 MiB below 4 KiB, 1.2 at
  4-32 KiB, 1.4 at 32-128 KiB, 1.4 above. Two remedies, measured, did not
  help: a 32 KiB mmap threshold (zlib's 64 KiB deflate
  windows and the kept encodings of tens of KiB in mappings of their own) moved
  5 MiB from the heaps to mappings and left RSS as it was (178 MiB), so the
  threshold stays glibc's starting 128 KiB; the trim above. SIGUSR1 logs the heaps
  (``heaps``), so a soak can say where its RSS went.
  jemalloc (Debian's libjemalloc2 5.3.0, preloaded) was measured too and left out: it
  fragments under the same churn. Two soaks: its defaults, 17,500 operations, RSS 1.44x
  the limit, slope 0.11x; ``narenas:2,background_thread:true,dirty_decay_ms:1000,
  muzzy_decay_ms:0``, 16,700 operations, 1.34x and 0.10x, its resident pages 77.4 ->
  79.8 MiB over the last half with the allocated bytes flat (-0.4) and the rest 13.9 ->
  16.7 MiB (glibc: 1.11-1.23x, 0.08-0.09x at 12,700-14,800; in the same hour as these,
  10,500 operations, 1.14x and 0.04x). Under a preloaded jemalloc
  ``heaps`` reads jemalloc's statistics (``malloc=jemalloc`` in the line), since glibc's
  heaps are then empty. Whether the growth stops: a 420 s soak of 31,500 operations
  grew in spells (per minute +2.5, +0.6, 0.0, +2.3, +2.5, +0.5, +1.3 MiB) and ended
  at 1.25x and a last-half slope of +1.14 MiB/min (0.13x), the heaps 59.9 -> 64.2 MiB
  with 3.2 of it in use; the memory backend driven alone in one thread, without gRPC
  (the soak's studies and mix of stores, lookups, AddObjects and invalidations,
  against a 64 MiB limit), grew 145.5 -> 148.6 MiB RSS over its first 24,000
  operations and 148.6 -> 148.9 over the next 48,000 (heaps 45.9 -> 45.7 MiB): there
  it stops; what keeps the served soak growing lies in what the backend alone lacks
  (the threads, gRPC's buffers, the hits' readings and encodings, query stores).
  Since the growth does not stop by itself, ``serve`` holds the cache's bound for the
  resident set (``backends.memory.resident``): soaks then end flat at 1.02-1.04x.
  One arena against two, soaks by turns: RSS 1.14x against 1.19-1.20x without the
  guard, and with it 53.8-54.9 MiB held against 51.9-52.6 for the same resident set;
  15,500-20,000 operations against 13,800-18,500 (no cost seen). So one arena.

Call ``tune`` once per process (it starts one daemon thread). Clock: ``time.monotonic``.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

log = logging.getLogger("dicomcache")

FULL_EVERY = 3600.0  # seconds between full collections of the frozen heap
ARENAS = 1  # malloc arenas: the interpreter lock serialises most allocations anyway
MMAP_THRESHOLD = 128 * 1024  # blocks this large get their own mapping (glibc's default start)
_M_MMAP_THRESHOLD = -3  # mallopt's parameters, from glibc's malloc.h
_M_ARENA_MAX = -8
_MIDDLE = 1  # the generation after whose collections the survivors are frozen


def tune() -> threading.Thread:
    """Freeze the long-lived heap after collections; fewer malloc arenas, a fixed mmap threshold.

    Call before the server starts its threads (the arena limit binds new threads).
    Returns the daemon thread that runs the hourly full collection.
    """
    gc.callbacks.append(_freeze_survivors)
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, ARENAS)
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        signal.signal(signal.SIGUSR1, _log_heaps)
    thread = threading.Thread(target=_housekeep, name="dicomcache-process", daemon=True)
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


def _housekeep() -> None:
    """Collect fully every FULL_EVERY seconds, for ever."""
    while True:
        time.sleep(FULL_EVERY)
        full_collection()


class _Mallinfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (malloc.h, glibc 2.33 and later)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@dataclass(frozen=True)
class Heaps:
    """glibc's heaps at one moment, in bytes: what RSS holds that the cache's accounting does not.

    ``system``: the heaps' size (every arena); ``in_use`` and ``free``: their blocks held
    and free (free space is fragmentation's measure); ``mmapped``: blocks in mappings of
    their own. Python's small objects live in pymalloc's arenas, outside these heaps.
    ``malloc``: whose heaps ("glibc" or "jemalloc": see ``_jemalloc_heaps``).
    """

    system: int
    in_use: int
    free: int
    mmapped: int
    malloc: str = "glibc"


def heaps() -> Heaps | None:
    """The allocator's heaps now (jemalloc's or glibc's), or None on another C library.

    ``mallinfo2`` holds each arena's lock while it counts that arena's free blocks
    (1 ms over 7,000 of them, about what a 64 MiB cache's heaps hold): so only on demand.
    """
    je = _jemalloc()
    if je is not None:
        return _jemalloc_heaps(je)
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    return Heaps(info.arena, info.uordblks, info.fordblks, info.hblkhd)


def _log_heaps(_signum: int, _frame: FrameType | None) -> None:
    """SIGUSR1: log the heaps (the soak reads them at its half and at its end)."""
    now = heaps()
    if now is not None:
        log.info(
            "allocator: heaps system=%d in_use=%d free=%d mmapped=%d malloc=%s",
            now.system,
            now.in_use,
            now.free,
            now.mmapped,
            now.malloc,
        )


def _glibc() -> Any:
    """glibc's ``mallopt``, or None on another C library (musl, macOS)."""
    libc = ctypes.CDLL(None)  # the process's own symbols
    if not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def _jemalloc() -> Any:
    """jemalloc's ``mallctl``, when jemalloc is this process's malloc (preloaded), or None."""
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallctl"):
        return None
    libc.mallctl.argtypes = [
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.c_void_p,
        ctypes.c_size_t,
    ]
    libc.mallctl.restype = ctypes.c_int
    return libc


def _jemalloc_heaps(je: Any) -> Heaps | None:
    """jemalloc's figures as ``Heaps``: resident pages as the heaps, allocated as in use.

    ``free`` is what is resident and not allocated (its dirty pages not yet purged and
    the holes in its slabs); ``mmapped`` is 0: jemalloc's large blocks are inside its
    resident pages. None if jemalloc was built without statistics.
    """
    epoch = ctypes.c_uint64(1)
    size = ctypes.c_size_t(ctypes.sizeof(epoch))
    # Stats are a snapshot taken when the epoch is written.
    je.mallctl(b"epoch", ctypes.byref(epoch), ctypes.byref(size), ctypes.byref(epoch), size)
    read: dict[str, int] = {}
    for name in ("stats.allocated", "stats.resident"):
        value = ctypes.c_size_t(0)
        length = ctypes.c_size_t(ctypes.sizeof(value))
        if je.mallctl(name.encode(), ctypes.byref(value), ctypes.byref(length), None, 0):
            return None
        read[name] = value.value
    resident, allocated = read["stats.resident"], read["stats.allocated"]
    return Heaps(resident, allocated, max(resident - allocated, 0), 0, "jemalloc")


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1e3
