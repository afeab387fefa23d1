"""A large request pauses a moment every slice of its work while other calls are about.

Python's forced thread switches left small calls 11-13 ms (p50) behind a request
busy in Python (issue 11, stall rows S1-S3); a pause every 0.2 ms of its work
brought them to the host's floor. These tests drive ``Pace`` with a fake clock and
a recording sleep: no timing is asserted, only when it pauses and for whom.
"""

from __future__ import annotations

import threading

from dicomcache.server import pacing
from dicomcache.server.api.handler import InFlight
from dicomcache.server.pacing import EVERY, FIRST, RECENT, SLICE, Pace, step
from tests.support.clock import FakeClock

STEP = SLICE / 4  # seconds a step takes, of wall time and, when working, of CPU time


class Busy:
    """A server that is busy or not, as the test says."""

    def __init__(self, busy: bool = True) -> None:
        self.busy = busy
        self.asked: list[float] = []

    def __call__(self, now: float) -> bool:
        self.asked.append(now)
        return self.busy


class Clocks:
    """Wall time and the thread's CPU time, both moved by the test."""

    def __init__(self) -> None:
        self.wall, self.work = FakeClock(), FakeClock(0.0)
        self.sleeps: list[float] = []

    def pace(self, busy: Busy) -> Pace:
        return Pace(busy, self.wall, self.sleeps.append, self.work)

    def steps(self, pace: Pace, count: int, working: bool = True, wall: float = STEP) -> None:
        for _ in range(count):
            self.wall.advance(wall)
            if working:
                self.work.advance(STEP)
            pace()


def become_large(clocks: Clocks, pace: Pace) -> None:
    """Steps until the request has worked FIRST (looked at every EVERY steps)."""
    clocks.steps(pace, EVERY * (round(FIRST / (EVERY * STEP)) + 2))


def test_a_small_call_never_pauses_however_long_it_waits_beside_others():
    """Under load a small hit's wall time passed FIRST: by wall time it paused too, and
    the hits' throughput at 16 in flight fell from 0.84x an echo's to 0.66x (row 4b)."""
    clocks = Clocks()
    pace = clocks.pace(Busy())
    clocks.steps(pace, EVERY * 100, working=False, wall=0.01)  # a second waiting, no work
    clocks.steps(pace, EVERY * 2)  # and a little work, well within FIRST
    assert clocks.sleeps == []


def test_a_large_request_pauses_every_slice_while_the_server_is_busy():
    clocks = Clocks()
    pace = clocks.pace(Busy())
    clocks.steps(pace, EVERY * round(FIRST / (EVERY * STEP)))  # the first look starts it
    assert clocks.sleeps == []  # most requests end within FIRST: never a pause
    become_large(clocks, pace)
    before = len(clocks.sleeps)
    assert before >= 1
    clocks.steps(pace, 4 * 10)  # 10 slices of wall time
    assert 9 <= len(clocks.sleeps) - before <= 11  # the clock's floats: edges either side
    assert pace.pauses == len(clocks.sleeps)
    assert set(clocks.sleeps) == {pacing.PAUSE}


def test_a_large_request_does_not_pause_while_nothing_else_is_about():
    clocks = Clocks()
    busy = Busy(busy=False)
    pace = clocks.pace(busy)
    become_large(clocks, pace)
    clocks.steps(pace, 400)
    assert clocks.sleeps == []
    assert busy.asked  # it asked, a slice at a time
    assert len(busy.asked) <= 400 / 4 + EVERY
    busy.busy = True  # another call came in: from the next slice on, it pauses
    clocks.steps(pace, 8)
    assert 1 <= len(clocks.sleeps) <= 3


def test_a_small_calls_steps_never_look_at_a_clock():
    """A hit makes tens of steps: they cost a subtraction each, no system call."""
    looks: list[float] = []

    def clock() -> float:
        looks.append(0.0)
        return 0.0

    pace = Pace(Busy(), clock, lambda _: None, clock)
    for _ in range(EVERY - 1):
        pace()
    assert looks == []


def test_step_paces_the_current_call_and_nothing_outside_one():
    clock, sleeps = FakeClock(), []
    clock.advance(FIRST)
    step()  # outside a call: nothing to pace
    with Pace(Busy(), clock, sleeps.append, clock) as pace:
        for _ in range(EVERY):
            step()  # the first look
        clock.advance(2 * FIRST)
        for _ in range(EVERY):
            step()
        other: list[int] = []
        thread = threading.Thread(target=lambda: (step(), other.append(1)))
        thread.start()  # another thread is another call's (here none's)
        thread.join()
        assert other == [1]
        assert pace.pauses == 1
    clock.advance(FIRST)
    step()
    assert len(sleeps) == 1


def test_the_server_is_busy_while_another_call_is_in_flight_or_has_just_begun():
    in_flight = InFlight()
    with in_flight:
        began = in_flight._began
        assert in_flight.busy(began)  # its own start, within RECENT
        later = began + 10 * RECENT
        assert not in_flight.busy(later)  # alone
        with in_flight:
            assert in_flight.busy(in_flight._began + 10 * RECENT)  # another in flight
        assert not in_flight.busy(later)
    assert not InFlight().busy(0.0)  # no call ever began
