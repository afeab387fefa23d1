"""The upstreams that the settings name, checked and built at start.

Two sources, which may be used together (a name may appear in one of them only):

* ``--upstream NAME=URL`` (repeatable; ``DICOMCACHE_UPSTREAM`` holds entries
  separated by commas or whitespace), with ``--upstream-credentials NAME=file:PATH``
  or ``NAME=env:VAR`` for an HTTP upstream that needs them;
* ``--upstreams-file``, TOML, one table per upstream::

      [upstreams.pacs]
      url = "https://pacs.example.org/dicom-web"
      credentials_file = "/run/secrets/pacs"   # or credentials_env = "PACS_TOKEN"
      timeout = 5                              # seconds; default --upstream-timeout
      ca_file = "/etc/ssl/pacs-ca.pem"         # https: the CA bundle to verify with

      [upstreams.pacsqr]
      url = "dicom://ORTHANC@10.0.0.5:4242?calling=DICOMCACHE"

URLs: ``http://`` and ``https://`` are a QIDO-RS service's root (the URL that
``/studies`` follows); ``dicom://CALLED_AE@HOST:PORT?calling=CALLING_AE`` is a DICOM-QR
archive (port 104 and calling AE ``DICOMCACHE`` when not given). A URL never carries
credentials. A name is a namespace of the cache (``dicomcache.contract.NAMESPACE``)
without "/", since it is also a path segment of the HTTP endpoint.

Every rule broken raises ``UpstreamConfigError`` naming the setting; nothing is
connected to while checking, so a bad configuration costs no archive a request.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from dicomcache.contract import NAMESPACE, NAMESPACE_RULE
from dicomcache.server.config import Settings
from dicomcache.server.upstreams import Upstream
from dicomcache.server.upstreams.credentials import Credentials, CredentialsError

SCHEMES = ("http", "https", "dicom")
DEFAULT_DICOM_PORT = 104
DEFAULT_CALLING_AE = "DICOMCACHE"
NAME_RULE = f"{NAMESPACE_RULE}, without '/'"
_FILE_KEYS = frozenset({"url", "credentials_file", "credentials_env", "timeout", "ca_file"})


class UpstreamConfigError(ValueError):
    """A rule of the upstream settings is broken; ``setting`` names where.

    The message quotes names, schemes and paths, never a credential nor a URL's
    user information.
    """

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")


@dataclass(frozen=True)
class HttpTarget:
    """A QIDO-RS service: its root URL, and how to verify its TLS certificate."""

    url: str
    ca_file: str | None = None


@dataclass(frozen=True)
class DicomTarget:
    """A DICOM-QR archive: where it listens and the AE titles of the association."""

    host: str
    port: int
    called_ae: str
    calling_ae: str


@dataclass(frozen=True)
class UpstreamSpec:
    """One upstream as configured and checked; builds it with ``build``."""

    name: str
    target: HttpTarget | DicomTarget
    timeout: float
    credentials: Credentials | None = None

    @property
    def kind(self) -> str:
        """ "qido-rs" or "dicom-qr"."""
        return "qido-rs" if isinstance(self.target, HttpTarget) else "dicom-qr"

    def build(self) -> Upstream:
        """The upstream (connects lazily, at its first fetch)."""
        if isinstance(self.target, HttpTarget):
            from dicomcache.server.upstreams.qido_rs import QidoRsUpstream

            return QidoRsUpstream(
                self.name,
                self.target.url,
                timeout=self.timeout,
                credentials=self.credentials,
                ca_file=self.target.ca_file,
            )
        from dicomcache.server.upstreams.dicom_qr import DicomQrUpstream

        return DicomQrUpstream(
            self.name,
            self.target.host,
            self.target.port,
            called_ae=self.target.called_ae,
            calling_ae=self.target.calling_ae,
            timeout=self.timeout,
        )


def build_upstreams(settings: Settings) -> dict[str, Upstream]:
    """Every configured upstream by name (empty when none is).

    Raises:
        UpstreamConfigError: a rule broken; nothing was built.
    """
    return {spec.name: spec.build() for spec in upstream_specs(settings)}


def describe(upstreams: dict[str, Upstream]) -> str:
    """``pacs (qido-rs), pacsqr (dicom-qr)``: names and kinds only, for the startup line."""
    kinds = {1: "qido-rs", 2: "dicom-qr"}  # query_pb2.PROTOCOL_QIDO_RS, PROTOCOL_DICOM_QR
    return ", ".join(f"{n} ({kinds.get(u.protocol, '?')})" for n, u in upstreams.items()) or "none"


def upstream_specs(settings: Settings) -> list[UpstreamSpec]:
    """The upstreams of the flags, then of the file, checked.

    Raises:
        UpstreamConfigError: a rule broken.
    """
    found: dict[str, tuple[str, str]] = {}  # name -> (setting, url)
    options: dict[str, dict[str, Any]] = {}
    for entry in settings.upstream:
        name, url = _pair("upstream", entry, "NAME=URL")
        _add(found, name, "upstream", url)
    if settings.upstreams_file:
        for name, table in _read_file(settings.upstreams_file).items():
            setting = f"upstreams_file: upstreams.{name}"
            _add(found, name, "upstreams_file", table["url"], setting)
            options[name] = table
    sources: dict[str, str] = {}
    for entry in settings.upstream_credentials:
        name, given = _pair("upstream_credentials", entry, "NAME=file:PATH or NAME=env:VAR")
        if name not in found:
            raise UpstreamConfigError("upstream_credentials", f"no upstream is named {name!r}")
        if name in sources:
            raise UpstreamConfigError("upstream_credentials", f"{name!r} is given twice")
        sources[name] = given
    specs = []
    for name, (setting, url) in found.items():
        table = options.get(name, {})
        where = f"upstreams_file: upstreams.{name}" if setting == "upstreams_file" else setting
        target = _target(where if setting != "upstream" else f"upstream {name}", url)
        in_file = _file_credentials(table)
        if name in sources and in_file is not None:
            raise UpstreamConfigError(
                "upstream_credentials", f"{name!r} has credentials in the upstreams file too"
            )
        source = sources.get(name, in_file)
        if source is not None and isinstance(target, DicomTarget):
            raise UpstreamConfigError(where, f"{name!r} is a DICOM-QR upstream: no credentials")
        if isinstance(target, HttpTarget) and "ca_file" in table:
            target = HttpTarget(target.url, _ca_file(where, table["ca_file"], target.url))
        specs.append(
            UpstreamSpec(
                name,
                target,
                timeout=_timeout(where, table.get("timeout", settings.upstream_timeout)),
                credentials=_credentials(
                    "upstream_credentials" if name in sources else where, source
                ),
            )
        )
    return specs


def _pair(setting: str, entry: str, form: str) -> tuple[str, str]:
    name, equals, value = entry.partition("=")
    name = name.strip()
    if not equals or not name or not value.strip():
        raise UpstreamConfigError(setting, f"each entry must be {form}")
    _check_name(setting, name)
    return name, value.strip()


def _check_name(setting: str, name: str) -> None:
    if not NAMESPACE.fullmatch(name) or "/" in name:
        shown = name[:64] + ("..." if len(name) > 64 else "")
        raise UpstreamConfigError(setting, f"name {shown!r} {NAME_RULE}")


def _add(
    found: dict[str, tuple[str, str]], name: str, setting: str, url: str, where: str | None = None
) -> None:
    if name in found:
        first = found[name][0]
        raise UpstreamConfigError(
            where or setting, f"duplicate name {name!r} (already given in {first})"
        )
    found[name] = (setting, url)


def _read_file(path: str) -> dict[str, dict[str, Any]]:
    setting = "upstreams_file"
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise UpstreamConfigError(setting, f"{path} does not exist") from None
    except OSError as exc:
        raise UpstreamConfigError(setting, f"{path}: cannot read ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UpstreamConfigError(setting, f"{path} is not TOML: {exc}") from None
    unknown = sorted(set(document) - {"upstreams"})
    if unknown:
        raise UpstreamConfigError(setting, f"unknown table {unknown[0]!r} (only [upstreams.NAME])")
    tables = document.get("upstreams", {})
    if not isinstance(tables, dict):
        raise UpstreamConfigError(setting, "upstreams must be tables: [upstreams.NAME]")
    for name, table in tables.items():
        _check_name(setting, name)
        where = f"{setting}: upstreams.{name}"
        if not isinstance(table, dict):
            raise UpstreamConfigError(where, "must be a table")
        extra = sorted(set(table) - _FILE_KEYS)
        if extra:
            raise UpstreamConfigError(
                f"{where}.{extra[0]}", f"unknown key (known: {', '.join(sorted(_FILE_KEYS))})"
            )
        if not isinstance(table.get("url"), str):
            raise UpstreamConfigError(f"{where}.url", "is required, a string")
        for key in ("credentials_file", "credentials_env", "ca_file"):
            if key in table and not (isinstance(table[key], str) and table[key]):
                raise UpstreamConfigError(f"{where}.{key}", "must be a non-empty string")
        if "credentials_file" in table and "credentials_env" in table:
            raise UpstreamConfigError(where, "credentials_file or credentials_env, not both")
    return tables


def _target(setting: str, url: str) -> HttpTarget | DicomTarget:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # urllib's message may quote the netloc: not shown
        raise UpstreamConfigError(setting, "not a valid URL (its port or IPv6 address)") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = scheme[:16] or "none"
        raise UpstreamConfigError(
            setting, f"unknown scheme {shown!r} (known: {', '.join(SCHEMES)})"
        )
    if not parts.hostname:
        raise UpstreamConfigError(setting, "the URL names no host")
    if scheme == "dicom":
        return _dicom_target(setting, parts.username, parts.hostname, port, parts)
    if parts.username is not None or parts.password is not None:
        raise UpstreamConfigError(
            setting,
            "a URL never carries credentials: give them with --upstream-credentials "
            "NAME=file:PATH or NAME=env:VAR, or credentials_file/credentials_env in the "
            "upstreams file",
        )
    if parts.query or parts.fragment:
        raise UpstreamConfigError(setting, "a QIDO-RS root URL has no query nor fragment")
    return HttpTarget(url.rstrip("/"))


def _dicom_target(
    setting: str, called: str | None, host: str, port: int | None, parts: Any
) -> DicomTarget:
    if parts.password is not None:
        raise UpstreamConfigError(setting, "dicom://CALLED_AE@HOST:PORT has no password")
    if not called:
        raise UpstreamConfigError(
            setting, "dicom:// needs the called AE title: dicom://AE@HOST:PORT"
        )
    if parts.path not in ("", "/") or parts.fragment:
        raise UpstreamConfigError(setting, "dicom://CALLED_AE@HOST:PORT?calling=AE has no path")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    extra = sorted(set(query) - {"calling"})
    if extra:
        raise UpstreamConfigError(setting, f"unknown option {extra[0][:32]!r} (known: calling)")
    calling = query.get("calling", DEFAULT_CALLING_AE)
    for role, title in (("called", called), ("calling", calling)):
        if (
            not 1 <= len(title) <= 16
            or "\\" in title
            or not title.isprintable()
            or not title.strip()
        ):
            raise UpstreamConfigError(
                setting, f"the {role} AE title must be 1 to 16 printable characters, not all spaces"
            )
    return DicomTarget(host, port or DEFAULT_DICOM_PORT, called, calling)


def _file_credentials(table: dict[str, Any]) -> str | None:
    if "credentials_file" in table:
        return f"file:{table['credentials_file']}"
    if "credentials_env" in table:
        return f"env:{table['credentials_env']}"
    return None


def _credentials(setting: str, source: str | None) -> Credentials | None:
    if source is None:
        return None
    try:
        return Credentials.load(source)
    except CredentialsError as exc:
        raise UpstreamConfigError(setting, str(exc)) from None


def _ca_file(setting: str, path: str, url: str) -> str:
    if not url.lower().startswith("https:"):
        raise UpstreamConfigError(f"{setting}.ca_file", "only for an https:// URL")
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise UpstreamConfigError(f"{setting}.ca_file", f"{path} does not exist") from None
    except OSError as exc:
        reason = type(exc).__name__
        raise UpstreamConfigError(f"{setting}.ca_file", f"{path}: cannot read ({reason})") from None
    return path


def _timeout(setting: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise UpstreamConfigError(
            f"{setting}.timeout", "must be seconds, more than 0, at most 3600"
        )
    return float(value)
