"""The dicomcache server: cache semantics behind one storage interface, and a thin gRPC layer.

Transport (gRPC, thin):
    service     the CacheService: parse, validate, call the backend, reply
    validation  the rules for input, raising InvalidArgument
    status      the one place that maps domain exceptions to gRPC status codes
    wire        hand-encoding of hit responses from stored bytes
    messages    wire messages to the plain model, on the write path
    app         building, starting and stopping the gRPC server (health, reflection)
    config      settings from flags and DICOMCACHE_* variables
    cli         the `dicomcache` command
    logs        text or JSON log lines, without PHI

Cache semantics (plain Python):
    model       the shapes of cached objects (no protobuf, no gRPC)
    backend     the storage interface every backend implements
    keys        the canonical cache key of a query
    errors      the domain exceptions
    clock       the injectable monotonic clock

Backends:
    backends/memory   the default: one process's memory, built from
                      tree (nodes), namespace, answer (answers and listings),
                      expiry (the reaping queue), lru (eviction order),
                      compression and packing (instances' attributes, deflated)
    backends/redis    Redis or Redis Cluster, with its Lua scripts in redis_scripts
"""
