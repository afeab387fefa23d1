"""The gRPC layer, thin: parse, validate, call the backend, reply.

handler     serving CacheService over gRPC: parsing, error mapping, in-flight calls
service     the RPCs themselves: validate, call the backend, reply
validation  the rules for input, raising InvalidArgument with every violation
status      the one place that maps domain exceptions to gRPC status codes
keys        the canonical cache key of a query
decode      requests to the plain model (the write path)
encode      every response; hits hand-encoded from stored bytes
"""
