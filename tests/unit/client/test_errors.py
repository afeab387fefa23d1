"""The client's error tree: one module, conversion failures apart from cache failures."""

from __future__ import annotations

import grpc
import pytest

import dicomcache.client
from dicomcache.client.convert import dicom_json, query
from dicomcache.client.errors import (
    CacheError,
    CachePermissionDenied,
    CacheRejected,
    CacheUnauthenticated,
    CacheUnavailable,
    ConversionError,
    DicomJsonError,
    QueryConversionError,
    translate,
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


class FailedCall(grpc.RpcError, grpc.Call):  # type: ignore[misc]  # grpc's classes are untyped
    """A failed call as a stub raises it: a code, details, no trailing metadata."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> None:
        return None

    def trailing_metadata(self) -> None:
        return None

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: object) -> bool:
        return False


S = grpc.StatusCode


@pytest.mark.parametrize(
    ("code", "details"),
    [
        (S.INVALID_ARGUMENT, "study_uid: must be a UID"),
        (S.RESOURCE_EXHAUSTED, "SERVER: Received message larger than max (182026 vs. 65536)"),
        (S.RESOURCE_EXHAUSTED, "CLIENT: Sent message larger than max (182026 vs. 1000)"),
        (
            S.RESOURCE_EXHAUSTED,
            "Stream removed (CLIENT: Received message larger than max (9 vs. 1))",
        ),
    ],
)
def test_a_refusal_of_one_request_is_cache_rejected(code: grpc.StatusCode, details: str) -> None:
    error = translate(FailedCall(code, details))
    assert type(error) is CacheRejected
    assert error.code == code


@pytest.mark.parametrize(
    ("code", "details", "kind"),
    [
        (S.UNAVAILABLE, "failed to connect", CacheUnavailable),
        (S.DEADLINE_EXCEEDED, "Deadline Exceeded", CacheUnavailable),
        (S.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!", CacheUnavailable),
        (S.CANCELLED, "", CacheUnavailable),
        (S.INTERNAL, "internal error (request id 1)", CacheError),
        (S.UNKNOWN, "Exception calling application", CacheError),
        (S.UNIMPLEMENTED, "Method not found!", CacheError),
        (S.UNAUTHENTICATED, "no known identity", CacheUnauthenticated),
        (S.PERMISSION_DENIED, "no read right on namespace 'a'", CachePermissionDenied),
    ],
)
def test_faults_of_the_cache_are_not_cache_rejected(
    code: grpc.StatusCode, details: str, kind: type[CacheError]
) -> None:
    error = translate(FailedCall(code, details))
    assert type(error) is kind and not isinstance(error, CacheRejected)
    assert error.code == code
