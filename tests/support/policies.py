"""Authorization policy files for tests: principals with tokens, certificate names, grants."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def sha256(token: str) -> str:
    """The hex digest a policy keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Principal:
    """One principal: identities and grants of (namespace patterns, rights)."""

    name: str
    tokens: Sequence[str] = ()
    token_files: Sequence[Path] = ()
    uris: Sequence[str] = ()
    dns_names: Sequence[str] = ()
    common_names: Sequence[str] = ()
    grants: Sequence[tuple[Sequence[str], Sequence[str]]] = field(default_factory=list)


def _array(values: Iterable[object]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def render(principals: Iterable[Principal]) -> str:
    """The TOML of a policy file."""
    lines = ["version = 1", ""]
    for p in principals:
        lines.append(f"[principals.{p.name}]")
        for key, values in (
            ("token_sha256", [sha256(t) for t in p.tokens]),
            ("token_files", p.token_files),
            ("uris", p.uris),
            ("dns_names", p.dns_names),
            ("common_names", p.common_names),
        ):
            if values:
                lines.append(f"{key} = {_array(values)}")
        for namespaces, rights in p.grants:
            lines += [
                "",
                f"[[principals.{p.name}.grants]]",
                f"namespaces = {_array(namespaces)}",
                f"rights = {_array(rights)}",
            ]
        lines.append("")
    return "\n".join(lines)


def write(path: Path, principals: Iterable[Principal]) -> Path:
    """Write the policy to ``path`` (replacing it whole, as a ConfigMap update does)."""
    staged = path.with_suffix(".new")
    staged.write_text(render(principals))
    staged.replace(path)
    return path
