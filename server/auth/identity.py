"""Who is calling, as the gRPC context says: certificate names and a bearer token.

Certificate names are read only when the server verifies client certificates
(mutual TLS): then gRPC has checked the chain to the client CA before the call
exists, and grpcio (1.85) puts the leaf's names in ``auth_context()``:
``x509_common_name`` (the subject CN), ``peer_dns`` and ``peer_uri`` (the DNS and
URI SANs; a SPIFFE id is a URI SAN). Each name keeps its kind ("cn", "dns",
"uri"), so a policy that names a SPIFFE id is never matched by a CN that happens
to spell it.

The token is the ``authorization`` metadata's ``Bearer <token>``. A value that is
not of that form is kept as a malformed token: presented credentials that do not
parse are refused, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

# auth_context() keys of the verified client certificate's names, by kind.
CERTIFICATE_KEYS = {"cn": "x509_common_name", "dns": "peer_dns", "uri": "peer_uri"}
MALFORMED = object()  # stands for an authorization value that is not "Bearer <token>"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a caller presented: verified certificate names and a bearer token.

    ``token`` is None when no ``authorization`` metadata came, ``MALFORMED`` when
    it was not a bearer token. Never logged: see ``__repr__``.
    """

    names: frozenset[tuple[str, str]]
    token: str | object | None

    def __repr__(self) -> str:
        # No token, not even its length, in any log or traceback.
        token = "none" if self.token is None else "presented"
        return f"Credentials(names={sorted(self.names)}, token={token})"


def certificate_names(context: grpc.ServicerContext) -> frozenset[tuple[str, str]]:
    """The (kind, name) pairs of the verified client certificate; empty without one."""
    properties = context.auth_context()
    names = set()
    for kind, key in CERTIFICATE_KEYS.items():
        for value in properties.get(key, ()):
            names.add((kind, value.decode("utf-8", "replace")))
    return frozenset(names)


def bearer(value: object) -> str | object | None:
    """The token of an authorization value ("Bearer <token>"), MALFORMED, or None for none.

    The same rule for the gRPC metadata and the HTTP endpoint's header.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        return MALFORMED
    scheme, _, token = value.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else MALFORMED


def bearer_token(context: grpc.ServicerContext) -> str | object | None:
    """The bearer token of the call's metadata, MALFORMED, or None when none was sent."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return bearer(value)
    return None


def credentials(context: grpc.ServicerContext, certificates: bool) -> Credentials:
    """The caller's credentials; certificate names only when ``certificates`` (mutual TLS)."""
    names = certificate_names(context) if certificates else frozenset()
    return Credentials(names, bearer_token(context))
