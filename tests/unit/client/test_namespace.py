"""Namespaces derived from the upstream: stable, distinct, free of secrets."""

from __future__ import annotations

import re
from importlib import resources

import pytest
import requests
from dicomtrolley.core import Searcher
from dicomtrolley.dicom_qr import DICOMQR
from dicomtrolley.mint import Mint
from dicomtrolley.qido_rs import QidoRS

from dicomcache.client.namespace import derive_namespace
from dicomcache.contract import NAMESPACE as _NAMESPACE


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
    """Both use the contract's one definition, which states what cache_service.proto says."""
    from dicomcache import contract
    from dicomcache.client import searcher
    from dicomcache.server.api import validation

    # Identity, not equality: each side must use the contract's objects, not copies.
    assert searcher.NAMESPACE is contract.NAMESPACE
    assert searcher.NAMESPACE_RULE is contract.NAMESPACE_RULE
    assert validation._NAMESPACE is contract.NAMESPACE
    assert validation.NAMESPACE_RULE is contract.NAMESPACE_RULE
    proto = resources.files("dicomcache.v1").joinpath("cache_service.proto").read_text()
    comment = " ".join(line.strip("/ ") for line in proto.splitlines() if line.startswith("//"))
    assert 'Namespaces are 1 to 128 characters of letters, digits and "._:/-".' in comment
    assert contract.NAMESPACE.pattern == r"[A-Za-z0-9._:/-]{1,128}"
    assert "1 to 128" in contract.NAMESPACE_RULE and "._:/-" in contract.NAMESPACE_RULE
