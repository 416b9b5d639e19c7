"""Thread counts for kernels whose threads meet at a barrier every step.

A loop that splits each time step's rows over threads and joins them at a barrier (the ESN loop,
``csrc/esn.c``) runs at the pace of its slowest thread at every step. When another process
occupies one of the cores, the thread sharing that core waits for a scheduler time slice (ms)
at every barrier, against a step of ~0.2 ms: measured on 2 cores with one competing CPU-bound
process, the 1000-unit ESN took 3.1x as long with 2 threads as with 1 (``benchmarks/busy.py``).
Such a loop should therefore use only the cores that are free. The estimate is the 1-minute
load average (runnable processes, the caller included) against the cores this process may run
on; it lags a change of load by tens of seconds, and errs towards fewer threads.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def free_cores() -> int:
    """Cores not taken by other runnable processes: ``usable_cores()`` minus the 1-minute load
    average beyond this process's own one (at least 1). Without a load average (not a Unix),
    every usable core counts as free."""
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    others = max(0.0, load - 1.0)
    return max(1, min(cores, int(cores - others + 0.5)))


def barrier_threads(requested: int) -> int:
    """Threads for a per-step-barrier loop: ``requested`` (>= 1), but no more than the free
    cores. Set ``DYNRNN_IGNORE_LOAD=1`` to use ``requested`` regardless of the load."""
    requested = max(1, int(requested))
    if os.environ.get("DYNRNN_IGNORE_LOAD", "") == "1":
        return requested
    return max(1, min(requested, free_cores()))
