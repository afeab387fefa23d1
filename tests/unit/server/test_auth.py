"""The pieces of server/auth without gRPC: scopes, tokens, the policy loader, the file watch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dicomcache.server.auth import policy as policy_file
from dicomcache.server.auth.access import Access, Scope
from dicomcache.server.auth.authorizer import Authorizer
from dicomcache.server.auth.rights import Right
from dicomcache.server.auth.tokens import TokenTable, digest
from dicomcache.server.watch import FileWatch
from tests.support.clock import FakeClock
from tests.support.policies import Principal, write


def test_a_scope_holds_exact_names_and_prefixes():
    scope = Scope(frozenset({"pacs-a"}), ("team/",))
    assert "pacs-a" in scope and "team/x" in scope and "team/" in scope
    assert "pacs-a2" not in scope and "pacs" not in scope and "tea" not in scope
    assert not scope.everything and Scope(prefixes=("",)).everything


def test_a_caller_of_two_principals_holds_both_grants():
    a = Access(((Right.READ, Scope(frozenset({"a"}))),), ("a",))
    b = Access(((Right.READ, Scope(prefixes=("b-",))), (Right.STATS, Scope(frozenset({"s"})))))
    both = Access.union([a, b])
    assert both.allows(Right.READ, "a") and both.allows(Right.READ, "b-1")
    assert both.allows(Right.STATS, "s") and not both.allows(Right.WRITE, "a")


def test_a_token_table_finds_only_exact_tokens():
    table = TokenTable([(digest("one-token"), "p1"), (digest("two-token"), "p2")])
    assert table.find("two-token") == "p2"
    assert table.find("two-toke") is None and table.find("") is None


def test_a_star_grants_every_namespace_and_a_prefix_those_under_it(tmp_path: Path):
    path = write(
        tmp_path / "p.toml",
        [
            Principal("all", common_names=["a"], grants=[(["*"], ["read"])]),
            Principal("some", common_names=["s"], grants=[(["QidoRS-*", "x"], ["read"])]),
        ],
    )
    loaded = policy_file.load(str(path))
    assert loaded.access["all"].scope(Right.READ).everything
    some = loaded.access["some"]
    assert some.allows(Right.READ, "QidoRS-0123") and some.allows(Right.READ, "x")
    assert not some.allows(Right.READ, "xy") and not some.allows(Right.READ, "MINT-1")
    assert loaded.certificates == {("cn", "a"): "all", ("cn", "s"): "some"}


def test_a_short_token_file_is_refused_without_quoting_it(tmp_path: Path):
    secret = tmp_path / "secret"
    secret.write_text("tiny-secret\n")
    path = write(tmp_path / "p.toml", [Principal("p", token_files=[secret])])
    with pytest.raises(policy_file.PolicyError) as caught:
        policy_file.load(str(path))
    assert caught.value.entry == "principals.p.token_files[0]"
    assert "at least 16" in caught.value.rule and "tiny-secret" not in str(caught.value)


def test_the_watch_looks_at_most_once_per_interval(tmp_path: Path):
    clock = FakeClock()
    file = tmp_path / "f"
    file.write_text("one")
    watch = FileWatch([str(file)], 1.0, clock)
    file.write_text("two, longer")
    assert not watch.changed(), "not before the interval"
    clock.advance(1.0)
    assert watch.changed()
    clock.advance(1.0)
    assert not watch.changed()
    staged = tmp_path / "g"
    staged.write_text("two, longer")
    os.utime(staged, ns=(file.stat().st_atime_ns, file.stat().st_mtime_ns))
    staged.replace(file)  # same size and mtime, another inode: a Secret volume's swap
    clock.advance(1.0)
    assert watch.changed()
    file.unlink()
    clock.advance(1.0)
    assert watch.changed()


def test_the_authorizer_reloads_on_its_clock_and_keeps_a_good_policy(tmp_path: Path):
    clock = FakeClock()
    path = write(tmp_path / "p.toml", [Principal("a", common_names=["a"])])
    authorizer = Authorizer(str(path), clock=clock)
    first = authorizer.policy
    assert first is not None and list(first.access) == ["a"]
    write(path, [Principal("b", common_names=["b"])])
    assert authorizer.policy is first, "not looked at before the interval"
    clock.advance(1.0)
    second = authorizer.policy
    assert second is not None and list(second.access) == ["b"]
    path.write_text("not toml [")
    clock.advance(1.0)
    assert authorizer.policy is second


def test_certificate_names_without_mutual_tls_are_warned_of(tmp_path: Path, caplog):
    path = write(tmp_path / "p.toml", [Principal("a", uris=["spiffe://x/a"])])
    with caplog.at_level("WARNING"):
        Authorizer(str(path), certificates=True)
        assert not caplog.records
        Authorizer(str(path), certificates=False)
    assert "without --tls-client-ca-file none is verified" in caplog.text
