"""The memory limit of the container the process runs in, from its cgroup (v1 or v2).

A sidecar's memory is limited by its container's cgroup; the cache should size
itself from that limit rather than from a number someone must keep in step with
the pod spec. The tightest limit on the way from the process's own cgroup up to
the root counts (a pod's limit can sit above the container's). A limit of "max"
(v2), or the near-2**63 value that v1 reports for none, is no limit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

UNLIMITED = 2**62  # v1 reports "no limit" as a page-rounded 2**63 - 1


def memory_limit(
    root: Path = Path("/sys/fs/cgroup"), own: Path = Path("/proc/self/cgroup")
) -> int | None:
    """Bytes the process's cgroup may use, or None when nothing limits it.

    Args:
        root: where the cgroup file systems are mounted.
        own: the process's cgroup membership file.
    """
    try:
        membership = own.read_text()
    except OSError:
        return None
    if (root / "cgroup.controllers").exists():  # v2: one unified hierarchy
        path = _path(membership, lambda controllers: controllers == "")
        return _tightest(root, path, "memory.max")
    path = _path(membership, lambda controllers: "memory" in controllers.split(","))
    return _tightest(root / "memory", path, "memory.limit_in_bytes")


def _path(membership: str, wanted: Callable[[str], bool]) -> str:
    """The cgroup path on the line of /proc/self/cgroup whose controllers match."""
    for line in membership.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and wanted(parts[1]):
            return parts[2]
    return "/"


def _tightest(hierarchy: Path, path: str, name: str) -> int | None:
    """The smallest limit in ``name`` files from ``path`` up to the hierarchy's root.

    Inside a container the hierarchy is usually mounted at the container's own
    cgroup, so ``path`` (the host's view) may not exist below it: the root's own
    file is then the container's limit.
    """
    limits = []
    directory = hierarchy / path.lstrip("/")
    while True:
        limit = _read(directory / name)
        if limit is not None:
            limits.append(limit)
        if directory == hierarchy or hierarchy not in directory.parents:
            break
        directory = directory.parent
    return min(limits) if limits else None


def _read(file: Path) -> int | None:
    try:
        text = file.read_text().strip()
    except OSError:
        return None
    if text == "max" or not text.isdigit():
        return None
    value = int(text)
    return value if value < UNLIMITED else None
