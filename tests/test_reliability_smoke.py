"""The reliability suite still runs: each of its sections, tiny, produces its rows.

Like ``test_benchmarks_smoke``, nothing here checks a figure or a goal (the machine
is shared and the other sections measure what may not be fixed yet): only that
the code paths run against the real processes and give measured rows. Needs what
the suite needs: a real Orthanc, redis-server and atheris.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.reliability import __main__ as suite
from benchmarks.reliability import faults, hostile, stall
from benchmarks.report import Row

TINY_FAULTS = faults.Plan(
    baseline_s=0.3, hold_s=0.3, recovery_cap_s=1.0, after_s=0.1, faults=("F2", "F8")
)
TINY_HOSTILE = hostile.Plan(
    random_per_rpc=2, mutated_per_rpc=2, structured=True, heavy=False, fuzz_seconds=0
)


def _measured(rows: list[Row], keys: list[str]) -> None:
    assert [row.key for row in rows] == keys
    for row in rows:
        assert row.value is not None, f"{row.key}: {row.note}"
        assert row.figures


@pytest.mark.orthanc
@pytest.mark.redis
def test_a_server_fault_and_a_redis_fault_give_their_rows() -> None:
    rows = faults.run_plan(TINY_FAULTS)
    _measured(rows, ["F2a", "F2b", "F2c", "F8a", "F8b", "F8c"])


def test_hostile_input_gives_its_rows() -> None:
    _measured(hostile.measure_server(TINY_HOSTILE), ["H1", "H2", "H3", "H4", "H5", "H6"])


TINY_STALL = stall.Sizes(  # a study of about 5 MB: past the server's largest message
    study_series=3, series_instances=2000, query_studies=3000, namespace_objects=2000
)


def test_the_stall_rows_measure_what_clients_send() -> None:
    """The control row first; the stores go streamed, and both unary forms of the study
    are refused, as in a full run."""
    rows = stall.run_sizes(TINY_STALL, True, 0.3)
    _measured(rows, ["S0", "S1", "S2", "S3", "S4", "S5", "S6"])
    assert "control" in rows[0].measure and rows[0].target is None
    assert "StreamStoreStudy" in rows[1].measure and "StreamStoreQuery" in rows[3].measure
    codes = [row.figures["code"] for row in rows]
    assert codes == ["OK"] * 5 + ["RESOURCE_EXHAUSTED"] * 2


def test_a_short_atheris_run_counts_executions_and_finds_no_crash() -> None:
    # From the seeds on: each method's own requests, the hits among them (whose
    # handlers answer ready-made bytes, with no serializer) first.
    row = hostile.fuzz(seconds_budget=5, runs=300)
    assert row.value is not None, row.note
    assert row.figures["executions"] > 0
    assert row.value == 0, row.note


def test_the_command_prints_and_writes_every_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def load(name: str) -> object:
        if name == "soak":
            raise ImportError("not here yet")
        if name == "stall":
            return lambda quick: 1 / 0
        return lambda quick: [Row(key=f"{name}-row", measure=name, value=1.0)]

    monkeypatch.setattr(suite, "_load", load)
    output = tmp_path / "reliability.json"
    assert suite.main(["--quick", "--json", str(output)]) == 0
    rows = {row["key"]: row for row in json.loads(output.read_text())["rows"]}
    assert list(rows) == ["soak", "faults-row", "hostile-row", "stall"]
    assert rows["soak"]["status"] == rows["stall"]["status"] == "not run"
    assert "not here yet" in rows["soak"]["note"]
    assert "ZeroDivisionError" in rows["stall"]["note"]
    printed = capsys.readouterr().out
    assert "\nfaults-row " in printed and "commit " in printed
