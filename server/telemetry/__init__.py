"""What the server tells its operators: metrics, traces and request logs.

    calls         one call's observation: its status, its time, its log line, its span
    instrumented  the backend seen from outside: each operation timed, failures and
                  hits counted, each one a child span
    metrics       the Prometheus metrics (a registry of the server's own, counted as
                  plain numbers: ``dicomcache.tallies``) and the collector that reads
                  the cache's sizes from the backend at scrape time
    labels        namespace labels, bounded in number
    summary       the periodic INFO line: rates, errors, hit ratio
    tracing       OpenTelemetry spans, when the ``tracing`` extra is installed

Nothing here carries PHI: methods, status codes, namespace names (an archive's
name, chosen by its operators), counts, sizes and durations only.
"""

from dicomcache.server.telemetry.calls import Telemetry

__all__ = ["Telemetry"]
