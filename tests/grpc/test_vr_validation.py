"""Datasets whose values contradict their VRs are refused on write, over real gRPC calls.

Ten of fourteen such datasets used to be stored and served to Python users as
they were: a PN holding an integer, a US holding text, an item under a CS.
"""

from __future__ import annotations

import pytest

from dicomcache.server.api import vr
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import dataset_pb2, objects_pb2, query_pb2
from tests.grpc.test_validation import rejected
from tests.support.messages import make_study

V = dataset_pb2.Value

HOSTILE = [
    ("LO", V(item=dataset_pb2.Dataset()), vr.NOT_ITEM_RULE),
    ("CS", V(item=dataset_pb2.Dataset()), vr.NOT_ITEM_RULE),
    ("PN", V(integer=7), vr.PN_RULE),
    ("US", V(text="12"), vr.INTEGER_RULES["US"]),
    ("US", V(integer=70_000), vr.INTEGER_RULES["US"]),
    ("US", V(integer=-1), vr.INTEGER_RULES["US"]),
    ("SQ", V(text="not a data set"), vr.ITEM_RULE),
    ("DA", V(text="not a date"), vr.DA_RULE),
    ("DA", V(text="20230230"), vr.DA_RULE),
    ("TM", V(text="25"), vr.TM_RULE),
    ("IS", V(text="1.5"), vr.IS_RULE),
    ("DS", V(text="many"), vr.DS_RULE),
    ("AT", V(integer=0x00100010), vr.AT_RULE),
    ("FD", V(text="1.5"), vr.FD_RULE),
]


def _study_with(vr_name: str, value: V) -> objects_pb2.Study:
    study = make_study(1)
    study.attributes.elements[0x00081030].CopyFrom(
        dataset_pb2.Element(vr=vr_name, values=dataset_pb2.Values(items=[value]))
    )
    return study


@pytest.mark.parametrize(("vr_name", "value", "rule"), HOSTILE)
def test_a_value_its_vr_cannot_hold_is_not_stored(stub, vr_name, value, rule):
    query = query_pb2.Query(patient_id="PAT1")
    request = pb.StoreQueryRequest(
        namespace="ns", query=query, studies=[_study_with(vr_name, value)]
    )
    assert rejected(stub.StoreQuery, request) == [
        ("studies[0].attributes.elements[00081030].values[0]", rule)
    ]
    assert not stub.LookupQuery(pb.LookupQueryRequest(namespace="ns", query=query)).hit


@pytest.mark.parametrize(("vr_name", "value", "rule"), HOSTILE)
def test_add_objects_refuses_them_too(stub, vr_name, value, rule):
    study = _study_with(vr_name, value)
    request = pb.AddObjectsRequest(namespace="ns", studies=[study])
    assert rejected(stub.AddObjects, request) == [
        ("studies[0].attributes.elements[00081030].values[0]", rule)
    ]
    reference = objects_pb2.ObjectReference(study=objects_pb2.StudyReference(study_uid=study.uid))
    response = stub.GetObjects(pb.GetObjectsRequest(namespace="ns", references=[reference]))
    assert not response.results[0].found


def test_the_same_study_with_valid_values_is_stored(stub):
    study = make_study(1, 1, 1)
    good = {
        0x00080020: ("DA", V(text="20240229")),
        0x00080030: ("TM", V(text="235959.5")),
        0x00280010: ("US", V(integer=512)),
        0x00200013: ("IS", V(integer=7)),
        0x00181050: ("DS", V(decimal=0.5)),
    }
    for tag, (vr_name, value) in good.items():
        study.attributes.elements[tag].CopyFrom(
            dataset_pb2.Element(vr=vr_name, values=dataset_pb2.Values(items=[value]))
        )
    query = query_pb2.Query(patient_id="PAT1")
    assert stub.StoreQuery(
        pb.StoreQueryRequest(namespace="ns", query=query, studies=[study])
    ).stored
    hit = stub.LookupQuery(pb.LookupQueryRequest(namespace="ns", query=query))
    assert hit.hit and list(hit.studies) == [study]
