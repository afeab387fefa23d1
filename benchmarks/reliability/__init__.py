"""The reliability suite: dicomcache bounded under load, faults and hostile input (issue 11).

    python -m benchmarks.reliability                    # every section (about 10 minutes)
    python -m benchmarks.reliability --quick            # small sizes: about a minute
    python -m benchmarks.reliability --only faults,hostile

Every section runs real processes (``dicomcache serve``, redis-server, a Redis
Cluster with replicas, Orthanc) on loopback and measures; nothing is mocked but
the servicer context of the in-process fuzzing harness. Sections, each a module
with ``run(quick) -> list[Row]``:

* ``soak``: a long mixed load against ``--max-memory``: RSS at the end against
  the limit, errors by code, every hit checked against what was stored;
* ``faults``: a ``CachedSearcher`` (default settings) over a real Orthanc calls on
  while Redis, a cluster master and the server are killed, stopped, slept, paused
  and terminated: errors reaching the caller, wrong or partial answers, worst
  added latency per call, seconds until it hits again;
* ``hostile``: random, mutated and structured hostile requests to every RPC of a
  server process (codes, liveness, RSS), and an ``atheris`` run in-process;
* ``stall``: the worst delay one large request imposes on concurrent small ones.

One table is printed, in the benchmark's form (``benchmarks.report``), and written
as JSON to ``benchmarks/results/reliability.json`` with the machine and the
commit measured. A section that is missing or fails shows "not run" and why; the
others go on.
"""
