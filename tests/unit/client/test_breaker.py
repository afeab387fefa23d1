"""The circuit breaker, with a fake clock."""

from __future__ import annotations

import logging

from dicomcache.client.breaker import Breaker, State
from tests.support.clock import FakeClock


def test_opens_after_threshold_failures_in_a_row():
    breaker = Breaker(threshold=3, backoff=10, clock=FakeClock())
    for _ in range(2):
        assert breaker.allow()
        breaker.failed()
    assert breaker.state is State.CLOSED
    breaker.succeeded()  # a success resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.failed()
    assert breaker.state is State.OPEN
    assert not breaker.allow()


def test_one_trial_after_the_backoff_then_closed_on_success():
    clock = FakeClock()
    breaker = Breaker(threshold=1, backoff=10, clock=clock)
    breaker.failed()
    clock.advance(9.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()
    assert breaker.state is State.HALF_OPEN
    assert not breaker.allow(), "only one trial call at a time"
    breaker.succeeded()
    assert breaker.state is State.CLOSED
    assert breaker.allow()


def test_failed_trial_opens_for_another_backoff():
    clock = FakeClock()
    breaker = Breaker(threshold=1, backoff=10, clock=clock)
    breaker.failed()
    clock.advance(10)
    assert breaker.allow()
    breaker.failed()
    assert breaker.state is State.OPEN
    clock.advance(5)
    assert not breaker.allow()
    clock.advance(5)
    assert breaker.allow()


def test_logs_once_per_change_of_state_not_per_call(caplog):
    caplog.set_level(logging.DEBUG, logger="dicomcache.client.breaker")
    clock = FakeClock()
    breaker = Breaker(threshold=2, backoff=10, clock=clock)
    for _ in range(50):
        if breaker.allow():
            breaker.failed()
    for _ in range(3):  # trials that fail keep it open without logging again
        clock.advance(10)
        assert breaker.allow()
        breaker.failed()
    clock.advance(10)
    assert breaker.allow()
    breaker.succeeded()
    for _ in range(50):
        assert breaker.allow()
        breaker.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "going to the upstream only" in messages[0] and "back" in messages[1]


def test_an_inconclusive_call_moves_nothing():
    clock = FakeClock()
    breaker = Breaker(threshold=3, backoff=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failed()
    for _ in range(10):  # refused requests: neither failures nor successes
        assert breaker.allow()
        breaker.inconclusive()
    assert breaker.state is State.CLOSED
    breaker.failed()  # the two failures still counted
    assert breaker.state is State.OPEN
    breaker.inconclusive()
    assert breaker.state is State.OPEN and not breaker.allow()


def test_an_inconclusive_trial_hands_its_turn_back():
    clock = FakeClock()
    breaker = Breaker(threshold=1, backoff=10, clock=clock)
    breaker.failed()
    clock.advance(10)
    assert breaker.allow()
    breaker.inconclusive()
    assert breaker.allow(), "the next call is the trial, without another back-off"
    assert breaker.state is State.HALF_OPEN
    breaker.succeeded()
    assert breaker.state is State.CLOSED


def test_a_refusal_opens_at_once_for_its_own_backoff_and_logs_once(caplog):
    clock = FakeClock()
    breaker = Breaker(threshold=3, backoff=10, clock=clock, name="cache")
    with caplog.at_level(logging.INFO):
        breaker.refused(60, "denied the read right")
        assert breaker.state is State.OPEN
        clock.advance(59)
        assert not breaker.allow(), "a refusal waits its own back-off, not the failures' 10 s"
        clock.advance(1)
        assert breaker.allow()
        breaker.refused(60, "denied the read right")  # the trial: refused again, silently
        clock.advance(60)
        assert breaker.allow()
        breaker.refused(60, "refused the credentials")  # another cause: news
        clock.advance(60)
        assert breaker.allow()
        breaker.succeeded()
    assert [r.getMessage() for r in caplog.records] == [
        "cache denied the read right: going to the upstream only, retrying in 60s",
        "cache refused the credentials: going to the upstream only, retrying in 60s",
        "cache is back: using it again",
    ]


def test_after_a_refusal_failures_back_off_as_before():
    clock = FakeClock()
    breaker = Breaker(threshold=1, backoff=10, clock=clock)
    breaker.refused(60, "refused")
    clock.advance(60)
    assert breaker.allow()
    breaker.failed()
    clock.advance(10)
    assert breaker.allow()
