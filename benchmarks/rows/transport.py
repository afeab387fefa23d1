"""Rows 10a-10b: what TLS and mutual TLS add to a hit, beside a plaintext server, in one run.

Three servers hold the same hot study: plaintext, TLS (server certificate only)
and mutual TLS (a client certificate from the test CA). The load process keeps one
channel to each, so handshakes happen once, as a long-lived client's do, and
alternates the same 80-instance LookupStudy between them call by call.
Certificates are EC P-256 from ``tests.support.certs``, made for the run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dicomcache.client.credentials import ClientTLS
from tests.support.certs import Authority

from ..calls import HotStudy, check_hit
from ..load import Call, alternating_latency, elsewhere
from ..plan import Plan
from ..report import Row, seconds
from ..samples import median, percentile
from ..sidecar import Sidecar


def run(plan: Plan) -> list[Row]:
    """Rows 10a (TLS vs plaintext) and 10b (mutual TLS vs plaintext), 80-instance hits."""
    hot = HotStudy()
    with tempfile.TemporaryDirectory() as directory:
        ca = Authority(Path(directory))
        server, client = ca.server(), ca.client("benchmark")
        tls_files = {"tls_cert_file": str(server.cert_file), "tls_key_file": str(server.key_file)}
        tls = ClientTLS(ca_file=str(ca.cert_file))
        mtls = ClientTLS(str(ca.cert_file), str(client.cert_file), str(client.key_file))
        mtls_files = {**tls_files, "tls_client_ca_file": str(ca.cert_file)}
        with (
            Sidecar() as plain_server,
            Sidecar(settings=tls_files, tls=tls) as tls_server,
            Sidecar(settings=mtls_files, tls=mtls) as mtls_server,
        ):
            calls = []
            for label, sidecar in (
                ("plain", plain_server),
                ("tls", tls_server),
                ("mtls", mtls_server),
            ):
                assert sidecar.channel is not None
                hot.store(sidecar.channel)
                bare = hot.lookup(sidecar.target, "instance", label)
                call = Call(label, bare.target, bare.method, bare.payload, tls=sidecar.tls)
                check_hit(sidecar.channel, call)
                calls.append(call)
            samples = elsewhere(alternating_latency, calls, plan.latency_rounds)
    plain = samples["plain"]
    rows = []
    for key, label, what in (("10a", "tls", "TLS"), ("10b", "mtls", "mutual TLS")):
        secured = samples[label]
        rows.append(
            Row(
                key=key,
                measure=f"80-instance hit latency over {what} vs plaintext",
                result=seconds(median(secured)),
                baseline=f"{seconds(median(plain))} plaintext",
                value=median(secured) / median(plain),
                note=f"p99 {seconds(percentile(secured, 99))} vs "
                f"{seconds(percentile(plain, 99))}; {plan.latency_rounds} alternating calls "
                "each over one long-lived channel",
                figures={
                    "median_s": median(secured),
                    "plain_median_s": median(plain),
                    "p99_s": percentile(secured, 99),
                    "plain_p99_s": percentile(plain, 99),
                },
            )
        )
    return rows
