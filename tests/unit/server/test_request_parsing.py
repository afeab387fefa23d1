"""The gRPC layer parses a large request without one long call into protobuf.

One call holds the interpreter lock for all of it: a 250 MB StoreStudy stalled
every other request of the process for seconds (issue 11). The calls are seen
with ``sys.setprofile``, no timings.
"""

from __future__ import annotations

import sys
from types import FrameType

from dicomcache.server.api.handler import _parser
from dicomcache.v1 import cache_service_pb2 as pb
from tests.support.messages import make_study

LONGEST = 256 * 1024  # bytes: about 2 ms of parsing


def test_a_large_request_is_parsed_in_calls_of_bounded_size() -> None:
    request = pb.StoreStudyRequest(namespace="n", study=make_study(1, 10, 600))
    data = request.SerializeToString()
    assert len(data) > 2 * LONGEST
    given: list[int] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") in ("FromString", "MergeFromString"):
            given.append(len(frame.f_locals["data"]))

    sys.setprofile(profile)
    try:
        parsed = _parser(pb.StoreStudyRequest)(data)
    finally:
        sys.setprofile(None)
    assert parsed == request
    assert given and max(given) <= LONGEST
