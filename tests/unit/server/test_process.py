"""The serve process's collector and allocator settings (issue 11: full collections over a
large cache stalled every call). Each test runs in a fresh interpreter: the settings are
process-wide, and this one must keep its own."""

from __future__ import annotations

import ctypes.util
import os
import re
import subprocess
import sys
import textwrap

import pytest

JEMALLOC = ctypes.util.find_library("jemalloc")
needs_jemalloc = pytest.mark.skipif(
    JEMALLOC is None, reason="jemalloc is not installed (Debian: libjemalloc2)"
)


def _run(code: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    return result.stdout.strip()


def test_what_survives_a_middle_collection_is_frozen() -> None:
    out = _run(
        """
        import gc
        from dicomcache.server import process
        process.tune()
        kept = [[n] for n in range(10_000)]  # long-lived, as a cache's nodes
        gc.collect(1)
        young = sum(len(gc.get_objects(g)) for g in range(3))
        print(gc.get_freeze_count() >= 10_000, young < 10_000)
        """
    )
    assert out == "True True"


def test_the_full_collection_frees_cycles_that_were_frozen() -> None:
    out = _run(
        """
        import gc
        from dicomcache.server import process
        process.tune()

        class Node:
            pass

        pairs = [(Node(), Node()) for _ in range(100)]
        for a, b in pairs:
            a.other, b.other = b, a
        del a, b
        gc.collect(1)  # the cycles are alive: frozen with the rest
        del pairs  # now garbage, out of reach of ordinary collections
        print(gc.collect(), process.full_collection() >= 200)
        """
    )
    assert out == "0 True"


def test_the_allocator_takes_the_settings_here() -> None:
    out = _run(
        """
        from dicomcache.server import process
        libc = process._glibc()
        print(libc is not None and libc.mallopt(process._M_ARENA_MAX, process.ARENAS))
        """
    )
    assert out == "1"  # mallopt's success


def test_sigusr1_logs_glibcs_heaps() -> None:
    out = _run(
        """
        import logging, os, signal, sys
        logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
        from dicomcache.server import process
        process.tune()
        kept = [bytes(1000) for _ in range(1000)]  # past pymalloc's 512 bytes: in glibc's heaps
        os.kill(os.getpid(), signal.SIGUSR1)
        """
    )
    fields = dict(pair.split("=") for pair in out.removeprefix("allocator: heaps ").split())
    assert set(fields) == {"system", "in_use", "free", "mmapped", "malloc"}
    assert fields.pop("malloc") == "glibc"
    assert int(fields["in_use"]) >= 1000 * 1000
    assert int(fields["system"]) >= int(fields["in_use"]) + int(fields["free"])


@needs_jemalloc
def test_sigusr1_logs_jemallocs_heaps_under_jemalloc() -> None:
    # Under a preloaded jemalloc, glibc's mallinfo2 counted only glibc's empty heaps: the
    # soak's note read "heaps 0.0 -> 0.0" while RSS grew (issue 11, row soak-slope).
    assert JEMALLOC is not None
    out = _run(
        """
        import logging, os, signal, sys
        logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
        from dicomcache.server import process
        process.tune()
        kept = [bytes(1000) for _ in range(10_000)]
        os.kill(os.getpid(), signal.SIGUSR1)
        """,
        env=dict(os.environ, LD_PRELOAD=JEMALLOC),
    )
    match = re.fullmatch(
        r"allocator: heaps system=(\d+) in_use=(\d+) free=(\d+) mmapped=0 malloc=jemalloc", out
    )
    assert match, out
    system, in_use, free = (int(n) for n in match.groups())
    assert in_use >= 10_000 * 1000
    assert system == in_use + free
