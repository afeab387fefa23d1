"""The memory backend against a plain-dict model, under random operations (Hypothesis).

The model keeps every object as ``(namespace, address) -> (data, expires_at)`` and
every query answer as the studies it returned; it knows nothing of nodes, queues
or reaping. An answer is dead once any of its objects was invalidated or written
again with other attributes (issue 10: a hit is what that query was answered).
Reaping makes one thing timing-dependent: an answer whose object expired and was
written again may or may not still be served (it is always safe to miss). The
model allows both there, and only there.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.model import (
    Address,
    CachedObject,
    InstanceData,
    SeriesData,
    StudyData,
)
from tests.support.builders import canonical, canonical_study
from tests.support.clock import FakeClock

TTL = 100.0
NEGATIVE_TTL = 30.0
NAMESPACES = ["a", "b"]
KEYS = [b"k1"]
UIDS = ["1", "2"]

ttls = st.sampled_from([None, 5.0, 40.0, 1000.0])
addresses = st.one_of(
    st.tuples(st.sampled_from(UIDS)),
    st.tuples(st.sampled_from(UIDS), st.sampled_from(UIDS)),
    st.tuples(st.sampled_from(UIDS), st.sampled_from(UIDS), st.sampled_from(UIDS)),
)


@st.composite
def studies(draw: st.DrawFn, paths: bool) -> list[StudyData]:
    """Studies over a small uid space; with ``paths`` some levels come without attributes.

    Attributes are placeholders (b"?"): the machine stamps each write with fresh bytes.
    """

    def attrs() -> bytes | None:
        return None if paths and draw(st.booleans()) else b"?"

    result = []
    for s in draw(st.lists(st.sampled_from(UIDS), unique=True, max_size=2)):
        series = []
        for r in draw(st.lists(st.sampled_from(UIDS), unique=True, max_size=2)):
            instances = tuple(
                InstanceData(f"{s}.{r}.{i}", b"?")
                for i in draw(st.lists(st.sampled_from(UIDS), unique=True, max_size=2))
            )
            series.append(SeriesData(f"{s}.{r}", attrs(), instances))
        result.append(StudyData(s, attrs(), tuple(series)))
    return result


@dataclass
class ModelAnswer:
    addresses: list[Address]
    studies: list[StudyData]
    expires_at: float
    expired_object: bool = False  # some object was dead at some moment since the store
    invalidated: bool = False  # some object was invalidated or changed since the store


def address_of(uid: str) -> Address:
    """The address of a uid built as "study.series.instance" by ``studies``."""
    parts = uid.split(".")
    return tuple(".".join(parts[: i + 1]) for i in range(len(parts)))


class MemoryBackendMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.backend = MemoryBackend(ttl=TTL, negative_ttl=NEGATIVE_TTL, clock=self.clock)
        self.objects: dict[tuple[str, Address], tuple[bytes, float]] = {}
        self.answers: dict[tuple[str, bytes], ModelAnswer] = {}
        self.writes = 0

    # -- model ---------------------------------------------------------------------------

    def alive(self, ns: str, address: Address) -> bytes | None:
        entry = self.objects.get((ns, address))
        return entry[0] if entry is not None and self.clock.now < entry[1] else None

    def stamp(self, given: list[StudyData], ttl: float | None) -> tuple[list[StudyData], int]:
        """The studies with fresh data per object, and how many objects carry data."""
        self.writes += 1
        count = 0

        def data(uid: str, present: bytes | None) -> bytes | None:
            nonlocal count
            if present is None:
                return None
            count += 1
            return f"{uid}@{self.writes}".encode()

        stamped = [
            StudyData(
                s.uid,
                data(s.uid, s.attributes),
                tuple(
                    SeriesData(
                        r.uid,
                        data(r.uid, r.attributes),
                        tuple(InstanceData(i.uid, data(i.uid, i.attributes)) for i in r.instances),
                    )
                    for r in s.series
                ),
            )
            for s in given
        ]
        return stamped, count

    def write(self, ns: str, given: list[StudyData], ttl: float | None) -> list[Address]:
        expires_at = self.clock.now + (TTL if ttl is None else min(ttl, TTL))
        written = []
        for study in given:
            for obj in (study, *study.series, *(i for r in study.series for i in r.instances)):
                if obj.attributes is not None:
                    address = address_of(obj.uid)
                    prior = self.objects.get((ns, address))
                    if prior is not None and prior[0] != obj.attributes:
                        self.changed(ns, address)
                    self.objects[(ns, address)] = (obj.attributes, expires_at)
                    written.append(address)
        return written

    def changed(self, ns: str, address: Address) -> None:
        """An object got other attributes: every answer that returned it is dead."""
        for (n, _), answer in self.answers.items():
            if n == ns and address in answer.addresses:
                answer.invalidated = True

    def expected_object(self, ns: str, address: Address) -> CachedObject | None:
        if self.alive(ns, address) is None:
            return None
        below = sorted(
            a
            for (n, a) in self.objects
            if n == ns and a[: len(address)] == address and a != address
        )
        live = [a for a in below if self.alive(ns, a) is not None]
        if len(address) == 3:
            return InstanceData(address[-1], self.alive(ns, address))
        if len(address) == 2:
            return SeriesData(
                address[-1],
                self.alive(ns, address),
                tuple(InstanceData(a[-1], self.alive(ns, a)) for a in live),
            )
        series_uids = sorted({a[1] for a in live})
        series = []
        for uid in series_uids:
            instances = tuple(
                InstanceData(a[-1], self.alive(ns, a)) for a in live if len(a) == 3 and a[1] == uid
            )
            series.append(SeriesData(uid, self.alive(ns, (address[0], uid)), instances))
        return StudyData(address[0], self.alive(ns, address), tuple(series))

    def current(self, ns: str, answer: ModelAnswer) -> list[StudyData]:
        def now(uid: str) -> bytes | None:
            return self.alive(ns, address_of(uid))

        return [
            StudyData(
                s.uid,
                now(s.uid),
                tuple(
                    SeriesData(
                        r.uid,
                        now(r.uid),
                        tuple(InstanceData(i.uid, now(i.uid)) for i in r.instances),
                    )
                    for r in s.series
                ),
            )
            for s in answer.studies
        ]

    # -- rules ---------------------------------------------------------------------------

    @rule(ns=st.sampled_from(NAMESPACES), given=studies(paths=True), ttl=ttls)
    def add_objects(self, ns: str, given: list[StudyData], ttl: float | None) -> None:
        stamped, count = self.stamp(given, ttl)
        assert self.backend.add_objects(ns, stamped, ttl) == count
        self.write(ns, stamped, ttl)

    @rule(
        ns=st.sampled_from(NAMESPACES),
        key=st.sampled_from(KEYS),
        given=studies(paths=False),
        ttl=ttls,
    )
    def store_query(self, ns: str, key: bytes, given: list[StudyData], ttl: float | None) -> None:
        stamped, _ = self.stamp(given, ttl)
        self.backend.store_query(ns, key, stamped, ttl)
        addresses = self.write(ns, stamped, ttl)
        life = TTL if ttl is None else min(ttl, TTL)
        if not stamped:
            life = min(life, NEGATIVE_TTL)
        self.answers[(ns, key)] = ModelAnswer(addresses, stamped, self.clock.now + life)

    @rule(
        ns=st.sampled_from(NAMESPACES),
        key=st.sampled_from(KEYS),
        which=st.integers(0, 2),
        ttl=st.sampled_from([5.0, None]),
    )
    def rewrite_part_of_an_answer(self, ns: str, key: bytes, which: int, ttl: float | None) -> None:
        """Write one object of an answer again, perhaps to expire before the answer does."""
        answer = self.answers.get((ns, key))
        if answer is None or not answer.addresses:
            return
        address = answer.addresses[which % len(answer.addresses)]
        # A path down to the object, the object itself with data.
        study = StudyData(address[0], b"?" if len(address) == 1 else None)
        if len(address) >= 2:
            instances = (InstanceData(address[2], b"?"),) if len(address) == 3 else ()
            series = SeriesData(address[1], b"?" if len(address) == 2 else None, instances)
            study = StudyData(address[0], None, (series,))
        self.add_objects(ns, [study], ttl)

    @rule(ns=st.sampled_from(NAMESPACES), key=st.sampled_from(KEYS))
    def lookup_query(self, ns: str, key: bytes) -> None:
        got = self.backend.lookup_query(ns, key)
        answer = self.answers.get((ns, key))
        if (
            answer is None
            or self.clock.now >= answer.expires_at
            or answer.invalidated
            or any(self.alive(ns, a) is None for a in answer.addresses)
        ):
            assert got is None
        elif not answer.expired_object:
            assert canonical(got) == canonical(self.current(ns, answer))
        else:
            assert got is None or canonical(got) == canonical(self.current(ns, answer))
        if got is None:
            self.answers.pop((ns, key), None)

    @rule(ns=st.sampled_from(NAMESPACES), address=addresses)
    def get_object(self, ns: str, address: Address) -> None:
        full = tuple(".".join(address[: i + 1]) for i in range(len(address)))
        got = self.backend.get_object(ns, full)
        expected = self.expected_object(ns, full)
        if isinstance(got, StudyData):
            got = canonical_study(got)
        if isinstance(got, SeriesData):
            got = SeriesData(
                got.uid, got.attributes, tuple(sorted(got.instances, key=lambda i: i.uid))
            )
        assert got == expected

    @rule(ns=st.sampled_from(NAMESPACES), address=st.none() | addresses)
    def invalidate(self, ns: str, address: Address | None) -> None:
        full = (
            None
            if address is None
            else tuple(".".join(address[: i + 1]) for i in range(len(address)))
        )
        under = [a for (n, a) in self.objects if n == ns and full and a[: len(full)] == full]
        if under and not any(self.alive(ns, a) for a in under):
            # Whether the backend still has a node there depends on reaping: reap.
            while self.backend.expire(100) == 100:
                pass
        if full is not None and not any(self.alive(ns, a) for a in under):
            full = full[:1]  # not cached: its study goes (new in the archive)
        dropped = self.backend.invalidate(ns, full)
        gone = [
            a for (n, a) in self.objects if n == ns and (full is None or a[: len(full)] == full)
        ]
        assert dropped == sum(1 for a in gone if self.alive(ns, a) is not None)
        for a in gone:
            del self.objects[(ns, a)]
        for (n, key), answer in list(self.answers.items()):
            if n != ns:
                continue
            if full is None:
                del self.answers[(n, key)]
            elif any(a[: len(full)] == full for a in answer.addresses):
                answer.invalidated = True

    @rule(seconds=st.sampled_from([1.0, 4.0, 20.0, 70.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        for (ns, _), answer in self.answers.items():
            if any(self.alive(ns, a) is None for a in answer.addresses):
                answer.expired_object = True

    @rule(max_items=st.sampled_from([1, 7, 100]))
    def expire(self, max_items: int) -> None:
        assert self.backend.expire(max_items) <= max_items

    def teardown(self) -> None:
        """At the end of a run everything expires, and reaping it leaves no byte behind."""
        self.advance(2 * TTL)
        while self.backend.expire(50) == 50:
            pass
        stats = self.backend.stats(None)
        assert stats.total_bytes == 0
        for ns in stats.namespaces:
            assert (ns.studies, ns.series, ns.instances, ns.queries, ns.bytes) == (0, 0, 0, 0, 0)

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def counts_cover_the_live_objects(self) -> None:
        stats = self.backend.stats(None)
        assert stats.total_bytes == sum(ns.bytes for ns in stats.namespaces)
        for ns in stats.namespaces:
            live = [a for (n, a) in self.objects if n == ns.namespace and self.alive(n, a)]
            assert ns.studies >= sum(1 for a in live if len(a) == 1)
            assert ns.series >= sum(1 for a in live if len(a) == 2)
            assert ns.instances >= sum(1 for a in live if len(a) == 3)


MemoryBackendMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=30, deadline=None
)
test_memory_backend_matches_the_model = MemoryBackendMachine.TestCase
