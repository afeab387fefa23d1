"""What one caller may do: per right, the namespaces (exact names and prefixes)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dicomcache.server.auth.rights import Right


@dataclass(frozen=True, slots=True)
class Scope:
    """Namespaces: exact names, and every name that starts with one of the prefixes.

    The prefix "" is every namespace.
    """

    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    def __contains__(self, namespace: object) -> bool:
        if not isinstance(namespace, str):
            return False
        return namespace in self.exact or any(namespace.startswith(p) for p in self.prefixes)

    @property
    def everything(self) -> bool:
        """Whether every namespace is in it."""
        return "" in self.prefixes

    def __or__(self, other: Scope) -> Scope:
        prefixes = tuple(sorted(set(self.prefixes) | set(other.prefixes)))
        return Scope(self.exact | other.exact, prefixes)


_NOTHING = Scope()
_EVERYTHING = Scope(prefixes=("",))


@dataclass(frozen=True, slots=True)
class Access:
    """The rights of one caller, each over its scope of namespaces.

    Immutable, so thread-safe. ``principals`` names who the caller is, for logs
    (names from the policy, never a token).
    """

    scopes: tuple[tuple[Right, Scope], ...]
    principals: tuple[str, ...] = ()

    @classmethod
    def everything(cls, principal: str) -> Access:
        """Every right on every namespace (no policy: the transport decided)."""
        return cls(tuple((right, _EVERYTHING) for right in Right), (principal,))

    def scope(self, right: Right) -> Scope:
        """The namespaces on which the caller has ``right``."""
        for held, scope in self.scopes:
            if held is right:
                return scope
        return _NOTHING

    def allows(self, right: Right, namespace: str) -> bool:
        """Whether the caller has ``right`` on ``namespace``."""
        return namespace in self.scope(right)

    @classmethod
    def union(cls, accesses: Iterable[Access]) -> Access:
        """The rights of a caller who is all of these principals at once."""
        merged: dict[Right, Scope] = {}
        principals: list[str] = []
        for access in accesses:
            principals.extend(access.principals)
            for right, scope in access.scopes:
                merged[right] = merged.get(right, _NOTHING) | scope
        return cls(tuple(merged.items()), tuple(principals))
