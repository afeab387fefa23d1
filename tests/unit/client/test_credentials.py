"""Client credentials: the token's metadata, its file re-read on change, nothing secret in repr."""

from __future__ import annotations

import os

import pytest

from dicomcache.client.credentials import ClientTLS, Token


def test_a_given_token_goes_as_bearer_metadata():
    assert Token("s3cret").metadata() == (("authorization", "Bearer s3cret"),)


def test_a_token_file_is_re_read_when_it_changes(tmp_path):
    path = tmp_path / "token"
    path.write_text("first\n")
    token = Token(file=str(path))
    assert token.metadata() == (("authorization", "Bearer first"),)
    aside = tmp_path / "token.new"
    aside.write_text("second-token\n")
    aside.replace(path)  # a rotated secret mount: a new file under the same name
    assert token.metadata() == (("authorization", "Bearer second-token"),)


def test_a_token_file_that_disappears_is_an_error_at_call_time(tmp_path):
    path = tmp_path / "token"
    path.write_text("t")
    token = Token(file=str(path))
    os.remove(path)
    with pytest.raises(OSError):
        token.metadata()


@pytest.mark.parametrize("bad", ["", "two words", "tab\there"])
def test_a_token_is_one_non_empty_word_and_the_error_does_not_repeat_it(bad):
    with pytest.raises(ValueError) as raised:
        Token(bad)
    assert bad == "" or bad not in str(raised.value)


def test_repr_never_shows_the_token(tmp_path):
    assert "s3cret" not in repr(Token("s3cret"))
    path = tmp_path / "t"
    path.write_text("s3cret")
    assert "s3cret" not in repr(Token(file=str(path)))


def test_exactly_one_source():
    with pytest.raises(ValueError):
        Token()
    with pytest.raises(ValueError):
        Token("a", file="b")


def test_client_tls_needs_certificate_and_key_together():
    with pytest.raises(ValueError, match="together"):
        ClientTLS(cert_file="c.crt")
    assert ClientTLS(server_name="cache").channel_options() == (
        ("grpc.ssl_target_name_override", "cache"),
    )
