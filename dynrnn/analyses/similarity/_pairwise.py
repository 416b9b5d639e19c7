"""Shared plumbing of the pairwise similarity measures: input coercion and pair bookkeeping.

Trajectories are coerced to ``[K, B, T, N]`` (DSA) or samples ``[K, M, N]`` (representational
metrics), both float64; pairs are the upper triangle ``i < j`` when a set is compared with itself
and all ``(i, j)`` otherwise; results are ``[network, network_b]`` matrices in an
``xarray.Dataset``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from .._common import as_tensor, check_finite


def _as_trials(states: Any, owner: str, name: str = "states") -> torch.Tensor:
    """``[K, B, T, N]`` float64 from ``[K, B, T, N]``, ``[K, T, N]`` (one trial) or a list of
    ``[B, T, N]`` / ``[T, N]`` arrays of equal shape."""
    if isinstance(states, (list, tuple)) and states and not np.isscalar(states[0]):
        parts = [as_tensor(s, owner, name) for s in states]
        shapes = {tuple(p.shape) for p in parts}
        if len(shapes) > 1:
            raise ValueError(
                f"The {name!r} parameter of {owner} must hold arrays of one shape; got "
                f"{sorted(shapes)}. Pass networks of different sizes as separate calls or pad."
            )
        x = torch.stack(parts)
    else:
        x = as_tensor(states, owner, name)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(
            f"The {name!r} parameter of {owner} must have shape [K, B, T, N] or [K, T, N]. "
            f"Got {tuple(x.shape)} instead."
        )
    if min(x.shape) < 1:
        raise ValueError(
            f"The {name!r} parameter of {owner} must not be empty; got {tuple(x.shape)}."
        )
    return check_finite(x, owner, name)


def _as_samples(states: Any, owner: str, name: str) -> torch.Tensor:
    """``[K, M, N]`` float64 (``[K, B, T, N]`` is flattened over trials and time)."""
    x = as_tensor(states, owner, name)
    if x.ndim == 4 and min(x.shape) > 0:
        x = x.reshape(x.shape[0], -1, x.shape[-1])
    if x.ndim != 3 or x.shape[0] < 1:
        raise ValueError(
            f"The {name!r} parameter of {owner} must have shape [K, M, N] or [K, B, T, N]. "
            f"Got {tuple(x.shape)} instead."
        )
    if x.shape[1] < 2 or x.shape[2] < 1:
        raise ValueError(
            f"The {name!r} parameter of {owner} needs at least 2 samples and 1 unit per network; "
            f"got {tuple(x.shape)}."
        )
    return check_finite(x, owner, name)


def _pair_index(K: int, L: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs: upper triangle (i < j) when comparing a set with itself, else all (i, j)."""
    if L is None:
        i, j = np.triu_indices(K, k=1)
    else:
        i, j = np.meshgrid(np.arange(K), np.arange(L), indexing="ij")
        i, j = i.ravel(), j.ravel()
    return i, j


def _fill(K: int, L: int | None, i, j, values: np.ndarray, diag: float = 0.0) -> np.ndarray:
    if L is None:
        D = np.full((K, K), diag, dtype=float)
        D[i, j] = values
        D[j, i] = values
        return D
    D = np.empty((K, L), dtype=float)
    D[i, j] = values
    return D


def _matrix_dataset(name_values: dict, K: int, L: int | None, attrs: dict, coords=None):
    dims = ("network", "network_b")
    ds = xr.Dataset(
        {k: (dims, v) for k, v in name_values.items()},
        coords={"network": np.arange(K), "network_b": np.arange(K if L is None else L)},
        attrs=attrs,
    )
    if coords:
        ds = ds.assign_coords(coords)
    return ds
