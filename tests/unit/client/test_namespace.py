"""Namespaces derived from the upstream: stable, distinct, free of secrets."""

from __future__ import annotations

import base64
import json
import re
from importlib import resources

import pytest
import requests
from dicomtrolley.auth import VitreaAuth
from dicomtrolley.core import Searcher
from dicomtrolley.dicom_qr import DICOMQR
from dicomtrolley.mint import Mint
from dicomtrolley.qido_rs import QidoRS
from requests.auth import HTTPBasicAuth, HTTPDigestAuth

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


def test_credentials_in_the_url_do_not_reach_the_namespace_only_the_user_counts():
    name = derive_namespace(QidoRS(requests.Session(), "http://user:secret@pacs:8042/dicom-web"))
    assert "secret" not in name and "user" not in name
    other_password = derive_namespace(
        QidoRS(requests.Session(), "http://user:pw2@pacs:8042/dicom-web")
    )
    assert name == other_password
    assert name != derive_namespace(QidoRS(requests.Session(), "http://pacs:8042/dicom-web"))
    assert name != derive_namespace(
        QidoRS(requests.Session(), "http://other:secret@pacs:8042/dicom-web")
    )


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


URL = "https://pacs:8042/dicom-web"


def session(auth=None, header: str | None = None, cookies: dict[str, str] | None = None):
    s = requests.Session()
    s.auth = auth
    if header is not None:
        s.headers["Authorization"] = header
    for name, value in (cookies or {}).items():
        s.cookies.set(name, value)
    return s


def jwt(**claims: str) -> str:
    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def qido(s: requests.Session) -> str:
    return derive_namespace(QidoRS(s, URL))


def test_each_upstream_user_gets_a_namespace_of_its_own():
    """Users whom the archive grants different studies never share entries (issue 12)."""
    anonymous = qido(session())
    by_user = {
        "alice tuple": qido(session(("alice", "pw"))),
        "bob tuple": qido(session(("bob", "pw"))),
        "erin digest": qido(session(HTTPDigestAuth("erin", "other-pw"))),
        "carol vitrea": qido(session(VitreaAuth("https://pacs/login", "carol", "pw", "Realm"))),
        "dave header": qido(session(header="Basic " + base64.b64encode(b"dave:pw").decode())),
        "sub-1 jwt": qido(session(header="Bearer " + jwt(iss="https://idp", sub="u-1"))),
        "sub-2 jwt": qido(session(header="Bearer " + jwt(iss="https://idp", sub="u-2"))),
        "opaque token": qido(session(header="Bearer opaque-0123456789abcdef")),
        "logged-in cookie": qido(session(cookies={"JSESSIONID": "abc123def456"})),
    }
    assert len(set(by_user.values())) == len(by_user)
    assert anonymous not in by_user.values()
    # The same user, however the credentials are carried and whatever the password.
    assert by_user["erin digest"] == qido(session(("erin", "pw")))
    assert by_user["alice tuple"] == qido(session(HTTPBasicAuth("alice", "changed")))
    assert by_user["alice tuple"] == qido(
        session(header="Basic " + base64.b64encode(b"alice:x").decode())
    )
    assert by_user["sub-1 jwt"] == qido(
        session(header="Bearer " + jwt(iss="https://idp", sub="u-1", exp="later"))
    )
    assert anonymous == derive_namespace(QidoRS(requests.Session(), URL))  # as before issue 12
    for name in by_user.values():
        assert re.fullmatch(r"QidoRS-[0-9a-f]{16}", name)


def test_an_auth_object_that_says_no_user_needs_an_explicit_namespace():
    class Custom(requests.auth.AuthBase):
        def __call__(self, r):
            return r

    with pytest.raises(ValueError, match="namespace="):
        qido(session(Custom()))
