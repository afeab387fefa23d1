"""An upstream's HTTP credentials: read from a file or a variable, never shown.

Where they come from, ``file:PATH`` or ``env:NAME``, is all that a flag or the
upstreams file says. What the file or variable holds (one line; surrounding
whitespace dropped) is one of:

    Bearer <token>      sent as it is: ``Authorization: Bearer <token>``
    Basic <base64>      sent as it is: ``Authorization: Basic <base64>``
    <user>:<password>   sent as basic credentials (the server encodes them)

The secret lives in one attribute; ``repr`` and ``str`` say only where it came
from, so no log line, error message or traceback that shows the object shows it.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

FORMAT_RULE = "must hold 'Bearer <token>', 'Basic <base64>' or '<user>:<password>'"


class CredentialsError(ValueError):
    """Credentials that cannot be used; the message says why, never what they hold."""


class Credentials:
    """The ``Authorization`` header value of one upstream. Immutable, thread-safe."""

    __slots__ = ("_header", "source")

    def __init__(self, header: str, source: str) -> None:
        self._header = header
        self.source = source  # "file:/run/secrets/pacs" or "env:PACS_TOKEN": no secret

    @classmethod
    def parse(cls, text: str, source: str) -> Credentials:
        """Credentials from what a file or variable holds.

        Raises:
            CredentialsError: empty, several lines, or none of the three forms.
        """
        value = text.strip()
        if not value:
            raise CredentialsError(f"{source} is empty; it {FORMAT_RULE}")
        if "\n" in value or "\r" in value:
            raise CredentialsError(f"{source} holds several lines; it {FORMAT_RULE}")
        scheme, _, rest = value.partition(" ")
        if scheme.lower() in ("bearer", "basic") and rest.strip():
            return cls(f"{scheme.capitalize()} {rest.strip()}", source)
        user, colon, password = value.partition(":")
        if colon and user and " " not in user:
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            return cls(f"Basic {token}", source)
        raise CredentialsError(f"{source} {FORMAT_RULE}")

    @classmethod
    def load(cls, source: str) -> Credentials:
        """Read ``file:PATH`` or ``env:NAME``.

        Raises:
            CredentialsError: an unknown source kind, a missing or unreadable file, an
                unset variable, or content in none of the forms.
        """
        kind, _, where = source.partition(":")
        if kind == "file" and where:
            try:
                text = Path(where).read_text(encoding="utf-8")
            except FileNotFoundError:
                raise CredentialsError(f"credentials file {where} does not exist") from None
            except (OSError, UnicodeDecodeError) as exc:
                reason = type(exc).__name__
                raise CredentialsError(
                    f"credentials file {where}: cannot read ({reason})"
                ) from None
            return cls.parse(text, source)
        if kind == "env" and where:
            found = os.environ.get(where)
            if found is None:
                raise CredentialsError(f"environment variable {where} is not set")
            return cls.parse(found, source)
        raise CredentialsError("must be file:PATH or env:NAME")

    def header(self) -> str:
        """The ``Authorization`` header's value: send it, never show it."""
        return self._header

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("credentials are not pickled")
