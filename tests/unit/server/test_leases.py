"""The memory backend's lease records: kept for a while, then forgotten safely."""

from __future__ import annotations

from dicomcache.server.backends.memory.leases import Leases


def test_a_lease_older_than_a_forgotten_record_is_refused() -> None:
    leases = Leases(keep=10.0)
    old = leases.issue(0.0)
    leases.revoke("ns", "1.2", 1.0)
    assert not leases.allows(old, "ns", ["1.2"], 5.0)
    # The record is forgotten after 10 s; the lease before it must still be refused.
    assert not leases.allows(old, "ns", ["1.2"], 20.0)
    assert leases.allows(leases.issue(20.0), "ns", ["1.2"], 20.0)


def test_records_are_bounded_in_number() -> None:
    leases = Leases(keep=1e9, max_records=3)
    lease = leases.issue(0.0)
    for n in range(10):
        leases.revoke("ns", f"1.{n}", 0.0)
    assert len(leases._log) <= 3
    assert not leases.allows(lease, "ns", ["1.99"], 0.0)  # too old to tell: refused


def test_a_lease_of_another_backend_is_refused() -> None:
    mine, theirs = Leases(), Leases()
    assert theirs.allows(theirs.issue(0.0), "ns", ["1.2"], 0.0)
    assert not mine.allows(theirs.issue(0.0), "ns", ["1.2"], 0.0)
