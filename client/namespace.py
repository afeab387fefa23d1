"""A stable namespace for an upstream searcher: its kind, its address, and who asks.

What a namespace may be is the contract's rule: ``dicomcache.contract.NAMESPACE``.

The rule: ``<Class>-<hash>``, the hash (BLAKE2b, 8 bytes) over the searcher's
class, its address (URL without credentials, host, port, AE titles) and the
identity it asks the archive as, so that two users whom the archive grants
different studies never share cached answers. The identity is, from the first
that applies to the searcher's ``requests.Session`` (``upstream.session``):

1. ``session.auth``: a ``(user, password)`` pair, or an auth object with a
   ``username`` or ``user`` (``HTTPBasicAuth``, ``HTTPDigestAuth``,
   dicomtrolley's ``VitreaAuth``, with its realm): the user name;
2. the session's ``Authorization`` header: ``Basic`` -> its user name; a
   ``Bearer`` JWT -> its issuer and subject (read, not verified: the archive
   verifies it); any other value (an opaque token) -> a digest of it;
3. the user name in the URL (``https://user:pw@pacs/...``);
4. the session's cookies (a session logged in beforehand: whose it is cannot be
   read, so each login is its own identity) -> a digest of them.

A password never counts (a changed password keeps the namespace), nor does any
secret itself: only user names and subjects, or digests of high-entropy values
(tokens, session cookies) inside the one hash. A session with none of these (an
archive that asks no credentials, and DICOM-QR, whose calling AE title is already
part of the address) derives the same namespace as before identities counted.
An auth object that says no user is refused: pass ``namespace=`` explicitly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

# Attributes that say which archive a dicomtrolley searcher talks to, and as whom:
# QidoRS and Mint have a url; DICOMQR has host, port, its own AE title and the called one.
_ADDRESS_ATTRIBUTES = ("url", "host", "port", "aet", "aec")
_USER_ATTRIBUTES = ("username", "user")


def derive_namespace(upstream: Any) -> str:
    """``<Class>-<hash>``: the same for every process that asks the same archive as the same user.

    Raises:
        ValueError: the upstream has none of the address attributes, or its
            session's auth object says no user; pass a namespace.
    """
    cls = type(upstream)
    parts = [f"{cls.__module__}.{cls.__qualname__}"]
    for name in _ADDRESS_ATTRIBUTES:
        value = getattr(upstream, name, None)
        if isinstance(value, str | int) and not isinstance(value, bool):
            parts.append(f"{name}={_normal(name, value)}")
    if len(parts) == 1:
        raise ValueError(
            f"cannot derive a namespace from a {cls.__name__}: it has none of "
            f"{', '.join(_ADDRESS_ATTRIBUTES)}; pass namespace= explicitly"
        )
    identity = upstream_identity(upstream)
    if identity is not None:
        parts.append(f"identity={identity}")
    digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()
    return f"{cls.__name__[:64]}-{digest}"


def upstream_identity(upstream: Any) -> str | None:
    """Who the upstream asks the archive as (see the module's rule); None for nobody.

    Raises:
        ValueError: the session's auth object says no user.
    """
    session = getattr(upstream, "session", None)
    auth = getattr(session, "auth", None)
    if auth is not None:
        return _auth_user(auth, type(upstream).__name__)
    headers = getattr(session, "headers", None) or {}
    header = headers.get("Authorization") if hasattr(headers, "get") else None
    if isinstance(header, str | bytes) and header:
        return _header_identity(header if isinstance(header, str) else header.decode("latin-1"))
    url = getattr(upstream, "url", None)
    if isinstance(url, str) and (user := urlsplit(url).username):
        return f"user={unquote(user)}"
    cookies = getattr(session, "cookies", None)
    if cookies is not None and (jar := sorted(_cookies(cookies))):
        return "cookies=" + _digest("\n".join(jar))
    return None


def _auth_user(auth: Any, kind: str) -> str:
    if isinstance(auth, tuple | list) and len(auth) == 2 and isinstance(auth[0], str | bytes):
        first = auth[0]
        return f"user={first.decode() if isinstance(first, bytes) else first}"
    for name in _USER_ATTRIBUTES:
        user = getattr(auth, name, None)
        if isinstance(user, str | bytes) and user:
            text = user.decode() if isinstance(user, bytes) else user
            realm = getattr(auth, "realm", None)
            return f"user={text}" + (f"@{realm}" if isinstance(realm, str) and realm else "")
    raise ValueError(
        f"cannot derive a namespace from a {kind}: its session's auth "
        f"({type(auth).__name__}) says no user name, and users whom the archive grants "
        "different studies must not share cached answers; pass namespace= explicitly "
        "(one per user)"
    )


def _header_identity(value: str) -> str:
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if ":" in decoded:
            return f"user={decoded.partition(':')[0]}"
    if scheme.lower() == "bearer" and (subject := _jwt_subject(credentials)):
        return f"subject={subject}"
    return "authorization=" + _digest(value.strip())


def _jwt_subject(token: str) -> str | None:
    """``<iss> <sub>`` of a JWT's payload (not verified: the archive does that), or None."""
    pieces = token.split(".")
    if len(pieces) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(pieces[1] + "=" * (-len(pieces[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("sub"), str):
        return None
    issuer = payload.get("iss")
    return f"{issuer if isinstance(issuer, str) else ''} {payload['sub']}"


def _cookies(cookies: Any) -> list[str]:
    try:
        return [f"{c.domain} {c.path} {c.name}={c.value}" for c in cookies]
    except (TypeError, AttributeError):
        return []


def _digest(secret: str) -> str:
    """A digest of a high-entropy value (token, cookie): it only joins the namespace's hash."""
    return hashlib.blake2b(secret.encode(), digest_size=16, person=b"dcache.ident.v1").hexdigest()


def _normal(name: str, value: str | int) -> str:
    if name != "url" or not isinstance(value, str):
        return str(value)
    parts = urlsplit(value)
    host = parts.hostname or ""
    netloc = f"{host.lower()}:{parts.port}" if parts.port else host.lower()
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), parts.query, ""))
