"""The server's upstreams against real archives: Orthanc (QIDO-RS, DICOM-QR), real sockets.

The failure cases use real servers that misbehave on purpose: a closed port, a
socket that accepts and never answers, an HTTP server that answers 204 or checks a
bearer token, a pynetdicom SCP that rejects associations or fails a C-FIND, an
Orthanc that requires basic credentials.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import logging
import re
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from dicomcache.server.errors import UpstreamFailed
from dicomcache.server.logs import QUIETED
from dicomcache.server.upstreams.credentials import Credentials
from dicomcache.server.upstreams.dicom_qr import DicomQrUpstream
from dicomcache.server.upstreams.qido_rs import QidoRsUpstream
from dicomcache.v1 import query_pb2
from tests.e2e.conftest import LoadedOrthanc
from tests.support.certs import Authority
from tests.support.orthanc import running_orthanc
from tests.support.ports import free_port
from tests.support.synthetic import standard_studies, upload

pytestmark = pytest.mark.orthanc

SECRET = "Upstream-S3cret-9f2c"
SHORT = 0.5  # seconds: the timeout of fetches that must time out


def request(path: str, **parameters: list[str]) -> query_pb2.ArchiveRequest:
    built = query_pb2.ArchiveRequest(path=path)
    for name, values in parameters.items():
        built.parameters.add(name=name, values=values)
    return built


def failure(upstream: Any, archive_request: query_pb2.ArchiveRequest) -> UpstreamFailed:
    with pytest.raises(UpstreamFailed) as caught:
        upstream.fetch(archive_request, SHORT)
    return caught.value


@pytest.fixture
def qido(orthanc: LoadedOrthanc) -> Iterator[QidoRsUpstream]:
    upstream = QidoRsUpstream("pacs", orthanc.dicomweb_url)
    yield upstream
    upstream.close()


@pytest.fixture
def dicom_qr(orthanc: LoadedOrthanc) -> Iterator[DicomQrUpstream]:
    upstream = DicomQrUpstream(
        "pacsqr", orthanc.host, orthanc.dicom_port, called_ae=orthanc.aet, calling_ae="DICOMCACHE"
    )
    yield upstream
    upstream.close()


# --- QIDO-RS -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path_of",
    [
        lambda o: "/studies",
        lambda o: f"/studies/{o.study(1).uid}/series",
        lambda o: f"/studies/{o.study(1).uid}/series/{o.study(1).series_uids[0]}/instances",
        lambda o: "/instances",
    ],
    ids=["studies", "series", "instances", "all-instances"],
)
def test_qido_rs_answer_is_the_archives_json_exactly(
    orthanc: LoadedOrthanc, qido: QidoRsUpstream, path_of: Any
) -> None:
    path = path_of(orthanc)
    includes = ["StudyDescription", "00100040"]  # a keyword and a tag, repeated
    direct = requests.get(
        orthanc.dicomweb_url + path,
        params=[("includefield", v) for v in includes],
        headers={"Accept": "application/dicom+json"},
        timeout=10,
    )
    direct.raise_for_status()
    answer = qido.fetch(request(path, includefield=includes), 10)
    assert answer == direct.json()  # same objects, same order, same attributes and values
    assert answer


def test_qido_rs_repeated_values_reach_orthanc_as_repeated_parameters(
    orthanc: LoadedOrthanc, qido: QidoRsUpstream
) -> None:
    one = qido.fetch(request("/studies", includefield=["StudyDescription"]), 10)
    both = qido.fetch(request("/studies", includefield=["StudyDescription", "PatientSex"]), 10)
    assert all("00101040" not in o for o in one)
    assert all("00100040" in o and "00081030" in o for o in both)


def test_qido_rs_match_on_an_exact_value(orthanc: LoadedOrthanc, qido: QidoRsUpstream) -> None:
    answer = qido.fetch(request("/studies", PatientID=["SYN-0002"]), 10)
    assert [o["0020000D"]["Value"] for o in answer] == [[orthanc.study(2).uid]]


def test_qido_rs_no_match_is_an_empty_list(qido: QidoRsUpstream) -> None:
    assert qido.fetch(request("/studies", PatientID=["NO-SUCH-PATIENT"]), 10) == []


def test_qido_rs_http_error_is_refused_with_the_status(orthanc: LoadedOrthanc) -> None:
    upstream = QidoRsUpstream("pacs", orthanc.url + "/no-such-root")
    error = failure(upstream, request("/studies"))
    assert (error.upstream, error.reason, error.status) == ("pacs", "refused", 404)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers each GET with the server's ``status`` and ``body``; records the headers."""

    def do_GET(self) -> None:
        server: Any = self.server
        server.seen.append(dict(self.headers))
        status, body = server.answer(self.headers)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def http_server(answer: Any, tls: ssl.SSLContext | None = None) -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.answer, server.seen = answer, []
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (204, b"", []),
        (200, b"", []),
        (200, b"[]", []),
        (200, b'[{"00100020": {"vr": "LO"}}]', None),
    ],
)
def test_qido_rs_empty_answers_are_empty_lists(status: int, body: bytes, expected: Any) -> None:
    with http_server(lambda headers: (status, body)) as server:
        upstream = QidoRsUpstream("pacs", f"http://127.0.0.1:{server.server_port}/dicom-web")
        answer = upstream.fetch(request("/studies"), 5)
        assert answer == (expected if expected is not None else [{"00100020": {"vr": "LO"}}])
        assert server.seen[0]["Accept"] == "application/dicom+json"
        upstream.close()


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, b"oops", "failed"),
        (503, b"", "failed"),
        (429, b"", "failed"),
        (408, b"", "timeout"),
        (401, b"", "refused"),
        (302, b"", "failed"),
        (200, b"<html>", "failed"),
        (200, b'{"not": "a list"}', "failed"),
    ],
)
def test_qido_rs_bad_answers(status: int, body: bytes, reason: str) -> None:
    with http_server(lambda headers: (status, body)) as server:
        upstream = QidoRsUpstream("pacs", f"http://127.0.0.1:{server.server_port}")
        error = failure(upstream, request("/studies"))
        assert (error.reason, error.status) == (reason, status)
        upstream.close()


def test_qido_rs_sends_bearer_credentials_as_given() -> None:
    def answer(headers: Any) -> tuple[int, bytes]:
        ok = headers.get("Authorization") == f"Bearer {SECRET}"
        return (200, b"[]") if ok else (401, b"")

    with http_server(answer) as server:
        url = f"http://127.0.0.1:{server.server_port}"
        good = Credentials.parse(f"Bearer {SECRET}", "env:T")
        assert QidoRsUpstream("a", url, credentials=good).fetch(request("/studies"), 5) == []
        bad = Credentials.parse("Bearer wrong", "env:T")
        error = failure(QidoRsUpstream("b", url, credentials=bad), request("/studies"))
        assert (error.reason, error.status) == ("refused", 401)


def test_qido_rs_over_https_verifies_with_the_ca_file(tmp_path: Path) -> None:
    authority = Authority(tmp_path / "ca")
    pair = authority.server()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pair.cert_file, pair.key_file)
    with http_server(lambda headers: (200, b"[]"), tls) as server:
        url = f"https://127.0.0.1:{server.server_port}/dicom-web"
        trusted = QidoRsUpstream("pacs", url, ca_file=str(authority.cert_file))
        assert trusted.fetch(request("/studies"), 5) == []
        untrusted = QidoRsUpstream("pacs", url)  # the system's CAs do not know this one
        assert failure(untrusted, request("/studies")).reason == "unreachable"


@contextlib.contextmanager
def one_answer_per_connection() -> Iterator[int]:
    """An HTTP/1.1 server that keeps each connection alive after one answer, then closes
    it when the next request arrives on it, without answering (the keep-alive race)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with connection:
                connection.settimeout(5)
                with contextlib.suppress(OSError):
                    connection.recv(65536)
                    connection.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\n"
                        b"Content-Length: 2\r\nConnection: keep-alive\r\n\r\n[]"
                    )
                    connection.recv(65536)  # the next request: closed unanswered

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_qido_rs_a_connection_closed_under_the_request_is_asked_anew() -> None:
    with one_answer_per_connection() as port:
        upstream = QidoRsUpstream("pacs", f"http://127.0.0.1:{port}")
        assert upstream.fetch(request("/studies"), 5) == []
        assert upstream.fetch(request("/studies"), 5) == []  # the kept connection: closed
        upstream.close()


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()


def test_qido_rs_silent_archive_times_out() -> None:
    with silent_listener() as port:
        upstream = QidoRsUpstream("pacs", f"http://127.0.0.1:{port}")
        error = failure(upstream, request("/studies"))
        assert (error.reason, error.status) == ("timeout", None)


def test_qido_rs_configured_timeout_bounds_a_longer_fetch_timeout() -> None:
    with silent_listener() as port:
        upstream = QidoRsUpstream("pacs", f"http://127.0.0.1:{port}", timeout=SHORT)
        with pytest.raises(UpstreamFailed) as caught:
            upstream.fetch(request("/studies"), 3600)
        assert caught.value.reason == "timeout"


def test_qido_rs_closed_port_is_unreachable() -> None:
    upstream = QidoRsUpstream("pacs", f"http://127.0.0.1:{free_port()}")
    assert failure(upstream, request("/studies")).reason == "unreachable"


# --- credentials against an Orthanc that requires them -----------------------


@pytest.fixture(scope="module")
def guarded_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An Orthanc with basic authentication (user "dicomcache", password SECRET)."""
    overrides = {"AuthenticationEnabled": True, "RegisteredUsers": {"dicomcache": SECRET}}
    with running_orthanc(tmp_path_factory.mktemp("guarded"), overrides) as running:
        session = requests.Session()
        session.auth = ("dicomcache", SECRET)
        upload(running.url, standard_studies()[1].datasets, session)
        yield running.dicomweb_url


def test_basic_credentials_and_never_a_secret_in_logs(
    guarded_orthanc: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret_file = tmp_path / "pacs"
    secret_file.write_text(f"dicomcache:{SECRET}\n")
    encoded = base64.b64encode(f"dicomcache:{SECRET}".encode()).decode()
    caplog.set_level(logging.DEBUG)
    credentials = Credentials.load(f"file:{secret_file}")
    upstream = QidoRsUpstream("pacs", guarded_orthanc, credentials=credentials)
    answer = upstream.fetch(request("/studies"), 10)
    assert len(answer) == 1
    logging.getLogger("test").debug(
        "upstream %r credentials %r %s", upstream, credentials, upstream
    )
    wrong = Credentials.parse("dicomcache:wrong", "env:X")
    error = failure(QidoRsUpstream("pacs", guarded_orthanc, credentials=wrong), request("/studies"))
    assert (error.reason, error.status) == ("refused", 401)
    anonymous = failure(QidoRsUpstream("pacs", guarded_orthanc), request("/studies"))
    assert anonymous.status == 401
    upstream.close()
    shown = caplog.text + repr(upstream) + str(error) + repr(error)
    assert "credentials Credentials(source=" in caplog.text  # the capture did see DEBUG
    assert SECRET not in shown
    assert encoded not in shown


# --- DICOM-QR ----------------------------------------------------------------


def test_c_find_returns_the_studies(orthanc: LoadedOrthanc, dicom_qr: DicomQrUpstream) -> None:
    answer = dicom_qr.fetch(
        request("STUDY", StudyInstanceUID=[], PatientID=[], ModalitiesInStudy=[]), 10
    )
    found = {o["0020000D"]["Value"][0]: o for o in answer}
    assert {s.uid for s in orthanc.studies} <= set(found)  # other tests may add studies
    for study in orthanc.studies:
        assert found[study.uid]["00100020"]["Value"] == [study.patient.patient_id]
        assert found[study.uid]["00080052"]["Value"] == ["STUDY"]


def test_c_find_series_of_a_study_and_a_match(
    orthanc: LoadedOrthanc, dicom_qr: DicomQrUpstream
) -> None:
    study = orthanc.study(1)
    series = dicom_qr.fetch(
        request("SERIES", StudyInstanceUID=[study.uid], SeriesInstanceUID=[], Modality=[]), 10
    )
    assert sorted(o["0020000E"]["Value"][0] for o in series) == sorted(study.series_uids)
    matched = dicom_qr.fetch(request("STUDY", PatientID=["SYN-0004"], StudyInstanceUID=[]), 10)
    assert [o["0020000D"]["Value"] for o in matched] == [[orthanc.study(4).uid]]


def test_c_find_unicode_match(orthanc: LoadedOrthanc, dicom_qr: DicomQrUpstream) -> None:
    answer = dicom_qr.fetch(
        request("STUDY", PatientName=["Müller^Jürgen"], StudyInstanceUID=[]), 10
    )
    assert [o["0020000D"]["Value"] for o in answer] == [[orthanc.study(4).uid]]


@pytest.fixture
def quieted() -> Iterator[None]:
    """The libraries' loggers as ``dicomcache serve`` sets them (``logs.QUIETED``)."""
    loggers = [logging.getLogger(name) for name in QUIETED]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    yield
    for logger, level in zip(loggers, before, strict=True):
        logger.setLevel(level)


def test_no_query_value_is_logged_by_dicomcache_at_any_level_nor_by_its_libraries(
    orthanc: LoadedOrthanc,
    qido: QidoRsUpstream,
    dicom_qr: DicomQrUpstream,
    caplog: pytest.LogCaptureFixture,
    quieted: None,
) -> None:
    """Ours at DEBUG too; httpx and pynetdicom (which log URLs and identifiers at INFO)
    as serve quiets them."""
    caplog.set_level(logging.DEBUG)
    # (Orthanc's QIDO-RS matches no non-ASCII name, its C-FIND does)
    assert len(qido.fetch(request("/studies", PatientID=["SYN-0004"]), 10)) == 1
    match = {"PatientName": ["Müller^Jürgen"], "PatientID": ["SYN-0004"]}
    assert len(dicom_qr.fetch(request("STUDY", StudyInstanceUID=[], **match), 10)) == 1
    for value in ("Müller", "SYN-0004", "M%C3%BCller", orthanc.study(4).uid):
        assert value not in caplog.text


def test_c_find_closed_port_is_unreachable() -> None:
    upstream = DicomQrUpstream("qr", "127.0.0.1", free_port(), called_ae="X", calling_ae="Y")
    assert failure(upstream, request("STUDY", StudyInstanceUID=[])).reason == "unreachable"


def test_c_find_silent_archive_times_out() -> None:
    with silent_listener() as port:
        upstream = DicomQrUpstream("qr", "127.0.0.1", port, called_ae="X", calling_ae="Y")
        assert failure(upstream, request("STUDY", StudyInstanceUID=[])).reason == "timeout"


class Scp:
    """A running pynetdicom SCP: its port, the server, and the connections it accepted."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.port: int = server.server_address[1]
        self.connections = 0

    def opened(self, _event: Any) -> None:
        self.connections += 1

    def drop_all(self) -> None:
        """Abort every association from the archive's side, as a restart would."""
        for assoc in self.server.active_associations:
            assoc.abort()


@contextlib.contextmanager
def scp(
    status: int, require_called_aet: bool = False, abort_finds: frozenset[int] = frozenset()
) -> Iterator[Scp]:
    """A pynetdicom C-FIND SCP (AE title "SCP") that ends every find with ``status``.

    The finds numbered in ``abort_finds`` (from 1) get no answer: their association
    is aborted instead, as an archive that restarts mid-request does.
    """
    finds = [0]

    def on_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
        finds[0] += 1
        if finds[0] in abort_finds:
            event.assoc.abort()
            return
        found = Dataset()
        found.QueryRetrieveLevel = "STUDY"
        found.StudyInstanceUID = "1.2.3"
        yield 0xFF00, found
        yield status, None

    ae = AE(ae_title="SCP")
    ae.require_called_aet = require_called_aet
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    server = ae.start_server(("127.0.0.1", 0), block=False)
    running = Scp(server)
    server.bind(evt.EVT_C_FIND, on_find)
    server.bind(evt.EVT_CONN_OPEN, running.opened)
    try:
        yield running
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("status", "reason"), [(0xC000, "failed"), (0xA700, "failed"), (0xA900, "refused")]
)
def test_c_find_failure_status_is_kept(status: int, reason: str) -> None:
    with scp(status) as archive:
        upstream = DicomQrUpstream("qr", "127.0.0.1", archive.port, called_ae="SCP", calling_ae="Y")
        error = failure(upstream, request("STUDY", StudyInstanceUID=[]))
        assert (error.reason, error.status) == (reason, status)


def test_c_find_success_after_pending_answers_on_one_pooled_association() -> None:
    with scp(0x0000) as archive:
        upstream = DicomQrUpstream("qr", "127.0.0.1", archive.port, called_ae="SCP", calling_ae="Y")
        for _ in range(3):
            answer = upstream.fetch(request("STUDY", StudyInstanceUID=[]), 5)
            assert [o["0020000D"]["Value"] for o in answer] == [["1.2.3"]]
        assert archive.connections == 1
        upstream.close()


def test_c_find_without_a_pool_opens_an_association_per_fetch() -> None:
    with scp(0x0000) as archive:
        upstream = DicomQrUpstream(
            "qr", "127.0.0.1", archive.port, called_ae="SCP", calling_ae="Y", pool_size=0
        )
        for _ in range(3):
            assert len(upstream.fetch(request("STUDY", StudyInstanceUID=[]), 5)) == 1
        assert archive.connections == 3


def test_c_find_an_association_the_archive_dropped_is_replaced() -> None:
    with scp(0x0000) as archive:
        upstream = DicomQrUpstream("qr", "127.0.0.1", archive.port, called_ae="SCP", calling_ae="Y")
        assert len(upstream.fetch(request("STUDY", StudyInstanceUID=[]), 5)) == 1
        archive.drop_all()
        assert len(upstream.fetch(request("STUDY", StudyInstanceUID=[]), 5)) == 1
        assert archive.connections == 2
        upstream.close()


def test_c_find_a_pooled_association_aborted_before_any_answer_is_asked_anew() -> None:
    with scp(0x0000, abort_finds=frozenset({2})) as archive:
        upstream = DicomQrUpstream("qr", "127.0.0.1", archive.port, called_ae="SCP", calling_ae="Y")
        assert len(upstream.fetch(request("STUDY", StudyInstanceUID=[]), 5)) == 1
        assert len(upstream.fetch(request("STUDY", StudyInstanceUID=[]), 5)) == 1
        assert archive.connections == 2
        upstream.close()


def test_c_find_a_fresh_association_aborted_is_unreachable_not_retried() -> None:
    with scp(0x0000, abort_finds=frozenset({1})) as archive:
        upstream = DicomQrUpstream("qr", "127.0.0.1", archive.port, called_ae="SCP", calling_ae="Y")
        assert failure(upstream, request("STUDY", StudyInstanceUID=[])).reason == "unreachable"
        assert archive.connections == 1


def test_c_find_an_idle_association_is_not_reused_past_its_limit() -> None:
    now = [0.0]
    with scp(0x0000) as archive:
        upstream = DicomQrUpstream(
            "qr",
            "127.0.0.1",
            archive.port,
            called_ae="SCP",
            calling_ae="Y",
            idle_seconds=20,
            clock=lambda: now[0],
        )
        upstream.fetch(request("STUDY", StudyInstanceUID=[]), 5)
        now[0] += 19
        upstream.fetch(request("STUDY", StudyInstanceUID=[]), 5)
        assert archive.connections == 1
        now[0] += 20
        upstream.fetch(request("STUDY", StudyInstanceUID=[]), 5)
        assert archive.connections == 2
        upstream.close()


def test_c_find_rejected_association_is_refused() -> None:
    with scp(0x0000, require_called_aet=True) as archive:
        upstream = DicomQrUpstream(
            "qr", "127.0.0.1", archive.port, called_ae="WRONG", calling_ae="Y"
        )
        error = failure(upstream, request("STUDY", StudyInstanceUID=[]))
        assert (error.reason, error.status) == ("refused", None)


# --- dicomcache serve ----------------------------------------------------------


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``dicomcache serve`` with args that must make it refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "dicomcache.server.cli", "serve", "--listen", "127.0.0.1:0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        (["--upstream", "pacs=ftp://127.0.0.1/x"], "upstream pacs: unknown scheme 'ftp'"),
        ([f"--upstream=pacs=http://u:{SECRET}@127.0.0.1/x"], "upstream pacs: a URL never carries"),
        (["--upstream", "a/b=http://127.0.0.1/x"], "upstream: name 'a/b'"),
        (
            ["--upstream", "p=http://h/x", "--upstream", "p=http://i/x"],
            "upstream: duplicate name 'p'",
        ),
        (["--upstream", "p=dicom://127.0.0.1:104"], "upstream p: dicom:// needs the called AE"),
        (
            ["--upstream", "p=http://h/x", "--upstream-credentials", "p=file:/no/such/file"],
            "upstream_credentials: credentials file /no/such/file does not exist",
        ),
        (["--upstreams-file", "/no/such.toml"], "upstreams_file: /no/such.toml does not exist"),
        (["--upstream-timeout", "-1"], "upstream_timeout:"),
    ],
)
def test_serve_refuses_a_bad_upstream_configuration(args: list[str], setting: str) -> None:
    done = serve(*args)
    assert done.returncode == 2, done.stderr
    assert f"dicomcache: {setting}" in done.stderr
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stderr


def test_serve_names_upstreams_by_name_and_kind_only(
    orthanc: LoadedOrthanc, tmp_path: Path
) -> None:
    secret_file = tmp_path / "pacs"
    secret_file.write_text(f"Bearer {SECRET}")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dicomcache.server.cli",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "DEBUG",
            "--upstream",
            f"pacs={orthanc.dicomweb_url}",
            "--upstream",
            f"pacsqr=dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}?calling=DICOMCACHE",
            "--upstream-credentials",
            f"pacs=file:{secret_file}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = ""
        for line in process.stderr:
            if "serving on" in line:
                break
        named = r"upstreams=pacs \(qido-rs\), pacsqr \(dicom-qr\)( |$)"
        assert re.search(named, line.strip()), line
        assert str(orthanc.dicom_port) not in line and orthanc.dicomweb_url not in line
        assert SECRET not in line
    finally:
        process.terminate()
        _, rest = process.communicate(timeout=30)
    assert SECRET not in rest
