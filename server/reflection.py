"""Server reflection under both its names: ``grpc.reflection.v1`` and ``v1alpha``.

grpcurl, Postman and grpc-js tools ask ``grpc.reflection.v1.ServerReflection``
first, older ones ``v1alpha``. grpcio-reflection (1.85) ships only ``v1alpha``; the
two protos declare the same messages with the same field numbers (v1 is v1alpha
renamed when it became stable), so their bytes are the same and the one servicer
answers both: v1 is the v1alpha servicer registered under the v1 method name.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE_NAME = reflection.SERVICE_NAME


def enable(service_names: Sequence[str], server: grpc.Server) -> None:
    """Serve reflection of ``service_names`` (and of reflection itself) under both names."""
    names = [*service_names, V1ALPHA_SERVICE_NAME, V1_SERVICE_NAME]
    servicer = reflection.ReflectionServicer(names)
    methods = {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
    }
    for name in (V1ALPHA_SERVICE_NAME, V1_SERVICE_NAME):
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, methods),))
