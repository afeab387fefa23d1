"""The memory backend's bound held for the process's resident set (issue 11: RSS past
--max-memory while the accounted bytes stayed at it).

The resident set is read through a fake reader here: what makes a real one grow past
the accounting (the allocator's free space after minutes of churn) cannot be made
on demand. A real ``dicomcache serve`` under load: the reliability soak.
"""

from __future__ import annotations

import logging

import pytest

from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.backends.memory.resident import (
    FLOOR,
    GAIN,
    STEP,
    ResidentGuard,
    resident_bytes,
)
from tests.support.clock import FakeClock
from tests.unit.server.test_memory_eviction import cached, heavy

MIB = 2**20


class Resident:
    """A resident set the test sets."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __call__(self) -> int:
        return self.value


def room_for(studies: int) -> int:
    """The bytes that ``studies`` of the tests' studies take, as the backend accounts them."""
    probe = MemoryBackend()
    write(probe, 0, studies)
    return probe.stats("ns").total_bytes


def guarded(
    studies: int, base: int = 100 * MIB
) -> tuple[MemoryBackend, ResidentGuard, Resident, int]:
    """A backend with room for ``studies`` studies exactly, guarded; its resident set; its bound."""
    most = room_for(studies)
    backend = MemoryBackend(max_bytes=most, clock=FakeClock())
    resident = Resident(base)
    guard = ResidentGuard(backend, resident)
    guard.start()
    return backend, guard, resident, most


def write(backend: MemoryBackend, first: int, count: int) -> None:
    for i in range(first, first + count):
        backend.add_objects("ns", [heavy(f"1.{i}", 1, 2)], None)


def held(backend: MemoryBackend) -> int:
    return sum(cached(backend, f"1.{i}") for i in range(1000))


def test_growth_past_the_bound_makes_writes_evict_to_less() -> None:
    backend, guard, resident, most = guarded(studies=50)
    write(backend, 0, 50)
    assert held(backend) == 50
    resident.value += most + most // 10  # 10% over: the allocator's, not counted
    for _ in range(5):
        guard.check()
    assert guard.limit == most - 5 * int(most * STEP)  # a step a check, no more
    write(backend, 100, 1)  # the next write evicts to the lowered bound
    assert backend.stats("ns").total_bytes <= guard.limit
    assert held(backend) < 50
    assert backend.stats(None).max_bytes == most  # still reported as configured


def test_the_bound_steps_by_gain_times_what_is_over_when_that_is_less() -> None:
    _backend, guard, resident, most = guarded(studies=50)
    resident.value += most + 1000
    guard.check()
    assert guard.limit == most - GAIN * 1000


def test_the_bound_never_goes_below_its_floor_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _backend, guard, resident, most = guarded(studies=50)
    resident.value += 3 * most  # growth that is not the cache's
    with caplog.at_level(logging.WARNING, logger="dicomcache"):
        for _ in range(int(1 / STEP) + 10):
            guard.check()
    assert guard.limit == int(most * FLOOR)
    warnings = [r for r in caplog.records if "floor" in r.getMessage()]
    assert len(warnings) == 1


def test_the_bound_comes_back_once_the_resident_set_is_under_it() -> None:
    backend, guard, resident, most = guarded(studies=50)
    resident.value += most + most // 5
    for _ in range(4):
        guard.check()
    lowered = guard.limit
    assert lowered < most
    resident.value -= most // 2  # the allocator gave pages back
    guard.check()
    assert guard.limit == lowered + int(most * STEP)
    for _ in range(int(1 / STEP) + 5):
        guard.check()
    assert guard.limit == most
    write(backend, 0, 50)
    assert held(backend) == 50


def test_within_the_bound_nothing_moves() -> None:
    _backend, guard, resident, most = guarded(studies=50)
    resident.value += most  # exactly at the bound
    guard.check()
    assert guard.limit == most


def test_an_unreadable_resident_set_moves_nothing() -> None:
    backend = MemoryBackend(max_bytes=10 * MIB)
    readings: list[int | None] = [None, None]
    guard = ResidentGuard(backend, lambda: readings.pop())
    guard.start()
    guard.check()
    assert guard.limit == 10 * MIB


def test_a_backend_without_a_bound_cannot_be_guarded() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        ResidentGuard(MemoryBackend(), lambda: 0)


def test_this_process_resident_set_is_read() -> None:
    found = resident_bytes()
    assert found is not None and found > MIB


def test_over_but_not_growing_moves_nothing_more() -> None:
    # Evicting frees space inside the heaps, which the allocator keeps: the resident
    # set stays where it was, and lowering the bound further would only empty the cache.
    _backend, guard, resident, most = guarded(studies=50)
    resident.value += most + most // 200
    guard.check()
    lowered = guard.limit
    assert lowered == most - GAIN * (most // 200)
    for _ in range(20):
        guard.check()
    assert guard.limit == lowered
    resident.value += most // 200  # grows again: answered again, for that much
    guard.check()
    assert guard.limit == lowered - GAIN * (most // 200)


def test_just_under_the_bound_the_lowered_bound_stays() -> None:
    _backend, guard, resident, most = guarded(studies=50)
    resident.value += most + most // 50
    guard.check()
    lowered = guard.limit
    resident.value -= most // 25  # 2% under: within the margin
    for _ in range(5):
        guard.check()
    assert guard.limit == lowered


def test_once_full_the_room_is_the_growth_it_took_to_fill() -> None:
    # A full cache replaces what it holds: what the process grows by after that is
    # the allocator's, and is answered though still under max_bytes.
    backend, guard, resident, most = guarded(studies=50)
    write(backend, 0, 50)
    resident.value += most * 8 // 10
    guard.check()  # not full yet: the room is max_bytes
    assert guard.limit == most
    write(backend, 50, 1)  # evicts for room: full
    assert backend.filled
    guard.check()
    assert guard.limit == most  # the room is what filling took: nothing over yet
    resident.value += most // 200
    guard.check()
    assert guard.limit == most - GAIN * (most // 200)


def test_the_room_once_full_is_at_least_the_floor() -> None:
    backend, guard, resident, most = guarded(studies=50)
    write(backend, 0, 51)  # full at once, the resident set barely grown
    resident.value += most // 10
    guard.check()
    assert guard.limit == most
    resident.value = 100 * MIB + int(most * FLOOR) + most // 200  # now past half of max_bytes
    guard.check()
    assert guard.limit == most - GAIN * (most // 200)
