"""The benchmark suite still runs: its quick mode, end to end, writes every row.

Timings and ratios are never checked (the machine is shared and noisy); only that
each row was measured and carries its figures. Needs what the benchmarks need: a
real Orthanc and a real redis-server, like the end-to-end tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.run import ROW_KEYS

REPO = Path(__file__).resolve().parent.parent


def test_quick_run_writes_every_row(tmp_path: Path) -> None:
    output = tmp_path / "quick.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    document = json.loads(output.read_text())
    rows = {row["key"]: row for row in document["rows"]}
    assert list(rows) == ROW_KEYS
    not_run = {key: row["note"] for key, row in rows.items() if row["status"] == "not run"}
    assert not not_run, f"{not_run}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    for row in rows.values():
        assert isinstance(row["value"], float | int)
        assert row["figures"]
    assert {"cores", "python", "grpcio"} <= document["machine"].keys()
    for key in rows:
        assert f"\n{key} " in run.stdout  # the printed table has the row too
