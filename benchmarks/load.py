"""The load generator: raw gRPC calls from a separate process, alternating what is compared.

The server figures must not include the cost of the benchmark itself, so calls
go out as ready-made request bytes and come back as bytes, unparsed; and the
generator runs in its own spawned process (``elsewhere``), so it never competes
with the server for one interpreter lock. Calls being compared alternate call by
call (latency) or window by window (throughput), with the order rotated each
round: a noisy neighbour on the shared machine hits every kind alike.

Clock: ``time.perf_counter`` for every sample.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, TypeVar

import grpc
import grpc.aio

from dicomcache.client.credentials import ClientTLS

T = TypeVar("T")

_OPTIONS = [("grpc.max_receive_message_length", 512 * 1024**2)]


@dataclass(frozen=True)
class Call:
    """One kind of call: a server, a full method name and the request's bytes.

    ``tls`` makes the call over TLS (mutual with a client certificate), as
    ``CacheClient`` would; ``metadata`` goes with every call (a bearer token).
    """

    label: str
    target: str
    method: str
    payload: bytes
    tls: ClientTLS | None = None
    metadata: tuple[tuple[str, str], ...] | None = None


def open_channel(call: Call) -> grpc.Channel:
    """A channel to the call's server, secure when the call says so."""
    if call.tls is None:
        return grpc.insecure_channel(call.target, options=_OPTIONS)
    options = [*_OPTIONS, *call.tls.channel_options()]
    return grpc.secure_channel(call.target, call.tls.channel_credentials(), options)


def elsewhere(function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` in a fresh spawned process and return its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def _rotated(calls: Sequence[Call], shift: int) -> list[Call]:
    shift %= len(calls)
    return [*calls[shift:], *calls[:shift]]


def alternating_latency(
    calls: Sequence[Call], rounds: int, warmup: int = 50
) -> dict[str, list[float]]:
    """Seconds per call with one call in flight, the kinds taking turns call by call.

    Returns:
        Each label's samples, ``rounds`` of them.
    """
    channels = {c.label: open_channel(c) for c in calls}
    try:
        stubs = {c.label: channels[c.label].unary_unary(c.method) for c in calls}
        samples: dict[str, list[float]] = {c.label: [] for c in calls}
        for i in range(warmup + rounds):
            for call in _rotated(calls, i):
                stub = stubs[call.label]
                start = time.perf_counter()
                stub(call.payload, timeout=60, metadata=call.metadata)
                elapsed = time.perf_counter() - start
                if i >= warmup:
                    samples[call.label].append(elapsed)
        return samples
    finally:
        for channel in channels.values():
            channel.close()


def windowed_throughput(
    calls: Sequence[Call], in_flight: int, window: float, rounds: int
) -> dict[str, list[float]]:
    """Calls per second with ``in_flight`` calls outstanding, the kinds taking turns per window.

    Returns:
        Each label's throughput in each of ``rounds`` windows of ``window`` seconds.
    """
    return asyncio.run(_windows(calls, in_flight, window, rounds))


async def _windows(
    calls: Sequence[Call], in_flight: int, window: float, rounds: int
) -> dict[str, list[float]]:
    channels = {c.target: grpc.aio.insecure_channel(c.target, options=_OPTIONS) for c in calls}
    try:
        stubs = {c.label: channels[c.target].unary_unary(c.method) for c in calls}
        results: dict[str, list[float]] = {c.label: [] for c in calls}
        for call in calls:  # warm up every kind
            await _window(stubs[call.label], call.payload, in_flight, window / 4)
        for i in range(rounds):
            for call in _rotated(calls, i):
                done, elapsed = await _window(stubs[call.label], call.payload, in_flight, window)
                results[call.label].append(done / elapsed)
        return results
    finally:
        for channel in channels.values():
            await channel.close()


async def _window(
    stub: grpc.aio.UnaryUnaryMultiCallable, payload: bytes, in_flight: int, seconds: float
) -> tuple[int, float]:
    """Keep ``in_flight`` calls going for ``seconds``; count every call that finished."""
    start = time.perf_counter()
    deadline = start + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await stub(payload, timeout=60)
            done += 1

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return done, time.perf_counter() - start
