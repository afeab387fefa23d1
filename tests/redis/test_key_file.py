"""The encryption key file (issue 12): its rules, each broken one named with the file and
the line and never the key; a bad file stops the server at start; what sealing binds."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dicomcache.server.backends.redis.keyfile import Key, KeyFile, KeyFileError, load, parse
from dicomcache.server.backends.redis.sealing import MAGIC, PLAIN, SealedValues
from tests.support.clock import FakeClock
from tests.support.redis_fixtures import key_line

SECRET = bytes(range(32))
ENCODED = base64.b64encode(SECRET).decode()


def test_the_first_key_is_current_comments_and_blank_lines_ignored() -> None:
    text = f"# rotated 2026-12\n\n2026-12 {ENCODED}\n  # the old one\n2026-06 {'A' * 43}=\n"
    keys = parse(text, "keys")
    assert [key.key_id for key in keys] == ["2026-12", "2026-06"]
    assert keys[0] == Key("2026-12", SECRET)
    assert ENCODED not in repr(keys) and str(SECRET) not in repr(keys)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (f"k1 {ENCODED} extra", "line 1: expected '<key id> <base64 of 32 bytes>', found 3 fields"),
        (f"# c\nk1{ENCODED}", "line 2: expected '<key id> <base64 of 32 bytes>', found 1 fields"),
        (f"k|1 {ENCODED}", "line 1: a key id is 1 to 16 characters of A-Z a-z 0-9 . _ -"),
        (f"{'k' * 17} {ENCODED}", "line 1: a key id is 1 to 16 characters"),
        (f"k1 {ENCODED}\nk1 {ENCODED}", "line 2: key id 'k1' is already on line 1"),
        (f"k1 {ENCODED[:-2]}!!", "line 1: the key is not valid base64"),
        ("k1 c2hvcnQ=", "line 1: the key must be 32 bytes (AES-256), it is 5"),
        ("# nothing\n\n", "holds no key"),
    ],
)
def test_a_broken_rule_names_the_file_the_line_and_the_rule(text: str, rule: str) -> None:
    with pytest.raises(KeyFileError) as raised:
        parse(text, "/run/secrets/keys")
    message = str(raised.value)
    assert message.startswith("/run/secrets/keys: ") and rule in message
    assert ENCODED[:20] not in message and "c2hvcnQ" not in message


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="missing: cannot be read"):
        load(str(tmp_path / "missing"))


def test_a_bad_key_file_stops_the_server_at_start(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"good {ENCODED}\nbad {ENCODED[:40]}\n")
    command = [sys.executable, "-m", "dicomcache.server.cli", "serve", "--listen", "127.0.0.1:0"]
    command += ["--backend", "redis://127.0.0.1:1/0", "--redis-encryption-key-file", str(path)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("dicomcache: redis_encryption_key_file: ")  # no traceback
    assert "Traceback" not in result.stderr
    assert f"{path}: line 2: the key must be 32 bytes (AES-256), it is 30" in result.stderr
    assert ENCODED[:20] not in result.stderr + result.stdout


def test_a_key_file_with_the_memory_backend_is_refused(tmp_path: Path) -> None:
    """The memory backend keeps nothing at rest: the setting would protect nothing."""
    path = tmp_path / "keys"
    path.write_text(f"good {ENCODED}\n")
    command = [sys.executable, "-m", "dicomcache.server.cli", "serve", "--listen", "127.0.0.1:0"]
    result = subprocess.run(
        [*command, "--redis-encryption-key-file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "redis_encryption_key_file needs a Redis backend" in result.stderr


def test_sealing_is_deterministic_bound_to_its_key_and_keeps_plain_apart(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(key_line("k1"))
    values = SealedValues(KeyFile(str(path)))
    here, there = b"dc:1:a:{1.2}:o", b"dc:1:b:{1.2}:o"
    sealed = values.seal(here, b"Doe^Jane")
    assert sealed.startswith(MAGIC + b"\x02k1") and b"Doe" not in sealed
    assert len(sealed) == len(b"Doe^Jane") + 2 + 1 + 2 + 12 + 16  # the bytes it costs
    assert values.seal(here, b"Doe^Jane") == sealed  # what lets study_write keep a token
    assert values.seal(there, b"Doe^Jane") != sealed
    assert values.seal(here, b"Doe^John") != sealed
    assert values.open(here, sealed) == b"Doe^Jane"
    assert values.open(there, sealed) is None  # moved: does not open
    assert values.open(here, sealed[:-1]) is None  # cut
    assert values.open(here, sealed[:6]) is None  # cut into the header
    assert values.open(here, b"Doe^Jane") is None  # plain while sealing is on
    assert values.open(here, sealed.replace(b"k1", b"k9", 1)) is None  # unknown key id
    assert values.open(here, b"") is None and values.open(here, MAGIC) is None
    assert values.failures == 7
    assert PLAIN.open(here, sealed) is None  # encryption turned off: a miss, not ciphertext
    assert PLAIN.open(here, b"Doe^Jane") == b"Doe^Jane"


def test_failures_are_logged_at_most_once_a_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys"
    path.write_text(key_line("k1"))
    clock = FakeClock()
    values = SealedValues(KeyFile(str(path)), clock=clock)
    for _ in range(5):
        values.open(b"k", b"plain")
    clock.advance(60)
    values.open(b"k", b"plain")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "Redis values that did not open were served as misses: 1 not sealed",
        "Redis values that did not open were served as misses: 5 not sealed",
    ]


def test_an_unchanged_or_vanished_file_keeps_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(key_line("k1"))
    clock = FakeClock()
    keys = KeyFile(str(path), clock=clock)
    first = keys.keys()
    clock.advance(5)
    assert keys.keys() is first  # unchanged: not parsed again
    os.remove(path)  # a mount being swapped
    clock.advance(5)
    assert keys.keys() is first
