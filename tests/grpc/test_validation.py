"""Bad input: INVALID_ARGUMENT naming the field and the rule, and the server keeps serving."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from dicomcache.server.api.service import SERVICE_NAME
from dicomcache.server.api.validation import OWN_UID_RULE, TAG_RULE, UID_RULE
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import dataset_pb2, objects_pb2, query_pb2
from tests.support.messages import dataset, make_study, text_element

GOOD_UID = "1.2.840.10008.1"


def violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The (field, description) pairs of the BadRequest detail of an error."""
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    status = rpc_status.from_call(error)
    assert status is not None
    found = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        assert detail.Unpack(bad_request)
        found.extend((v.field, v.description) for v in bad_request.field_violations)
    return found


def rejected(call, request) -> list[tuple[str, str]]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)
    return violations(caught.value)


@pytest.mark.parametrize(
    "uid",
    [
        "",
        "1.2.a",
        "1.2 3",
        "1.2.3 ",
        "1." + "2" * 63,
        "1.2.3\x00",
        "1.2.3\n",
        "1,2",
        "\u0661.\u0662",
    ],  # Arabic-Indic digits
)
def test_invalid_uids_are_rejected_with_the_uid_rule(stub, uid):
    found = rejected(stub.LookupStudy, pb.LookupStudyRequest(namespace="ns", study_uid=uid))
    assert found == [("study_uid", UID_RULE)]
    assert "1 to 64 characters" in UID_RULE and "digit" in UID_RULE and "dot" in UID_RULE


# Leading zeros and empty components break PS3.5 9.1, yet archives serve them.
@pytest.mark.parametrize(
    "uid",
    ["0", "1.0.2", "1.2.840.10008.5.1.4.1.1.2", "9" * 64, "1.02", "01.2", "1..2", "1.2.", ".1"],
)
def test_uids_of_digits_and_dots_are_accepted(stub, uid):
    assert stub.LookupStudy(pb.LookupStudyRequest(namespace="ns", study_uid=uid)).hit is False


@pytest.mark.parametrize("uid", ["1.02", "01.2"])
def test_leading_zero_uids_are_stored_and_hit(stub, uid):
    study = objects_pb2.Study(
        uid=uid,
        attributes=dataset(t0020000D=text_element("UI", uid)),
        series=[
            objects_pb2.Series(
                uid=f"{uid}.01",
                attributes=dataset(t0020000E=text_element("UI", f"{uid}.01")),
                instances=[
                    objects_pb2.Instance(
                        uid=f"{uid}.01.001",
                        attributes=dataset(t00080018=text_element("UI", f"{uid}.01.001")),
                    )
                ],
            )
        ],
    )
    level = query_pb2.QUERY_LEVEL_INSTANCE
    lookup = pb.LookupStudyRequest(namespace="ns", study_uid=uid, query_level=level)
    lease = stub.LookupStudy(lookup).lease
    store = pb.StoreStudyRequest(namespace="ns", study=study, query_level=level, lease=lease)
    assert stub.StoreStudy(store).stored
    answer = stub.LookupStudy(lookup)
    assert answer.hit and answer.study == study
    query = query_pb2.Query(study_instance_uid=uid, query_level=level)
    lease = stub.LookupQuery(pb.LookupQueryRequest(namespace="ns", query=query)).lease
    stored = pb.StoreQueryRequest(namespace="ns", query=query, studies=[study], lease=lease)
    assert stub.StoreQuery(stored).stored
    answer = stub.LookupQuery(pb.LookupQueryRequest(namespace="ns", query=query))
    assert answer.hit and list(answer.studies) == [study]


@pytest.mark.parametrize("namespace", ["", "a b", "x" * 129, "pacs\n", "ünïcode"])
def test_invalid_namespaces_are_rejected(stub, namespace):
    found = rejected(
        stub.LookupQuery, pb.LookupQueryRequest(namespace=namespace, query=query_pb2.Query())
    )
    assert [f for f, _ in found] == ["namespace"]


def test_unknown_enum_value_is_rejected(stub):
    request = pb.LookupStudyRequest(namespace="ns", study_uid=GOOD_UID, query_level=7)  # type: ignore[arg-type]  # an unknown level on purpose
    found = rejected(stub.LookupStudy, request)
    assert found[0][0] == "query_level" and "known QueryLevel" in found[0][1]


def test_every_violation_of_a_request_is_reported(stub):
    study = make_study(1, 1, 1)
    study.series[0].instances[0].uid = "1.2.x"
    study.series[0].instances.add(uid=study.series[0].uid)  # no attributes
    request = pb.StoreQueryRequest(
        namespace="ns",
        query=query_pb2.Query(
            query_level=9,  # type: ignore[arg-type]  # an unknown level on purpose
            include_fields=["Patient Name"],
            limit=-1,
            min_study_date=query_pb2.DateTime(date=query_pb2.Date(year=2024, month=2, day=30)),
        ),
        studies=[study],
    )
    fields = {f for f, _ in rejected(stub.StoreQuery, request)}
    assert fields == {
        "query.query_level",
        "query.include_fields[0]",
        "query.limit",
        "query.min_study_date.date",
        "studies[0].series[0].instances[0].uid",
        "studies[0].series[0].instances[0].attributes.elements[00080018]",
        "studies[0].series[0].instances[1].attributes",
    }


def test_a_query_request_without_a_query_is_rejected(stub):
    found = rejected(stub.LookupQuery, pb.LookupQueryRequest(namespace="ns"))
    assert found == [("query", "must be set")]
    found = rejected(stub.StoreQuery, pb.StoreQueryRequest(namespace="ns", studies=[make_study()]))
    assert found == [("query", "must be set")]
    assert stub.LookupQuery(pb.LookupQueryRequest(namespace="ns", query=query_pb2.Query())).lease


@pytest.mark.parametrize(
    ("tag", "where"),
    [
        (0x0020000D, "studies[0].attributes"),
        (0x0020000E, "studies[0].series[0].attributes"),
        (0x00080018, "studies[0].series[0].instances[0].attributes"),
    ],
)
def test_an_object_whose_own_uid_attribute_disagrees_is_rejected(stub, tag, where):
    study = make_study(1, 1, 1)
    target = {
        0x0020000D: study,
        0x0020000E: study.series[0],
        0x00080018: study.series[0].instances[0],
    }[tag]
    target.attributes.elements[tag].CopyFrom(text_element("UI", GOOD_UID))
    request = pb.StoreQueryRequest(namespace="ns", query=query_pb2.Query(), studies=[study])
    assert rejected(stub.StoreQuery, request) == [(f"{where}.elements[{tag:08X}]", OWN_UID_RULE)]
    target.attributes.elements[tag].CopyFrom(text_element("UI", target.uid, target.uid))
    assert rejected(stub.StoreQuery, request) == [(f"{where}.elements[{tag:08X}]", OWN_UID_RULE)]


def test_an_own_uid_attribute_that_is_empty_or_absent_is_accepted(stub):
    study = make_study(1, 1, 1)
    study.attributes.elements[0x0020000D].CopyFrom(dataset_pb2.Element(vr="UI"))  # no value
    del study.series[0].attributes.elements[0x0020000E]
    request = pb.AddObjectsRequest(namespace="ns", studies=[study])
    assert stub.AddObjects(request).objects_written == 3


@pytest.mark.parametrize(
    "tag",
    [0x00000000, 0x000186A4, 0x00000900, 0x00020010, 0x00070010, 0x0007FFFF],
    ids=["tag 0", "100020 read as decimal", "command", "file meta", "group 7", "group 7 end"],
)
def test_tags_below_group_0008_are_rejected(stub, tag):
    study = make_study(1)
    study.attributes.elements[tag].CopyFrom(text_element("UI", "1.2"))
    nested = study.attributes.elements[0x00081115]
    nested.vr = "SQ"
    nested.values.items.add().item.elements[tag].CopyFrom(text_element("UI", "1.2"))
    found = rejected(stub.AddObjects, pb.AddObjectsRequest(namespace="ns", studies=[study]))
    assert set(found) == {  # a map: its elements come in no fixed order
        (f"studies[0].attributes.elements[{tag:08X}]", TAG_RULE),
        (f"studies[0].attributes.elements[00081115].values[0].elements[{tag:08X}]", TAG_RULE),
    }
    assert len(found) == 2
    assert "group must be 0008 or above" in TAG_RULE


def test_tags_from_group_0008_up_are_accepted(stub):
    study = make_study(1)
    for tag in (0x00080000, 0x00080005, 0x00091010, 0x7FE00010):
        study.attributes.elements[tag].CopyFrom(text_element("CS", "X"))
    assert stub.AddObjects(pb.AddObjectsRequest(namespace="ns", studies=[study])).objects_written


def test_duplicate_siblings_and_unknown_vr_are_rejected(stub):
    study = make_study(1, 1, 0)
    study.series.add().CopyFrom(study.series[0])
    study.attributes.elements[0x00081030].CopyFrom(dataset_pb2.Element(vr="XX"))
    found = rejected(stub.AddObjects, pb.AddObjectsRequest(namespace="ns", studies=[study]))
    assert {f for f, _ in found} == {
        "studies[0].series[1].uid",
        "studies[0].attributes.elements[00081030].vr",
    }


def test_deeply_nested_sequences_are_rejected(stub):
    root = dataset_pb2.Dataset()
    current = root
    for _ in range(10):
        element = current.elements[0x00081115]
        element.vr = "SQ"
        current = element.values.items.add().item
    study = objects_pb2.Study(uid=GOOD_UID, attributes=root)
    found = rejected(stub.AddObjects, pb.AddObjectsRequest(namespace="ns", studies=[study]))
    assert "nest" in found[0][1]


def test_reference_without_a_kind_is_rejected(stub):
    request = pb.GetObjectsRequest(namespace="ns", references=[objects_pb2.ObjectReference()])
    assert rejected(stub.GetObjects, request)[0][0] == "references[0]"


def test_too_many_references_are_rejected(stub):
    ref = objects_pb2.ObjectReference(study=objects_pb2.StudyReference(study_uid=GOOD_UID))
    request = pb.GetObjectsRequest(namespace="ns", references=[ref] * 1001)
    assert rejected(stub.GetObjects, request)[0][0] == "references"


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff",
        b"\x0a\x05ab",
        b"\x12\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
        b"\x0a\x02\xc3\x28",
    ],
    ids=["garbage", "truncated", "bad-varint", "invalid-utf8"],
)
@pytest.mark.parametrize("method", ["LookupQuery", "StoreQuery", "GetObjects", "GetStats"])
def test_malformed_bytes_get_invalid_argument_and_the_server_keeps_serving(
    running, method, payload
):
    raw = running.channel.unary_unary(f"/{SERVICE_NAME}/{method}")
    with pytest.raises(grpc.RpcError) as caught:
        raw(payload)
    assert violations(caught.value)[0][0] == "request"
    assert running.stub.GetStats(pb.GetStatsRequest()).max_bytes > 0


def test_oversized_message_is_refused_and_the_server_keeps_serving():
    from tests.grpc.conftest import start_server

    running = start_server(max_message_bytes=64 * 1024)
    try:
        big = make_study(1, 1, 2000)
        with pytest.raises(grpc.RpcError) as caught:
            running.stub.AddObjects(pb.AddObjectsRequest(namespace="ns", studies=[big]))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert running.stub.GetStats(pb.GetStatsRequest()).max_bytes > 0
    finally:
        running.channel.close()
        running.server.stop(grace=0)
