"""The requests of the hostile-input section: valid seeds per RPC, and structured attacks.

Every RPC of ``dicomcache.v1.CacheService`` gets valid requests (the seeds that
random mutation starts from and that the atheris run starts its corpus with) and
requests built to hurt: deep nesting, huge repeated fields, one object referenced
a thousand times, ten thousand violations, text that is not UTF-8, extreme
numbers, and every VR holding a value of a kind it cannot hold. Each structured
case says which status codes are right for it. No real people's data: every name
and value is made up. Pure functions, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc

from dicomcache.server.api.validation import MAX_REFERENCES, MAX_SEQUENCE_DEPTH, VALID_VRS
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import dataset_pb2, objects_pb2, query_pb2
from tests.support.messages import dataset, make_study, text_element

from . import wire

SERVICE = "dicomcache.v1.CacheService"
# Each RPC: its request type, and whether it answers with a stream.
METHODS: dict[str, tuple[type[object], bool]] = {
    "LookupQuery": (pb.LookupQueryRequest, False),
    "StoreQuery": (pb.StoreQueryRequest, False),
    "LookupStudy": (pb.LookupStudyRequest, False),
    "StoreStudy": (pb.StoreStudyRequest, False),
    "AddObjects": (pb.AddObjectsRequest, False),
    "GetObjects": (pb.GetObjectsRequest, False),
    "Invalidate": (pb.InvalidateRequest, False),
    "GetStats": (pb.GetStatsRequest, False),
    "StreamLookupQuery": (pb.StreamLookupQueryRequest, True),
    "StreamLookupStudy": (pb.StreamLookupStudyRequest, True),
    # Streamed stores (client streams): a case's bytes are their one piece.
    "StreamStoreQuery": (pb.StreamStoreQueryRequest, False),
    "StreamStoreStudy": (pb.StreamStoreStudyRequest, False),
}
NAMESPACE = "hostile"
INVALID = frozenset({grpc.StatusCode.INVALID_ARGUMENT})
FINE = frozenset({grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT})
TOO_MUCH = frozenset(
    {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
PRIVATE_TAG = 0x00091010  # a private attribute: any VR is allowed there
BIG_STUDY_UID = "1.2.826.0.1.3680043.8.498.99.1"


@dataclass(frozen=True)
class Case:
    """One request to send: the RPC, its bytes, and the codes that are right for it."""

    name: str
    method: str
    data: bytes
    expected: frozenset[grpc.StatusCode] = FINE


def _query() -> query_pb2.Query:
    return query_pb2.Query(
        kind="Query",
        query_level=query_pb2.QUERY_LEVEL_SERIES,
        patient_id="HOSTILE-1",
        include_fields=["StudyDescription", "PatientName"],
        min_study_date=query_pb2.DateTime(date=query_pb2.Date(year=2020, month=1, day=2)),
    )


def _archive_request() -> query_pb2.ArchiveRequest:
    return query_pb2.ArchiveRequest(
        path="/studies", parameters=[query_pb2.Parameter(name="PatientID", values=["HOSTILE-1"])]
    )


def seeds() -> dict[str, list[bytes]]:
    """Valid requests for every RPC, serialized."""
    study = make_study(7, n_series=2, n_instances=3)
    ref_study = objects_pb2.ObjectReference(study=objects_pb2.StudyReference(study_uid=study.uid))
    series = study.series[0]
    ref_instance = objects_pb2.ObjectReference(
        instance=objects_pb2.InstanceReference(
            study_uid=study.uid, series_uid=series.uid, instance_uid=series.instances[0].uid
        )
    )
    lookup_query = pb.LookupQueryRequest(
        namespace=NAMESPACE,
        query=_query(),
        protocol=query_pb2.PROTOCOL_QIDO_RS,
        archive_request=_archive_request(),
    )
    lookup_study = pb.LookupStudyRequest(
        namespace=NAMESPACE, study_uid=study.uid, query_level=query_pb2.QUERY_LEVEL_INSTANCE
    )
    messages: dict[str, list[object]] = {
        "LookupQuery": [lookup_query, pb.LookupQueryRequest(namespace=NAMESPACE, query=_query())],
        "StoreQuery": [
            pb.StoreQueryRequest(
                namespace=NAMESPACE,
                query=_query(),
                studies=[study],
                ttl_seconds=60,
                protocol=query_pb2.PROTOCOL_QIDO_RS,
                archive_request=_archive_request(),
            )
        ],
        "LookupStudy": [lookup_study],
        "StoreStudy": [
            pb.StoreStudyRequest(
                namespace=NAMESPACE, study=study, query_level=query_pb2.QUERY_LEVEL_INSTANCE
            )
        ],
        "AddObjects": [pb.AddObjectsRequest(namespace=NAMESPACE, studies=[study], ttl_seconds=30)],
        "GetObjects": [
            pb.GetObjectsRequest(namespace=NAMESPACE, references=[ref_study, ref_instance])
        ],
        "Invalidate": [
            pb.InvalidateRequest(namespace=NAMESPACE, reference=ref_instance),
            pb.InvalidateRequest(namespace=NAMESPACE + "-other"),
        ],
        "GetStats": [pb.GetStatsRequest(namespace=NAMESPACE), pb.GetStatsRequest()],
        "StreamLookupQuery": [pb.StreamLookupQueryRequest(request=lookup_query)],
        "StreamLookupStudy": [pb.StreamLookupStudyRequest(request=lookup_study)],
        "StreamStoreQuery": [
            pb.StreamStoreQueryRequest(
                store=pb.StoreQueryRequest(namespace=NAMESPACE, query=_query()),
                studies=[study],
                last=True,
            )
        ],
        "StreamStoreStudy": [
            pb.StreamStoreStudyRequest(
                store=pb.StoreStudyRequest(
                    namespace=NAMESPACE,
                    study=objects_pb2.Study(uid=study.uid, attributes=study.attributes),
                    query_level=query_pb2.QUERY_LEVEL_INSTANCE,
                ),
                series=study.series,
                last=True,
            )
        ],
    }
    return {m: [msg.SerializeToString() for msg in ms] for m, ms in messages.items()}  # type: ignore[attr-defined]


def big_study(instances: int = 500, text_bytes: int = 1000) -> objects_pb2.Study:
    """A study of about ``instances`` x ``text_bytes`` bytes: what amplification multiplies."""
    study = make_study(0, n_series=1, n_instances=instances)
    study.uid = BIG_STUDY_UID
    study.attributes.elements[0x0020000D].values.items[0].text = BIG_STUDY_UID
    series = study.series[0]
    series.uid = f"{BIG_STUDY_UID}.1"
    series.attributes.elements[0x0020000E].values.items[0].text = series.uid
    filler = "x" * text_bytes
    for i, instance in enumerate(series.instances, start=1):
        instance.uid = f"{series.uid}.{i}"
        instance.attributes.elements[0x00080018].values.items[0].text = instance.uid
        instance.attributes.elements[0x00204000].CopyFrom(text_element("LT", filler))
    return study


def _store_study(study: objects_pb2.Study) -> bytes:
    request = pb.StoreStudyRequest(
        namespace=NAMESPACE, study=study, query_level=query_pb2.QUERY_LEVEL_STUDY
    )
    data: bytes = request.SerializeToString()
    return data


def _with_element(element: dataset_pb2.Element, n: int) -> objects_pb2.Study:
    study = make_study(1000 + n)
    study.attributes.elements[PRIVATE_TAG].CopyFrom(element)
    return study


def _values(*values: dataset_pb2.Value) -> dataset_pb2.Element:
    return dataset_pb2.Element(values=dataset_pb2.Values(items=list(values)))


# The kinds each VR's values may have (dataset.proto's Value); binary VRs hold bytes.
_STRINGS = [
    "AE",
    "AS",
    "CS",
    "DA",
    "DT",
    "LO",
    "LT",
    "SH",
    "ST",
    "TM",
    "UC",
    "UI",
    "UR",
    "UT",
    "AT",
]
_KINDS: dict[str, frozenset[str]] = {
    **{vr: frozenset({"text"}) for vr in _STRINGS},
    "IS": frozenset({"text", "integer"}),
    "DS": frozenset({"text", "decimal"}),
    **{vr: frozenset({"integer"}) for vr in ["SS", "US", "SL", "UL", "SV"]},
    "UV": frozenset({"unsigned"}),
    **{vr: frozenset({"decimal"}) for vr in ["FL", "FD"]},
    "PN": frozenset({"person_name"}),
    "SQ": frozenset({"item"}),
    **{vr: frozenset() for vr in ["OB", "OD", "OF", "OL", "OV", "OW", "UN"]},
}
_EXAMPLES: dict[str, Callable[[], dataset_pb2.Value]] = {
    "text": lambda: dataset_pb2.Value(text="abc"),
    "integer": lambda: dataset_pb2.Value(integer=7),
    "unsigned": lambda: dataset_pb2.Value(unsigned=7),
    "decimal": lambda: dataset_pb2.Value(decimal=1.5),
    "person_name": lambda: dataset_pb2.Value(
        person_name=dataset_pb2.PersonName(alphabetic="Made^Up")
    ),
    "item": lambda: dataset_pb2.Value(item=dataset(t00100020=text_element("LO", "X"))),
}


def wrong_kinds() -> list[Case]:
    """Every VR holding values of a kind it cannot hold, plus numbers and dates out of range."""
    cases = []
    for n, vr in enumerate(sorted(VALID_VRS)):
        allowed = _KINDS[vr]
        first = "text" if vr == "SQ" else "item"
        # Uncontested kinds only: a DS of 7 may come from JSON as an integer, so IS and
        # DS get a person name.
        order = ["integer", "text"] if vr == "PN" else ["text", "integer", "person_name"]
        if vr in ("IS", "DS"):
            order = ["person_name"]
        second = next(k for k in order if k not in allowed and k != first)
        for kind in dict.fromkeys([first, second]):
            assert kind not in allowed, (vr, kind)
            element = _values(_EXAMPLES[kind]())
            element.vr = vr
            study = _with_element(element, n)
            cases.append(Case(f"{vr} holding {kind}", "StoreStudy", _store_study(study), INVALID))
    out_of_range = {
        "US 70000": dataset_pb2.Element(
            vr="US", values=_values(dataset_pb2.Value(integer=70000)).values
        ),
        "SS -40000": dataset_pb2.Element(
            vr="SS", values=_values(dataset_pb2.Value(integer=-40000)).values
        ),
        "UL 2^32": dataset_pb2.Element(
            vr="UL", values=_values(dataset_pb2.Value(integer=2**32)).values
        ),
        "DA not a date": dataset_pb2.Element(
            vr="DA", values=_values(dataset_pb2.Value(text="notadate")).values
        ),
    }
    for n, (name, element) in enumerate(out_of_range.items(), start=100):
        cases.append(Case(name, "StoreStudy", _store_study(_with_element(element, n)), INVALID))
    return cases


def _bad_utf8(message: object, marker: str) -> bytes:
    """``message`` serialized with ``marker`` (2 ASCII characters) replaced by invalid UTF-8."""
    data: bytes = message.SerializeToString()  # type: ignore[attr-defined]
    assert data.count(marker.encode()) == 1, marker
    return data.replace(marker.encode(), b"\xff\xfe")


def _stream_lookup_study_bytes(inner: bytes) -> bytes:
    return wire.length_delimited(1, inner)


def structured(heavy: bool = True) -> list[Case]:
    """The structured attacks, each with the codes that are right for it.

    Args:
        heavy: include the huge requests (several MB each, seconds to serve).
    """
    cases: list[Case] = []
    # Deep nesting: at the validation limit, past it, and past the parser's own limit.
    for depth in (MAX_SEQUENCE_DEPTH, MAX_SEQUENCE_DEPTH + 1, 40, 200, 5000):
        study = wire.length_delimited(1, BIG_STUDY_UID.encode()) + wire.length_delimited(
            2, wire.nested_dataset(depth)
        )
        data = wire.length_delimited(1, NAMESPACE.encode()) + wire.length_delimited(2, study)
        data += wire.number(3, query_pb2.QUERY_LEVEL_STUDY)
        codes = FINE if depth <= MAX_SEQUENCE_DEPTH else INVALID
        cases.append(Case(f"SQ nested {depth} deep", "StoreStudy", data, codes))
    # Huge repeated fields (a tenth as many when not heavy).
    scale = 1 if heavy else 10
    many_fields = pb.LookupQueryRequest(namespace=NAMESPACE, query=_query())
    many_fields.query.include_fields.extend(["StudyDescription"] * (100_000 // scale))
    cases.append(
        Case(f"{100 // scale}k include_fields", "LookupQuery", many_fields.SerializeToString())
    )
    many_parameters = pb.LookupQueryRequest(
        namespace=NAMESPACE, query=_query(), archive_request=_archive_request()
    )
    many_parameters.archive_request.parameters.extend(
        query_pb2.Parameter(name=f"p{i}", values=["v"] * 10) for i in range(50_000 // scale)
    )
    cases.append(
        Case(
            f"{50 // scale}k archive parameters", "LookupQuery", many_parameters.SerializeToString()
        )
    )
    many_studies = pb.AddObjectsRequest(namespace=NAMESPACE)
    many_studies.studies.extend(make_study(10_000 + i) for i in range(50_000 // scale))
    cases.append(
        Case(f"{50 // scale}k studies", "AddObjects", many_studies.SerializeToString(), TOO_MUCH)
    )
    many_values = make_study(3)
    many_values.attributes.elements[PRIVATE_TAG].CopyFrom(
        dataset_pb2.Element(
            vr="LO",
            values=dataset_pb2.Values(items=[dataset_pb2.Value(text="v")] * (1_000_000 // scale)),
        )
    )
    cases.append(
        Case(
            f"{1000 // scale}k values in one element",
            "StoreStudy",
            _store_study(many_values),
            TOO_MUCH,
        )
    )
    many_refs = pb.GetObjectsRequest(namespace=NAMESPACE)
    many_refs.references.extend(
        objects_pb2.ObjectReference(study=objects_pb2.StudyReference(study_uid=str(i)))
        for i in range(200_000 // scale)
    )
    cases.append(
        Case(f"{200 // scale}k references", "GetObjects", many_refs.SerializeToString(), TOO_MUCH)
    )
    # One object, referenced as often as allowed (the study is stored first: see hostile).
    same = pb.GetObjectsRequest(namespace=NAMESPACE)
    same.references.extend(
        objects_pb2.ObjectReference(study=objects_pb2.StudyReference(study_uid=BIG_STUDY_UID))
        for _ in range(MAX_REFERENCES)
    )
    cases.append(
        Case(
            f"{MAX_REFERENCES} references to one 0.5 MB study",
            "GetObjects",
            same.SerializeToString(),
            TOO_MUCH,
        )
    )
    # Ten thousand violations: every instance's uid is bad.
    bad = make_study(4, n_series=1, n_instances=10_000)
    for instance in bad.series[0].instances:
        instance.uid = "not-a-uid"
    cases.append(Case("10k violations", "StoreStudy", _store_study(bad), INVALID))
    # Text that is not UTF-8, in every kind of string field.
    study = make_study(5, n_series=1, n_instances=1)
    cases += [
        Case(
            "bad UTF-8 namespace",
            "GetStats",
            _bad_utf8(pb.GetStatsRequest(namespace="hoZZ"), "ZZ"),
            INVALID,
        ),
        Case(
            "bad UTF-8 study_uid",
            "LookupStudy",
            _bad_utf8(
                pb.LookupStudyRequest(namespace=NAMESPACE, study_uid="1.2ZZ", query_level=1), "ZZ"
            ),
            INVALID,
        ),
    ]
    named = pb.LookupQueryRequest(namespace=NAMESPACE, query=_query())
    named.query.patient_name = "DoeZZ"
    cases.append(Case("bad UTF-8 query field", "LookupQuery", _bad_utf8(named, "ZZ"), INVALID))
    extra = pb.LookupQueryRequest(namespace=NAMESPACE, query=_query())
    extra.query.extra_fields["PatientAgeZZ"] = "040Y"
    cases.append(Case("bad UTF-8 map key", "LookupQuery", _bad_utf8(extra, "ZZ"), INVALID))
    texty = make_study(6)
    texty.attributes.elements[0x00081030].CopyFrom(text_element("LO", "DescZZ"))
    cases.append(
        Case(
            "bad UTF-8 element text",
            "StoreStudy",
            _bad_utf8(pb.StoreStudyRequest(namespace=NAMESPACE, study=texty, query_level=1), "ZZ"),
            INVALID,
        )
    )
    vr = make_study(8)
    vr.attributes.elements[0x00081030].CopyFrom(text_element("ZZ", "x"))
    cases.append(
        Case(
            "bad UTF-8 VR",
            "StoreStudy",
            _bad_utf8(pb.StoreStudyRequest(namespace=NAMESPACE, study=vr, query_level=1), "ZZ"),
            INVALID,
        )
    )
    wrapped = _bad_utf8(
        pb.LookupStudyRequest(namespace="hoZZ", study_uid="1.2", query_level=1), "ZZ"
    )
    cases.append(
        Case(
            "bad UTF-8 in a streamed lookup",
            "StreamLookupStudy",
            _stream_lookup_study_bytes(wrapped),
            INVALID,
        )
    )
    cases += _extreme_numbers(study)
    cases += wrong_kinds()
    return cases


def _extreme_numbers(study: objects_pb2.Study) -> list[Case]:
    cases = []
    for name, ttl, lease in (("ttl and lease at their maximum", 2**32 - 1, 2**64 - 1),):
        request = pb.StoreStudyRequest(
            namespace=NAMESPACE, study=study, query_level=1, ttl_seconds=ttl, lease=lease
        )
        cases.append(Case(name, "StoreStudy", request.SerializeToString()))
    for value in (2**31 - 1, -(2**31), 99):
        request = pb.LookupStudyRequest(namespace=NAMESPACE, study_uid="1.2", query_level=value)
        cases.append(
            Case(f"query_level {value}", "LookupStudy", request.SerializeToString(), INVALID)
        )
        protocol = pb.GetObjectsRequest(namespace=NAMESPACE, protocol=value)
        cases.append(Case(f"protocol {value}", "GetObjects", protocol.SerializeToString(), INVALID))
    for field, value in (("limit", -(2**63)), ("offset", 2**63 - 1), ("limit", 2**63 - 1)):
        request = pb.LookupQueryRequest(namespace=NAMESPACE, query=_query())
        setattr(request.query, field, value)
        cases.append(Case(f"query {field} {value}", "LookupQuery", request.SerializeToString()))
    for year, month, day in ((2**31 - 1, 12, 31), (-(2**31), 1, 1), (2024, 13, 40), (0, 0, 0)):
        request = pb.LookupQueryRequest(namespace=NAMESPACE, query=_query())
        request.query.min_study_date.date.CopyFrom(query_pb2.Date(year=year, month=month, day=day))
        cases.append(Case(f"date {year}-{month}-{day}", "LookupQuery", request.SerializeToString()))
    for offset in (2**31 - 1, -(2**31)):
        request = pb.LookupQueryRequest(namespace=NAMESPACE, query=_query())
        request.query.max_study_date.date.CopyFrom(query_pb2.Date(year=2024, month=1, day=1))
        request.query.max_study_date.hour = 2**31 - 1
        request.query.max_study_date.utc_offset_seconds = offset
        cases.append(Case(f"datetime offset {offset}", "LookupQuery", request.SerializeToString()))
    values = {
        "decimal NaN": dataset_pb2.Value(decimal=float("nan")),
        "decimal inf": dataset_pb2.Value(decimal=float("inf")),
        "decimal -inf": dataset_pb2.Value(decimal=float("-inf")),
        "integer -2^63": dataset_pb2.Value(integer=-(2**63)),
        "unsigned 2^64-1": dataset_pb2.Value(unsigned=2**64 - 1),
    }
    for n, (name, value) in enumerate(values.items(), start=200):
        vr = {"decimal": "FD", "integer": "SV", "unsigned": "UV"}[name.split()[0]]
        element = dataset_pb2.Element(vr=vr, values=dataset_pb2.Values(items=[value]))
        cases.append(Case(name, "StoreStudy", _store_study(_with_element(element, n))))
    for tag in (0xFFFFFFFF, 0, 0x00000001):
        tagged = make_study(300 + tag % 7)
        tagged.attributes.elements[tag].CopyFrom(text_element("LO", "x"))
        cases.append(Case(f"tag {tag:08X}", "StoreStudy", _store_study(tagged)))
    return cases
