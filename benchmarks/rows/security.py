"""Rows 11a-11c: what authorization adds to a hit over mutual TLS, beside mutual TLS alone
and plaintext, in one run.

Four servers hold the same hot study (a study-level listing, the smallest hit, so
a per-call cost shows most): plaintext; mutual TLS without a policy; mutual TLS
with a policy that knows the client certificate by its CN; the same policy with
the caller known by a bearer token (the certificate names nobody in it), the
token among 100 in the policy (the table is compared in full, in constant
time). The load process keeps one channel to each (handshakes once, as a
long-lived client's) and alternates the same LookupStudy between them call by call.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dicomcache.client.credentials import ClientTLS
from tests.support.certs import Authority
from tests.support.policies import Principal, write

from ..calls import HotStudy, check_hit
from ..corpus import Shape
from ..load import Call, alternating_latency, elsewhere
from ..plan import Plan
from ..report import Row, seconds
from ..samples import median, percentile
from ..sidecar import Sidecar

TOKEN = "benchmark-token-0123456789abcdef"
OTHER_TOKENS = 99  # further principals with tokens: the table a token is compared with
RIGHTS = ["read", "write", "invalidate", "stats"]


def _policy(directory: Path, namespace: str) -> Path:
    others = [
        Principal(f"other{i}", tokens=[f"other-token-{i:04d}-0123456789"], grants=[(["x"], RIGHTS)])
        for i in range(OTHER_TOKENS)
    ]
    return write(
        directory / "policy.toml",
        [
            Principal("bycert", common_names=["benchmark"], grants=[([namespace], RIGHTS)]),
            Principal("bytoken", tokens=[TOKEN], grants=[([namespace], RIGHTS)]),
            *others,
        ],
    )


def run(plan: Plan) -> list[Row]:
    """Rows 11a (mTLS + policy vs mTLS), 11b (the same vs plaintext), 11c (token vs mTLS)."""
    hot = HotStudy(shape=Shape(0, 0))
    with tempfile.TemporaryDirectory() as directory:
        ca = Authority(Path(directory))
        server, client, nobody = ca.server(), ca.client("benchmark"), ca.client("nobody")
        mtls_files = {
            "tls_cert_file": str(server.cert_file),
            "tls_key_file": str(server.key_file),
            "tls_client_ca_file": str(ca.cert_file),
        }
        policy = {**mtls_files, "auth_policy_file": str(_policy(Path(directory), hot.namespace))}
        mtls = ClientTLS(str(ca.cert_file), str(client.cert_file), str(client.key_file))
        anonymous = ClientTLS(str(ca.cert_file), str(nobody.cert_file), str(nobody.key_file))
        token = (("authorization", f"Bearer {TOKEN}"),)
        with (
            Sidecar() as plain_server,
            Sidecar(settings=mtls_files, tls=mtls) as mtls_server,
            Sidecar(settings=policy, tls=mtls) as cert_server,
            Sidecar(settings=policy, tls=anonymous, metadata=token) as token_server,
        ):
            calls = []
            for label, sidecar in (
                ("plain", plain_server),
                ("mtls", mtls_server),
                ("mtls+policy", cert_server),
                ("mtls+policy+token", token_server),
            ):
                assert sidecar.channel is not None
                hot.store(sidecar.channel, level="study")
                bare = hot.lookup(sidecar.target, "study", label)
                call = Call(
                    label,
                    bare.target,
                    bare.method,
                    bare.payload,
                    tls=sidecar.tls,
                    metadata=sidecar.metadata,
                )
                check_hit(sidecar.channel, call)
                calls.append(call)
            samples = elsewhere(alternating_latency, calls, plan.latency_rounds)
    rows = []
    for key, label, base, what in (
        ("11a", "mtls+policy", "mtls", "mutual TLS + authorization (certificate) vs mutual TLS"),
        ("11b", "mtls+policy", "plain", "mutual TLS + authorization (certificate) vs plaintext"),
        ("11c", "mtls+policy+token", "mtls", "mutual TLS + authorization (token) vs mutual TLS"),
    ):
        measured, baseline = samples[label], samples[base]
        rows.append(
            Row(
                key=key,
                measure=f"study-level hit latency, {what}",
                result=seconds(median(measured)),
                baseline=f"{seconds(median(baseline))} {base}",
                value=median(measured) / median(baseline),
                note=f"p99 {seconds(percentile(measured, 99))} vs "
                f"{seconds(percentile(baseline, 99))}; {plan.latency_rounds} alternating calls "
                f"each over one long-lived channel; policy of {OTHER_TOKENS + 2} principals",
                figures={
                    "median_s": median(measured),
                    "baseline_median_s": median(baseline),
                    "p99_s": percentile(measured, 99),
                    "baseline_p99_s": percentile(baseline, 99),
                    "calls_each": plan.latency_rounds,
                },
            )
        )
    return rows
