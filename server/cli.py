"""The ``dicomcache`` command: ``dicomcache serve [flags]``.

Every setting is a flag and a DICOMCACHE_* variable; a flag wins over the variable.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any, get_origin

from pydantic import ByteSize, ValidationError

from dicomcache.server import logs, process
from dicomcache.server.app import CacheServer
from dicomcache.server.auth.policy import PolicyError
from dicomcache.server.backends.memory.resident import resident_bytes
from dicomcache.server.backends.redis.keyfile import KeyFileError
from dicomcache.server.config import Settings
from dicomcache.server.upstreams.config import UpstreamConfigError, describe

log = logging.getLogger("dicomcache")

# How long a thread may hold the interpreter lock while others wait (Python's
# default is 5 ms). zlib lets go of it on every call, so a write that packs 80
# instances would wait up to 80 switch intervals whenever another thread is busy:
# 200 ms at the default, near a client's deadline. A server process wants short,
# fair turns; the cost is a little more switching.
SWITCH_INTERVAL = 0.0005


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dicomcache", description="A gRPC cache for DICOM query answers."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the cache server",
        description="Run the cache server. Every flag can also be set through the "
        "environment variable named beside it.",
    )
    for name, field in Settings.model_fields.items():
        default = (
            field.default.get_secret_value()
            if hasattr(field.default, "get_secret_value")
            else field.default
        )
        shown = "***" if "password" in name and default else default
        if get_origin(field.annotation) is list:  # repeatable: each use adds an entry
            serve.add_argument(
                f"--{name.replace('_', '-')}",
                dest=name,
                metavar=name.upper(),
                action="append",
                help=f"{field.description} [env DICOMCACHE_{name.upper()}; repeatable]",
            )
            continue
        if field.annotation is bool:  # a switch: given means true
            serve.add_argument(
                f"--{name.replace('_', '-')}",
                dest=name,
                action="store_const",
                const=True,
                help=f"{field.description} [env DICOMCACHE_{name.upper()}=true]",
            )
            continue
        serve.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            metavar=name.upper(),
            help=f"{field.description} [env DICOMCACHE_{name.upper()}; default {shown}]",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = _parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            print(f"dicomcache: {where}: {error['msg']}", file=sys.stderr)
        return 2
    auto_memory = settings.max_memory == "auto"
    if auto_memory:
        try:  # resolved once, here: the limit is stated at start and never changes after
            settings = settings.model_copy(
                update={"max_memory": ByteSize(settings.max_memory_bytes())}
            )
        except ValueError as exc:
            print(f"dicomcache: {exc}", file=sys.stderr)
            return 2
    if settings.tracing:
        try:
            import opentelemetry.exporter.otlp.proto.grpc.trace_exporter
            import opentelemetry.sdk.trace  # noqa: F401
        except ImportError:
            print(
                "dicomcache: tracing: needs the 'tracing' extra: pip install 'dicomcache[tracing]'",
                file=sys.stderr,
            )
            return 2
    return serve(settings, auto_memory=auto_memory)


def serve(settings: Settings, auto_memory: bool = False) -> int:
    """Run until SIGTERM or SIGINT, keep serving for ``shutdown_delay``, drain, exit 0.

    The process is the server's alone, so this is where process-wide settings are
    made: logging, signal handlers and the thread switch interval. ``auto_memory``
    says that ``max_memory`` came from the cgroup limit, to say so at start.
    """
    logs.configure(settings.log_format, settings.log_level)

    sys.setswitchinterval(SWITCH_INTERVAL)
    process.tune()  # the collector's and the allocator's settings: see ``process``
    # Handlers first: whoever reads the startup line may signal at once.
    stop = threading.Event()

    hurry = threading.Event()  # a second signal: no more delay

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        (hurry if stop.is_set() else stop).set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    provider = _tracer_provider() if settings.tracing else None
    try:
        # The process is the server's alone: the cache's bound holds for its resident set.
        server = CacheServer(settings, tracer_provider=provider, resident=resident_bytes).start()
    except PolicyError as exc:  # names the entry and the rule, never a token
        print(f"dicomcache: auth_policy_file: {exc}", file=sys.stderr)
        return 2
    except UpstreamConfigError as exc:  # names the setting, never a credential
        print(f"dicomcache: {exc}", file=sys.stderr)
        return 2
    except KeyFileError as exc:  # names the file, the line and the rule, never a key
        print(f"dicomcache: redis_encryption_key_file: {exc}", file=sys.stderr)
        return 2
    host = settings.listen.rsplit(":", 1)[0]
    log.info(
        "dicomcache serving on %s:%d backend=%s ttl=%gs negative_ttl=%gs max_memory=%d%s "
        "max_message_bytes=%d max_answer_bytes=%d max_concurrent_rpcs=%d workers=%d grace=%gs "
        "log_format=%s "
        "transport=%s authorization=%s health=%s upstreams=%s http=%s",
        host,
        server.port,
        settings.redacted_backend(),
        settings.ttl,
        settings.negative_ttl,
        settings.max_memory,
        f" (auto: {settings.max_memory_fraction:g} of the cgroup limit)" if auto_memory else "",
        settings.max_message_bytes,
        max(settings.max_answer_bytes, settings.max_message_bytes),
        settings.max_concurrent_rpcs,
        settings.workers,
        settings.grace,
        settings.log_format,
        _transport(settings),
        "policy" if settings.auth_policy_file else "none",
        f"{settings.health_listen.rsplit(':', 1)[0]}:{server.health_port}"
        if settings.health_listen
        else "on the serving port",
        describe(server.upstreams),
        f"{server.http.scheme}://{settings.http_listen.rsplit(':', 1)[0]}:{server.http_port}"
        if server.http is not None and settings.http_listen
        else "off",
    )
    stop.wait()
    if settings.shutdown_delay:
        server.announce_stop()
        log.info("reporting NOT_SERVING, still serving for %gs", settings.shutdown_delay)
        hurry.wait(settings.shutdown_delay)
    server.stop()
    if provider is not None:
        provider.shutdown()  # the last spans leave before the process does
    log.info("stopped")
    return 0


def _tracer_provider() -> Any:
    """An OpenTelemetry SDK provider exporting over OTLP, set by the OTEL_* variables."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "dicomcache"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def _transport(settings: Settings) -> str:
    """How callers reach the server: plaintext, TLS, or mutual TLS."""
    if settings.tls_cert_file is None:
        return "plaintext"
    return "mtls" if settings.tls_client_ca_file else "tls"


if __name__ == "__main__":
    sys.exit(main())
