"""Whether any of a set of files changed since it was last looked at.

Kubernetes replaces a mounted ConfigMap or Secret by swapping a symlink, so the
path's target changes inode without its mtime necessarily moving; an editor may
rewrite a file in place within one mtime tick but with another size. Any of
mtime, size, inode or device moving counts as a change; so does a file appearing
or disappearing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable

Signature = tuple[tuple[int, int, int, int] | None, ...]


def signature(paths: Iterable[str]) -> Signature:
    """The (mtime_ns, size, inode, device) of each path, None for one that cannot be read."""
    found: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            found.append(None)
        else:
            found.append((st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev))
    return tuple(found)


class FileWatch:
    """Looks at its files at most once per ``interval`` seconds.

    Thread-safe: one caller at a time looks; the others go on without waiting.
    Reads the injected monotonic clock.
    """

    def __init__(self, paths: Iterable[str], interval: float, clock: Callable[[], float]) -> None:
        self.paths = tuple(paths)
        self.interval = interval
        self._clock = clock
        self._seen = signature(self.paths)
        self._next = clock() + interval
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether the interval has passed since the last look (cheap: one clock read)."""
        return self._clock() >= self._next

    def changed(self) -> bool:
        """Whether the files changed since the last look that returned True (or the start).

        Returns False without looking when the interval has not passed or another
        thread is looking.
        """
        if not self.due() or not self._lock.acquire(blocking=False):
            return False
        try:
            self._next = self._clock() + self.interval
            now = signature(self.paths)
            if now == self._seen:
                return False
            self._seen = now
            return True
        finally:
            self._lock.release()

    def watch(self, paths: Iterable[str]) -> None:
        """Watch these paths from now on (a new policy may name other token files).

        The next look after the interval reports a change whatever it finds: one
        of the new files may have changed after it was read and before this call.
        """
        with self._lock:
            self.paths = tuple(paths)
            self._seen = ()
