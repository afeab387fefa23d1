"""The dicomcache server: cache semantics behind one storage interface, and a thin gRPC layer.

Modules:
    model       the plain-Python shapes of cached objects (no protobuf, no gRPC)
    backend     the storage interface every backend implements
    backends/   one module per backend (memory, redis)
    keys        the canonical cache key of a query
    validation  the rules for input, raising InvalidArgument
    errors      the domain exceptions
    status      the one place that maps domain exceptions to gRPC status codes
    wire        hand-encoding of hit responses from stored bytes
    service     the CacheService servicer: parse, validate, call, reply
    app         building, starting and stopping the gRPC server
    config      settings from flags and DICOMCACHE_* variables
    cli         the `dicomcache` command
"""
