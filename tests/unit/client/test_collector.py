"""collector.paused: the garbage collector is off inside and as it was after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from dicomcache.client.convert import collector


@pytest.fixture
def gc_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


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
