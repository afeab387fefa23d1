"""The upstream settings: flags, variables and the upstreams file, checked at start.

Nothing here connects to an archive: building an upstream opens no connection.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from dicomcache.server.config import Settings
from dicomcache.server.upstreams.config import (
    DicomTarget,
    HttpTarget,
    UpstreamConfigError,
    build_upstreams,
    describe,
    upstream_specs,
)
from dicomcache.server.upstreams.credentials import Credentials, CredentialsError

SECRET = "s3cr3t-Pa55"


def specs(**settings: object) -> list:
    return upstream_specs(Settings(**settings))  # type: ignore[arg-type]


def refused(**settings: object) -> UpstreamConfigError:
    with pytest.raises(UpstreamConfigError) as caught:
        specs(**settings)
    return caught.value


def test_the_two_urls_of_the_issue_as_written() -> None:
    found = specs(
        upstream=[
            "pacs=http://127.0.0.1:8042/dicom-web",
            "pacsqr=dicom://ORTHANC@127.0.0.1:4242?calling=DICOMCACHE",
        ]
    )
    assert [(s.name, s.kind) for s in found] == [("pacs", "qido-rs"), ("pacsqr", "dicom-qr")]
    assert found[0].target == HttpTarget("http://127.0.0.1:8042/dicom-web")
    assert found[1].target == DicomTarget("127.0.0.1", 4242, "ORTHANC", "DICOMCACHE")


def test_https_and_the_dicom_defaults() -> None:
    found = specs(upstream=["a=https://pacs.example.org/dicom-web/", "b=dicom://PACS@pacs"])
    assert found[0].target == HttpTarget("https://pacs.example.org/dicom-web")
    assert found[1].target == DicomTarget("pacs", 104, "PACS", "DICOMCACHE")


def test_the_variable_separates_entries_by_commas_or_spaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DICOMCACHE_UPSTREAM", "a=http://h/x, b=http://h/y  c=dicom://AE@h:1")
    assert [s.name for s in upstream_specs(Settings())] == ["a", "b", "c"]


def test_no_upstream_is_no_upstream() -> None:
    assert upstream_specs(Settings()) == []
    assert describe(build_upstreams(Settings())) == "none"


def test_describe_says_names_and_kinds_only(tmp_path: Path) -> None:
    secret = tmp_path / "pacs"
    secret.write_text(f"user:{SECRET}\n")
    upstreams = build_upstreams(
        Settings(
            upstream=["pacs=http://127.0.0.1:1/dicom-web", "qr=dicom://AE@127.0.0.1:1"],
            upstream_credentials=[f"pacs=file:{secret}"],
        )
    )
    try:
        assert describe(upstreams) == "pacs (qido-rs), qr (dicom-qr)"
        assert SECRET not in repr(upstreams)
    finally:
        for upstream in upstreams.values():
            upstream.close()


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ("pacs=ftp://h/x", "unknown scheme 'ftp'"),
        ("pacs=h/x", "unknown scheme 'none'"),
        ("pacs=http:///x", "names no host"),
        ("pacs=http://h:99999/x", "not a valid URL"),
        ("pacs=http://h/x?a=1", "no query"),
        ("pacs=dicom://h:104", "called AE title"),
        ("pacs=dicom://AE@h:104/x", "no path"),
        ("pacs=dicom://AE@h:104?calling=", "calling AE title"),
        ("pacs=dicom://AE@h:104?calling=WAYTOOLONGFORANAET", "calling AE title"),
        ("pacs=dicom://AE@h:104?called=X", "unknown option 'called'"),
        ("pacs", "NAME=URL"),
        ("=http://h", "NAME=URL"),
    ],
)
def test_a_bad_url_names_the_upstream(entry: str, said: str) -> None:
    error = refused(upstream=[entry])
    assert error.setting.startswith("upstream")
    assert said in str(error)


def test_credentials_in_a_url_are_refused_and_not_quoted() -> None:
    error = refused(upstream=[f"pacs=https://user:{SECRET}@h/x"])
    assert error.setting == "upstream pacs"
    assert "never carries credentials" in str(error)
    assert SECRET not in str(error)


@pytest.mark.parametrize("name", ["a/b", "a@b", "a b", "", "x" * 129, "é"])
def test_a_name_must_be_a_namespace_without_slash(name: str) -> None:
    error = refused(upstream=[f"{name}=http://h/x"])
    assert error.setting == "upstream"


def test_a_duplicate_name_is_refused() -> None:
    error = refused(upstream=["p=http://h/x", "p=http://i/x"])
    assert "duplicate name 'p'" in str(error)


def test_a_name_in_the_flags_and_the_file_is_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "upstreams.toml"
    path.write_text('[upstreams.p]\nurl = "http://h/x"\n')
    error = refused(upstream=["p=http://i/x"], upstreams_file=str(path))
    assert error.setting == "upstreams_file: upstreams.p"
    assert "duplicate name 'p'" in str(error)


def test_the_file_gives_many_upstreams_with_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not parsed at start")
    monkeypatch.setenv("PACS_TOKEN", f"Bearer {SECRET}")
    path = tmp_path / "upstreams.toml"
    path.write_text(
        f"""
[upstreams.pacs]
url = "https://pacs.example.org/dicom-web"
credentials_env = "PACS_TOKEN"
timeout = 2.5
ca_file = "{ca}"

[upstreams.qr]
url = "dicom://ORTHANC@10.0.0.5:4242?calling=CACHE"
"""
    )
    found = specs(upstreams_file=str(path), upstream_timeout=7)
    assert [(s.name, s.kind, s.timeout) for s in found] == [
        ("pacs", "qido-rs", 2.5),
        ("qr", "dicom-qr", 7.0),
    ]
    assert found[0].target == HttpTarget("https://pacs.example.org/dicom-web", str(ca))
    assert found[0].credentials is not None
    assert found[0].credentials.header() == f"Bearer {SECRET}"
    assert SECRET not in repr(found)


@pytest.mark.parametrize(
    ("text", "setting", "said"),
    [
        ("[upstreams.p]\n", "upstreams_file: upstreams.p.url", "is required"),
        (
            '[upstreams.p]\nurl = "http://h"\nuser = "x"\n',
            "upstreams_file: upstreams.p.user",
            "unknown key",
        ),
        (
            '[upstreams.p]\nurl = "http://h"\ntimeout = 0\n',
            "upstreams_file: upstreams.p.timeout",
            "more than 0",
        ),
        (
            '[upstreams.p]\nurl = "http://h"\ntimeout = "5"\n',
            "upstreams_file: upstreams.p.timeout",
            "seconds",
        ),
        ('[upstreams."a/b"]\nurl = "http://h"\n', "upstreams_file", "without '/'"),
        ("[other]\nx = 1\n", "upstreams_file", "unknown table 'other'"),
        ("not toml [", "upstreams_file", "is not TOML"),
        (
            '[upstreams.p]\nurl = "https://h"\nca_file = "/none/such"\n',
            "upstreams_file: upstreams.p.ca_file",
            "does not exist",
        ),
        (
            '[upstreams.p]\nurl = "http://h"\nca_file = "/none/such"\n',
            "upstreams_file: upstreams.p.ca_file",
            "only for an https",
        ),
        (
            '[upstreams.p]\nurl = "dicom://A@h"\ncredentials_env = "X"\n',
            "upstreams_file: upstreams.p",
            "DICOM-QR",
        ),
        (
            '[upstreams.p]\nurl = "http://h"\ncredentials_env = "X"\ncredentials_file = "/f"\n',
            "upstreams_file: upstreams.p",
            "not both",
        ),
    ],
)
def test_a_bad_file_names_the_table_and_key(
    tmp_path: Path, text: str, setting: str, said: str
) -> None:
    path = tmp_path / "upstreams.toml"
    path.write_text(text)
    error = refused(upstreams_file=str(path))
    assert error.setting == setting
    assert said in str(error)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    error = refused(upstreams_file=str(tmp_path / "none.toml"))
    assert error.setting == "upstreams_file"
    assert "does not exist" in str(error)


def test_credentials_from_a_file_or_a_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(f"user:{SECRET}\n")
    monkeypatch.setenv("TOKEN", f"Bearer {SECRET}")
    found = specs(
        upstream=["a=http://h/x", "b=http://h/y"],
        upstream_credentials=[f"a=file:{secret}", "b=env:TOKEN"],
    )
    basic = base64.b64encode(f"user:{SECRET}".encode()).decode()
    assert [s.credentials.header() for s in found if s.credentials] == [
        f"Basic {basic}",
        f"Bearer {SECRET}",
    ]


@pytest.mark.parametrize(
    ("entries", "said"),
    [
        (["a=file:/none/such"], "does not exist"),
        (["a=env:NOT_SET_ANYWHERE_42"], "NOT_SET_ANYWHERE_42 is not set"),
        (["a=vault:x"], "file:PATH or env:NAME"),
        (["b=env:X"], "no upstream is named 'b'"),
        (["a=env:X", "a=env:Y"], "given twice"),
        (["q=env:X"], "DICOM-QR"),
    ],
)
def test_bad_credentials_are_named(
    monkeypatch: pytest.MonkeyPatch, entries: list[str], said: str
) -> None:
    monkeypatch.setenv("X", "Bearer x")
    monkeypatch.setenv("Y", "Bearer y")
    monkeypatch.delenv("NOT_SET_ANYWHERE_42", raising=False)
    error = refused(upstream=["a=http://h/x", "q=dicom://AE@h"], upstream_credentials=entries)
    assert error.setting.startswith("upstream")
    assert said in str(error)


@pytest.mark.parametrize(
    ("text", "header"),
    [
        (f"Bearer {SECRET}\n", f"Bearer {SECRET}"),
        (f"bearer {SECRET}", f"Bearer {SECRET}"),
        ("Basic dXNlcjpwdw==", "Basic dXNlcjpwdw=="),
        ("user:pw:with:colons", "Basic " + base64.b64encode(b"user:pw:with:colons").decode()),
    ],
)
def test_the_three_credential_forms(text: str, header: str) -> None:
    assert Credentials.parse(text, "env:X").header() == header


@pytest.mark.parametrize("text", ["", "  \n", SECRET, f"Bearer {SECRET}\nmore", f"Token {SECRET}"])
def test_content_in_no_form_is_refused_without_quoting_it(text: str) -> None:
    with pytest.raises(CredentialsError) as caught:
        Credentials.parse(text, "file:/run/secrets/pacs")
    assert "/run/secrets/pacs" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_credentials_never_show_their_secret() -> None:
    credentials = Credentials.parse(f"Bearer {SECRET}", "env:PACS_TOKEN")
    assert SECRET not in repr(credentials)
    assert SECRET not in str(credentials)
    assert SECRET not in f"{credentials!r} {credentials}"
    with pytest.raises(TypeError):
        __import__("pickle").dumps(credentials)
