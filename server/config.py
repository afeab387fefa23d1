"""Settings of `dicomcache serve`: flags over DICOMCACHE_* variables over defaults."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import ByteSize, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from dicomcache.contract import MAX_ANSWER_BYTES, MAX_MESSAGE_BYTES
from dicomcache.server import cgroup


class Settings(BaseSettings):
    """Everything the server can be told. Immutable once built."""

    model_config = SettingsConfigDict(env_prefix="DICOMCACHE_", frozen=True, extra="forbid")

    listen: str = Field(
        "127.0.0.1:50051",
        description="host:port to listen on; a sidecar listens on loopback unless told otherwise "
        "(port 0 picks a free port)",
    )
    metrics_listen: str | None = Field(
        None,
        description="host:port of an HTTP listener serving Prometheus metrics at /metrics "
        "(off by default; namespace names, counts, sizes and durations, no patient data)",
    )
    # --- the QIDO-RS endpoint (issue 13): DICOMweb clients read through the cache ---
    http_listen: str | None = Field(
        None,
        description="host:port of the QIDO-RS endpoint for DICOMweb clients (GET "
        "/dicom-web/UPSTREAM/studies, /series, /instances, /studies/UID/series ...); off by "
        "default; a bare PORT listens on loopback; off loopback, as for --listen, it needs "
        "HTTPS (--tls-cert-file, --tls-key-file; the same files, re-read when they change) and "
        "authenticated callers (--tls-client-ca-file, or bearer tokens of --auth-policy-file), "
        "or --allow-insecure",
    )

    @field_validator("http_listen", mode="before")
    @classmethod
    def _http_listen_form(cls, value: Any) -> Any:
        # A bare port listens on loopback: what the endpoint answers is patient data.
        if isinstance(value, int | str) and str(value).strip().isdigit():
            return f"127.0.0.1:{str(value).strip()}"
        if isinstance(value, str) and not value.rpartition(":")[2].isdigit():
            raise ValueError("must be HOST:PORT, [IPv6]:PORT or a bare PORT (loopback)")
        return value

    @model_validator(mode="after")
    def _http_listen_secured(self) -> Settings:
        listen = self.http_listen
        if listen and not self.allow_insecure and not _loopback(listen) and not self.secured:
            raise ValueError(
                f"http_listen: {listen} is not a loopback address: off loopback, callers must be "
                "authenticated over HTTPS, or anyone who reaches the port can read every "
                "upstream through the cache. Set --tls-cert-file and --tls-key-file, and "
                "--tls-client-ca-file or --auth-policy-file (bearer tokens), or --allow-insecure"
            )
        return self

    log_summary_interval: float = Field(
        60.0,
        ge=0,
        description="seconds between INFO summary lines (calls, rates, errors, hit ratio); "
        "0 for none",
    )
    tracing: bool = Field(
        False,
        description="export OpenTelemetry traces over OTLP, configured by the standard "
        "OTEL_EXPORTER_OTLP_* variables (needs the 'tracing' extra)",
    )
    health_listen: str | None = Field(
        None,
        description="host:port of a plaintext port that serves only grpc.health.v1, for "
        "probes that cannot do TLS or reach loopback (Kubernetes grpc probes); health "
        "says nothing about the data, so it may listen anywhere",
    )
    backend: str = Field(
        "memory",
        description="storage: 'memory', redis://HOST:PORT/DB, rediss://... (TLS), "
        "redis+cluster://HOST:PORT (a seed node of a cluster)",
    )
    ttl: float = Field(600.0, gt=0, le=365 * 86400, description="seconds an object stays cached")
    negative_ttl: float = Field(
        60.0,
        gt=0,
        description="seconds an empty answer stays cached; at most --ttl, "
        "which it follows down when --ttl is below 60 and this is not set",
    )
    max_memory: ByteSize | Literal["auto"] = Field(
        ByteSize(512 * 1024**2),
        description="memory backend: bytes of cached data before the least recently used "
        "studies are evicted, e.g. 512MiB; 'auto': --max-memory-fraction of the container's "
        "cgroup memory limit",
    )
    max_memory_fraction: float = Field(
        0.5,
        gt=0,
        le=0.8,
        description="with --max-memory auto: the share of the cgroup memory limit given to "
        "cached data; the rest is the process's own (about 60 MiB) and allocator overhead, "
        "which the reliability suite measures at up to 1.25x the cached bytes",
    )
    max_message_bytes: ByteSize = Field(
        ByteSize(MAX_MESSAGE_BYTES),
        description="largest gRPC message received or sent: a larger unary request is "
        "refused before it is read, a larger unary hit answered RESOURCE_EXHAUSTED naming "
        "its streamed lookup (a process takes in or copies out a message in one step, "
        "about 1 ms per MB, that holds up its other calls)",
    )
    max_answer_bytes: ByteSize = Field(
        ByteSize(MAX_ANSWER_BYTES),
        description="largest answer, sent in pieces by the streamed lookups and taken in "
        "pieces by the streamed stores; a store whose hit would be larger is not stored; "
        "never below --max-message-bytes",
    )
    max_concurrent_rpcs: int = Field(
        256, gt=0, description="calls in flight before new ones get RESOURCE_EXHAUSTED"
    )
    workers: int = Field(16, gt=0, le=1024, description="threads serving calls")
    grace: float = Field(
        10.0, ge=0, description="seconds in-flight calls get to finish after SIGTERM"
    )
    shutdown_delay: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="seconds to keep serving after SIGTERM while health reports NOT_SERVING, "
        "so load balancers and Kubernetes endpoints stop sending calls first; a second "
        "signal ends the delay",
    )
    backend_timeout: float = Field(
        0.25, gt=0, description="Redis: seconds to connect or answer before UNAVAILABLE"
    )
    redis_password: SecretStr | None = Field(
        None, description="Redis: password, when not in the URL"
    )
    redis_ca_file: str | None = Field(None, description="Redis TLS: CA bundle to verify the server")
    redis_cert_file: str | None = Field(None, description="Redis TLS: client certificate")
    redis_key_file: str | None = Field(None, description="Redis TLS: client private key")
    # --- security (issue 12): transport, authorization, Redis at rest ---
    tls_cert_file: str | None = Field(
        None,
        description="TLS: the server's certificate chain (PEM); re-read when the file changes",
    )
    tls_key_file: str | None = Field(
        None, description="TLS: the server's private key (PEM); re-read when the file changes"
    )
    tls_client_ca_file: str | None = Field(
        None,
        description="mutual TLS: CA bundle that client certificates must chain to; "
        "clients without one are refused",
    )
    auth_policy_file: str | None = Field(
        None,
        description="authorization: policy file mapping identities (client certificates, "
        "bearer tokens) to namespaces and rights; re-read when it changes",
    )
    allow_insecure: bool = Field(
        False,
        description="allow listening on a non-loopback address without TLS and without "
        "authorization (anyone who reaches the port can read and poison the cache)",
    )
    redis_encryption_key_file: str | None = Field(
        None,
        description="Redis: file of AES-256 keys that encrypt every value carrying DICOM "
        "attributes, one '<key id> <base64 of 32 bytes>' a line ('#' comments; the id, "
        "1-16 of A-Za-z0-9._-, is stored in each value); the first key writes, all read "
        "(rotation); re-read when it changes",
    )
    # --- upstreams (issue 13): the archives that Search reads through ---
    upstream: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="an archive to read through, NAME=URL, repeatable: http(s)://HOST/ROOT "
        "(QIDO-RS; the URL that /studies follows) or dicom://CALLED_AE@HOST:PORT?calling=AE "
        "(DICOM-QR); NAME is its namespace; the variable separates entries by commas or spaces",
    )
    upstreams_file: str | None = Field(
        None,
        description="TOML file of upstreams, one [upstreams.NAME] table each: url, and "
        "optionally credentials_file or credentials_env, timeout, ca_file (see README)",
    )
    upstream_credentials: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="where an HTTP upstream's credentials are, NAME=file:PATH or NAME=env:VAR, "
        "repeatable; the file or variable holds 'Bearer <token>', 'Basic <base64>' or "
        "'user:password' (never the secret itself on the command line)",
    )
    upstream_timeout: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="seconds an archive request may take at most (a call's deadline shortens it)",
    )
    max_stale: float = Field(
        0.0,
        ge=0,
        le=7 * 86400,
        description="stale-if-error: seconds past its TTL that a Search answer may still be "
        "served, marked stale, when its archive fails or times out; 0 (the default) never serves "
        "an expired answer. Serving an expired medical answer is the operator's decision",
    )

    @field_validator("upstream", "upstream_credentials", mode="before")
    @classmethod
    def _split_entries(cls, value: Any) -> Any:
        # DICOMCACHE_UPSTREAM="a=http://x b=dicom://Y@z:104": one string, many entries
        return value.replace(",", " ").split() if isinstance(value, str) else value

    log_format: Literal["text", "json"] = Field("text", description="log lines as text or JSON")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="least severe level logged"
    )

    @model_validator(mode="before")
    @classmethod
    def _negative_ttl_follows_ttl(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("negative_ttl") is None and "ttl" in data:
            data = {**data, "negative_ttl": min(60.0, float(data["ttl"]))}
        return data

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.max_memory != "auto" and self.max_memory <= 0:
            # 0 would cache nothing while the stats said "no limit"
            raise ValueError("max_memory must be greater than 0, or 'auto'")
        if self.negative_ttl > self.ttl:
            raise ValueError("negative_ttl must not be longer than ttl")
        if self.backend != "memory" and urlsplit(self.backend).scheme not in REDIS_SCHEMES:
            raise ValueError(
                f"backend must be 'memory' or a URL with scheme in {sorted(REDIS_SCHEMES)}"
            )
        if self.redis_encryption_key_file is not None and self.backend == "memory":
            # The memory backend keeps nothing at rest: a key file there would be a
            # setting that silently protects nothing.
            raise ValueError(
                "redis_encryption_key_file needs a Redis backend (--backend redis://...)"
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be given together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file")
        if not self.allow_insecure and not _loopback(self.listen) and not self.secured:
            raise ValueError(
                f"listen: {self.listen} is not a loopback address: off loopback, callers must be "
                "authenticated over TLS, or anyone who reaches the port can read and poison "
                "every namespace. Set --tls-cert-file and --tls-key-file, and "
                "--tls-client-ca-file (mutual TLS) or --auth-policy-file (tokens, certificate "
                "identities), or --allow-insecure to accept that risk (e.g. behind a mesh "
                "that does mutual TLS for you)"
            )
        return self

    @property
    def secured(self) -> bool:
        """Whether the transport is TLS and callers are authenticated (mTLS or a policy)."""
        authenticated = self.tls_client_ca_file is not None or self.auth_policy_file is not None
        return self.tls_cert_file is not None and authenticated

    def max_memory_bytes(self, limit: Callable[[], int | None] = cgroup.memory_limit) -> int:
        """The memory backend's limit in bytes, ``auto`` resolved from the cgroup ``limit``.

        Raises:
            ValueError: ``auto``, and no cgroup memory limit applies to this process.
        """
        if self.max_memory != "auto":
            return int(self.max_memory)
        found = limit()
        if found is None:
            raise ValueError(
                "max_memory: 'auto' needs a cgroup memory limit (a container's "
                "resources.limits.memory), and this process has none; give a size, e.g. 512MiB"
            )
        return int(found * self.max_memory_fraction)

    def redacted_backend(self) -> str:
        """The backend URL with any password replaced, for logs."""
        parts = urlsplit(self.backend)
        if parts.password is None:
            return self.backend
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))


def _loopback(listen: str) -> bool:
    """Whether ``host:port`` binds loopback only ("localhost", 127.0.0.0/8, [::1])."""
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name, or "" / "*" / "0.0.0.0"-like wildcards: not loopback


REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+cluster", "rediss+cluster"})
