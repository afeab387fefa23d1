"""The authorization policy file: principals, their identities and their grants.

TOML (read with the standard library's ``tomllib``)::

    version = 1

    [principals.viewer]                     # a name for logs and errors
    uris = ["spiffe://hospital.example/ns/radiology/sa/viewer"]   # URI SANs
    dns_names = ["viewer.radiology.svc"]    # DNS SANs
    common_names = ["viewer"]               # subject CNs
    token_sha256 = ["<64 hex digits>"]      # sha256 of a bearer token, hex
    token_files = ["/run/secrets/dicomcache/viewer-token"]   # files holding a token

    [[principals.viewer.grants]]
    namespaces = ["pacs-a", "QidoRS-*"]     # exact names; a trailing * is a prefix
    rights = ["read", "write"]              # read, write, invalidate, stats

A caller is every principal one of whose identities it presents: a certificate
name (of the kind given: a URI in ``uris`` is never matched by a CN) or a token.
It holds the union of their grants. A namespace pattern is a namespace as the
wire carries it (no protocol partition), or a prefix ending in ``*`` (``"*"``
alone: every namespace). A token file holds one token (surrounding whitespace
dropped), at least 16 characters; it is read, digested and forgotten at load.

Every rule is checked at load; a broken one is a ``PolicyError`` naming the
entry (``principals.viewer.grants[0].rights[1]``) and the rule, and never
quoting a token or a digest.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dicomcache.contract import NAMESPACE, NAMESPACE_RULE
from dicomcache.server.auth.access import Access, Scope
from dicomcache.server.auth.rights import Right
from dicomcache.server.auth.tokens import DIGEST_HEX, MIN_TOKEN_CHARS, TokenTable, digest

VERSION = 1
_PRINCIPAL_KEYS = {
    "common_names",
    "dns_names",
    "uris",
    "token_sha256",
    "token_files",
    "grants",
}
_NAME_KINDS = {"common_names": "cn", "dns_names": "dns", "uris": "uri"}
_GRANT_KEYS = {"namespaces", "rights"}
_PREFIX = re.compile(r"[A-Za-z0-9._:/-]{0,127}")
_HEX = re.compile(rf"[0-9a-fA-F]{{{DIGEST_HEX}}}")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # what fits an HTTP/2 header value unchanged
RIGHT_NAMES = ", ".join(r.value for r in Right)


class PolicyError(ValueError):
    """A policy file that cannot be used: where (file and entry) and the rule it breaks."""

    def __init__(self, path: str, entry: str, rule: str) -> None:
        super().__init__(f"auth policy {path}: {entry}: {rule}")
        self.path = path
        self.entry = entry
        self.rule = rule


@dataclass(frozen=True)
class Policy:
    """A loaded policy: who is who, and what each may do.

    Immutable, so thread-safe. Uses no clock. ``files`` are what it was read
    from: the policy file and every token file, to watch for changes.
    """

    access: dict[str, Access]
    certificates: dict[tuple[str, str], str]
    tokens: TokenTable
    files: tuple[str, ...]
    _digests: frozenset[tuple[bytes, str]] = field(default=frozenset(), repr=False)

    def same_as(self, other: Policy) -> bool:
        """Whether both grant the same rights to the same identities."""
        return (self.access, self.certificates, self._digests, self.files) == (
            other.access,
            other.certificates,
            other._digests,
            other.files,
        )


def load(path: str, read: Callable[[str], bytes] | None = None) -> Policy:
    """Read and check the policy file at ``path``.

    Raises:
        PolicyError: the file or a token file cannot be read, is not TOML, or
            breaks a rule of the format above.
    """
    read = read or _read
    try:
        document = tomllib.loads(read(path).decode("utf-8"))
    except OSError as exc:
        raise PolicyError(path, "file", f"cannot be read ({type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise PolicyError(path, "file", "must be UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(path, "file", f"must be TOML: {exc}") from None
    return _Loader(path, read).policy(document)


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


class _Loader:
    """Checks one document, collecting identities across principals."""

    def __init__(self, path: str, read: Callable[[str], bytes]) -> None:
        self.path = path
        self.read = read
        self.certificates: dict[tuple[str, str], str] = {}
        self.digests: dict[bytes, str] = {}  # digest -> the entry that gave it
        self.owners: dict[bytes, str] = {}  # digest -> principal
        self.files = [path]

    def fail(self, entry: str, rule: str) -> PolicyError:
        return PolicyError(self.path, entry, rule)

    def policy(self, document: dict[str, Any]) -> Policy:
        unknown = set(document) - {"version", "principals"}
        if unknown:
            raise self.fail(min(unknown), "unknown key: expected version, principals")
        if document.get("version", VERSION) != VERSION:
            raise self.fail("version", f"must be {VERSION}")
        principals = document.get("principals", {})
        if not isinstance(principals, dict) or not principals:
            raise self.fail("principals", "must be a table of at least one principal")
        access = {name: self.principal(name, entry) for name, entry in sorted(principals.items())}
        return Policy(
            access,
            dict(self.certificates),
            TokenTable((d, self.owners[d]) for d in sorted(self.owners)),
            tuple(self.files),
            frozenset(self.owners.items()),
        )

    def principal(self, name: str, entry: Any) -> Access:
        where = f"principals.{name}"
        if not isinstance(entry, dict):
            raise self.fail(where, "must be a table")
        unknown = set(entry) - _PRINCIPAL_KEYS
        if unknown:
            raise self.fail(
                f"{where}.{min(unknown)}",
                f"unknown key: expected {', '.join(sorted(_PRINCIPAL_KEYS))}",
            )
        identities = 0
        for key, kind in _NAME_KINDS.items():
            for i, value in enumerate(self.strings(entry, key, where)):
                self.claim_name((kind, value), f"{where}.{key}[{i}]", name)
                identities += 1
        for i, value in enumerate(self.strings(entry, "token_sha256", where)):
            here = f"{where}.token_sha256[{i}]"
            if not _HEX.fullmatch(value):
                raise self.fail(here, f"must be {DIGEST_HEX} hexadecimal digits (a SHA-256 digest)")
            self.claim_digest(bytes.fromhex(value), here, name)
            identities += 1
        for i, file in enumerate(self.strings(entry, "token_files", where)):
            here = f"{where}.token_files[{i}]"
            self.claim_digest(digest(self.token_file(file, here)), here, name)
            self.files.append(file)
            identities += 1
        if not identities:
            raise self.fail(
                where,
                "must have an identity: common_names, dns_names, uris, token_sha256 or token_files",
            )
        grants = entry.get("grants", [])
        if not isinstance(grants, list):
            raise self.fail(f"{where}.grants", "must be an array of tables")
        scopes: dict[Right, Scope] = {}
        for i, grant in enumerate(grants):
            rights, scope = self.grant(grant, f"{where}.grants[{i}]")
            for right in rights:
                scopes[right] = scopes.get(right, Scope()) | scope
        return Access(tuple(sorted(scopes.items(), key=lambda s: s[0].value)), (name,))

    def strings(self, entry: dict[str, Any], key: str, where: str) -> list[str]:
        values = entry.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise self.fail(f"{where}.{key}", "must be an array of non-empty strings")
        return values

    def claim_name(self, name: tuple[str, str], here: str, principal: str) -> None:
        owner = self.certificates.setdefault(name, principal)
        if owner != principal:
            raise self.fail(here, f"already names principal {owner}: an identity is one principal")

    def claim_digest(self, value: bytes, here: str, principal: str) -> None:
        first = self.digests.setdefault(value, here)
        if first != here:
            raise self.fail(here, f"the same token as {first}: a token is one principal")
        self.owners[value] = principal

    def token_file(self, file: str, here: str) -> str:
        try:
            text = self.read(file).decode("utf-8").strip()
        except OSError as exc:
            raise self.fail(here, f"cannot be read ({type(exc).__name__})") from None
        except UnicodeDecodeError:
            raise self.fail(here, "must hold a UTF-8 token") from None
        if len(text) < MIN_TOKEN_CHARS or not _TOKEN.fullmatch(text):
            raise self.fail(
                here,
                f"must hold one token of at least {MIN_TOKEN_CHARS} printable ASCII characters, "
                "without spaces",
            )
        return text

    def grant(self, grant: Any, where: str) -> tuple[set[Right], Scope]:
        if not isinstance(grant, dict):
            raise self.fail(where, "must be a table")
        unknown = set(grant) - _GRANT_KEYS
        if unknown:
            raise self.fail(f"{where}.{min(unknown)}", "unknown key: expected namespaces, rights")
        for key in sorted(_GRANT_KEYS):
            if key not in grant:
                raise self.fail(f"{where}.{key}", "must be set")
        rights = set()
        for i, value in enumerate(self.strings(grant, "rights", where)):
            try:
                rights.add(Right(value))
            except ValueError:
                raise self.fail(f"{where}.rights[{i}]", f"must be one of {RIGHT_NAMES}") from None
        exact: set[str] = set()
        prefixes: set[str] = set()
        for i, pattern in enumerate(self.strings(grant, "namespaces", where)):
            if pattern.endswith("*") and _PREFIX.fullmatch(pattern[:-1]):
                prefixes.add(pattern[:-1])
            elif NAMESPACE.fullmatch(pattern):
                exact.add(pattern)
            else:
                raise self.fail(
                    f"{where}.namespaces[{i}]",
                    f"must be a namespace (it {NAMESPACE_RULE}) or a prefix of one followed by *",
                )
        if not rights or not (exact or prefixes):
            raise self.fail(where, "must grant at least one right on at least one namespace")
        return rights, Scope(frozenset(exact), tuple(sorted(prefixes)))
