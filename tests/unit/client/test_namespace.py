"""Namespaces derived from the upstream: stable, distinct, free of secrets."""

from __future__ import annotations

import re

import pytest
import requests
from dicomtrolley.core import Searcher
from dicomtrolley.dicom_qr import DICOMQR
from dicomtrolley.mint import Mint
from dicomtrolley.qido_rs import QidoRS

from dicomcache.client.namespace import NAMESPACE as _NAMESPACE
from dicomcache.client.namespace import derive_namespace


def test_same_archive_gives_the_same_namespace_in_any_spelling():
    a = derive_namespace(QidoRS(requests.Session(), "http://PACS:8042/dicom-web/"))
    b = derive_namespace(QidoRS(requests.Session(), "http://pacs:8042/dicom-web"))
    assert a == b
    assert re.fullmatch(r"QidoRS-[0-9a-f]{16}", a)
    assert _NAMESPACE.fullmatch(a)


def test_different_archives_kinds_and_ae_titles_differ():
    names = {
        derive_namespace(QidoRS(requests.Session(), "http://pacs:8042/dicom-web")),
        derive_namespace(QidoRS(requests.Session(), "http://pacs:8043/dicom-web")),
        derive_namespace(Mint(requests.Session(), "http://pacs:8042/dicom-web")),
        derive_namespace(DICOMQR(host="pacs", port=104, aet="A", aec="ORTHANC")),
        derive_namespace(DICOMQR(host="pacs", port=104, aet="B", aec="ORTHANC")),
        derive_namespace(DICOMQR(host="pacs", port=105, aet="A", aec="ORTHANC")),
    }
    assert len(names) == 6


def test_credentials_in_the_url_do_not_reach_the_namespace():
    name = derive_namespace(QidoRS(requests.Session(), "http://user:secret@pacs:8042/dicom-web"))
    assert "secret" not in name and "user" not in name
    assert name == derive_namespace(QidoRS(requests.Session(), "http://pacs:8042/dicom-web"))


def test_an_upstream_without_an_address_needs_an_explicit_namespace():
    with pytest.raises(ValueError, match="namespace"):
        derive_namespace(Searcher())


def test_client_and_server_agree_on_the_namespace_rule():
    from dicomcache.client import namespace
    from dicomcache.server.api import validation

    assert namespace.NAMESPACE.pattern == validation._NAMESPACE.pattern
    assert namespace.NAMESPACE_RULE == validation.NAMESPACE_RULE
