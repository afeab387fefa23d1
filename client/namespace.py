"""A stable namespace for an upstream searcher, derived from its kind and address.

What a namespace may be is the contract's rule: ``dicomcache.contract.NAMESPACE``.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# Attributes that say which archive a dicomtrolley searcher talks to, and as whom:
# QidoRS and Mint have a url; DICOMQR has host, port, its own AE title and the called one.
_ADDRESS_ATTRIBUTES = ("url", "host", "port", "aet", "aec")


def derive_namespace(upstream: Any) -> str:
    """``<Class>-<hash>``: the same for every process that talks to the same archive.

    The hash covers the searcher's class and address (URL without credentials,
    host, port, AE titles), so two upstreams never share entries and the name
    carries no secrets.

    Raises:
        ValueError: the upstream has none of the address attributes; pass a namespace.
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
    digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()
    return f"{cls.__name__[:64]}-{digest}"


def _normal(name: str, value: str | int) -> str:
    if name != "url" or not isinstance(value, str):
        return str(value)
    parts = urlsplit(value)
    host = parts.hostname or ""
    netloc = f"{host.lower()}:{parts.port}" if parts.port else host.lower()
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), parts.query, ""))
