"""collector.paused: the garbage collector is off inside and as it was after, across threads."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from dicomcache.client.convert import collector

WAIT = 10.0  # seconds; only a broken test ever waits this long


@pytest.fixture
def gc_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


class PauseInThread:
    """A thread that enters ``collector.paused()`` and leaves when told to, step by step."""

    def __init__(self) -> None:
        self._entered = threading.Event()
        self._leave = threading.Event()
        self._left = threading.Event()
        self.enabled_inside: bool | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with collector.paused():
            self.enabled_inside = gc.isenabled()
            self._entered.set()
            self._leave.wait(WAIT)
        self._left.set()

    def enter(self) -> None:
        self._thread.start()
        assert self._entered.wait(WAIT), "the thread did not enter the pause"

    def leave(self) -> None:
        self._leave.set()
        assert self._left.wait(WAIT), "the thread did not leave the pause"
        self._thread.join(WAIT)


@pytest.mark.usefixtures("gc_enabled")
def test_paused_inside_and_enabled_after() -> None:
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():  # nested: the outer block resumes it
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("gc_enabled")
def test_enabled_again_after_an_error() -> None:
    with pytest.raises(KeyError), collector.paused():
        raise KeyError("boom")
    assert gc.isenabled()


@pytest.mark.usefixtures("gc_enabled")
def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    with collector.paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


@pytest.mark.usefixtures("gc_enabled")
@pytest.mark.parametrize("first_out", ["first_in", "second_in"])
def test_overlapping_pauses_in_two_threads_resume_when_the_last_leaves(first_out: str) -> None:
    threads = {"first_in": PauseInThread(), "second_in": PauseInThread()}
    threads["first_in"].enter()
    threads["second_in"].enter()  # finds the collector disabled by the first
    assert not gc.isenabled()
    last_out = "second_in" if first_out == "first_in" else "first_in"
    threads[first_out].leave()
    assert not gc.isenabled(), "resumed while another thread was still building"
    threads[last_out].leave()
    assert gc.isenabled(), "not resumed although it was enabled when the first came in"
    assert threads["first_in"].enabled_inside is False
    assert threads["second_in"].enabled_inside is False


@pytest.mark.usefixtures("gc_enabled")
def test_overlapping_pauses_keep_a_collector_that_was_disabled_disabled() -> None:
    gc.disable()
    first, second = PauseInThread(), PauseInThread()
    first.enter()
    second.enter()
    first.leave()
    second.leave()
    assert not gc.isenabled()


@pytest.mark.usefixtures("gc_enabled")
def test_a_pause_after_overlapping_ones_starts_afresh() -> None:
    first, second = PauseInThread(), PauseInThread()
    first.enter()
    second.enter()
    second.leave()
    first.leave()
    assert gc.isenabled()
    gc.disable()  # now the collector is off when the next pause begins
    with collector.paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
