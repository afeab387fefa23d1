"""One Redis or a Redis Cluster: what the backend does differently on each.

    Topology     the calls that differ, chosen once by RedisBackend.from_url
    SingleNode   one Redis: every key in one place, so a read is one script
    Cluster      a Redis Cluster: a script reaches only its own slot, so reads that
                 span slots are pipelines, sent to each node holding a slot at once

A stalled Redis fails a call within one socket timeout (``--backend-timeout``),
because a timeout is never retried, by us or by redis-py: a retry would wait the
whole timeout again (0.5 s at 0.25 s), and on a cluster redis-py retries each
command of a failed pipeline one by one and the whole call after refreshing the
slot map (1.8 s measured). What is retried, once, is an error that comes at once:
a connection refused or reset (Redis restarted, a pooled connection is dead) and,
on a cluster, a slot that moved. A single Redis retries that in redis-py (it
reconnects the same connection); a cluster has redis-py retry nothing and the
backend runs the call once more (``retried``), after redis-py refreshed its slot map.

A new connection sends nothing before its first command (no ``CLIENT SETINFO``,
``_QUIET``): a reply it waited for would be one more timeout, and on a cluster a
connection that fails that way makes redis-py refresh its slot map through the
stalled node first, a second timeout. With AUTH or TLS a handshake is needed, and
a call that must open a new connection to a stalled cluster node may take two.

Both are immutable, so thread-safe; neither keeps a client (the backend does).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
import redis.client
import redis.cluster
from redis.backoff import NoBackoff
from redis.exceptions import AskError, MovedError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from dicomcache.server.backends.redis.errors import UNAVAILABLE
from dicomcache.server.backends.redis.names import Names, escape
from dicomcache.server.backends.redis.replies import QueryEntry, QueryRead, StudyRead
from dicomcache.server.backends.redis.scripts import SCRIPTS, SHA1
from dicomcache.server.model import Level

# No library name and version sent on connect (redis-py >= 7 names it driver_info).
_QUIET: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(redis.Redis.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)

Client = redis.Redis | redis.cluster.RedisCluster
Pipeline = redis.client.Pipeline | redis.cluster.ClusterPipeline


def load_scripts(client: Client) -> None:
    """Load every script (on every primary of a cluster): Redis restarted without them."""
    for body in SCRIPTS.values():
        client.script_load(body)


def _study_read_args(study_uid: str, level: Level) -> list[Any]:
    return [int(level), escape(study_uid)]


class Topology(Protocol):
    """The calls that differ between one Redis and a Redis Cluster."""

    def connect(self) -> Client:
        """A new redis-py client (it connects lazily, on its first call)."""
        ...

    def pipeline(self, client: Client) -> Pipeline:
        """A pipeline without a transaction: its scripts are atomic one by one."""
        ...

    def execute(self, client: Client, pipe: Pipeline, *, raise_on_error: bool = True) -> list[Any]:
        """Send a pipeline: each node its commands at once, one attempt, no redirections.

        With ``raise_on_error`` False, a node that failed gives its error as the
        reply of each of its commands (the others' replies are real).
        """
        ...

    def retried(self, error: Exception) -> bool:
        """Whether a call that failed with ``error`` (at once) is to run once more."""
        ...

    def eval(
        self,
        client: Client,
        name: str,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        into: Pipeline | None = None,
    ) -> Any:
        """Run script ``name`` (EVALSHA) on ``client``, or queue it ``into`` its pipeline."""
        ...

    def nodes(self, client: Client) -> list[redis.Redis]:
        """A client for every primary, for what Redis does per node (SCAN, INFO)."""
        ...

    def lookup_query(self, client: Client, names: Names, query_hex: str) -> QueryRead | None:
        """A stored answer if every object it names is still the one recorded, else None,
        with the PTTL of its entry read in the same round trip.

        Counts the lookup (and the miss), and drops a dead entry.
        """
        ...

    def lookup_study(self, client: Client, names: Names, study_uid: str, level: Level) -> StudyRead:
        """A study from its shallowest good listing; counts the lookup (and the miss)."""
        ...


@dataclass(frozen=True, slots=True)
class SingleNode:
    """One Redis: a query or study hit is one script call."""

    url: str = field(repr=False)  # may hold a password
    options: dict[str, Any] = field(repr=False)

    def connect(self) -> Client:
        # One immediate retry on a connection error only: a pooled connection to a
        # Redis that restarted is dead, and the retry reconnects it; a Redis that
        # is down fails fast. Not on a timeout: that would wait the timeout twice.
        retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        return redis.Redis.from_url(self.url, retry=retry, **_QUIET, **self.options)

    def pipeline(self, client: Client) -> Pipeline:
        return client.pipeline(transaction=False)

    def execute(self, client: Client, pipe: Pipeline, *, raise_on_error: bool = True) -> list[Any]:
        return pipe.execute(raise_on_error=raise_on_error)

    def retried(self, error: Exception) -> bool:
        return False  # redis-py retried the connection error already

    def eval(
        self,
        client: Client,
        name: str,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        into: Pipeline | None = None,
    ) -> Any:
        target = client if into is None else into
        command = ("EVALSHA", SHA1[name], len(keys), *keys, *args)
        return target.execute_command(*command)  # type: ignore[no-untyped-call]  # unannotated in redis-py

    def nodes(self, client: Client) -> list[redis.Redis]:
        assert isinstance(client, redis.Redis)
        return [client]

    def lookup_query(self, client: Client, names: Names, query_hex: str) -> QueryRead | None:
        args = [query_hex, names.objects]
        return QueryRead.parse(self.eval(client, "query_read", [names.ledger], args))

    def lookup_study(self, client: Client, names: Names, study_uid: str, level: Level) -> StudyRead:
        keys = [names.study(study_uid), names.ledger]
        args = _study_read_args(study_uid, level)
        return StudyRead.parse(self.eval(client, "study_read", keys, args))


@dataclass(frozen=True, slots=True)
class Cluster:
    """A Redis Cluster: a query hit is two round trips, a study hit one pipeline."""

    url: str = field(repr=False)  # may hold a password
    options: dict[str, Any] = field(repr=False)

    def connect(self) -> Client:
        # No retries in redis-py (it would retry timeouts): see ``retried``.
        return redis.cluster.RedisCluster.from_url(
            self.url, retry=Retry(NoBackoff(), 0), **_QUIET, **self.options
        )

    def pipeline(self, client: Client) -> Pipeline:
        return client.pipeline()

    def execute(self, client: Client, pipe: Pipeline, *, raise_on_error: bool = True) -> list[Any]:
        """Without redirections redis-py sends nothing again: not the commands of a
        node that timed out (each would wait the timeout once more), nor those a
        MOVED or ASK sent elsewhere; after those the slot map is refreshed and the
        error raised, for ``retried``."""
        assert isinstance(client, redis.cluster.RedisCluster)
        assert isinstance(pipe, redis.cluster.ClusterPipeline)
        strategy = getattr(pipe, "_execution_strategy", None)  # redis-py >= 6; < 6: command_stack
        stack = pipe.command_stack if strategy is None else strategy.command_queue
        try:
            replies: list[Any] = pipe.send_cluster_commands(  # type: ignore[no-untyped-call]  # unannotated in redis-py
                stack, raise_on_error=False, allow_redirections=False
            )
        finally:
            pipe.reset()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        errors = [reply for reply in replies if isinstance(reply, Exception)]
        if any(isinstance(error, (MovedError, AskError)) for error in errors):
            client.nodes_manager.initialize()
        if raise_on_error and errors:
            raise errors[0]
        return replies

    def retried(self, error: Exception) -> bool:
        """A connection refused or reset, or a moved slot: redis-py has refreshed its
        slot map (it does after a connection error; ``execute`` after MOVED)."""
        return isinstance(error, (RedisConnectionError, MovedError, AskError))

    def eval(
        self,
        client: Client,
        name: str,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        into: Pipeline | None = None,
    ) -> Any:
        """The node is named: otherwise redis-py asks a server for the script's keys
        (``COMMAND GETKEYS``), one more round trip per call (and cluster pipelines
        accept EVALSHA only this way). A MOVED reply is still followed."""
        command = ("EVALSHA", SHA1[name], len(keys), *keys, *args)
        assert isinstance(client, redis.cluster.RedisCluster)
        node = client.get_node_from_key(keys[0])  # type: ignore[no-untyped-call]  # unannotated in redis-py
        target = client if into is None else into
        return target.execute_command(*command, target_nodes=node)  # type: ignore[no-untyped-call]  # unannotated in redis-py

    def nodes(self, client: Client) -> list[redis.Redis]:
        assert isinstance(client, redis.cluster.RedisCluster)
        primaries = client.get_primaries()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        return [node.redis_connection for node in primaries]

    def lookup_query(self, client: Client, names: Names, query_hex: str) -> QueryRead | None:
        """The entry (GET, its own slot), then one MGET per study (their slots), checked
        here; a dead entry is dropped in its slot. Nothing else is touched."""
        pipe = self.pipeline(client)  # one key, so one node and one round trip
        pipe.get(names.query(query_hex))
        pipe.pttl(names.query(query_hex))
        value, left_ms = self.execute(client, pipe)
        entry = QueryEntry.parse(value, left_ms)
        if entry is None:
            return None
        by_study: dict[str, list[tuple[str, str]]] = {}
        for address, token in entry.lines:
            if token:
                by_study.setdefault(address.split(":", 1)[0], []).append((address, token))
        pipe = self.pipeline(client)
        for objects in by_study.values():
            keys = [names.object_key(address) for address, _ in objects]
            pipe.execute_command("MGET", *keys)  # type: ignore[no-untyped-call]  # unannotated in redis-py
        data: dict[str, bytes] = {}
        missing: list[str] = []
        stale = False
        replies = self.execute(client, pipe) if by_study else []
        for objects, values in zip(by_study.values(), replies, strict=True):
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
            args = [query_hex, entry.raw, *missing]
            self.eval(client, "namespace_miss", [names.ledger], args)
            return None
        found = [(address, data.get(address)) for address, _ in entry.lines]
        return QueryRead(found, entry.left_ms)

    def lookup_study(self, client: Client, names: Names, study_uid: str, level: Level) -> StudyRead:
        """The study's script alone (its slot). Objects it found missing are taken off
        the namespace's ledger, in another slot: best effort, a failure there fails
        nothing (the ledger also drops them when their time runs out)."""
        args = _study_read_args(study_uid, level)
        read = StudyRead.parse(self.eval(client, "study_read", [names.study(study_uid)], args))
        if read.missing:
            with contextlib.suppress(*UNAVAILABLE):
                self.eval(client, "namespace_miss", [names.ledger], ["", "", *read.missing])
        return read
