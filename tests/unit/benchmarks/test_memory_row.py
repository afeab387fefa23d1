"""Row 5a counts what each cached instance costs, not the write path's one-off working set."""

from __future__ import annotations

from benchmarks.rows.memory import per_instance

MIB = 2**20


def test_the_first_loads_one_off_growth_is_not_counted_per_instance() -> None:
    # 100,000 instances at 470 B each, twice; the first load also left 50 MiB of
    # allocator free space (the writes' working set), which the second reuses.
    start = 110 * MIB
    before = start + 100_000 * 470 + 50 * MIB
    after = before + 100_000 * 470
    per, once = per_instance(start, before, after, 100_000, 100_000)
    assert per == 470
    assert once == 50 * MIB


def test_without_a_one_off_part_both_loads_read_alike() -> None:
    per, once = per_instance(0, 600 * 2000, 600 * 4000, 2000, 2000)
    assert (per, once) == (600, 0)
