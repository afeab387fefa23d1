"""The stall rows' floor: the worst small call of a quiet stretch as long as the row's window."""

from __future__ import annotations

from benchmarks.reliability.stall import floor


def _calls(spikes: dict[float, float], seconds: float = 60.0) -> list[tuple[float, float]]:
    """A call every 10 ms taking 1 ms, but at the ``spikes`` (start: latency)."""
    calls = [(t / 100, 0.001) for t in range(int(seconds * 100))]
    return sorted(
        [(start, lat) for start, lat in calls if start not in spikes] + list(spikes.items())
    )


def test_a_window_as_long_as_the_quiet_time_is_compared_with_its_worst_call() -> None:
    calls = _calls({30.0: 0.040})
    got = floor(calls, 0.0, 60.0, 60.0)
    assert (got.worst, got.stretches, got.length) == (0.040, 1, 60.0)


def test_a_longer_window_than_the_quiet_time_is_compared_with_all_of_it() -> None:
    got = floor(_calls({30.0: 0.040}), 0.0, 60.0, 90.0)
    assert (got.worst, got.stretches, got.length) == (0.040, 1, 60.0)


def test_a_short_window_is_compared_with_the_median_of_its_lengths_worsts() -> None:
    # One rare spike in 60 s does not set the floor of a 3 s window; spikes in most
    # 3 s stretches do.
    assert floor(_calls({30.0: 0.040}), 0.0, 60.0, 3.0).worst == 0.001
    common = {3.0 * i + 1.0: 0.008 for i in range(15)}  # in 15 of the 20 stretches
    got = floor(_calls(common), 0.0, 60.0, 3.0)
    assert (got.worst, got.stretches) == (0.008, 20)


def test_the_median_of_an_even_count_is_the_lower_one() -> None:
    spikes = {1.0: 0.005, 31.0: 0.009}  # two stretches of 30 s: 5 and 9 ms
    assert floor(_calls(spikes), 0.0, 60.0, 30.0).worst == 0.005


def test_calls_outside_the_quiet_time_do_not_count() -> None:
    calls = _calls({5.0: 0.050, 55.0: 0.050})
    assert floor(calls, 10.0, 50.0, 40.0).worst == 0.001
