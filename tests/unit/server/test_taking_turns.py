"""A thread waiting for the memory backend's lock is let in, however long it takes to wake.

A large request works in chunks and, between two, pauses with the lock free while
another thread waits (``TakingTurns.wanted``). The waiter used to be seen once: the
first pause cleared the flag, and a waiter that did not wake within that pause (on
a busy host it often does not) waited, unseen, until the request ended (issue 11:
small lookups blocked 250-360 ms). Here the pause is a no-op, so the waiter can
miss every one; no timing is asserted: at every chunk boundary after which the
waiter still had not got in, the holder must have paused for it.
"""

from __future__ import annotations

import threading
import time

from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.backends.memory.chunks import Steps, TakingTurns

CHUNKS = 50


def _until(condition: object) -> None:
    deadline = time.monotonic() + 10
    while not condition():  # type: ignore[operator]  # a callable
        assert time.monotonic() < deadline, "the waiter never started waiting"
        time.sleep(0.001)


def test_the_holder_pauses_at_every_chunk_until_the_waiter_got_in():
    paused: list[int] = []
    after: list[bool] = []  # per chunk boundary: had the waiter got in, once the holder was back
    backend = MemoryBackend(pause=lambda: paused.append(len(after)))
    lock = backend._lock
    got = threading.Event()

    def waiter() -> None:
        with lock:
            got.set()

    def steps() -> Steps[None]:
        for _ in range(CHUNKS):
            yield

    def still() -> bool:
        after.append(got.is_set())  # under the lock: the waiter is not inside now
        return True

    lock.acquire()
    thread = threading.Thread(target=waiter)
    thread.start()
    _until(lambda: backend._turns.wanted)
    backend._chunked(steps(), still)
    lock.release()
    thread.join(timeout=10)
    assert got.is_set()
    missed = [i for i, inside in enumerate(after) if not inside and i not in paused]
    assert missed == [], f"boundaries with the waiter still out and no pause: {missed[:5]}..."
    assert paused  # it waited at the first boundary at least


def test_wanted_while_a_thread_waits_and_not_after():
    turns = TakingTurns()
    assert turns.acquire()
    assert not turns.wanted
    got = threading.Event()

    def waiter() -> None:
        with turns:
            got.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    _until(lambda: turns.wanted)
    assert turns.wanted  # reading it does not use it up
    turns.release()
    thread.join(timeout=10)
    assert got.is_set() and not turns.wanted
