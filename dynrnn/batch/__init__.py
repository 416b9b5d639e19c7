"""dynrnn.batch: studies of thousands of networks -- sweeps that train them into a zoo, and
analyses mapped over a zoo into one chunked zarr result per analysis -- resumable after a crash
at any moment, and run in process, in local processes or on a Dask cluster by the same code.

* Sweeps (:mod:`dynrnn.batch.sweep`): :func:`load_sweep` (a TOML file) or :class:`Sweep`,
  :func:`plan` (deterministic network and chunk ids, networks that can share one model grouped
  into chunks), :func:`run_sweep` (trains chunk by chunk into a :class:`~dynrnn.zoo.Zoo`; a
  chunk is done when its zoo entry exists), :func:`sweep_status`. CLI: ``dynrnn sweep plan|run|
  status``.
* Analyses over a zoo (:mod:`dynrnn.batch.analyze`, :mod:`dynrnn.batch.store`): :func:`analyze`
  (fixed points, Lyapunov spectra, timescales, degeneracy; pairwise CKA and weight distance
  in blocks),
  :func:`open_result` / :func:`open_pairwise` (lazy, with the networks' hyperparameters as
  coordinates), :func:`check_result`, :func:`result_status`. CLI: ``dynrnn analyze``.
* Reconstruction of recorded data (:mod:`dynrnn.batch.reconstruct`): :func:`reconstruct`
  (also ``dynrnn.reconstruct`` and ``dynrnn reconstruct --data FILE``).
* Executors (:mod:`dynrnn.batch.executors`): :func:`map_chunks` -- ``"inprocess"``,
  ``"processes"``, ``"dask"`` (the ``[dask]`` extra, imported only when used).
"""

from .analyze import ANALYSES, PAIRWISE, AnalyzeReport, analyze
from .executors import EXECUTORS, ChunkOutcome, map_chunks
from .reconstruct import Reconstruction, evaluate_heldout, reconstruct
from .store import (
    ResultIntegrityError,
    ResultIntegrityWarning,
    ResultProblem,
    check_result,
    open_pairwise,
    open_result,
    result_status,
)
from .sweep import Plan, Sweep, SweepStatus, load_sweep, plan, run_sweep, sweep_status

__all__ = [
    "ANALYSES",
    "PAIRWISE",
    "EXECUTORS",
    "Reconstruction",
    "evaluate_heldout",
    "reconstruct",
    "AnalyzeReport",
    "ChunkOutcome",
    "Plan",
    "ResultIntegrityError",
    "ResultIntegrityWarning",
    "ResultProblem",
    "Sweep",
    "SweepStatus",
    "analyze",
    "check_result",
    "load_sweep",
    "map_chunks",
    "open_pairwise",
    "open_result",
    "plan",
    "result_status",
    "run_sweep",
    "sweep_status",
]
