"""The server's "did the caller sample?" check: the propagator's rules, read cheaply.

``_unsampled`` reads the common version-00 form with string methods and anything
else with the regular expression of OpenTelemetry's W3C propagator; both must
agree with the propagator itself on every header. ``unsampled_field`` (a request's
field, the hit's path) reads only the version-00 form, and must agree with the
propagator on it and say "not known unsampled" for every other header.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dicomcache.server.telemetry.tracing import _unsampled, unsampled_field

PROPAGATOR = TraceContextTextMapPropagator()


def propagators_verdict(header: str) -> bool:
    """Whether OpenTelemetry's own propagator reads ``header`` as a valid unsampled parent."""
    context = PROPAGATOR.extract({"traceparent": header})
    found = trace.get_current_span(context).get_span_context()
    return found.is_valid and not found.trace_flags.sampled


HEX = "0123456789abcdef"
traceparents = st.builds(
    lambda version, trace_id, span_id, flags: f"{version}-{trace_id}-{span_id}-{flags}",
    st.sampled_from(["00", "01", "ff", "0g", "0"]),
    st.text(HEX, min_size=32, max_size=32) | st.just("0" * 32),
    st.text(HEX, min_size=16, max_size=16) | st.just("0" * 16),
    st.text(HEX, min_size=2, max_size=2) | st.sampled_from(["0", "00-x", "0G"]),
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A traceparent with a few characters replaced, dropped or added."""
    header = list(draw(traceparents))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(header)))
        what = draw(st.sampled_from("0aF-_ \tx"))
        kind = draw(st.sampled_from(["replace", "insert", "drop"]))
        if kind == "insert":
            header.insert(at, what)
        elif at < len(header):
            if kind == "replace":
                header[at] = what
            else:
                del header[at]
    return "".join(header)


@settings(max_examples=1000)
@given(mutated())
def test_the_check_agrees_with_the_propagator(header):
    assert _unsampled(header) == propagators_verdict(header)


def test_the_common_forms():
    ids = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
    assert _unsampled(f"00-{ids}-00")
    assert _unsampled(f"00-{ids}-02")  # another flag, not sampled
    assert not _unsampled(f"00-{ids}-01")
    assert not _unsampled(f"00-{ids}-03")
    assert not _unsampled(f"00-{ids.upper()}-00")  # W3C ids are lowercase
    assert not _unsampled(f"00-{'0' * 32}-00f067aa0ba902b7-00")
    assert not _unsampled(None)
    assert not _unsampled(f"00-{ids}-00" + " " * 600)


def fast_verdict(header: str) -> bool:
    """Whether ``unsampled_field`` takes ``header`` as an unsampled caller's."""
    return unsampled_field(header)


@settings(max_examples=1000)
@given(mutated())
def test_the_requests_check_agrees_with_the_propagator_on_the_common_form(header):
    common = len(header) == 55 and header.startswith("00-")
    assert fast_verdict(header) == (common and propagators_verdict(header))


def test_the_requests_check_takes_the_sdks_unsampled_flags():
    ids = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
    assert fast_verdict(f"00-{ids}-00")
    assert fast_verdict(f"00-{ids}-02")  # the SDK's unsampled span: a random trace id
    assert not fast_verdict(f"00-{ids}-01")
    assert not fast_verdict(f"00-{ids}-03")
    assert not fast_verdict(f"00-{'0' * 32}-00f067aa0ba902b7-00")
