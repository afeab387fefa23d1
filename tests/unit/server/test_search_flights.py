"""Single flight: one call per key at a time, its result or its error to every waiter."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from dicomcache.server.search.flights import Flights, WaitTimeout


def until(condition: Callable[[], bool]) -> None:
    """Wait (a bounded while) for ``condition``: never a timing assertion."""
    pause = threading.Event()
    for _ in range(10_000):
        if condition():
            return
        pause.wait(0.001)
    raise AssertionError("the condition never held")


def held(
    started: threading.Event, release: threading.Event, outcome: object
) -> Callable[[], object]:
    calls: list[int] = []

    def call() -> object:
        calls.append(1)
        started.set()
        release.wait(10)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    call.calls = calls  # type: ignore[attr-defined]  # the test reads how often it ran
    return call


def test_concurrent_callers_of_one_key_share_one_call() -> None:
    flights = Flights()
    started, release = threading.Event(), threading.Event()
    call = held(started, release, "answer")
    with ThreadPoolExecutor(100) as pool:
        leader = pool.submit(flights.run, "k", call, 10)
        started.wait(10)
        waiters = [pool.submit(flights.run, "k", call, 10) for _ in range(99)]
        until(lambda: flights.waiting("k") == 99)
        release.set()
        assert leader.result() == ("answer", True)
        assert [w.result() for w in waiters] == [("answer", False)] * 99
    assert call.calls == [1]  # type: ignore[attr-defined]
    assert len(flights) == 0 and flights.waiting("k") == 0


def test_the_leaders_error_goes_to_every_waiter() -> None:
    flights = Flights()
    started, release = threading.Event(), threading.Event()
    call = held(started, release, RuntimeError("archive down"))
    with ThreadPoolExecutor(4) as pool:
        leader = pool.submit(flights.run, "k", call, 10)
        started.wait(10)
        waiters = [pool.submit(flights.run, "k", call, 10) for _ in range(3)]
        until(lambda: flights.waiting("k") == 3)
        release.set()
        for future in (leader, *waiters):
            with pytest.raises(RuntimeError, match="archive down"):
                future.result()
    assert call.calls == [1]  # type: ignore[attr-defined]


def test_a_waiter_waits_at_most_its_own_timeout() -> None:
    flights = Flights()
    started, release = threading.Event(), threading.Event()
    with ThreadPoolExecutor(1) as pool:
        leader = pool.submit(flights.run, "k", held(started, release, "late"), 10)
        started.wait(10)
        with pytest.raises(WaitTimeout):
            flights.run("k", lambda: "never run", 0.01)
        release.set()
        assert leader.result() == ("late", True)


def test_a_key_is_free_again_once_its_call_is_done() -> None:
    flights = Flights()
    assert flights.run("k", lambda: 1, 1) == (1, True)
    assert flights.run("k", lambda: 2, 1) == (2, True)


def test_other_keys_do_not_wait() -> None:
    flights = Flights()
    started, release = threading.Event(), threading.Event()
    with ThreadPoolExecutor(1) as pool:
        leader = pool.submit(flights.run, "a", held(started, release, "a"), 10)
        started.wait(10)
        assert flights.run("b", lambda: "b", 0.01) == ("b", True)
        release.set()
        assert leader.result() == ("a", True)
