"""dynrnn.zoo: trained networks on disk (safetensors + JSON) and analysis results (netCDF).

Nothing here unpickles or calls ``torch.load``: weights are safetensors (a JSON header plus raw
bytes), metadata is JSON, results are netCDF-3 via xarray's ``"scipy"`` engine. Every write is
atomic (temporary file in the same directory + ``os.replace``).

* :class:`Zoo` -- a directory of entries (the K networks of one ``add``) with per-network
  metadata, queries, loading of any subset of networks as one stacked model, and results storage
  (``save_result`` / ``load_result`` / ``has_result``) for resumable batch analyses.
* :func:`save_model` / :func:`load_model` -- one model as ``<path>.safetensors`` + ``<path>.json``.
* :func:`save_dataset` / :func:`load_dataset` -- one ``xarray.Dataset`` as a netCDF file with
  bool / int64 variables and non-netCDF attributes round-tripped.
"""

from ._io import load_model, save_model
from ._results import load_dataset, save_dataset
from .zoo import UnknownNetworkError, Zoo, ZooKeyError

__all__ = [
    "Zoo",
    "ZooKeyError",
    "UnknownNetworkError",
    "save_model",
    "load_model",
    "save_dataset",
    "load_dataset",
]
