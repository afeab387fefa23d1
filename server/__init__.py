"""The dicomcache server: cache semantics behind one storage interface, and a thin gRPC layer.

The process:
    app         the composition root: builds the backend, the gRPC server, health, the sweeper
    cli         the `dicomcache` command; the only place that sets process-wide state
    config      settings from flags and DICOMCACHE_* variables
    cgroup      the container's memory limit, for --max-memory auto
    tls         the server's TLS credentials, re-read when their files change
    watch       whether a set of files changed, looked at most once an interval
    logs        text or JSON log lines, without PHI

Shared by every layer below:
    model       the shapes of cached objects (no protobuf, no gRPC)
    errors      the domain exceptions
    clock       the injectable monotonic clock

api/            the gRPC layer, thin: parse, validate, call, reply
backends/       the storage interface (``backends.Backend``) and one package per backend:
    memory/     the default: one process's memory
    redis/      Redis or Redis Cluster, shared by many servers
"""
