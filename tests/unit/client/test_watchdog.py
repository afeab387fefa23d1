"""The watchdog cancels exactly the calls past their deadline, on a fake clock (no sleeps)."""

from __future__ import annotations

from dicomcache.client.watchdog import Watchdog
from tests.support.clock import FakeClock


class Call:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> bool:
        self.cancelled = True
        return True


def test_a_call_past_its_deadline_is_cancelled_and_marked():
    clock = FakeClock()
    dog = Watchdog(clock)
    call = Call()
    watch = dog.watch(call, 0.25)
    assert dog.expire(clock() + 0.2) == [] and not call.cancelled
    assert dog.expire(clock() + 0.25) == [watch]
    assert call.cancelled and watch.fired


def test_a_moved_deadline_replaces_the_first():
    clock = FakeClock()
    dog = Watchdog(clock)
    call = Call()
    watch = dog.watch(call, 0.25)
    watch.move(clock() + 2.0)
    assert dog.expire(clock() + 1.0) == [] and not call.cancelled
    assert dog.expire(clock() + 2.0) == [watch]


def test_a_stopped_call_is_never_cancelled():
    clock = FakeClock()
    dog = Watchdog(clock)
    call = Call()
    watch = dog.watch(call, 0.25)
    watch.stop()
    watch.move(clock() + 1.0)  # too late: the call is over
    assert dog.expire(clock() + 10.0) == []
    assert not call.cancelled and not watch.fired
