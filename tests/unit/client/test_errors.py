"""The client's error tree: one module, conversion failures apart from cache failures."""

from __future__ import annotations

import pytest

import dicomcache.client
from dicomcache.client.convert import dicom_json, query
from dicomcache.client.errors import (
    CacheError,
    ConversionError,
    DicomJsonError,
    QueryConversionError,
)


@pytest.mark.parametrize("error", [QueryConversionError, DicomJsonError])
def test_conversion_errors_share_one_base_and_stay_value_errors(
    error: type[ConversionError],
) -> None:
    assert issubclass(error, ConversionError)
    assert issubclass(error, ValueError)  # what callers caught before the base existed
    assert not issubclass(error, CacheError)  # "the cache failed" keeps its meaning


def test_the_conversions_raise_the_errors_modules_classes() -> None:
    assert query.QueryConversionError is QueryConversionError
    assert dicom_json.DicomJsonError is DicomJsonError
    with pytest.raises(ConversionError):
        query.QueryRegistry().lookup("no.such.Kind")
    with pytest.raises(ConversionError):
        dicom_json.dataset_from_json({"nonsense": {"vr": "LO"}})


def test_the_package_exports_the_tree() -> None:
    for name in ("CacheError", "ConversionError", "QueryConversionError", "DicomJsonError"):
        assert name in dicomcache.client.__all__
        assert getattr(dicomcache.client, name) is getattr(dicomcache.client.errors, name)
