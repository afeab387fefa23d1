"""Rows of results, their targets, the printed table and the JSON file.

A row holds one measure beside the baseline it was measured against in the same
run, the figure its target is about, and every raw figure for the JSON. Pure data
and formatting; no clock.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    """A bound on a row's ``value``: ``op`` is ">=" or "<=", ``unit`` how to print it."""

    op: str
    bound: float
    unit: str = "x"

    def met(self, value: float) -> bool:
        """Whether ``value`` is within the bound."""
        return value >= self.bound if self.op == ">=" else value <= self.bound

    def text(self) -> str:
        """The bound as the table shows it, e.g. ">= 10x"."""
        return f"{self.op} {format_value(self.bound, self.unit)}"


@dataclass
class Row:
    """One line of the table.

    ``value`` is the figure the target is about (a ratio, or bytes); ``result`` and
    ``baseline`` are the two measured figures as text; ``figures`` carries the raw
    numbers (seconds, bytes, counts) for the JSON. A row that could not run has
    ``value`` None and says why in ``note``.
    """

    key: str
    measure: str
    result: str = ""
    baseline: str = ""
    value: float | None = None
    unit: str = "x"
    target: Target | None = None
    note: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """ "pass", "GAP", "report" (no target), or "not run"."""
        if self.value is None:
            return "not run"
        if self.target is None:
            return "report"
        return "pass" if self.target.met(self.value) else "GAP"

    def as_json(self) -> dict[str, Any]:
        """The row with its status, for the JSON file."""
        data = asdict(self)
        data["target"] = (
            None if self.target is None else {"op": self.target.op, "bound": self.target.bound}
        )
        data["status"] = self.status
        return data


def format_value(value: float, unit: str) -> str:
    """A ratio as "12.3x", a size as "812 B", anything else with its unit."""
    if unit == "x":
        return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"
    return f"{value:.0f}{unit}" if value >= 100 else f"{value:.3g}{unit}"


def seconds(value: float) -> str:
    """A duration in the unit that keeps three significant digits readable."""
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} us"


_HEADERS = ("#", "measure", "result", "baseline (same run)", "value", "target", "status")


def table(rows: list[Row]) -> str:
    """The rows as an aligned plain-text table, notes below it."""
    lines = [
        (
            row.key,
            row.measure,
            row.result,
            row.baseline,
            "-" if row.value is None else format_value(row.value, row.unit),
            row.target.text() if row.target else "report" if row.value is not None else "-",
            row.status,
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [_HEADERS, *lines]) for i in range(len(_HEADERS))]

    def render(cells: tuple[str, ...]) -> str:
        return " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    out = [render(_HEADERS), "-+-".join("-" * w for w in widths)]
    out.extend(render(cells) for cells in lines)
    notes = [f"  [{row.key}] {row.note}" for row in rows if row.note]
    if notes:
        out.append("")
        out.append("notes:")
        out.extend(notes)
    return "\n".join(out)


def write_json(
    path: Path, machine: dict[str, Any], settings: dict[str, Any], rows: list[Row]
) -> None:
    """Write the machine, the run's settings and every row to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": machine, "settings": settings, "rows": [r.as_json() for r in rows]}
    path.write_text(json.dumps(document, indent=2) + "\n")
