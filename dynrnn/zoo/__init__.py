"""dynrnn.zoo: trained networks on disk (safetensors + JSON) and analysis results (netCDF).

Nothing here unpickles or calls ``torch.load``: weights are safetensors (a JSON header plus raw
bytes), metadata is JSON, results are netCDF-3 via xarray's ``"scipy"`` engine. Every write is
atomic (temporary file in the same directory + ``os.replace``), so a failed or interrupted write
never leaves a partial file at its target.

* :class:`Zoo` -- a directory of entries (the K networks of one ``add``) with per-network
  metadata, queries, loading of any subset of networks as one stacked model, results storage
  (``save_result`` / ``load_result`` / ``has_result``) for resumable batch analyses, and
  :meth:`Zoo.check` listing damaged files as :class:`ZooProblem` (also ``dynrnn zoo check``).
  ``Zoo(path)`` creates nothing: reads of a missing path raise FileNotFoundError naming it;
  ``add`` / ``save_result`` (or ``Zoo(path, create=True)``) create the directory.
* Integrity: :meth:`Zoo.load`, :meth:`Zoo.load_entry` and :func:`load_model` verify the weights
  against the sha256 recorded in the JSON by default (``verify=False`` skips it) and raise
  :class:`ZooIntegrityError` (a ValueError naming the file) for damaged files. A damaged entry
  JSON is skipped by listings with a :class:`ZooIntegrityWarning`; the rest of the zoo stays
  usable.
* :func:`save_model` / :func:`load_model` -- one model as ``<path>.safetensors`` + ``<path>.json``.
* :func:`atomic_write_bytes` -- the atomic write every file of a zoo goes through (a hidden
  temporary file in the same directory, fsync, ``os.replace``), for layers that keep their own
  records next to a zoo (``dynrnn.batch``); :func:`sha256_file`, the checksum the zoo records.
* :func:`save_dataset` / :func:`load_dataset` -- one ``xarray.Dataset`` as a netCDF file with
  bool / int64 / float16 / complex64 / complex128 variables and coordinates, unicode strings and
  non-netCDF attributes restored exactly on load.
"""

from ._io import ZooIntegrityError, atomic_write_bytes, load_model, save_model, sha256_file
from ._results import load_dataset, save_dataset
from .zoo import UnknownNetworkError, Zoo, ZooIntegrityWarning, ZooKeyError, ZooProblem

__all__ = [
    "Zoo",
    "ZooKeyError",
    "UnknownNetworkError",
    "ZooIntegrityError",
    "ZooIntegrityWarning",
    "ZooProblem",
    "save_model",
    "load_model",
    "save_dataset",
    "load_dataset",
    "atomic_write_bytes",
    "sha256_file",
]
