"""The one place the gRPC layer asks who is calling and whether they may.

Without a policy file the transport decides, as before authorization existed:
with mutual TLS every certificate that chains to the client CA has every right
(gRPC refused the others at the handshake); without it the server listens on
loopback, or was told ``--allow-insecure``, and every caller has every right.

With a policy file, a call must present an identity the policy knows: a verified
client certificate name (with mutual TLS) or a bearer token. None, a token that
no principal holds, or a malformed ``authorization`` value: ``Unauthenticated``.
A known caller without the RPC's right on the namespace it asked for:
``PermissionDenied``, naming that right and that namespace only.

The policy file (and its token files) are looked at at most once per
``RELOAD_INTERVAL``; a changed one is loaded and replaces the old, a broken one
is logged (entry and rule, never a token) and the old one stays.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from dicomcache.server.auth import policy as policy_file
from dicomcache.server.auth.access import Access
from dicomcache.server.auth.identity import MALFORMED, Credentials, bearer, credentials
from dicomcache.server.auth.policy import Policy, PolicyError
from dicomcache.server.auth.rights import RPC_RIGHTS, Right, namespace_of
from dicomcache.server.errors import PermissionDenied, Unauthenticated
from dicomcache.server.watch import FileWatch

log = logging.getLogger(__name__)

RELOAD_INTERVAL = 1.0  # seconds between looks at the policy file and its token files


class Authorizer:
    """Authenticates calls and checks their rights against the current policy.

    Thread-safe: the policy is replaced whole, by one thread at a time. Reads the
    injected monotonic clock (only to pace the looks at the policy file).

    Args:
        policy_path: the policy file; None for no policy (the transport decides).
        certificates: whether client certificates are verified (mutual TLS), so
            that their names identify callers.
        clock: the monotonic clock that paces the reloads.
        interval: seconds between looks at the files.

    Raises:
        PolicyError: the policy file cannot be used (at start, nothing to fall back to).
    """

    def __init__(
        self,
        policy_path: str | None = None,
        *,
        certificates: bool = False,
        clock: Callable[[], float] = time.monotonic,
        interval: float = RELOAD_INTERVAL,
    ) -> None:
        self.policy_path = policy_path
        self.certificates = certificates
        self._policy: Policy | None = None
        self._watch: FileWatch | None = None
        self._lock = threading.Lock()
        everyone = "client certificate" if certificates else "any caller"
        self._open = Access.everything(f"({everyone}, no policy)")
        if policy_path is not None:
            self._watch = FileWatch([policy_path], interval, clock)
            self._policy = policy_file.load(policy_path)
            self._watch.watch(self._policy.files)
            log.info(
                "authorization policy %s: %d principals, %d tokens",
                policy_path,
                len(self._policy.access),
                len(self._policy.tokens),
            )
            self._unverified_names(self._policy)

    @classmethod
    def from_settings(cls, settings: Any) -> Authorizer:
        """The authorizer that ``settings`` (a ``config.Settings``) ask for."""
        return cls(settings.auth_policy_file, certificates=settings.tls_client_ca_file is not None)

    @property
    def policy(self) -> Policy | None:
        """The policy in force; None when there is none."""
        self._reload()
        return self._policy

    def authenticate(self, context: grpc.ServicerContext) -> Access:
        """What the caller may do.

        Raises:
            Unauthenticated: a policy is in force and the caller presented no
                identity it knows (or a malformed or unknown token).
        """
        if self._watch is None:  # no policy file, ever: two calls fewer a hit (row 17c)
            return self._open
        policy = self.policy
        if policy is None:
            return self._open
        return self._identify(policy, credentials(context, self.certificates))

    def authenticate_http(
        self, authorization: str | None, names: frozenset[tuple[str, str]]
    ) -> Access:
        """What an HTTP caller may do, as ``authenticate`` decides for a gRPC one.

        Args:
            authorization: the request's Authorization header, None when absent.
            names: the (kind, name) pairs of its verified client certificate.
        Raises:
            Unauthenticated: as ``authenticate``.
        """
        policy = self.policy
        if policy is None:
            return self._open
        presented = Credentials(names if self.certificates else frozenset(), bearer(authorization))
        return self._identify(policy, presented)

    def _identify(self, policy: Policy, presented: Credentials) -> Access:
        """The access of the principals that ``presented`` names in ``policy``."""
        found: list[Access] = []
        if presented.token is MALFORMED:
            raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
        if isinstance(presented.token, str):
            principal = policy.tokens.find(presented.token)
            if principal is None:
                raise Unauthenticated("the bearer token is not known")
            found.append(policy.access[principal])
        for name in presented.names:
            principal = policy.certificates.get(name)
            if principal is not None:
                found.append(policy.access[principal])
        if not found:
            raise Unauthenticated(
                "no known identity: send a bearer token or a client certificate that the "
                "authorization policy names"
            )
        return found[0] if len(found) == 1 else Access.union(found)

    def authorize(self, method: str, request: Any, access: Access) -> None:
        """Check that ``access`` holds the right ``method`` needs on the request's namespace.

        GetStats of all namespaces (no namespace) passes: it is filtered instead,
        see ``visible``.

        Raises:
            PermissionDenied: the right is not held on that namespace.
        """
        if access is self._open:  # no policy: every right on every namespace
            return
        right = RPC_RIGHTS[method]
        namespace = namespace_of(request)
        if right is Right.STATS and not namespace:
            return
        if not access.allows(right, namespace):
            log.debug("%s refused to %s: no %s right", method, access.principals, right.value)
            raise PermissionDenied(right.value, namespace)

    def _reload(self) -> None:
        """Load the policy again when its files changed; keep the old one if the new is bad."""
        watch = self._watch
        if watch is None or not watch.due() or not watch.changed():
            return
        assert self.policy_path is not None
        try:
            new = policy_file.load(self.policy_path)
        except PolicyError as exc:
            log.warning("%s; keeping the policy loaded before", exc)
            return
        with self._lock:
            old, self._policy = self._policy, new
            if new.files != watch.paths:
                watch.watch(new.files)
        if old is None or not old.same_as(new):
            log.info(
                "authorization policy %s reloaded: %d principals, %d tokens",
                self.policy_path,
                len(new.access),
                len(new.tokens),
            )
            self._unverified_names(new)

    def _unverified_names(self, policy: Policy) -> None:
        """Warn when the policy names certificates that this server never verifies."""
        if policy.certificates and not self.certificates:
            log.warning(
                "authorization policy %s names client certificates, but without "
                "--tls-client-ca-file none is verified: those names identify nobody",
                self.policy_path,
            )
