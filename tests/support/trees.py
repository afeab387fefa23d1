"""A comparable summary of a dicomtrolley study tree, for round-trip tests."""

from __future__ import annotations

from typing import Any

from dicomtrolley.core import Study


def tree_summary(study: Study) -> list[Any]:
    """Level, uid and ``to_json_dict()`` of every object, in tree order.

    Asserts on the way that every parent link points at the object that holds
    the child, as dicomtrolley builds them.
    """
    summary: list[Any] = [("study", study.uid, study.data.to_json_dict())]
    for series in study.series:
        assert series.parent is study, f"series {series.uid} is not linked to its study"
        summary.append(("series", series.uid, series.data.to_json_dict()))
        for instance in series.instances:
            assert instance.parent is series, f"instance {instance.uid} is not linked"
            summary.append(("instance", instance.uid, instance.data.to_json_dict()))
    return summary
