"""The Redis backend: one cache shared by every server on a Redis or a Redis Cluster.

Each object is its own key with Redis's own TTL (``PX``), so every replica agrees
on what has expired and each object expires on its own. All keys of one study
carry the study's hash tag, so a study lives in one slot and is written by one Lua
script, atomically: no reader sees half a study. Query entries and the per
namespace counters carry the namespace's hash tag. Key names hold the schema
version and the namespace, never query values: a query is named by the hex of its
key, which is already a hash. The key layout is drawn in ``redis_scripts.py``.

Round trips: on a single Redis a query hit is one ``EVALSHA`` (the entry and all
its objects read by one script), and so is a study hit. On a Redis Cluster the
entry may live on another node than its studies, so a query hit costs one call
for the entry and one pipelined call that reads the studies grouped by node; a
study hit is one pipelined call (the study's script with the counter).

What is approximate (Redis does not say which namespace a key it evicted or
expired belonged to): live counts and bytes come from a ledger per namespace,
sorted sets scored by expiry, counted over Redis's ``TIME``; an object that Redis
evicts is taken off the ledger when a read finds it missing (counted as an
eviction), or else when its time runs out (counted as an expiration). On a Redis
Cluster the ledger and the data sit in different slots, so they are written in
separate calls rather than one transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import string
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from dicomcache.server.backends.redis_scripts import SCRIPTS
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

SCHEMA = "1"
_PREFIX = f"dc:{SCHEMA}:"
_NAMESPACES = f"{_PREFIX}namespaces"  # set of every namespace ever written
_SAFE = frozenset(string.ascii_letters + string.digits + "._/-")
_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    TryAgainError,
    BusyLoadingError,
    ReadOnlyError,
    OutOfMemoryError,
    RedisClusterException,
    OSError,
)
_T = TypeVar("_T")
Client = redis.Redis | redis.cluster.RedisCluster


def escape(text: str) -> str:
    """``text`` made safe for a key segment: no ':', braces, glob or blank characters.

    Anything outside ``[A-Za-z0-9._/-]`` becomes %XX of its UTF-8 bytes, so the
    mapping is one-to-one and a namespace or UID can never forge a hash tag or
    reach into another namespace's keys.
    """
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def _ms(seconds: float) -> int:
    """A TTL in whole milliseconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds * 1000))


@dataclass(frozen=True, slots=True)
class _Names:
    """The key names of one namespace."""

    namespace: str

    @property
    def objects(self) -> str:
        """What precedes a study's hash tag: ``dc:1:<ns>:``."""
        return f"{_PREFIX}{escape(self.namespace)}:"

    @property
    def ledger(self) -> str:
        """The base of the namespace's own keys: ``dc:1:{<ns>}:``."""
        return f"{_PREFIX}{{{escape(self.namespace)}}}:"

    def study(self, study_uid: str) -> str:
        """The base of a study's keys: ``dc:1:<ns>:{<study>}:``."""
        return f"{self.objects}{{{escape(study_uid)}}}:"


def _member(address: Address) -> str:
    """An object's name inside its study: '' for the study, ':<series>[:<instance>]'."""
    return "".join(":" + escape(uid) for uid in address[1:])


def _line(address: Address) -> str:
    """An address as stored in entries and the ledger: escaped UIDs joined by ':'."""
    return ":".join(escape(uid) for uid in address)


def _parse(line: str) -> Address:
    return tuple(unquote(part) for part in line.split(":"))


def _objects(studies: Sequence[StudyData]) -> Iterator[tuple[Address, bytes | None]]:
    """Every object of the trees in pre-order, with its attributes (None: a path only)."""
    for study in studies:
        yield (study.uid,), study.attributes
        for series in study.series:
            yield (study.uid, series.uid), series.attributes
            for instance in series.instances:
                yield (study.uid, series.uid, instance.uid), instance.attributes


def _assemble(pairs: Sequence[tuple[Address, bytes | None]]) -> list[StudyData]:
    """Rebuild study trees from (address, attributes) in any order that puts parents
    first; a descendant whose parent is absent hangs under a path-only parent."""
    studies: dict[str, tuple[bytes | None, dict[str, tuple[bytes | None, list[InstanceData]]]]]
    studies = {}
    for address, value in pairs:
        study_attrs, series_map = studies.setdefault(address[0], (None, {}))
        if len(address) == 1:
            studies[address[0]] = (value, series_map)
        elif len(address) == 2:
            series_map[address[1]] = (value, series_map.get(address[1], (None, []))[1])
        else:
            series_map.setdefault(address[1], (None, []))[1].append(
                InstanceData(address[2], value)
            )
    return [
        StudyData(
            uid,
            attrs,
            tuple(SeriesData(s_uid, s_attrs, tuple(inst)) for s_uid, (s_attrs, inst) in series.items()),
        )
        for uid, (attrs, series) in studies.items()
    ]


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn 'Redis cannot be reached' into BackendUnavailable; let bugs through."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise BackendUnavailable(f"redis: {type(exc).__name__}") from exc
    except ResponseError as exc:
        if str(exc).startswith(("OOM", "LOADING", "MASTERDOWN", "CLUSTERDOWN")):
            raise BackendUnavailable(f"redis: {str(exc)[:40]}") from exc
        raise


class RedisBackend:
    """A Backend on a Redis server or a Redis Cluster, shared by many dicomcache servers.

    Thread-safe: redis-py's connection pools hand each call its own connection.
    Clock: Redis's own (TTLs and ``TIME``), not the process's.
    """

    def __init__(
        self,
        connect: Callable[[], Client],
        *,
        cluster: bool,
        ttl: float,
        negative_ttl: float,
    ) -> None:
        """Args:
        connect: makes the redis-py client; called again until it succeeds, so a
            cluster that is down when the server starts is picked up later.
        cluster: whether the client is a RedisCluster.
        ttl: default seconds an object is kept.
        negative_ttl: seconds an empty answer is kept at most.
        """
        self._connect = connect
        self._cluster = cluster
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._sha = {name: hashlib.sha1(body.encode()).hexdigest() for name, body in SCRIPTS.items()}
        with contextlib.suppress(BackendUnavailable):
            self._redis()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        ttl: float,
        negative_ttl: float,
        socket_timeout: float = 0.25,
        **options: Any,
    ) -> RedisBackend:
        """A backend for ``redis://``, ``rediss://`` (TLS), ``redis+cluster://`` or
        ``rediss+cluster://`` (a seed node) URLs.

        Args:
            socket_timeout: seconds to connect or to wait for an answer before the
                call fails with BackendUnavailable.
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

            def connect() -> Client:
                return redis.cluster.RedisCluster.from_url(
                    plain_url,
                    retry=Retry(NoBackoff(), 1),
                    cluster_error_retry_attempts=1,
                    **kwargs,
                )

            return cls(connect, cluster=True, ttl=ttl, negative_ttl=negative_ttl)

        def connect_one() -> Client:
            # One immediate retry: a pooled connection to a Redis that restarted is
            # dead, and the retry reconnects; a Redis that is down fails fast.
            return redis.Redis.from_url(plain_url, retry=Retry(NoBackoff(), 1), **kwargs)

        return cls(connect_one, cluster=False, ttl=ttl, negative_ttl=negative_ttl)

    # -- plumbing ---------------------------------------------------------------------

    def _redis(self) -> Client:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                with _translated():
                    self._client = self._connect()
            return self._client

    def _call(self, work: Callable[[Client], _T]) -> _T:
        """Run ``work``; after a Redis restart (scripts gone) load them and run it again."""
        with _translated():
            client = self._redis()
            try:
                return work(client)
            except NoScriptError:
                for body in SCRIPTS.values():
                    client.script_load(body)
                return work(client)

    def _eval(self, target: Any, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA on a client or a pipeline (cluster pipelines accept it only this way)."""
        return target.execute_command("EVALSHA", self._sha[name], len(keys), *keys, *args)

    def _pipeline(self, client: Client) -> Any:
        return client.pipeline(transaction=False) if not self._cluster else client.pipeline()

    # -- writes -----------------------------------------------------------------------

    def _write_study(
        self,
        target: Any,
        names: _Names,
        study: StudyData,
        ttl_ms: int,
        listings: Sequence[str] = (),
    ) -> list[tuple[str, int]]:
        """Queue the study's script; returns the (address line, size) of what it writes."""
        pairs: list[str | bytes] = []
        written: list[tuple[str, int]] = []
        for address, value in _objects([study]):
            if value is not None:
                pairs += [_member(address), value]
                written.append((_line(address), len(value)))
        if written or listings:
            self._eval(
                target,
                "study_write",
                [names.study(study.uid)],
                [ttl_ms, len(listings), *listings, *pairs],
            )
        return written

    def _write_ledger(
        self,
        target: Any,
        names: _Names,
        ttl_ms: int,
        written: Sequence[tuple[str, int]],
        entry: tuple[str, int, str] | None = None,
    ) -> None:
        query_hex, entry_ttl, lines = entry if entry is not None else ("", 0, "")
        flat = [item for pair in written for item in pair]
        self._eval(
            target,
            "namespace_write",
            [names.ledger],
            [ttl_ms, query_hex, entry_ttl, lines, *flat],
        )
        target.sadd(_NAMESPACES, names.namespace)

    def _write(
        self,
        names: _Names,
        studies: Sequence[StudyData],
        ttl: float | None,
        listings: Sequence[str] = (),
        entry: tuple[str, int, str] | None = None,
    ) -> int:
        """Write studies, then their ledger and an optional query entry after them."""
        ttl_ms = _ms(self.ttl if ttl is None else ttl)

        def work(client: Client) -> int:
            pipe = self._pipeline(client)
            written: list[tuple[str, int]] = []
            for study in studies:
                written += self._write_study(pipe, names, study, ttl_ms, listings)
            if self._cluster and entry is not None:
                # Nodes run a cluster pipeline in parallel: the entry must only
                # appear once its objects are there, so it goes in a second call.
                pipe.execute()
                pipe = self._pipeline(client)
            self._write_ledger(pipe, names, ttl_ms, written, entry)
            pipe.execute()
            return len(written)

        return self._call(work)

    def add_objects(self, namespace: str, studies: Sequence[StudyData], ttl: float | None) -> int:
        """Add objects and their descendants; returns how many objects were written."""
        return self._write(_Names(namespace), studies, ttl)

    def store_query(
        self, namespace: str, key: bytes, studies: Sequence[StudyData], ttl: float | None
    ) -> None:
        """Store the objects of an answer, then the answer as the list of their addresses."""
        lines = "\n".join(_line(address) for address, _ in _objects(studies))
        entry_ttl = self.ttl if ttl is None else ttl
        if not studies:
            entry_ttl = min(entry_ttl, self.negative_ttl)
        self._write(_Names(namespace), studies, ttl, entry=(key.hex(), _ms(entry_ttl), lines))

    def store_study(self, namespace: str, study: StudyData, level: Level, ttl: float | None) -> None:
        """Store a study-by-id answer, with its listings complete down to ``level``.

        The listing of every depth up to ``level`` is rewritten from this answer (it
        is the freshest); deeper listings stay.
        """
        listings = [
            "\n".join(_member(a) for a, _ in _objects([study]) if 1 < len(a) <= depth)
            for depth in range(1, int(level) + 1)
        ]
        self._write(_Names(namespace), [study], ttl, listings=listings)

    # -- reads ------------------------------------------------------------------------

    def lookup_query(self, namespace: str, key: bytes) -> list[StudyData] | None:
        """The studies of a stored answer, or None on a miss ([] is a cached empty answer)."""
        names = _Names(namespace)
        if self._cluster:
            return self._call(lambda client: self._lookup_query_cluster(client, names, key.hex()))
        reply = self._call(
            lambda client: self._eval(
                client, "query_read", [names.ledger], [key.hex(), names.objects]
            )
        )
        if reply is None:
            return None
        lines = reply[0].decode().split("\n") if reply[0] else []
        return _assemble([(_parse(line), value) for line, value in zip(lines, reply[1:])])

    def _lookup_query_cluster(
        self, client: Client, names: _Names, query_hex: str
    ) -> list[StudyData] | None:
        entry = self._eval(client, "query_entry", [names.ledger], [query_hex])
        if entry is None:
            return None
        lines = entry.decode().split("\n") if entry else []
        by_study: dict[str, list[str]] = {}
        for line in lines:
            by_study.setdefault(line.split(":", 1)[0], []).append(line)
        pipe = self._pipeline(client)
        for study, study_lines in by_study.items():
            base = f"{names.objects}{{{study}}}:o"
            keys = [base + line[len(study) :] for line in study_lines]
            pipe.execute_command("MGET", *keys)
        values: dict[str, bytes | None] = {}
        for study_lines, replies in zip(by_study.values(), pipe.execute() if by_study else []):
            values.update(zip(study_lines, replies))
        missing = [line for line in lines if values[line] is None]
        if missing:
            self._eval(client, "namespace_miss", [names.ledger], [query_hex, entry, *missing])
            return None
        return _assemble([(_parse(line), values[line]) for line in lines])

    def lookup_study(self, namespace: str, study_uid: str, level: Level) -> StudyData | None:
        """The study with exactly its complete content down to ``level``, or None."""
        names = _Names(namespace)
        study_key = names.study(study_uid)
        study_line = _line((study_uid,))

        def work(client: Client) -> Any:
            if not self._cluster:
                return self._eval(
                    client, "study_read", [study_key, names.ledger], [int(level), study_line]
                )
            pipe = self._pipeline(client)
            self._eval(pipe, "study_read", [study_key], [int(level), study_line])
            pipe.hincrby(names.ledger + "n", "lookups", 1)
            reply = pipe.execute()[0]
            if reply[0] == 0:
                self._eval(client, "namespace_miss", [names.ledger], ["", "", *reply[1:]])
            return reply

        reply = self._call(work)
        if reply[0] == 0:
            return None
        members = reply[1].decode().split("\n") if reply[1] else []
        pairs: list[tuple[Address, bytes | None]] = [((study_uid,), reply[2])]
        for member, value in zip(members, reply[3:]):
            address = (study_uid, *_parse(member[1:]))
            if len(address) <= int(level):
                pairs.append((address, value))
        return _assemble(pairs)[0]

    def get_object(self, namespace: str, address: Address) -> CachedObject | None:
        """The object at ``address`` with whatever of its descendants is cached, or None."""
        names = _Names(namespace)
        target = _member(address)
        reply = self._call(
            lambda client: self._eval(client, "object_read", [names.study(address[0])], [target])
        )
        if reply is None:
            return None
        pairs: list[tuple[Address, bytes | None]] = [(address, reply[0])]
        for member, value in zip(reply[1::2], reply[2::2]):
            pairs.append(((address[0], *_parse(member.decode()[1:])), value))
        study = _assemble(pairs)[0]
        if len(address) == 1:
            return study
        series = study.series[0]
        return series if len(address) == 2 else series.instances[0]

    # -- invalidation and stats -------------------------------------------------------

    def invalidate(self, namespace: str, address: Address | None) -> int:
        """Drop an object and its descendants (or the whole namespace when address is
        None); returns how many objects were dropped."""
        names = _Names(namespace)
        if address is None:
            return self._call(lambda client: self._invalidate_namespace(client, names))

        def work(client: Client) -> int:
            reply = self._eval(
                client, "study_invalidate", [names.study(address[0])], [_member(address)]
            )
            study = escape(address[0])
            forgotten = [study + member.decode() for member in reply[1:]]
            self._eval(client, "namespace_forget", [names.ledger], forgotten)
            return int(reply[0])

        return self._call(work)

    def _nodes(self, client: Client) -> list[redis.Redis]:
        if isinstance(client, redis.cluster.RedisCluster):
            return [node.redis_connection for node in client.get_primaries()]  # type: ignore[misc]
        return [client]

    def _invalidate_namespace(self, client: Client, names: _Names) -> int:
        """Delete every key of the namespace but its counters (SCAN on every node)."""
        dropped = 0
        keep = names.ledger + "n"
        for node in self._nodes(client):
            for pattern in (names.objects + "*", names.ledger + "*"):
                batch = [k for k in node.scan_iter(match=pattern, count=1000) if k != keep.encode()]
                for start in range(0, len(batch), 500):
                    chunk = batch[start : start + 500]
                    pipe = node.pipeline(transaction=False)
                    for key in chunk:
                        pipe.unlink(key)
                    for key, gone in zip(chunk, pipe.execute()):
                        dropped += int(gone) if b"}:o" in key else 0
        counters = client.hgetall(keep)
        stale = int(counters.get(b"bytes", 0))
        if stale:
            client.hincrby(keep, "bytes", -stale)
        return dropped

    def stats(self, namespace: str | None) -> Stats:
        """Counters of one namespace, or of all when namespace is None."""

        def work(client: Client) -> Stats:
            if namespace is None:
                found = sorted(m.decode() for m in client.smembers(_NAMESPACES))  # type: ignore[union-attr]
            else:
                found = [namespace]
            pipe = self._pipeline(client)
            for name in found:
                self._eval(pipe, "namespace_stats", [_Names(name).ledger], [])
            replies = pipe.execute() if found else []
            result = Stats(max_bytes=self._max_bytes(client))
            for name, reply in zip(found, replies):
                counters = {
                    k.decode(): int(v) for k, v in zip(reply[4][::2], reply[4][1::2], strict=True)
                }
                lookups = counters.get("lookups", 0)
                misses = counters.get("misses", 0)
                entry = NamespaceStats(
                    namespace=name,
                    studies=int(reply[0]),
                    series=int(reply[1]),
                    instances=int(reply[2]),
                    queries=int(reply[3]),
                    bytes=max(0, counters.get("bytes", 0)),
                    hits=max(0, lookups - misses),
                    misses=misses,
                    evictions=counters.get("evictions", 0),
                    expirations=counters.get("expirations", 0),
                )
                result.namespaces.append(entry)
                result.total_bytes += entry.bytes
            return result

        return self._call(work)

    def _max_bytes(self, client: Client) -> int:
        total = 0
        for node in self._nodes(client):
            total += int(node.info("memory").get("maxmemory", 0))
        return total

    def expire(self, max_items: int) -> int:
        """Nothing to reap: Redis expires keys by itself (the ledger is pruned on writes)."""
        return 0

    def close(self) -> None:
        """Release the connection pool."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
