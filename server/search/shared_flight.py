"""One archive request per answer across the servers that share a backend.

The in-process single flight (``flights``) makes the concurrent identical misses
of one server one fetch; its leader then takes the backend's flight for the
request (``Backend.fly``: on Redis a ``SET NX PX`` in the namespace's slot), so
that of all the servers sharing the storage one asks the archive. The others poll
``fly`` (one small script per poll, counting no lookup) until the answer is
stored, the flight is free (its holder failed, gave up, or crashed and the
flight ran out: they take the lead), or their own deadline passes. The flight
lasts the upstream's timeout plus a margin, so a crashed holder delays the
others by at most that.

Polling rather than a keyspace notification: a notification needs
``notify-keyspace-events`` configured on every Redis (and, on a cluster, a
subscription on the node of each slot), and a missed one would leave a waiter
asleep until its deadline; a poll every ``POLL_SECONDS`` costs one round trip per
waiting server (not per waiting call: the in-process flight has one leader) and
adds at most that much to the wait.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import NamedTuple

from dicomcache.server.backends import Backend, Flight
from dicomcache.server.clock import Clock, monotonic
from dicomcache.server.errors import BackendUnavailable
from dicomcache.server.search.flights import WaitTimeout

# How often a waiting server looks whether the answer is stored.
POLL_SECONDS = 0.02
# What a flight lasts beyond the upstream's timeout: the store after the fetch.
MARGIN_SECONDS = 2.0


class Boarded(NamedTuple):
    """How ``SharedFlight.boarding`` went."""

    led: bool  # this server holds the flight: it fetches; else an answer is stored
    waited: bool  # another server held the flight for a while first


class SharedFlight:
    """Takes, waits for and lands the backend's flights for one server.

    Thread-safe: holds no state but its random holder id (one per server, so two
    servers never take each other's flight for their own). Clock: the injected
    monotonic ``clock``, with ``sleep`` between polls.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        holder: str | None = None,
        clock: Clock = monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.backend = backend
        self.holder = holder if holder is not None else secrets.token_hex(8)
        self._clock = clock
        self._sleep = sleep
        self._poll = poll

    @contextmanager
    def boarding(
        self, namespace: str, key: bytes, seconds: float, deadline: float
    ) -> Iterator[Boarded]:
        """Lead the flight of ``key`` (``led``: fetch and store), or learn that
        another server stored its answer (not ``led``: look it up).

        A led flight is landed on leaving, whatever happened inside.

        Args:
            seconds: how long the flight lasts once taken (the fetch and the store).
            deadline: on ``clock``, when this caller stops waiting.
        Raises:
            WaitTimeout: another server held the flight past ``deadline``.
            BackendUnavailable: the storage did not answer (the caller then fetches).
        """
        boarded = self._wait(namespace, key, seconds, deadline)
        try:
            yield boarded
        finally:
            if boarded.led:
                with suppress(BackendUnavailable):  # the flight runs out by itself
                    self.backend.land(namespace, key, self.holder)

    def _wait(self, namespace: str, key: bytes, seconds: float, deadline: float) -> Boarded:
        waited = False
        while True:
            found = self.backend.fly(namespace, key, self.holder, seconds)
            if found is not Flight.WAIT:
                return Boarded(found is Flight.LEAD, waited)
            waited = True
            left = deadline - self._clock()
            if left <= 0:
                raise WaitTimeout("another server's fetch did not finish before the deadline")
            self._sleep(min(self._poll, left))
