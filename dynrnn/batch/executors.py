"""Where the chunks of a sweep or of a batch analysis run: in this process, in local worker
processes, or on a Dask distributed cluster -- one code path, the same results.

:func:`map_chunks` calls ``fn(item)`` for every item and yields ``(index, ChunkOutcome)`` as
each finishes (in completion order, not input order). The caller, in this process, is the only
writer of results: workers compute and return, so a crash of a worker never leaves a
half-written file, and the store needs no locking across machines.

Executors:

* ``"inprocess"`` (default): a plain loop here; nothing to set up, exceptions are caught per
  item.
* ``"processes"``: ``workers`` local processes (``concurrent.futures.ProcessPoolExecutor``
  with the ``spawn`` start method, so no torch state is forked).
* ``"dask"``: a ``distributed.Client`` on an existing scheduler (``scheduler="tcp://host:port"``)
  or on a ``LocalCluster`` of ``workers`` processes (one thread each). Dask is the ``[dask]``
  extra and is imported only here, only when this executor is chosen.

Threads: every worker sets ``torch.set_num_threads(threads_per_worker)`` before it runs an item;
the default is ``max(1, os.cpu_count() // workers)``, so workers x torch threads never exceed
the cores unless the caller asks for more. ``fn`` and the items must be picklable for the
process and Dask executors (a module-level function and plain data).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .._validation import ParameterTypeError, check_int

__all__ = ["EXECUTORS", "ChunkOutcome", "check_executor", "default_threads", "map_chunks"]

#: the executor names :func:`map_chunks` accepts
EXECUTORS = ("inprocess", "processes", "dask")


@dataclass(frozen=True)
class ChunkOutcome:
    """What one call ``fn(item)`` gave: ``value`` when ``ok``, else ``error`` (one line,
    ``"ExceptionType: message"``) and ``traceback`` (the formatted traceback text)."""

    ok: bool
    value: Any = None
    error: str | None = None
    traceback: str | None = None


def default_threads(workers: int) -> int:
    """Torch threads per worker so that workers x threads <= the cores: ``cores // workers``
    (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _call(fn: Callable[[Any], Any], item: Any, threads: int | None) -> ChunkOutcome:
    """Run ``fn(item)`` with ``threads`` torch threads (None: leave as is); never raises for an
    exception of ``fn`` (KeyboardInterrupt and SystemExit pass)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        return ChunkOutcome(True, fn(item))
    except Exception as err:  # noqa: BLE001 - one failing chunk must not stop the others
        return ChunkOutcome(False, None, f"{type(err).__name__}: {err}", traceback.format_exc())


def check_executor(executor: str, workers: int | None, scheduler: str | None,
           threads_per_worker: int | None) -> tuple[int, int | None]:
    """Validate :func:`map_chunks`' executor options (errors name the parameter); return
    ``(workers, torch threads per worker or None)`` with the defaults filled in."""
    owner = "map_chunks"
    if not isinstance(executor, str) or executor not in EXECUTORS:
        raise ValueError(
            f"The 'executor' parameter of {owner} must be one of {EXECUTORS}. Got {executor!r}."
        )
    if scheduler is not None:
        if executor != "dask":
            raise ValueError(
                f"The 'scheduler' parameter of {owner} is for executor='dask'. Got "
                f"scheduler={scheduler!r} with executor={executor!r}."
            )
        if not isinstance(scheduler, str) or "://" not in scheduler:
            raise ParameterTypeError(
                f"The 'scheduler' parameter of {owner} must be an address such as "
                f"'tcp://host:8786'. Got {scheduler!r}."
            )
    n = 1 if workers is None else check_int(owner, "workers", workers, 1)
    if executor == "inprocess" and n != 1:
        raise ValueError(
            f"The 'workers' parameter of {owner} must be 1 (or None) for executor='inprocess'. "
            f"Got {workers!r}."
        )
    if executor != "inprocess" and workers is None and scheduler is None:
        n = 2
    threads = None
    if threads_per_worker is not None:
        threads = check_int(owner, "threads_per_worker", threads_per_worker, 1)
    elif executor != "inprocess":
        threads = default_threads(n)
    return n, threads


def map_chunks(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    executor: str = "inprocess",
    workers: int | None = None,
    scheduler: str | None = None,
    threads_per_worker: int | None = None,
) -> Iterator[tuple[int, ChunkOutcome]]:
    """Call ``fn(item)`` for every item; yield ``(index into items, ChunkOutcome)`` as each
    finishes.

    Arguments:
        fn: a function of one item (module-level, so it pickles, for ``"processes"`` and
            ``"dask"``).
        items: the work items (picklable for the process and Dask executors).
        executor: ``"inprocess"``, ``"processes"`` or ``"dask"`` (see the module docstring).
        workers: worker processes (``"processes"``; ``"dask"`` without ``scheduler``: a
            ``LocalCluster`` of that many); default 2 for those executors, 1 in process.
        scheduler: ``"tcp://host:port"`` of a running Dask scheduler (``executor="dask"``).
        threads_per_worker: torch threads in each worker; default
            :func:`default_threads` of ``workers`` (in process: left as it is).

    Yields:
        ``(i, outcome)``; an exception inside ``fn`` becomes ``outcome.ok == False`` with its
        message and traceback, and the other items go on. Closing the generator early (or an
        interrupt) cancels what has not started.

    Raises:
        ValueError: an unknown executor, ``workers`` < 1 (or > 1 in process), a scheduler
            without ``executor="dask"``.
        ImportError: ``executor="dask"`` without the ``[dask]`` extra installed (the message
            says how to install it).
    """
    n, threads = check_executor(executor, workers, scheduler, threads_per_worker)
    items = list(items)
    if executor == "inprocess":
        for i, item in enumerate(items):
            yield i, _call(fn, item, threads)
        return
    if executor == "processes":
        yield from _map_processes(fn, items, n, threads)
        return
    yield from _map_dask(fn, items, n, scheduler, threads)


def _map_processes(fn, items, n, threads) -> Iterator[tuple[int, ChunkOutcome]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {pool.submit(_call, fn, item, threads): i for i, item in enumerate(items)}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                yield i, fut.result()
            except Exception as err:  # noqa: BLE001 - a worker died (e.g. killed, out of memory)
                yield i, ChunkOutcome(False, None, f"{type(err).__name__}: {err}",
                                      traceback.format_exc())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _map_dask(fn, items, n, scheduler, threads) -> Iterator[tuple[int, ChunkOutcome]]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as err:
        raise ImportError(
            "executor='dask' needs Dask distributed: pip install 'dynrnn[dask]' "
            f"(import failed: {err})"
        ) from err
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = {client.submit(_call, fn, item, threads, pure=False): i
                   for i, item in enumerate(items)}
        for fut in as_completed(list(futures)):
            i = futures[fut]
            try:
                yield i, fut.result()
            except Exception as err:  # noqa: BLE001 - a worker was lost
                yield i, ChunkOutcome(False, None, f"{type(err).__name__}: {err}",
                                      traceback.format_exc())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
