"""One Redis or a Redis Cluster: what the backend does differently on each.

    Topology     the calls that differ, chosen once by RedisBackend.from_url
    SingleNode   one Redis: every key in one place, so a read is one script
    Cluster      a Redis Cluster: a script reaches only its own slot, so reads that
                 span slots are pipelines, sent to each node holding a slot at once

Both are immutable, so thread-safe; neither keeps a client (the backend does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
import redis.client
import redis.cluster
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from dicomcache.server.backends.redis.names import NAMESPACES, Names, escape
from dicomcache.server.backends.redis.replies import QueryEntry, QueryRead, StudyRead
from dicomcache.server.backends.redis.scripts import SCRIPTS, SHA1
from dicomcache.server.model import Level

Client = redis.Redis | redis.cluster.RedisCluster
Pipeline = redis.client.Pipeline | redis.cluster.ClusterPipeline


def load_scripts(client: Client) -> None:
    """Load every script (on every primary of a cluster): Redis restarted without them."""
    for body in SCRIPTS.values():
        client.script_load(body)


def _study_read_args(names: Names, study_uid: str, level: Level) -> list[Any]:
    return [int(level), escape(study_uid), names.namespace]


class Topology(Protocol):
    """The calls that differ between one Redis and a Redis Cluster."""

    def connect(self) -> Client:
        """A new redis-py client (it connects lazily, on its first call)."""
        ...

    def pipeline(self, client: Client) -> Pipeline:
        """A pipeline without a transaction: its scripts are atomic one by one."""
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
        """A stored answer if every object it names is still the one recorded, else None.

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
        # One immediate retry: a pooled connection to a Redis that restarted is
        # dead, and the retry reconnects; a Redis that is down fails fast.
        return redis.Redis.from_url(self.url, retry=Retry(NoBackoff(), 1), **self.options)

    def pipeline(self, client: Client) -> Pipeline:
        return client.pipeline(transaction=False)

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
        keys = [names.ledger, NAMESPACES]
        args = [query_hex, names.objects, names.namespace]
        return QueryRead.parse(self.eval(client, "query_read", keys, args))

    def lookup_study(self, client: Client, names: Names, study_uid: str, level: Level) -> StudyRead:
        keys = [names.study(study_uid), names.ledger, NAMESPACES]
        args = _study_read_args(names, study_uid, level)
        return StudyRead.parse(self.eval(client, "study_read", keys, args))


@dataclass(frozen=True, slots=True)
class Cluster:
    """A Redis Cluster: a query hit is two round trips, a study hit one pipeline."""

    url: str = field(repr=False)  # may hold a password
    options: dict[str, Any] = field(repr=False)

    def connect(self) -> Client:
        return redis.cluster.RedisCluster.from_url(
            self.url, retry=Retry(NoBackoff(), 1), **self.options
        )

    def pipeline(self, client: Client) -> Pipeline:
        return client.pipeline()

    def eval(
        self,
        client: Client,
        name: str,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        into: Pipeline | None = None,
    ) -> Any:
        """In a pipeline the node is named: otherwise redis-py asks a server for the
        script's keys (``COMMAND GETKEYS``), one more round trip per call (and cluster
        pipelines accept EVALSHA only this way)."""
        command = ("EVALSHA", SHA1[name], len(keys), *keys, *args)
        if into is None:
            return client.execute_command(*command)  # type: ignore[no-untyped-call]  # unannotated in redis-py
        assert isinstance(client, redis.cluster.RedisCluster)
        node = client.get_node_from_key(keys[0])  # type: ignore[no-untyped-call]  # unannotated in redis-py
        return into.execute_command(*command, target_nodes=node)  # type: ignore[no-untyped-call]  # unannotated in redis-py

    def nodes(self, client: Client) -> list[redis.Redis]:
        assert isinstance(client, redis.cluster.RedisCluster)
        primaries = client.get_primaries()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        return [node.redis_connection for node in primaries]

    def lookup_query(self, client: Client, names: Names, query_hex: str) -> QueryRead | None:
        """The entry (namespace slot), then one MGET per study (their slots), checked here."""
        pipe = self.pipeline(client)
        self.eval(client, "query_entry", [names.ledger], [query_hex], into=pipe)
        pipe.sadd(NAMESPACES, names.namespace)
        entry = QueryEntry.parse(pipe.execute()[0])
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
            args = [query_hex, entry.raw, *missing]
            self.eval(client, "namespace_miss", [names.ledger], args)
            return None
        return QueryRead([(address, data.get(address)) for address, _ in entry.lines])

    def lookup_study(self, client: Client, names: Names, study_uid: str, level: Level) -> StudyRead:
        """The study's script beside the counters (the namespace's slot), in one pipeline."""
        study_key = names.study(study_uid)
        args = _study_read_args(names, study_uid, level)
        pipe = self.pipeline(client)
        self.eval(client, "study_read", [study_key], args, into=pipe)
        pipe.hincrby(names.counters, "lookups", 1)
        pipe.sadd(NAMESPACES, names.namespace)
        reply, *counted = pipe.execute(raise_on_error=False)
        for error in (reply, *counted):
            if isinstance(error, Exception) and not isinstance(error, NoScriptError):
                raise error
        if isinstance(reply, NoScriptError):  # the lookup is counted already: not again
            load_scripts(client)
            reply = self.eval(client, "study_read", [study_key], args)
        read = StudyRead.parse(reply)
        if not read.hit:
            self.eval(client, "namespace_miss", [names.ledger], ["", "", *read.missing])
        return read
