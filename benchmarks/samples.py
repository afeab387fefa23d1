"""Summaries of timing samples: medians and high percentiles, nothing that hides a tail.

Pure functions over lists of seconds (or any numbers). No clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import median as _median


def median(values: Sequence[float]) -> float:
    """The median; raises ValueError for no values."""
    if not values:
        raise ValueError("no samples")
    return float(_median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 to 100) by the nearest-rank method: an observed value."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])
