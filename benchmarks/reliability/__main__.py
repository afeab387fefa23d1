"""``python -m benchmarks.reliability``: run the sections, print one table, write the JSON.

A section is a module of this package with ``run(quick: bool) -> list[Row]``. One
that cannot be imported or raises gives a "not run" row with the reason, so the
suite runs whatever has landed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from .. import machine
from ..report import Row, table, write_json

SECTIONS = {
    "soak": "memory under a long mixed load, against --max-memory",
    "faults": "CachedSearcher through process faults",
    "hostile": "hostile input to every RPC",
    "stall": "one large request against concurrent small ones",
}
DEFAULT_JSON = Path(__file__).resolve().parent.parent / "results" / "reliability.json"
REPO = Path(__file__).resolve().parents[2]


def _not_run(name: str, reason: str) -> list[Row]:
    return [Row(key=name, measure=SECTIONS[name], note=f"not run: {reason}")]


def _load(name: str) -> Callable[[bool], list[Row]]:
    module = importlib.import_module(f"{__package__}.{name}")
    run: Callable[[bool], list[Row]] = module.run
    return run


def run_sections(names: list[str], quick: bool) -> tuple[list[Row], dict[str, float]]:
    """Every named section's rows, and the seconds each took."""
    rows: list[Row] = []
    took: dict[str, float] = {}
    for name in names:
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {SECTIONS[name]} ...", flush=True)
        started = time.monotonic()
        try:
            section = _load(name)
        except ImportError as exc:
            rows.extend(_not_run(name, f"benchmarks/reliability/{name}.py: {exc}"))
            continue
        try:
            produced = section(quick)
            rows.extend(produced if produced else _not_run(name, "the section gave no rows"))
        except Exception as exc:
            traceback.print_exc()
            rows.extend(_not_run(name, f"{type(exc).__name__}: {exc}"))
        took[name] = time.monotonic() - started
        print(f"  ... {took[name]:.0f} s", flush=True)
    return rows, took


def commit() -> str:
    """The commit measured, with "+changes" when the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}+changes" if dirty else head or "unknown"


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns 0 even when goals are missed or sections did not run."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: about a minute")
    parser.add_argument("--only", help=f"comma-separated sections of: {', '.join(SECTIONS)}")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections: {', '.join(unknown)}")
    logging.basicConfig(level=logging.ERROR)  # the breaker's expected warnings are the faults

    info = machine.describe()
    measured = commit()
    started = time.monotonic()
    rows, took = run_sections(names, args.quick)
    elapsed = time.monotonic() - started

    print()
    mode = "quick" if args.quick else "full"
    print(f"dicomcache reliability ({mode} run, {elapsed:.0f} s, commit {measured})")
    print(f"machine: {machine.one_line(info)}")
    print()
    print(table(rows))
    settings = {"quick": args.quick, "sections": took, "seconds": elapsed, "commit": measured}
    write_json(args.json, info, settings, rows)
    print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
