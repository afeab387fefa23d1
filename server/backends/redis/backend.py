"""The Redis backend: one cache shared by every server on a Redis or a Redis Cluster.

Each object is its own key with Redis's own TTL (``PX``), so every replica agrees
on what has expired and each object expires on its own. All keys of one study
carry the study's hash tag, so a study lives in one slot and is written by one Lua
script, atomically: no reader sees half a study. Query entries and the per
namespace counters carry the namespace's hash tag. Key names hold the schema
version and the namespace, never query values: a query is named by the hex of its
key, which is already a hash. The key layout is drawn in ``redis_scripts.py``.

Round trips: on a single Redis a query hit is one ``EVALSHA`` (the entry and all
its objects read and checked by one script), and so is a study hit. On a Redis
Cluster the entry lives in the namespace's slot, not its studies', so a query hit
costs one call for the entry, then one pipeline of one ``MGET`` per study, sent to
every node holding one at once: two round trips. A study hit on a cluster is one
pipeline (the study's script, and the counter in the namespace's slot beside it).
A miss that finds a dead entry costs one more call to drop it. ``add_objects`` and
``store_study`` are one pipeline; ``store_query`` two (the entry names each object
by the token its write returned, so it is written after them).

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
``maxmemory-policy volatile-ttl``: every cache key has a TTL and the ledger keys
have none, so the ledger is never evicted, and a study's index key (its longest
TTL) goes last.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import string
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit, urlunsplit

import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    MovedError,
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

from dicomcache.server.backends.redis.scripts import SCRIPTS
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
    MovedError,  # slots moving (resharding): the next call uses the refreshed map
    AskError,
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


def _in_study(study_uid: str, member: str) -> Address:
    """The address of a member ('', ':<series>', ...) of a study."""
    return (study_uid, *(unquote(part) for part in member.split(":")[1:]))


def _data(value: bytes) -> bytes:
    """An object's attributes, without the token stored before them."""
    return value.partition(b"|")[2]


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
        if ttl <= 0 or negative_ttl <= 0:
            raise ValueError("ttl and negative_ttl must be positive")
        self.ttl = ttl
        self.negative_ttl = min(negative_ttl, ttl)
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._sha = {
            name: hashlib.sha1(body.encode()).hexdigest() for name, body in SCRIPTS.items()
        }
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
                    plain_url, retry=Retry(NoBackoff(), 1), **kwargs
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
                self._load_scripts(client)
                return work(client)

    @staticmethod
    def _load_scripts(client: Client) -> None:
        """Load every script (on every primary of a cluster): Redis restarted without them."""
        for body in SCRIPTS.values():
            client.script_load(body)

    def _eval(self, target: Any, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA on a client or a pipeline (cluster pipelines accept it only this way).

        In a cluster pipeline the node is named: otherwise redis-py asks a server
        for the script's keys (``COMMAND GETKEYS``), one more round trip per call.
        """
        options: dict[str, Any] = {}
        if self._cluster and isinstance(target, redis.cluster.ClusterPipeline):
            client = self._redis()
            assert isinstance(client, redis.cluster.RedisCluster)
            node = client.get_node_from_key(keys[0])  # type: ignore[no-untyped-call]  # unannotated
            options["target_nodes"] = node
        return target.execute_command(
            "EVALSHA", self._sha[name], len(keys), *keys, *args, **options
        )

    def _pipeline(self, client: Client) -> Any:
        return client.pipeline(transaction=False) if not self._cluster else client.pipeline()

    # -- writes -----------------------------------------------------------------------

    def _ttl(self, ttl: float | None) -> float:
        return self.ttl if ttl is None else min(ttl, self.ttl)

    def _write(
        self,
        names: _Names,
        studies: Sequence[StudyData],
        ttl: float,
        depth: int = 0,
        query: tuple[bytes, float] | None = None,
    ) -> int:
        """Write studies (one atomic script each), then the ledger and a query entry.

        The entry names each object with the token its write returned, so it goes in
        a second call, after every object it lists is in place.
        """
        ttl_ms = _ms(ttl)

        def work(client: Client) -> int:
            pipe = self._pipeline(client)
            written: list[tuple[str, int]] = []
            for study in studies:
                items: list[str | bytes] = []
                for address, value in _objects([study]):
                    member = _member(address)
                    if value is None:
                        items += [member, "p", b""]
                    else:
                        items += [member, "o", value]
                        written.append((_line(address), len(value)))
                self._eval(pipe, "study_write", [names.study(study.uid)], [ttl_ms, depth, *items])
            if query is not None:
                replies = pipe.execute() if studies else []
                pipe = self._pipeline(client)
                entry = self._entry(studies, replies)
                args: list[Any] = [query[0].hex(), _ms(query[1]), entry]
            else:
                args = ["", 0, ""]
            flat = [item for pair in written for item in pair]
            self._eval(pipe, "namespace_write", [names.ledger], [ttl_ms, *args, *flat])
            pipe.sadd(_NAMESPACES, names.namespace)
            pipe.execute()
            return len(written)

        return self._call(work)

    @staticmethod
    def _entry(studies: Sequence[StudyData], replies: Sequence[Any]) -> str:
        """A query entry: each address of the answer with the token of its object."""
        lines = []
        for study, reply in zip(studies, replies, strict=True):
            tokens = {m.decode(): t.decode() for m, t in zip(reply[::2], reply[1::2], strict=True)}
            for address, value in _objects([study]):
                token = tokens[_member(address)] if value is not None else ""
                lines.append(f"{_line(address)}|{token}")
        return "\n".join(lines)

    def add_objects(self, namespace: str, studies: Sequence[StudyData], ttl: float | None) -> int:
        """Add objects and their descendants; returns how many objects were written."""
        return self._write(_Names(namespace), studies, self._ttl(ttl))

    def store_query(
        self, namespace: str, key: bytes, studies: Sequence[StudyData], ttl: float | None
    ) -> None:
        """Store the objects of an answer, then the answer as the list of their addresses."""
        keep = self._ttl(ttl)
        entry_ttl = keep if studies else min(keep, self.negative_ttl)
        self._write(_Names(namespace), studies, keep, query=(key, entry_ttl))

    def store_study(
        self, namespace: str, study: StudyData, level: Level, ttl: float | None
    ) -> None:
        """Store a study-by-id answer and its listing complete down to ``level``.

        As in the memory backend, listings of other depths that saw other children
        at the depth both cover are dropped.
        """
        self._write(_Names(namespace), [study], self._ttl(ttl), depth=int(level))

    # -- reads ------------------------------------------------------------------------

    def lookup_query(self, namespace: str, key: bytes) -> list[StudyData] | None:
        """The studies of a stored answer, or None on a miss ([] is a cached empty answer)."""
        names = _Names(namespace)
        if self._cluster:
            return self._call(lambda client: self._lookup_query_cluster(client, names, key.hex()))
        reply = self._call(
            lambda client: self._eval(
                client,
                "query_read",
                [names.ledger, _NAMESPACES],
                [key.hex(), names.objects, namespace],
            )
        )
        if reply is None:
            return None
        lines = reply[0].decode().split("\n") if reply[0] else []
        return _assemble(
            [
                (_parse(line.split("|", 1)[0]), value)
                for line, value in zip(lines, reply[1:], strict=True)
            ]
        )

    def _lookup_query_cluster(
        self, client: Client, names: _Names, query_hex: str
    ) -> list[StudyData] | None:
        pipe = self._pipeline(client)
        self._eval(pipe, "query_entry", [names.ledger], [query_hex])
        pipe.sadd(_NAMESPACES, names.namespace)
        entry = pipe.execute()[0]
        if entry is None:
            return None
        lines = [line.split("|", 1) for line in entry.decode().split("\n")] if entry else []
        by_study: dict[str, list[tuple[str, str]]] = {}
        for address, token in lines:
            if token:
                by_study.setdefault(address.split(":", 1)[0], []).append((address, token))
        pipe = self._pipeline(client)
        for study, objects in by_study.items():
            base = f"{names.objects}{{{study}}}:o"
            pipe.execute_command("MGET", *(base + address[len(study) :] for address, _ in objects))
        data: dict[str, bytes] = {}
        missing: list[str] = []
        stale = False
        for objects, values in zip(
            by_study.values(), pipe.execute() if by_study else [], strict=True
        ):
            for (address, token), value in zip(objects, values, strict=True):
                if value is None:
                    missing.append(address)
                    continue
                found, _, attributes = value.partition(b"|")
                if found.decode() == token:
                    data[address] = attributes
                else:
                    stale = True
        if missing or stale:
            self._eval(client, "namespace_miss", [names.ledger], [query_hex, entry, *missing])
            return None
        return _assemble([(_parse(address), data.get(address)) for address, _ in lines])

    def lookup_study(self, namespace: str, study_uid: str, level: Level) -> StudyData | None:
        """The study with exactly its complete content down to ``level``, or None."""
        names = _Names(namespace)
        study_key = names.study(study_uid)
        args = [int(level), escape(study_uid), namespace]

        def work(client: Client) -> Any:
            if not self._cluster:
                return self._eval(
                    client, "study_read", [study_key, names.ledger, _NAMESPACES], args
                )
            pipe = self._pipeline(client)
            self._eval(pipe, "study_read", [study_key], args)
            pipe.hincrby(names.ledger + "n", "lookups", 1)
            pipe.sadd(_NAMESPACES, namespace)
            reply, *counted = pipe.execute(raise_on_error=False)
            for error in (reply, *counted):
                if isinstance(error, Exception) and not isinstance(error, NoScriptError):
                    raise error
            if isinstance(reply, NoScriptError):  # the lookup is counted already: not again
                self._load_scripts(client)
                reply = self._eval(client, "study_read", [study_key], args)
            if reply[0] == 0:
                self._eval(client, "namespace_miss", [names.ledger], ["", "", *reply[1:]])
            return reply

        reply = self._call(work)
        if reply[0] == 0:
            return None
        pairs = [
            (_in_study(study_uid, member.decode()), value)
            for member, value in zip(reply[1::2], reply[2::2], strict=True)
        ]
        return _assemble(pairs)[0]

    def get_object(self, namespace: str, address: Address) -> CachedObject | None:
        """The object at ``address`` with whatever of its descendants is cached, or None."""
        if not 1 <= len(address) <= Level.INSTANCE:
            return None
        names = _Names(namespace)
        target = _member(address)
        reply = self._call(
            lambda client: self._eval(client, "object_read", [names.study(address[0])], [target])
        )
        if reply is None:
            return None
        pairs: list[tuple[Address, bytes | None]] = [(address, _data(reply[0]))]
        for member, value in zip(reply[1::2], reply[2::2], strict=True):
            pairs.append((_in_study(address[0], member.decode()), _data(value)))
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
        if not 1 <= len(address) <= Level.INSTANCE:
            return 0

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
            primaries = client.get_primaries()  # type: ignore[no-untyped-call]  # unannotated
            return [node.redis_connection for node in primaries]
        return [client]

    def _invalidate_namespace(self, client: Client, names: _Names) -> int:
        """Delete every key of the namespace but its counters (SCAN on every node)."""
        dropped = 0
        for node in self._nodes(client):
            for pattern in (names.objects + "*", names.ledger + "*"):
                batch = list(node.scan_iter(match=pattern, count=1000))
                for start in range(0, len(batch), 500):
                    chunk = batch[start : start + 500]
                    pipe = node.pipeline(transaction=False)
                    for key in chunk:
                        pipe.unlink(key)
                    for key, gone in zip(chunk, pipe.execute(), strict=True):
                        dropped += int(gone) if b"}:o" in key else 0
        client.srem(_NAMESPACES, names.namespace)
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
            for name, reply in zip(found, replies, strict=True):
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
            info = cast(dict[str, Any], node.info("memory"))  # sync client: a dict
            total += int(info.get("maxmemory", 0))
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
