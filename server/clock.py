"""The clock the cache reads: monotonic seconds, injectable for tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeAlias

Clock: TypeAlias = Callable[[], float]

monotonic: Clock = time.monotonic
