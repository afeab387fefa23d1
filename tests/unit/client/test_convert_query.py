"""dicomtrolley Query (every subclass) <-> proto Query: back to the same class, equal fields."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from importlib import resources

import pytest
from dicomtrolley.core import Query, QueryLevels
from dicomtrolley.dicom_qr import DICOMQuery
from dicomtrolley.qido_rs import HierarchicalQuery, RelationalQuery
from hypothesis import given

from dicomcache import contract
from dicomcache.client.convert import query as query_module
from dicomcache.client.convert.query import (
    DEFAULT_REGISTRY,
    QueryRegistry,
    kind_of,
    query_from_proto,
    query_to_proto,
)
from dicomcache.client.errors import QueryConversionError
from dicomcache.v1 import query_pb2
from tests.support.strategies import QUERY_CLASSES, queries


class SiteQuery(Query):
    """An application's own query class with fields the contract does not name."""

    Laterality: str = ""
    Station: str | None = "MAIN"


class CountingQuery(Query):
    """A query class with a field that cannot travel."""

    retries: int = 0


@given(queries())
def test_every_query_class_round_trips(query: Query) -> None:
    wire = query_to_proto(query).SerializeToString()
    back = query_from_proto(query_pb2.Query.FromString(wire))
    assert type(back) is type(query)
    assert back.model_dump() == query.model_dump()


def test_kind_names_the_class() -> None:
    assert query_to_proto(Query()).kind == "dicomtrolley.core.Query"
    query = HierarchicalQuery(StudyInstanceUID="1.2", query_level=QueryLevels.SERIES)
    assert query_to_proto(query).kind == "dicomtrolley.qido_rs.HierarchicalQuery"
    assert {kind_of(cls) for cls in QUERY_CLASSES} == {
        "dicomtrolley.core.Query",
        "dicomtrolley.core.ExtendedQuery",
        "dicomtrolley.qido_rs.QidoRSQueryBase",
        "dicomtrolley.qido_rs.HierarchicalQuery",
        "dicomtrolley.qido_rs.RelationalQuery",
        "dicomtrolley.dicom_qr.DICOMQuery",
        "dicomtrolley.mint.MintQuery",
    }


def test_client_and_server_agree_on_the_default_kind() -> None:
    """Both take it from the contract, which names dicomtrolley's Query as query.proto says."""
    from dicomcache.server.api import keys

    # Identity, not equality: a second definition of the same text is another object.
    assert query_module.DEFAULT_KIND is contract.DEFAULT_KIND
    assert keys.DEFAULT_KIND is contract.DEFAULT_KIND
    assert kind_of(Query) == contract.DEFAULT_KIND
    proto = resources.files("dicomcache.v1").joinpath("query.proto").read_text()
    assert f'"{contract.DEFAULT_KIND}" (the default when empty)' in proto


def test_empty_kind_and_level_mean_the_defaults() -> None:
    back = query_from_proto(query_pb2.Query(patient_id="P1"))
    assert type(back) is Query
    assert back.query_level == QueryLevels.STUDY
    assert back.PatientID == "P1"


def test_fields_travel_in_their_proto_fields() -> None:
    query = DICOMQuery(
        PatientName="Doe^J*",
        Modality="CT",
        PatientBirthDate=date(1970, 1, 2),
        min_study_date=datetime(2020, 1, 1, 8, 30, tzinfo=timezone(timedelta(hours=-5))),
        max_study_date=datetime(2020, 12, 31, 23, 59, 59, 999999),
        include_fields=["PatientID"],
        query_level=QueryLevels.INSTANCE,
    )
    message = query_to_proto(query)
    assert message.patient_name == "Doe^J*"
    assert message.modality == "CT"
    assert message.query_level == query_pb2.QUERY_LEVEL_INSTANCE
    assert (message.patient_birth_date.year, message.patient_birth_date.day) == (1970, 2)
    assert message.min_study_date.utc_offset_seconds == -5 * 3600
    assert not message.max_study_date.HasField("utc_offset_seconds")
    assert message.max_study_date.microsecond == 999999
    assert list(message.include_fields) == ["PatientID"]
    assert not message.extra_fields
    back = query_from_proto(message)
    assert back.min_study_date == query.min_study_date
    assert back.min_study_date.utcoffset() == timedelta(hours=-5)
    assert back.max_study_date.tzinfo is None


def test_include_fields_none_is_not_an_empty_list() -> None:
    query = Query()
    query.include_fields = None
    message = query_to_proto(query)
    assert message.include_fields_null
    assert query_from_proto(message).include_fields is None
    assert query_from_proto(query_to_proto(Query())).include_fields == []


def test_registered_subclass_carries_its_string_fields() -> None:
    registry = QueryRegistry((SiteQuery,))
    query = SiteQuery(PatientID="P", Laterality="L")
    message = query_to_proto(query)
    assert dict(message.extra_fields) == {"Laterality": "L"}  # Station is at its default
    back = query_from_proto(message, registry)
    assert type(back) is SiteQuery
    assert back.model_dump() == query.model_dump()
    with pytest.raises(QueryConversionError, match="Station is a NoneType"):
        query_to_proto(SiteQuery(Station=None))


def test_string_field_set_away_from_its_default() -> None:
    registry = QueryRegistry((SiteQuery,))
    query = SiteQuery(Station="")
    message = query_to_proto(query)
    assert dict(message.extra_fields) == {"Station": ""}
    assert query_from_proto(message, registry).model_dump() == query.model_dump()


def test_unregistered_kind_is_refused() -> None:
    message = query_to_proto(SiteQuery(Laterality="R"))
    assert message.kind == f"{__name__}.SiteQuery"
    with pytest.raises(QueryConversionError, match="unknown query kind"):
        query_from_proto(message)
    with pytest.raises(QueryConversionError, match="unknown query kind"):
        query_from_proto(query_pb2.Query(kind="os.system"))


def test_registry_refuses_non_queries_and_clashes() -> None:
    registry = QueryRegistry()
    with pytest.raises(TypeError):
        registry.register(int)  # type: ignore[arg-type]
    registry.register(SiteQuery)
    registry.register(SiteQuery)  # idempotent
    impostor = type("SiteQuery", (Query,), {"__module__": __name__, "__qualname__": "SiteQuery"})
    with pytest.raises(QueryConversionError, match="another class"):
        registry.register(impostor)
    assert DEFAULT_REGISTRY.lookup("") is Query


def test_field_that_cannot_travel_is_refused() -> None:
    assert query_to_proto(CountingQuery()).kind.endswith("CountingQuery")  # default: fine
    with pytest.raises(QueryConversionError, match="retries"):
        query_to_proto(CountingQuery(retries=3))


def test_field_the_class_lacks_is_refused() -> None:
    message = query_pb2.Query(kind="dicomtrolley.core.Query", limit=5)
    with pytest.raises(QueryConversionError, match="no field limit"):
        query_from_proto(message)
    message = query_pb2.Query(extra_fields={"Nonsense": "x"})
    with pytest.raises(QueryConversionError, match="Nonsense"):
        query_from_proto(message)
    message = query_pb2.Query(extra_fields={"PatientID": "x"})
    with pytest.raises(QueryConversionError, match="contract field"):
        query_from_proto(message)


def test_invalid_values_are_refused_clearly() -> None:
    relational_at_study_level = query_pb2.Query(
        kind="dicomtrolley.qido_rs.RelationalQuery", query_level=query_pb2.QUERY_LEVEL_STUDY
    )
    with pytest.raises(QueryConversionError, match="invalid RelationalQuery"):
        query_from_proto(relational_at_study_level)
    bad_date = query_pb2.Query(patient_birth_date=query_pb2.Date(year=2021, month=2, day=30))
    with pytest.raises(QueryConversionError, match="invalid date"):
        query_from_proto(bad_date)
    both = query_pb2.Query(include_fields=["PatientID"], include_fields_null=True)
    with pytest.raises(QueryConversionError, match="both"):
        query_from_proto(both)
    assert isinstance(RelationalQuery(query_level="SERIES"), Query)
