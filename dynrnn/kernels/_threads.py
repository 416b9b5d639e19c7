"""Thread counts on a busy machine: use the cores that actually run, measured.

torch's CPU threads (GNU OpenMP) and the package's own threaded loops (the ESN loop,
``csrc/esn.c``) meet at a barrier after every parallel operation, so they run at the pace of
their slowest thread. When another process occupies a core, the thread that shares it waits for
a scheduler time slice (milliseconds) at every barrier, against operations of microseconds:
measured on 2 cores beside other jobs, the fixed-point finder took 37-48 s with 2 threads and
4.3-5.0 s with 1 (5 networks of 64 units, 1024 initial states), ``train_gtf`` and the 1000-unit
ESN 3-10x longer with 2 threads than with 1 (``benchmarks/busy.py``).

:func:`usable_threads` measures it directly, at the start of a long computation: it times a
burst of small parallel operations (element-wise on 2^16 floats, each above torch's grain
size, so each is one parallel region with a barrier) with the current thread count and with
one thread, best of three, about a millisecond each on an idle machine. When the threaded burst
is more than twice as slow as the single-threaded one, some thread cannot get a core promptly,
and the computation runs on one thread. :func:`busy_machine_threads` applies this to torch's
thread count for the duration of a ``with`` block and restores it after. Unlike the load
average, the probe needs no view of other processes (it works in containers) and does not lag.
``DYNRNN_THREAD_PROBE=0`` turns the probe off (the thread count is then used as set).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import time
from collections.abc import Callable, Iterator

import torch

__all__ = [
    "usable_threads",
    "busy_machine_threads",
    "adapts_threads",
    "barrier_threads",
    "IterationThreads",
]

_PROBE_SIZE = 1 << 16
_PROBE_OPS = 40


def _burst(x: torch.Tensor, cap: float = float("inf")) -> float:
    """Best of three bursts of ``_PROBE_OPS`` in-place operations on ``x`` (seconds); a burst
    stops as soon as it has taken longer than ``cap`` (the answer is then already known)."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(_PROBE_OPS):
            x.mul_(1.0000001)
            if time.perf_counter() - t > cap:
                break
        best = min(best, time.perf_counter() - t)
    return best


def usable_threads(requested: int | None = None) -> int:
    """``requested`` (default: torch's thread count) if that many threads run promptly on
    this machine now, else 1 (see the module docstring). Costs about a millisecond on an idle
    machine and a few scheduler time slices on a busy one."""
    n = max(1, int(torch.get_num_threads() if requested is None else requested))
    if n == 1 or os.environ.get("DYNRNN_THREAD_PROBE", "1") == "0":
        return n
    before = torch.get_num_threads()
    x = torch.ones(_PROBE_SIZE)
    try:
        torch.set_num_threads(1)
        single = _burst(x)
        torch.set_num_threads(n)
        _burst(x, cap=2.0 * single)  # wake the thread pool
        threaded = _burst(x, cap=2.0 * single)
    finally:
        torch.set_num_threads(before)
    return n if threaded <= 2.0 * single else 1


_LOCAL = threading.local()


@contextlib.contextmanager
def busy_machine_threads() -> Iterator[int]:
    """Run the block with :func:`usable_threads` torch threads; yields the count used. The
    thread count at entry is restored after the block, also when code inside changed it (an
    :class:`IterationThreads` loop). Nested blocks (an entry point calling another) probe only
    once."""
    before = torch.get_num_threads()
    if getattr(_LOCAL, "depth", 0):
        _LOCAL.depth += 1
        try:
            yield before
        finally:
            _LOCAL.depth -= 1
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)
        return
    n = usable_threads(before)
    if n != before:
        torch.set_num_threads(n)
    _LOCAL.depth, _LOCAL.requested = 1, before
    try:
        yield n
    finally:
        _LOCAL.depth = 0
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class IterationThreads:
    """Torch's thread count for the iterations of a training loop, chosen by timing them.

    The probe of :func:`usable_threads` runs before the loop and lasts about a millisecond, in
    which a thread that has slept is favoured by the scheduler: beside a competing process it
    can see two threads run promptly and then lose the loop (measured: ``train_gtf`` 1.33x
    slower with 2 threads than with 1 beside one CPU-bound process on 2 cores). This class
    measures what counts instead, the loop's own iterations: call :meth:`tick` at the top of
    every iteration. Iteration 0 (warm-up) runs at the count found on entry; iteration 1 runs
    on one thread and iteration 2 on ``threads`` (iterations ``2 interval`` and
    ``2 interval + 1`` if the entry probe already chose one thread: its "no" is trustworthy,
    only its "yes" can be fooled, and a threaded iteration where threads do not pay costs
    several single-threaded ones, measured 7x for ``train_gtf``'s small iterations), and the
    faster is kept (``threads`` only if
    it is at least ``1 / keep_ratio`` times faster, so one thread is kept when the threads do
    not pay). The pair is measured again after ``interval`` iterations; while one thread keeps
    winning the interval doubles up to ``max_interval``, which bounds the cost of measuring a
    threaded iteration on a busy machine to about ``slowdown / max_interval``. With one thread
    requested, or ``DYNRNN_THREAD_PROBE=0``, it does nothing. ``threads`` defaults to the count
    the caller had set before the enclosing entry point's probe. Use it inside an
    :func:`adapts_threads` entry point, which restores the thread count when it returns.
    """

    def __init__(self, threads: int | None = None, *, interval: int = 16,
                 max_interval: int = 256, keep_ratio: float = 0.95,
                 clock: Callable[[], float] = time.perf_counter):
        if threads is None:  # what the caller asked for, before the entry point's probe
            threads = getattr(_LOCAL, "requested", None) if getattr(_LOCAL, "depth", 0) else None
        self.threads = max(1, int(torch.get_num_threads() if threads is None else threads))
        self.enabled = self.threads > 1 and os.environ.get("DYNRNN_THREAD_PROBE", "1") != "0"
        self.base_interval = self.interval = int(interval)
        self.max_interval, self.keep_ratio, self._clock = int(max_interval), keep_ratio, clock
        self.choice = torch.get_num_threads()
        self.iteration = -1
        self.next_probe = 1
        if self.choice < self.threads:
            # the entry point's probe already found the threads slow; that answer errs only
            # the other way (a woken thread is favoured), so the first check waits
            self.interval = 2 * self.base_interval
            self.next_probe = self.interval
        self._phase: str | None = None  # the iteration that just ran: "single", "threaded"
        self._single = math.inf
        self._started = 0.0
        #: ``(iteration, seconds on one thread, seconds threaded, threads chosen)`` per probe
        self.history: list[tuple[int, float, float, int]] = []

    def tick(self) -> int:
        """Mark the start of the next iteration; sets and returns its thread count."""
        now = self._clock()
        self.iteration += 1
        if not self.enabled:
            return torch.get_num_threads()
        elapsed = now - self._started
        if self._phase == "single":
            self._single = elapsed
        elif self._phase == "threaded":
            faster = elapsed < self.keep_ratio * self._single
            self.choice = self.threads if faster else 1
            self.interval = (self.base_interval if faster
                             else min(2 * self.interval, self.max_interval))
            self.next_probe = self.iteration + self.interval
            self.history.append((self.iteration, self._single, elapsed, self.choice))
        if self.iteration == self.next_probe:
            self._phase, n = "single", 1
        elif self._phase == "single":
            self._phase, n = "threaded", self.threads
        else:
            self._phase, n = None, self.choice
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        self._started = self._clock()
        return n


def adapts_threads(fn: Callable) -> Callable:
    """Decorator: run ``fn`` inside :func:`busy_machine_threads` (for the package's long
    entry points: training, fixed points, Lyapunov spectra, DSA)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with busy_machine_threads():
            return fn(*args, **kwargs)

    return wrapper


#: seconds for which :func:`barrier_threads` reuses its last answer (see there).
BARRIER_PROBE_TTL = 1.0
_BARRIER_CACHE: dict[int, tuple[float, int]] = {}
_clock = time.monotonic


def barrier_threads(requested: int) -> int:
    """Threads for the package's own per-step-barrier loops: ``requested``, or 1 where
    :func:`usable_threads` finds that threads do not run promptly.

    These loops (the ESN reservoir run) are called many times in a row, e.g. once per batch of
    a readout fit, and a probe costs about 1 ms on an idle machine but about 80 ms on a busy
    one (measured on 2 cores beside another job). The answer is therefore reused for
    ``BARRIER_PROBE_TTL`` seconds per requested count; a machine's load changes on a scale of
    seconds, so a 1 s old answer is still a measurement of the present."""
    requested = max(1, int(requested))
    now = _clock()
    hit = _BARRIER_CACHE.get(requested)
    if hit is not None and now - hit[0] < BARRIER_PROBE_TTL:
        return hit[1]
    n = usable_threads(requested)
    _BARRIER_CACHE[requested] = (_clock(), n)
    return n
