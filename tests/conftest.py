"""Settings for the whole test run."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Tests never assert on timings, Hypothesis included: no per-example deadline and no
# "too slow" health check, which a loaded CI machine would otherwise trip at random.
settings.register_profile("dicomcache", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("dicomcache")
