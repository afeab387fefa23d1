"""Requests parsed a piece at a time: the same message as one parse, never one long call."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import pytest
from google.protobuf.message import DecodeError

from dicomcache.server.api import wire
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import query_pb2
from tests.support.messages import make_study


def requests() -> list[pb.StoreStudyRequest | pb.StoreQueryRequest | pb.AddObjectsRequest]:
    query = query_pb2.Query(query_level=query_pb2.QUERY_LEVEL_STUDY, patient_id="P*")
    return [
        pb.StoreStudyRequest(namespace="n", study=make_study(1, 3, 40), ttl_seconds=5, lease=7),
        pb.StoreQueryRequest(
            namespace="n", query=query, studies=[make_study(i, 1, 2) for i in range(30)]
        ),
        pb.AddObjectsRequest(studies=[make_study(1, 2, 30), make_study(2)], namespace="n"),
    ]


@pytest.mark.parametrize("piece", [64, 300, 4096, wire.PIECE_BYTES])
@pytest.mark.parametrize("request_", requests(), ids=lambda r: type(r).__name__)
def test_a_message_parsed_in_pieces_is_the_message_parsed_whole(request_: Any, piece: int) -> None:
    data = request_.SerializeToString()
    parsed = wire.parse(type(request_), data, piece)
    whole = type(request_).FromString(data)
    assert parsed == whole
    # Map entries may come out in another order than they were built in, but the
    # same as from the parse in one go: what the server stores is the same bytes.
    assert parsed.SerializeToString() == whole.SerializeToString()


def test_fields_keep_their_order_and_unknown_fields_their_bytes() -> None:
    head = pb.StoreStudyRequest(namespace="n").SerializeToString()
    study = make_study(1, 2, 20).SerializeToString()
    unknown = b"\xfa\x06" + bytes([200]) + b"\x01" + b"u" * 200  # field 111, 200 bytes
    data = b"".join(
        (
            head,
            unknown,
            b"\x12",
            bytes([len(study) & 0x7F | 0x80]),
            bytes([len(study) >> 7]),
            study,
            head,
        )
    )
    assert len(study) < 1 << 14
    parsed = wire.parse(pb.StoreStudyRequest, data, 100)
    whole = pb.StoreStudyRequest.FromString(data)
    assert parsed == whole
    assert parsed.SerializeToString() == whole.SerializeToString()


@pytest.mark.parametrize("cut", [1, 7, 500])
def test_a_cut_message_is_refused_as_protobuf_refuses_it(cut: int) -> None:
    data = requests()[0].SerializeToString()[:-cut]
    with pytest.raises(DecodeError):
        pb.StoreStudyRequest.FromString(data)
    with pytest.raises(DecodeError):
        wire.parse(pb.StoreStudyRequest, data, 256)


def test_no_call_into_protobuf_is_given_more_than_a_piece() -> None:
    request = pb.StoreStudyRequest(namespace="n", study=make_study(1, 4, 200))
    data = request.SerializeToString()
    piece = 2048
    assert len(data) > 30 * piece
    sizes: list[int] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") == "MergeFromString":
            sizes.append(len(frame.f_locals["data"]))  # what wire hands protobuf

    sys.setprofile(profile)
    try:
        parsed = wire.parse(pb.StoreStudyRequest, data, piece)
    finally:
        sys.setprofile(None)
    assert parsed == request
    assert len(sizes) > len(data) // piece
    assert max(sizes) <= piece


def test_a_large_request_is_a_step_of_its_call_between_two_runs(monkeypatch: Any) -> None:
    """Each run handed to protobuf is a step of the call's work, so a large request may
    pause between runs: a 1 MiB piece of a StreamStoreStudy parsed in four runs back
    to back held the lock 5-18 ms, and small calls beside a 300,000-instance store
    waited 30-40 ms (issue 11, stall row S1)."""
    request = pb.StoreStudyRequest(namespace="n", study=make_study(1, 4, 200))
    data = request.SerializeToString()
    events: list[str] = []
    monkeypatch.setattr(wire, "step", lambda: events.append("step"))

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") == "MergeFromString":
            events.append("merge")

    sys.setprofile(profile)
    try:
        parsed = wire.parse(pb.StoreStudyRequest, data, 2048)
    finally:
        sys.setprofile(None)
    assert parsed == request
    assert events.count("merge") > 30
    assert "merge merge" not in " ".join(events)  # a step after every run
