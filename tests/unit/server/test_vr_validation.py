"""Values must be of the kinds their VRs hold (``server/api/vr.py``), and valid data always passes.

The property tests are the "do not reject what archives serve" half: whatever
the client's own conversions make of valid DICOM (through pydicom, as
dicomtrolley hands it over, or straight from DICOM JSON) is accepted.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydicom.dataset import Dataset

from dicomcache.client.convert.dataset import from_pydicom
from dicomcache.client.convert.dicom_json import dataset_from_json
from dicomcache.server.api import vr
from dicomcache.server.api.validation import Checker
from dicomcache.v1 import dataset_pb2
from tests.support.strategies import dicom_json_datasets

V = dataset_pb2.Value


def violations(message: dataset_pb2.Dataset) -> list[tuple[str, str]]:
    check = Checker()
    check.dataset(message, "attributes", 0)
    return [(v.field, v.rule) for v in check.violations]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(dicom_json_datasets(pydicom_safe=True, valid=True))
def test_what_from_pydicom_makes_of_valid_data_passes(json_dataset: dict[str, Any]) -> None:
    assert violations(from_pydicom(Dataset.from_json(json_dataset))) == []


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(dicom_json_datasets(valid=True))
def test_valid_dicom_json_passes(json_dataset: dict[str, Any]) -> None:
    assert violations(dataset_from_json(json_dataset)) == []


def one(vr_name: str, *values: V) -> list[tuple[str, str]]:
    element = dataset_pb2.Element(vr=vr_name, values=dataset_pb2.Values(items=list(values)))
    return violations(dataset_pb2.Dataset(elements={0x00081030: element}))


AT = "attributes.elements[00081030].values[0]"

GOOD = [
    ("DA", V(text="20240229")),
    ("DA", V(text="1990.01.31")),  # before DICOM 3.0; PS3.5 asks readers to accept it
    ("DA", V(text="20240101\\20240102")),
    ("DA", V(text="")),
    ("DA", V()),
    ("TM", V(text="23")),
    ("TM", V(text="2359")),
    ("TM", V(text="235960.123456")),  # a leap second
    ("TM", V(text="10:10:10.5")),
    ("TM", V(text="101010 ")),  # padding
    ("DT", V(text="2024")),
    ("DT", V(text="20240229235959.5+1400")),
    ("DT", V(text="202402-1200")),
    ("AT", V(text="0010abCD")),
    ("IS", V(integer=-(2**31))),
    ("IS", V(text=" +42 ")),
    ("IS", V(decimal=3.0)),
    ("DS", V(text="-1.5e+3")),
    ("DS", V(text=".5")),
    ("DS", V(integer=7)),
    ("DS", V(decimal=1e300)),
    ("US", V(integer=65535)),
    ("SS", V(integer=-32768)),
    ("UL", V(integer=2**32 - 1)),
    ("SL", V(integer=-(2**31))),
    ("SV", V(integer=-(2**63))),
    ("UV", V(unsigned=2**64 - 1)),
    ("UV", V(integer=5)),
    ("FL", V(decimal=math.inf)),
    ("FL", V(integer=3)),
    ("FD", V(decimal=math.nan)),
    ("PN", V(person_name=dataset_pb2.PersonName())),
    ("PN", V()),
    ("SQ", V(item=dataset_pb2.Dataset())),
    ("SQ", V()),
    ("LO", V(text="any text at all \u00e9")),
    ("CS", V(text="lower case")),
]


@pytest.mark.parametrize(("vr_name", "value"), GOOD)
def test_values_their_vr_holds_pass(vr_name, value):
    assert one(vr_name, value) == []


BAD = [
    ("PN", V(integer=5), vr.PN_RULE),
    ("PN", V(text="Doe^John"), vr.PN_RULE),
    ("US", V(text="12"), vr.INTEGER_RULES["US"]),
    ("US", V(integer=65536), vr.INTEGER_RULES["US"]),
    ("US", V(integer=-1), vr.INTEGER_RULES["US"]),
    ("US", V(decimal=1.0), vr.INTEGER_RULES["US"]),
    ("SS", V(integer=32768), vr.INTEGER_RULES["SS"]),
    ("UL", V(integer=2**32), vr.INTEGER_RULES["UL"]),
    ("SL", V(integer=2**31), vr.INTEGER_RULES["SL"]),
    ("SV", V(unsigned=1), vr.INTEGER_RULES["SV"]),
    ("UV", V(integer=-1), vr.UV_RULE),
    ("SQ", V(text="not a data set"), vr.ITEM_RULE),
    ("CS", V(item=dataset_pb2.Dataset()), vr.NOT_ITEM_RULE),
    ("LO", V(integer=1), vr.TEXT_RULE),
    ("UI", V(person_name=dataset_pb2.PersonName(alphabetic="x")), vr.TEXT_RULE),
    ("DA", V(text="yesterday"), vr.DA_RULE),
    ("DA", V(text="20230229"), vr.DA_RULE),
    ("DA", V(text="00000000"), vr.DA_RULE),
    ("DA", V(text="20240101-20241231"), vr.DA_RULE),  # a query range, not an attribute
    ("DA", V(text="20240101\\2024"), vr.DA_RULE),
    ("DA", V(integer=20240101), vr.DA_RULE),
    ("TM", V(text="24"), vr.TM_RULE),
    ("TM", V(text="1260"), vr.TM_RULE),
    ("TM", V(text="10.5"), vr.TM_RULE),
    ("TM", V(text="235961"), vr.TM_RULE),
    ("DT", V(text="20241301"), vr.DT_RULE),
    ("DT", V(text="2024+1500"), vr.DT_RULE),
    ("DT", V(text="2024-1201"), vr.DT_RULE),
    ("DT", V(text="2024+0060"), vr.DT_RULE),
    ("AT", V(text="0010001"), vr.AT_RULE),
    ("AT", V(integer=0x00100010), vr.AT_RULE),
    ("IS", V(integer=2**31), vr.IS_RULE),
    ("IS", V(text="1.5"), vr.IS_RULE),
    ("IS", V(text="1234567890123"), vr.IS_RULE),
    ("IS", V(decimal=1.5), vr.IS_RULE),
    ("DS", V(text="one"), vr.DS_RULE),
    ("DS", V(text="12345678901234567"), vr.DS_RULE),
    ("DS", V(decimal=math.nan), vr.DS_RULE),
    ("DS", V(decimal=math.inf), vr.DS_RULE),
    ("FL", V(decimal=1e39), vr.FL_RULE),
    ("FL", V(text="1.5"), vr.FL_RULE),
    ("FD", V(text="NaN"), vr.FD_RULE),
    ("OB", V(text="bytes?"), vr.BINARY_RULE),
]


@pytest.mark.parametrize(("vr_name", "value", "rule"), BAD)
def test_values_their_vr_cannot_hold_name_the_value_and_the_rule(vr_name, value, rule):
    path = "attributes.elements[00081030]" + (".values" if vr_name == "OB" else ".values[0]")
    assert one(vr_name, value) == [(path, rule)]


def test_each_bad_value_of_an_element_is_named():
    found = one("US", V(integer=1), V(text="2"), V(), V(integer=70000))
    assert [field for field, _ in found] == [
        "attributes.elements[00081030].values[1]",
        "attributes.elements[00081030].values[3]",
    ]


def test_bad_values_in_nested_items_are_named_with_their_path():
    inner = dataset_pb2.Dataset(
        elements={
            0x00100010: dataset_pb2.Element(
                vr="PN", values=dataset_pb2.Values(items=[V(integer=1)])
            )
        }
    )
    found = one("SQ", V(item=dataset_pb2.Dataset()), V(item=inner))
    assert found == [(f"{AT[:-3]}[1].elements[00100010].values[0]", vr.PN_RULE)]


def test_a_sequence_of_bytes_is_refused():
    element = dataset_pb2.Element(vr="SQ", inline_binary=b"\x00")
    found = violations(dataset_pb2.Dataset(elements={0x00081030: element}))
    assert found == [("attributes.elements[00081030]", vr.SQ_CONTENT_RULE)]


def test_no_rule_quotes_a_value():
    found = one("PN", V(text="Secret^Patient"))
    assert all("Secret" not in rule for _, rule in found)
