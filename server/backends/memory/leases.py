"""Leases: a store that began before an invalidation is refused (memcache's leases).

A miss hands out a lease: the number of the latest invalidation, tagged with this
backend's epoch so that a lease from an earlier process is never taken for one of
this process. Every invalidation takes the next number and records it for its
study, or for its namespace when the whole namespace is dropped. A store whose
lease is older than the record of a study it holds, or of its namespace, is
refused: the archive's answer it carries may predate the change that the
invalidation announced (Nishtala et al., "Scaling Memcache at Facebook", 2013).

Records are kept ``keep`` seconds, and at most ``max_records`` of them; a lease
older than a record that was forgotten is refused as well, since nothing tells
any more what happened after it. Refusing is always safe: the next miss stores.

A namespace that holds nothing has no state at all, and gets no record either:
invalidating it, or its becoming empty (its last object expired, evicted or
invalidated, or the whole namespace dropped), takes a number into one of
``SLOTS`` fixed slots, chosen by the name's CRC-32 (``revoke_unknown``). A lease
older than its namespace's slot is refused: every lease that a change to that
namespace may have made stale, and, by chance, those of the other names that
share the slot. So any number of names costs nothing here.
"""

from __future__ import annotations

import secrets
import zlib
from collections import deque
from collections.abc import Iterable

from dicomcache.server.backends import LEASE_SECONDS

MAX_RECORDS = 100_000  # about 20 MB at most, whatever the invalidation rate
SLOTS = 4096  # for namespaces that hold nothing: 32 KiB, whatever the number of names
_SEQUENCE_BITS = 40
_SEQUENCE_MASK = (1 << _SEQUENCE_BITS) - 1


class Leases:
    """Invalidation records that stores check their lease against.

    Not thread-safe: the backend's lock guards it. Reads no clock: ``now`` is
    passed in, in the backend's monotonic seconds.
    """

    def __init__(self, keep: float = LEASE_SECONDS, max_records: int = MAX_RECORDS) -> None:
        self._keep = keep
        self._max_records = max_records
        self._epoch = secrets.randbits(63 - _SEQUENCE_BITS) | 1  # never 0: a lease is never 0
        self._sequence = 0
        self._studies: dict[tuple[str, str], int] = {}
        self._namespaces: dict[str, int] = {}
        self._touched: dict[str, int] = {}  # per namespace, its last invalidation of any scope
        self._log: deque[tuple[float, tuple[str, str] | str, int]] = deque()
        self._forgotten = 0
        self._slots = [0] * SLOTS  # per slot, the last invalidation of a name in it

    def issue(self, now: float) -> int:
        """A lease for a miss at ``now``: valid until an invalidation of what it stores."""
        self._prune(now)
        return self._epoch << _SEQUENCE_BITS | self._sequence

    def revoke(self, namespace: str, study_uid: str | None, now: float) -> None:
        """Record an invalidation of a study (or, with None, of the whole namespace)."""
        self._sequence += 1
        key: tuple[str, str] | str
        if study_uid is None:
            key = namespace
            self._namespaces[namespace] = self._sequence
        else:
            key = (namespace, study_uid)
            self._studies[key] = self._sequence
        self._touched[namespace] = self._sequence
        self._log.append((now, key, self._sequence))
        self._prune(now)

    def revoke_unknown(self, namespace: str, now: float) -> None:
        """Record an invalidation of a namespace that holds nothing, or has just become empty."""
        self._sequence += 1
        self._slots[_slot(namespace)] = self._sequence
        self._prune(now)

    def allows(self, lease: int, namespace: str, study_uids: Iterable[str], now: float) -> bool:
        """Whether a store under ``lease`` of these studies may go ahead (0: no lease, yes)."""
        if lease == 0:
            return True
        self._prune(now)
        epoch, sequence = lease >> _SEQUENCE_BITS, lease & _SEQUENCE_MASK
        if epoch != self._epoch or sequence > self._sequence or sequence < self._forgotten:
            return False
        if self._namespaces.get(namespace, 0) > sequence:
            return False
        if self._slots[_slot(namespace)] > sequence:
            return False
        return all(self._studies.get((namespace, uid), 0) <= sequence for uid in study_uids)

    def untouched(self, lease: int, namespace: str, now: float) -> bool:
        """Whether ``lease`` is valid and no invalidation of ``namespace``, of any
        address, came after it (what a stale copy's store needs)."""
        if not self.allows(lease, namespace, (), now):
            return False
        return lease == 0 or self._touched.get(namespace, 0) <= lease & _SEQUENCE_MASK

    def _prune(self, now: float) -> None:
        log = self._log
        while log and (log[0][0] <= now - self._keep or len(log) > self._max_records):
            _, key, sequence = log.popleft()
            touched = key if isinstance(key, str) else key[0]
            if self._touched.get(touched) == sequence:
                del self._touched[touched]
            if isinstance(key, str):
                if self._namespaces.get(key) == sequence:
                    del self._namespaces[key]
            elif self._studies.get(key) == sequence:
                del self._studies[key]
            self._forgotten = sequence


def _slot(namespace: str) -> int:
    """The slot of a name: the same in every process, unlike ``hash``."""
    return zlib.crc32(namespace.encode()) % SLOTS
