"""The thread that reads a NearCache's watch stream and starts a new one when it ends."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import grpc

from dicomcache.client.errors import CacheError

if TYPE_CHECKING:
    from dicomcache.client.cache_client import CacheClient
    from dicomcache.client.near.cache import NearCache

log = logging.getLogger(__name__)

FIRST_RETRY = 0.05  # seconds before a new stream after one ended; doubled each time
LAST_RETRY = 2.0
# Refusals that will not heal in seconds: the right is missing, the server is old
# (no WatchInvalidations) or watches as many streams as it may.
_SLOW_RETRY = 30.0
_REFUSALS = frozenset(
    {
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


class StreamWatcher:
    """Feeds one NearCache from ``WatchInvalidations`` of one namespace.

    Thread-safe: ``cancel`` and ``stop`` may come from any thread. A daemon thread;
    its waits are ``threading.Event`` timeouts (monotonic).
    """

    def __init__(self, near: NearCache, client: CacheClient, namespace: str) -> None:
        self._near = near
        self._client = client
        self._namespace = namespace
        self._stopping = threading.Event()
        self._call: Any = None
        self._lock = threading.Lock()
        self.streams = 0  # streams opened: for tests
        self._thread = threading.Thread(
            target=self._run, name=f"near-cache {namespace}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        """End the current stream (a new one follows)."""
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()

    def stop(self) -> None:
        """End the stream and the thread."""
        self._stopping.set()
        self.cancel()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        retry = FIRST_RETRY
        told = ""
        while not self._stopping.is_set():
            reason, synced = self._follow()
            self._near.lost(reason)
            if synced:
                retry, told = FIRST_RETRY, ""
            refused = reason in {c.name for c in _REFUSALS}
            if refused and reason != told:  # once per refusal, not per retry
                log.info("near cache of namespace %s: watch refused (%s)", self._namespace, reason)
                told = reason
            wait = _SLOW_RETRY if refused else retry
            retry = min(retry * 2, LAST_RETRY)
            self._stopping.wait(wait)

    def _follow(self) -> tuple[str, bool]:
        """Read one stream until it ends; returns why, and whether it was ever in sync."""
        synced = False
        try:
            call = self._client.watch_invalidations(self._namespace)
            with self._lock:
                self._call = call
            if self._stopping.is_set():
                call.cancel()
            for message in call:
                if not synced:
                    if message.sequence != 0 or message.WhichOneof("kind") != "heartbeat":
                        return "the stream did not begin with a heartbeat", synced
                    self._near.synced(message.heartbeat.heartbeat_deadline_ms / 1000)
                    synced = True
                    continue
                if message.WhichOneof("kind") == "invalidation":
                    change = message.invalidation
                    kept = self._near.heard(message.sequence, change.protocol, change.study_uid)
                else:
                    kept = self._near.heard(message.sequence, None, "")
                if not kept:
                    call.cancel()
                    return "out of sync", synced
            return "the stream ended", synced
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            return (code.name if code is not None else "stream error"), synced
        except CacheError as exc:
            return type(exc).__name__, synced
        finally:
            with self._lock:
                self._call = None
