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
from dicomcache.server.pacing import EVERY, FIRST, RECENT, SLICE, Pace, Pacing, step
from tests.support.clock import FakeClock

STEP = SLICE / 2 / EVERY  # seconds of work a step: the Pace looks at its clock every half slice
LOOKS = FIRST / (EVERY * STEP)  # looks until FIRST has passed since the first look


class Busy:
    """A server that is busy or not, as the test says."""

    def __init__(self, busy: bool = True) -> None:
        self.busy = busy
        self.asked: list[float] = []

    def __call__(self, now: float) -> bool:
        self.asked.append(now)
        return self.busy


def work(pace: Pace, clock: FakeClock, steps: int) -> None:
    for _ in range(steps):
        clock.advance(STEP)
        pace()


def test_a_pace_pauses_every_slice_once_its_first_has_passed_while_the_server_is_busy():
    clock, sleeps = FakeClock(), []
    pace = Pace(Busy(), clock, sleeps.append)
    work(pace, clock, EVERY * round(LOOKS))  # the first look starts the count: FIRST to go
    assert sleeps == []  # most requests end within FIRST: never a pause
    work(pace, clock, EVERY * (2 + 20))  # FIRST reached, then 20 looks: 10 slices
    assert 10 <= len(sleeps) <= 12  # the clock's floats: the edges may fall either side
    assert pace.pauses == len(sleeps)
    assert set(sleeps) == {pacing.PAUSE}


def test_a_pace_does_not_pause_while_nothing_else_is_about():
    clock, sleeps = FakeClock(), []
    busy = Busy(busy=False)
    pace = Pace(busy, clock, sleeps.append)
    work(pace, clock, EVERY * 400)
    assert sleeps == []
    assert busy.asked  # it asked, a slice at a time
    assert len(busy.asked) <= 400 / 2 + 1
    busy.busy = True  # another call came in: from the next slice on, it pauses
    work(pace, clock, EVERY * 8)
    assert 3 <= len(sleeps) <= 4


def test_a_small_calls_steps_never_look_at_the_clock():
    """A hit makes tens of steps: they cost a subtraction each, no system call."""
    looks: list[float] = []

    def clock() -> float:
        looks.append(0.0)
        return 0.0

    pace = Pace(Busy(), clock, lambda _: None)
    for _ in range(EVERY - 1):
        pace()
    assert looks == []


def test_step_paces_the_current_call_and_nothing_outside_one():
    clock, sleeps = FakeClock(), []
    calls = Pacing(Busy(), clock, sleeps.append)
    clock.advance(FIRST)
    step()  # outside a call: nothing to pace
    with calls.call() as pace:
        for _ in range(EVERY):
            step()  # the first look
        clock.advance(FIRST)
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
