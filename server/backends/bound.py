"""The largest answer the caller can send, for a backend that can tell a larger one cheaply.

A unary lookup's hit must fit in one message (``--max-message-bytes``). Checked on
the answer once built, that costs a whole read first: a unary hit of a
300,000-instance study read and unpacked 250 MB, under the backend's lock in
chunks, only to be refused (issue 11, stall row S5: 60-240 ms added to every
other call). The memory backend knows a lower bound of a study listing's size from
its write (the lengths of its uids and attributes) and can refuse before it reads.

The caller sets the bound for the call in its own thread (a context variable, so
the wrappers around a backend, telemetry and the invalidation feed, pass it on
without knowing of it); a backend that cannot tell cheaply ignores it, and the
caller checks the answer it built as before. Thread-safe: each thread has its own.
"""

from __future__ import annotations

from contextvars import ContextVar

# The most bytes a study's encoding may take in the lookup being made; None: no bound.
STUDY_BYTES: ContextVar[int | None] = ContextVar("dicomcache_study_bytes", default=None)


class study_bytes:  # noqa: N801  # a context manager used as a function: ``with study_bytes(n):``
    """Within the block, a backend may refuse (``AnswerTooLarge``) a study larger than ``most``.

    A class, not a generator context manager, for its cost. The service's study
    lookup sets ``STUDY_BYTES`` itself, without even this class's three calls: a
    hit's fixed cost (row 17c).
    """

    __slots__ = ("_most", "_token")

    def __init__(self, most: int) -> None:
        self._most = most

    def __enter__(self) -> None:
        self._token = STUDY_BYTES.set(self._most)

    def __exit__(self, *_: object) -> None:
        STUDY_BYTES.reset(self._token)
