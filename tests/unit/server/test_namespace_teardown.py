"""A dropped namespace's nodes come free one at a time, never in one long deallocation."""

from __future__ import annotations

import gc
from typing import Any

from dicomcache.server.backends.memory import backend as backend_module
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.model import Level
from tests.support.builders import make_study


def test_each_queued_object_is_let_go_as_it_leaves_the_queue(monkeypatch: Any) -> None:
    # Issue 11, stall row S4: the teardown kept every queued node in one list until it
    # returned, so 400,000 of them were freed at once, holding the interpreter lock
    # 26-35 ms. Each must have no list holding it once it is out of the queue.
    backend = MemoryBackend()
    for i in range(3):
        assert backend.store_study("ns", make_study(f"1.{i}", 2, 3), Level.INSTANCE, 60.0)
    held: list[bool] = []
    real = backend_module.unqueue

    def watched(item: Any) -> None:
        real(item)
        held.append(any(type(r) is list for r in gc.get_referrers(item)))

    monkeypatch.setattr(backend_module, "unqueue", watched)
    assert backend.invalidate("ns", None) == 3 * (1 + 2 + 2 * 3)
    assert held and not any(held)
