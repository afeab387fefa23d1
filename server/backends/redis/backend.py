"""The Redis backend: one cache shared by every server on a Redis or a Redis Cluster.

Each object is its own key with Redis's own TTL (``PX``), so every replica agrees
on what has expired and each object expires on its own. All keys of one study
carry the study's hash tag, so a study lives in one slot and is written by one Lua
script, atomically: no reader sees half a study. Query entries and the per
namespace counters carry the namespace's hash tag. Key names hold the schema
version and the namespace, never query values: a query is named by the hex of its
key, which is already a hash. The key layout is drawn in ``names.py``.

Round trips: on a single Redis a query hit is one ``EVALSHA`` (the entry and all
its objects read and checked by one script), and so is a study hit. On a Redis
Cluster the entry lives in the namespace's slot, not its studies', so a query hit
costs one ``GET`` of the entry, then one pipeline of one ``MGET`` per study, sent to
every node holding one at once: two round trips. A study hit on a cluster is the
study's script alone. A miss that finds a dead entry costs one more call to drop
it. ``add_objects`` and ``store_study`` are one pipeline; ``store_query`` two (the
entry names each object by the token its write returned, so it is written after
them).

What a hit needs (issue 11): the slots of the keys it reads, nothing else. On a
cluster a query hit reads its entry's slot and its studies' slots, a study hit
and ``get_object`` only the study's slot; a miss of an unknown query or study
reads only the slot it looks in. Lookups are counted in the process and written
to the namespace's counters in the background (``tally.py``), and stores note
their namespace in the registry (``dc:1:registry``) the same way, so a master
that fails takes down only the slots it serves: other namespaces keep their hits,
misses and stores, and the counters and the registry catch up once it is back (or
its replica took over). Leases and their checks use the namespace's slot, and
stores the namespace's ledger; ``GetStats`` reads the registry. Recommend
``cluster-require-full-coverage no``, or a master that fails stops every slot.

Nothing lasting per name comes from lookups (issue 11): a lookup writes nothing,
and its count (through the tally) only to a namespace that holds data; a lease or
an invalidation writes the namespace's lease hash, which expires ``LEASE_SECONDS``
after its last write (no lease it could refuse is honoured longer), and a study's
invalidation number, kept as long. Every key of a namespace's ledger carries the
TTL of its longest-lived entry, and the registry lists a namespace until then
(pruned when read), so both shrink as data expires. An invalidation that leaves a
namespace holding nothing deletes its ledger and counters, takes it off the
registry, and counts as a drop for leases (``namespace_forget.lua``).

A stalled Redis fails a call within one ``socket_timeout`` (``--backend-timeout``),
plus a few ms: timeouts are never retried (``topology.py``). Measured with
SIGSTOP, ``DEBUG SLEEP`` and ``CLIENT PAUSE`` at 0.25 s: see the module
``benchmarks/redis_stall.py``.

At rest (issue 12): with ``--redis-encryption-key-file`` the attributes of every
object are sealed (AES-256-GCM, the object's key name as associated data) as they
are written and opened as they are read, here in Python (``sealing.py``); a value
that does not open (another key, altered, moved) makes its answer a miss. Stale
copies (issue 13) hold the answer's DICOM JSON, sealed the same way against their
own key name. Nothing else holds attributes: entries, listings and the ledger hold
UIDs, tokens and sizes; flights hold a server's random id.

Objects carry a token, kept while their key lives and new when it is created, so
an answer that saw an object stays dead once the object was dropped (expired,
evicted, invalidated), even if the address is written again, as in the memory
backend.

What is approximate (Redis does not say which namespace a key it evicted or
expired belonged to): live counts and bytes come from a ledger per namespace,
sorted sets scored by expiry, counted over Redis's ``TIME``; an object that Redis
evicts is taken off the ledger when a read finds it missing (counted as an
eviction), or else when its time runs out (counted as an expiration). On a Redis
Cluster the ledger and the data sit in different slots, so they are written in
separate calls rather than one transaction. Run Redis with
``maxmemory-policy volatile-ttl``: the ledger keys carry their namespace's longest
TTL and a study's index key its study's, so they go last. A lease hash or a
study's invalidation number that Redis evicts costs hits, never correctness: a
lease older than the lease hash that judges it is refused.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import NoScriptError

from dicomcache.server.backends import LEASE_SECONDS, Flight, Found, StaleCopy, stats_page
from dicomcache.server.backends.redis.errors import translated
from dicomcache.server.backends.redis.names import (
    REGISTRY,
    Names,
    address_of,
    escape,
    in_study,
    is_object_key,
    line_of,
    member_of,
)
from dicomcache.server.backends.redis.replies import (
    Invalidated,
    NamespaceCounts,
    ObjectRead,
    StaleRead,
    StudyWritten,
)
from dicomcache.server.backends.redis.sealing import PLAIN, Values
from dicomcache.server.backends.redis.tally import Pending, Tally
from dicomcache.server.backends.redis.topology import (
    Client,
    Cluster,
    SingleNode,
    Topology,
    load_scripts,
)
from dicomcache.server.errors import BackendUnavailable
from dicomcache.server.model import (
    Address,
    CachedObject,
    InstanceData,
    Level,
    NamespaceStats,
    SeriesData,
    Stats,
    StudyData,
)

_T = TypeVar("_T")

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0  # how often counts and registry entries are written to Redis
_LEASE_MS = math.ceil(LEASE_SECONDS * 1000)


def _ms(seconds: float) -> int:
    """A TTL in whole milliseconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds * 1000))


def _objects(studies: Sequence[StudyData]) -> Iterator[tuple[Address, bytes | None]]:
    """Every object of the trees in pre-order, with its attributes (None: a path only)."""
    for study in studies:
        yield (study.uid,), study.attributes
        for series in study.series:
            yield (study.uid, series.uid), series.attributes
            for instance in series.instances:
                yield (study.uid, series.uid, instance.uid), instance.attributes


def _unbound(line: str) -> bytes:
    return b""


def _assemble(pairs: Sequence[tuple[Address, bytes | None]]) -> list[StudyData]:
    """Rebuild study trees from (address, attributes) in any order that puts parents
    first; a descendant whose parent is absent hangs under a path-only parent."""
    studies: dict[str, tuple[bytes | None, dict[str, tuple[bytes | None, list[InstanceData]]]]]
    studies = {}
    for address, value in pairs:
        _, series_map = studies.setdefault(address[0], (None, {}))
        if len(address) == 1:
            studies[address[0]] = (value, series_map)
        elif len(address) == 2:
            series_map[address[1]] = (value, series_map.get(address[1], (None, []))[1])
        else:
            series_map.setdefault(address[1], (None, []))[1].append(InstanceData(address[2], value))
    return [
        StudyData(
            uid,
            attrs,
            tuple(
                SeriesData(s_uid, s_attrs, tuple(inst)) for s_uid, (s_attrs, inst) in series.items()
            ),
        )
        for uid, (attrs, series) in studies.items()
    ]


class RedisBackend:
    """A Backend on a Redis server or a Redis Cluster, shared by many dicomcache servers.

    Thread-safe: redis-py's connection pools hand each call its own connection.
    Clock: Redis's own (TTLs and ``TIME``), not the process's; a background thread
    writes the tally every ``flush_seconds`` of ``threading.Event.wait`` (monotonic).
    """

    def __init__(
        self,
        topology: Topology,
        *,
        ttl: float,
        negative_ttl: float,
        flush_seconds: float = FLUSH_SECONDS,
        values: Values = PLAIN,
    ) -> None:
        """Args:
        topology: one Redis or a Redis Cluster; its ``connect`` is called again until
            it succeeds, so a cluster that is down when the server starts is picked
            up later.
        ttl: default seconds an object is kept.
        negative_ttl: seconds an empty answer is kept at most.
        flush_seconds: how often lookups counted in the process and registry
            entries are written to Redis (and always before ``stats``).
        values: how objects' attributes are kept: as they are, or sealed
            (``sealing.SealedValues``, encryption at rest).
        """
        self._topology = topology
        self._values = values
        if ttl <= 0 or negative_ttl <= 0:
            raise ValueError("ttl and negative_ttl must be positive")
        self.ttl = ttl
        self.negative_ttl = min(negative_ttl, ttl)
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._tally = Tally()
        self._flushing = threading.Lock()  # one flush at a time: stats waits for the thread's
        self._closing = threading.Event()
        with contextlib.suppress(BackendUnavailable):
            self._redis()
        self._flusher = threading.Thread(
            target=self._flush_every, args=(flush_seconds,), name="redis-tally", daemon=True
        )
        self._flusher.start()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        ttl: float,
        negative_ttl: float,
        socket_timeout: float = 0.25,
        values: Values = PLAIN,
        **options: Any,
    ) -> RedisBackend:
        """A backend for ``redis://``, ``rediss://`` (TLS), ``redis+cluster://`` or
        ``rediss+cluster://`` (a seed node) URLs.

        Args:
            socket_timeout: seconds to connect or to wait for an answer before the
                call fails with BackendUnavailable.
            values: how objects' attributes are kept (see ``__init__``).
            options: redis-py connection options (password, ssl_ca_certs,
                ssl_certfile, ssl_keyfile, ...); None values are ignored and ssl_*
                options only apply to TLS URLs.
        Raises:
            ValueError: the URL's scheme is not one of the above.
        """
        parts = urlsplit(url)
        scheme, _, mode = parts.scheme.partition("+")
        if scheme not in ("redis", "rediss") or mode not in ("", "cluster"):
            raise ValueError(f"not a Redis URL scheme: {parts.scheme!r}")
        plain_url = urlunsplit(parts._replace(scheme=scheme))
        kwargs = {
            k: v
            for k, v in options.items()
            if v is not None and (scheme == "rediss" or not k.startswith("ssl"))
        }
        kwargs.update(socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout)
        if mode == "cluster":
            path = parts.path.strip("/")
            if path not in ("", "0"):
                raise ValueError("a Redis Cluster has only database 0")
            plain_url = urlunsplit(parts._replace(scheme=scheme, path=""))
            topology: Topology = Cluster(plain_url, kwargs)
        else:
            topology = SingleNode(plain_url, kwargs)
        return cls(topology, ttl=ttl, negative_ttl=negative_ttl, values=values)

    # -- plumbing ---------------------------------------------------------------------

    def _redis(self) -> Client:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                with translated():
                    self._client = self._topology.connect()
            return self._client

    def _call(self, work: Callable[[Client], _T]) -> _T:
        """Run ``work``; run it once more after a Redis restart (scripts gone: loaded
        first) or an error the topology retries (never a timeout)."""
        with translated():
            client = self._redis()
            try:
                return work(client)
            except NoScriptError:
                load_scripts(client)
            except Exception as exc:
                if not self._topology.retried(exc):
                    raise
            return work(client)

    def connect_again(self) -> Client:
        """A client of its own on the same Redis or cluster (the invalidation feed's).

        Raises:
            BackendUnavailable: it cannot be reached.
        """
        with translated():
            return self._topology.connect()

    # -- the tally: counts and registry entries, written off the lookups' path ----------

    def _flush_every(self, seconds: float) -> None:
        while not self._closing.wait(seconds):
            try:
                self._flush()
            except BackendUnavailable as exc:
                log.debug("tally not written: %s", exc)

    def _flush(self) -> None:
        """Write what the tally holds; give back what could not be written.

        Raises:
            BackendUnavailable: nothing could be written (all of it is given back).
        """
        with self._flushing:
            self._flush_pending(self._tally.take())

    def _flush_pending(self, pending: Pending) -> None:
        if not pending:
            return
        topology = self._topology

        def work(client: Client) -> list[Any]:
            pipe = topology.pipeline(client)
            for name, (lookups, misses) in pending.counts.items():
                keys, args = [Names(name).ledger], [lookups, misses]
                topology.eval(client, "namespace_count", keys, args, into=pipe)
            if pending.horizons:
                pipe.zadd(REGISTRY, pending.horizons, gt=True)
            return topology.execute(client, pipe, raise_on_error=False)

        try:
            replies = self._call(work)
        except BackendUnavailable:
            self._tally.give_back(pending)
            raise
        failed = Pending()
        for (name, counts), reply in zip(pending.counts.items(), replies, strict=False):
            if isinstance(reply, Exception):
                failed.counts[name] = counts
        if pending.horizons and isinstance(replies[-1], Exception):
            failed.horizons = pending.horizons
        if failed:
            self._tally.give_back(failed)

    def _registered(self, client: Client) -> list[str]:
        """The namespaces of the registry that still hold data (the others pruned)."""
        found = self._topology.eval(client, "registry_list", [REGISTRY], [])
        return [name.decode() for name in found]

    # -- writes -----------------------------------------------------------------------

    def _ttl(self, ttl: float | None) -> float:
        return self.ttl if ttl is None else min(ttl, self.ttl)

    def _write(
        self,
        names: Names,
        studies: Sequence[StudyData],
        ttl: float,
        depth: int = 0,
        query: tuple[bytes, float] | None = None,
        lease: int = 0,
    ) -> int | None:
        """Write studies (one atomic script each), then the ledger and a query entry.

        The entry names each object with the token its write returned, so it goes in
        a second call, after every object it lists is in place. Returns how many
        objects were written, or None when a study refused the lease (then no entry
        is written). The registry learns of the namespace through the tally.
        """
        ttl_ms = _ms(ttl)
        topology = self._topology
        where, seal = self._where(names), self._values.seal

        def work(client: Client) -> tuple[int | None, int]:
            pipe = topology.pipeline(client)
            written: list[list[tuple[str, int]]] = []
            for study in studies:
                items: list[str | bytes] = []
                sizes: list[tuple[str, int]] = []
                for address, value in _objects([study]):
                    member = member_of(address)
                    if value is None:
                        items += [member, "p", b""]
                    else:
                        line = line_of(address)
                        value = seal(where(line), value)
                        items += [member, "o", value]
                        sizes.append((line, len(value)))
                written.append(sizes)
                keys = [names.study(study.uid)]
                topology.eval(
                    client, "study_write", keys, [ttl_ms, depth, lease, *items], into=pipe
                )
            replies: list[Any] = []
            if query is not None or lease:
                replies = topology.execute(client, pipe) if studies else []
                pipe = topology.pipeline(client)
            refused = any(reply is None for reply in replies)
            entry: list[Any] = ["", 0, ""]
            if query is not None and not refused:
                tokens = [StudyWritten.parse(reply) for reply in replies]
                entry = [query[0].hex(), _ms(query[1]), self._entry(studies, tokens)]
            if refused:  # invalidated after the lease: on the ledger only what was written
                written = [
                    w for w, reply in zip(written, replies, strict=True) if reply is not None
                ]
            flat = [item for sizes in written for pair in sizes for item in pair]
            topology.eval(
                client, "namespace_write", [names.ledger], [ttl_ms, *entry, *flat], into=pipe
            )
            horizon = int(topology.execute(client, pipe)[-1])
            return (None if refused else sum(len(sizes) for sizes in written)), horizon

        count, horizon = self._call(work)
        if horizon:
            self._tally.hold(names.namespace, horizon)
        return count

    @staticmethod
    def _entry(studies: Sequence[StudyData], written: Sequence[StudyWritten]) -> str:
        """A query entry: each address of the answer with the token of its object."""
        lines = []
        for study, tokens in zip(studies, written, strict=True):
            for address, value in _objects([study]):
                token = tokens.tokens[member_of(address)] if value is not None else ""
                lines.append(f"{line_of(address)}|{token}")
        return "\n".join(lines)

    def add_objects(self, namespace: str, studies: Sequence[StudyData], ttl: float | None) -> int:
        """Add objects and their descendants; returns how many objects were written."""
        return self._write(Names(namespace), studies, self._ttl(ttl)) or 0

    def lease(self, namespace: str) -> int:
        """A lease for a miss, from the namespace's own slot (see ``lease_issue.lua``)."""
        names = Names(namespace)
        topology = self._topology
        args = [_LEASE_MS]
        return int(self._call(lambda c: topology.eval(c, "lease_issue", [names.leases], args)))

    def store_query(
        self,
        namespace: str,
        key: bytes,
        studies: Sequence[StudyData],
        ttl: float | None,
        lease: int = 0,
    ) -> bool:
        """Store the objects of an answer, then the answer as the list of their addresses."""
        names = Names(namespace)
        if lease and not self._lease_holds(names, lease):
            return False
        keep = self._ttl(ttl)
        entry_ttl = keep if studies else min(keep, self.negative_ttl)
        written = self._write(names, studies, keep, query=(key, entry_ttl), lease=lease)
        return written is not None and self._settled(names, lease, studies)

    def store_study(
        self, namespace: str, study: StudyData, level: Level, ttl: float | None, lease: int = 0
    ) -> bool:
        """Store a study-by-id answer and its listing complete down to ``level``.

        As in the memory backend, listings of other depths that saw other children
        at the depth both cover are dropped.
        """
        names = Names(namespace)
        if lease and not self._lease_holds(names, lease):
            return False
        written = self._write(names, [study], self._ttl(ttl), depth=int(level), lease=lease)
        return written is not None and self._settled(names, lease, [study])

    def _lease_holds(self, names: Names, lease: int) -> bool:
        """The namespace's part of a lease check: not too old, no drop of the namespace since."""
        topology = self._topology
        args = [lease, int(LEASE_SECONDS * 1_000_000)]
        reply = self._call(lambda c: topology.eval(c, "lease_check", [names.leases], args))
        return bool(reply)

    def _settled(self, names: Names, lease: int, studies: Sequence[StudyData]) -> bool:
        """After a leased write: take it back if the namespace was dropped meanwhile.

        Each study checked its own invalidations atomically as it was written; a drop
        of the whole namespace lives in another slot, so it is checked again here and
        what was written after it is dropped at once (visible for at most this call).
        """
        if not lease or self._lease_holds(names, lease):
            return True
        for study in studies:
            self.invalidate(names.namespace, (study.uid,), revoke=False)
        return False

    # -- reads ------------------------------------------------------------------------

    def lookup_query(self, namespace: str, key: bytes) -> list[StudyData] | None:
        """The studies of a stored answer, or None on a miss ([] is a cached empty answer)."""
        found = self.lookup_answer(namespace, key)
        return None if found is None else found.studies

    def lookup_answer(self, namespace: str, key: bytes) -> Found | None:
        """``lookup_query`` with the PTTL of the answer's entry, read in the same round trip."""
        names = Names(namespace)
        read = self._call(lambda client: self._topology.lookup_query(client, names, key.hex()))
        pairs = None if read is None else self._opened(names, read.objects)
        self._tally.count(namespace, miss=pairs is None)
        if read is None or pairs is None:
            return None
        studies = _assemble([(address_of(line), data) for line, data in pairs])
        return Found(studies, max(0, read.left_ms) / 1000)

    # -- stale copies and flights (issue 13), all in the namespace's slot ----------------

    def store_stale(
        self, namespace: str, key: bytes, document: bytes, keep: float, lease: int
    ) -> bool:
        """Keep the stale copy (``stale_write.lua``), sealed when values are."""
        names = Names(namespace)
        where = names.stale(key.hex())
        value = self._values.seal(where.encode(), document)
        args = [key.hex(), lease, _ms(keep), int(LEASE_SECONDS * 1_000_000), value]
        topology = self._topology
        return bool(self._call(lambda c: topology.eval(c, "stale_write", [names.ledger], args)))

    def lookup_stale(self, namespace: str, key: bytes) -> StaleCopy | None:
        """The stale copy, unless an invalidation of the namespace came since it was kept."""
        names = Names(namespace)
        topology = self._topology
        args = [key.hex()]
        read = StaleRead.parse(
            self._call(lambda c: topology.eval(c, "stale_read", [names.ledger], args))
        )
        if read is None:
            return None
        document = self._values.open(names.stale(key.hex()).encode(), read.value)
        if document is None:  # another key, altered, moved: as if not kept
            return None
        return StaleCopy(document, max(0, read.left_ms) / 1000, read.age_ms / 1000)

    def fly(self, namespace: str, key: bytes, holder: str, seconds: float) -> Flight:
        """One ``flight_take.lua``: SET NX PX of the flight key, unless an answer is stored."""
        names = Names(namespace)
        topology = self._topology
        args = [key.hex(), holder, _ms(seconds)]
        found = self._call(lambda c: topology.eval(c, "flight_take", [names.ledger], args))
        return Flight(found.decode() if isinstance(found, bytes) else found)

    def land(self, namespace: str, key: bytes, holder: str) -> None:
        """Delete the flight key if it is still ``holder``'s (``flight_land.lua``)."""
        names = Names(namespace)
        topology = self._topology
        args = [key.hex(), holder]
        self._call(lambda c: topology.eval(c, "flight_land", [names.ledger], args))

    def lookup_study(self, namespace: str, study_uid: str, level: Level) -> StudyData | None:
        """The study with exactly its complete content down to ``level``, or None."""
        found = self.study_answer(namespace, study_uid, level)
        return None if found is None else found.studies[0]

    def study_answer(self, namespace: str, study_uid: str, level: Level) -> Found | None:
        """``lookup_study`` with the PTTL of the listing it read, in the same round trip."""
        names = Names(namespace)
        read = self._call(
            lambda client: self._topology.lookup_study(client, names, study_uid, level)
        )
        base = escape(study_uid)
        pairs = self._opened(names, [(base + m, data) for m, data in read.objects])
        hit = read.hit and pairs is not None
        self._tally.count(namespace, miss=not hit)
        if not hit or pairs is None:
            return None
        study = _assemble([(address_of(line), data) for line, data in pairs])[0]
        return Found([study], max(0, read.left_ms) / 1000)

    def get_object(self, namespace: str, address: Address) -> CachedObject | None:
        """The object at ``address`` with whatever of its descendants is cached, or None."""
        if not 1 <= len(address) <= Level.INSTANCE:
            return None
        names = Names(namespace)
        keys, args = [names.study(address[0])], [member_of(address)]
        read = ObjectRead.parse(
            self._call(lambda client: self._topology.eval(client, "object_read", keys, args))
        )
        if read is None:
            return None
        where, values = self._where(names), self._values
        data = values.open(where(line_of(address)), read.data)
        if data is None:
            return None
        pairs: list[tuple[Address, bytes | None]] = [(address, data)]
        base = escape(address[0])
        for member, value in read.descendants:
            opened = values.open(where(base + member), value)
            if opened is not None:  # one that does not open is as if not cached
                pairs.append((in_study(address[0], member), opened))
        study = _assemble(pairs)[0]
        if len(address) == 1:
            return study
        series = study.series[0]
        return series if len(address) == 2 else series.instances[0]

    def _where(self, names: Names) -> Callable[[str], bytes]:
        """The key name each object's value is bound to, by its line (b"" when unsealed)."""
        return names.object_keys() if self._values.binds else _unbound

    def _opened(
        self, names: Names, lines: Sequence[tuple[str, bytes | None]]
    ) -> list[tuple[str, bytes | None]] | None:
        """Each object's attributes opened from its value (paths stay None), or None
        when one does not open: an answer stands or falls whole."""
        where, open_value = self._where(names), self._values.open
        opened: list[tuple[str, bytes | None]] = []
        for line, value in lines:
            if value is not None:
                value = open_value(where(line), value)
                if value is None:
                    return None
            opened.append((line, value))
        return opened

    # -- invalidation and stats -------------------------------------------------------

    def invalidate(self, namespace: str, address: Address | None, *, revoke: bool = True) -> int:
        """Drop an object and its descendants (or the whole namespace when address is
        None); returns how many objects were dropped.

        The invalidation is numbered first (``lease_revoke``, in the namespace's slot),
        so every lease handed out before it is refused by the stores it touches.
        """
        names = Names(namespace)
        topology = self._topology
        scope = "namespace" if address is None else "study"

        def number(client: Client) -> int:
            args = [scope, _LEASE_MS]
            return int(topology.eval(client, "lease_revoke", [names.leases], args))

        if address is None:

            def drop(client: Client) -> int:
                number(client)
                return self._invalidate_namespace(client, names)

            self._tally.forget(namespace)
            dropped = self._call(drop)
            self._unregister(namespace)
            return dropped
        if not 1 <= len(address) <= Level.INSTANCE:
            return 0
        keep_ms = _ms(LEASE_SECONDS)

        def work(client: Client) -> tuple[int, bool]:
            sequence = number(client) if revoke else 0
            keys = [names.study(address[0])]
            args = [member_of(address), sequence, keep_ms]
            gone = Invalidated.parse(topology.eval(client, "study_invalidate", keys, args))
            study = escape(address[0])
            forgotten = [study + member for member in gone.members]
            args = [sequence, keep_ms, *forgotten]
            empty = topology.eval(client, "namespace_forget", [names.ledger], args)
            return gone.dropped, bool(empty)

        dropped, empty = self._call(work)
        if empty:  # the namespace holds nothing now: it goes from the registry too
            self._unregister(namespace)
        return dropped

    def _unregister(self, namespace: str) -> None:
        """Take a namespace off the registry, best effort: its entry expires anyway."""
        self._tally.forget(namespace)
        with contextlib.suppress(BackendUnavailable):
            self._call(lambda client: client.zrem(REGISTRY, namespace))

    def _invalidate_namespace(self, client: Client, names: Names) -> int:
        """Delete every key of the namespace but its lease hash (SCAN on every node)."""
        dropped = 0
        keep = names.leases.encode()
        for node in self._topology.nodes(client):
            for pattern in names.patterns:
                batch = [k for k in node.scan_iter(match=pattern, count=1000) if k != keep]
                for start in range(0, len(batch), 500):
                    chunk = batch[start : start + 500]
                    pipe = node.pipeline(transaction=False)
                    for key in chunk:
                        pipe.unlink(key)
                    for key, gone in zip(chunk, pipe.execute(), strict=True):
                        dropped += int(gone) if is_object_key(key) else 0
        return dropped

    def stats(
        self, namespace: str | None, after: str | None = None, limit: int | None = None
    ) -> Stats:
        """Counters of one namespace, or a page of all when namespace is None.

        A page's ``total_bytes`` is the whole cache's: the byte counters of the
        namespaces outside the page are read too (one HGET each, pipelined).
        """
        with contextlib.suppress(BackendUnavailable):  # this process's counts, if it can
            self._flush()
        topology = self._topology

        def work(client: Client) -> Stats:
            others: list[str] = []
            if namespace is None:
                names = self._registered(client)
                found = stats_page(names, after, limit)
                page = set(found)
                others = [n for n in names if n not in page]
            else:
                found = [namespace]
            pipe = topology.pipeline(client)
            for name in found:
                topology.eval(client, "namespace_stats", [Names(name).ledger], [], into=pipe)
            replies = pipe.execute() if found else []
            result = Stats(max_bytes=self._max_bytes(client))
            for name, reply in zip(found, replies, strict=True):
                counts = NamespaceCounts.parse(reply)
                lookups = counts.counters.get("lookups", 0)
                misses = counts.counters.get("misses", 0)
                entry = NamespaceStats(
                    namespace=name,
                    studies=counts.studies,
                    series=counts.series,
                    instances=counts.instances,
                    queries=counts.queries,
                    bytes=max(0, counts.counters.get("bytes", 0)),
                    hits=max(0, lookups - misses),
                    misses=misses,
                    evictions=counts.counters.get("evictions", 0),
                    expirations=counts.counters.get("expirations", 0),
                )
                result.namespaces.append(entry)
                result.total_bytes += entry.bytes
            if others:
                pipe = topology.pipeline(client)
                for name in others:
                    pipe.hget(Names(name).counters, "bytes")
                result.total_bytes += sum(max(0, int(b or 0)) for b in pipe.execute())
            return result

        return self._call(work)

    def _max_bytes(self, client: Client) -> int:
        total = 0
        for node in self._topology.nodes(client):
            info = cast(dict[str, Any], node.info("memory"))  # sync client: a dict
            total += int(info.get("maxmemory", 0))
        return total

    def expire(self, max_items: int) -> int:
        """Nothing to reap: Redis expires keys by itself (the ledger is pruned on writes)."""
        return 0

    def close(self) -> None:
        """Write what the tally holds (best effort), stop its thread, release the pool."""
        self._closing.set()
        if self._flusher.is_alive():
            self._flusher.join()
        with contextlib.suppress(BackendUnavailable):
            self._flush()
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
