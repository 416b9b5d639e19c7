"""Shared helpers of the analyses: protocol checks, float64 copies, xarray coordinates, inputs."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch

from .._validation import ParameterTypeError, check_model_tensor, check_tensor
from .._validation import check_finite as _check_finite
from ..models.protocol import ANALYSIS_PROTOCOL

__all__ = [
    "check_model",
    "check_states",
    "float64_copy",
    "network_coords",
    "network_dts",
    "constant_inputs",
    "input_series",
    "check_finite",
    "as_tensor",
    "to_numpy",
    "split_complex",
    "merge_complex",
    "split_batch",
]

_PROTOCOL = ANALYSIS_PROTOCOL


def check_model(model: Any, owner: str) -> None:
    """Raise unless ``model`` follows the protocol (:class:`ParameterTypeError`) and has finite
    parameters (ValueError)."""
    missing = [name for name in _PROTOCOL if not hasattr(model, name)]
    if missing:
        raise ParameterTypeError(
            f"The 'model' parameter of {owner} must follow the dynrnn model protocol "
            f"(missing {missing}). Got {type(model).__name__} instead."
        )
    if hasattr(model, "state_dict"):
        for name, value in model.state_dict().items():
            if torch.is_tensor(value) and value.is_floating_point():
                if not bool(torch.isfinite(value).all()):
                    raise ValueError(
                        f"The 'model' parameter of {owner} has non-finite values in {name!r} "
                        f"(NaN or inf); analyses need finite parameters."
                    )


def float64_copy(model: Any) -> Any:
    """A detached float64 copy of ``model`` (the original is untouched)."""
    if not isinstance(model, torch.nn.Module):
        # a user's protocol object (dynrnn.models.DynamicalSystem) that is not a torch module
        if getattr(model, "dtype", None) == torch.float64:
            return model
        if hasattr(model, "to"):
            return model.to(torch.float64)
        raise ParameterTypeError(
            "The analyses compute in float64: the 'model' parameter must be a torch module, "
            "have dtype torch.float64, or have a .to(dtype) method returning a float64 copy. "
            f"Got {type(model).__name__} with dtype {getattr(model, 'dtype', None)}."
        )
    new = copy.deepcopy(model)
    new = new.double()
    for p in new.parameters():
        p.requires_grad_(False)
    return new.eval()


def _coord_value(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str, np.generic)) or value is None:
        return "None" if value is None else value
    return str(value)


def network_coords(model: Any) -> dict[str, tuple[str, np.ndarray]]:
    """Coordinates along ``network`` from ``model.network_metadata()`` (one per scalar field)."""
    K = int(model.n_networks)
    coords: dict[str, Any] = {"network": ("network", np.arange(K))}
    meta = model.network_metadata() if hasattr(model, "network_metadata") else None
    if not meta:
        return coords
    keys: list[str] = []
    for entry in meta:
        keys.extend(k for k in entry if k not in keys)
    for key in keys:
        if key == "network":
            continue
        values = [_coord_value(entry.get(key)) for entry in meta]
        types = {type(v) for v in values}
        if len(types) > 1 and not types <= {int, float}:
            values = [str(v) for v in values]
        coords[key] = ("network", np.asarray(values))
    return coords


def network_dts(model: Any) -> np.ndarray:
    """The time step each network's map stands for, ``[K]`` (``model.dt`` when not per network)."""
    K = int(model.n_networks)
    configs = getattr(model, "configs", None)
    if configs is not None and len(configs) == K:
        return np.asarray([float(getattr(c, "dt", getattr(model, "dt", 1.0))) for c in configs])
    return np.full(K, float(getattr(model, "dt", 1.0)))


def as_tensor(value: Any, owner: str, name: str, dtype=torch.float64) -> torch.Tensor:
    """``value`` (tensor, array or nested list of real numbers) as a detached float tensor;
    anything else (strings, complex numbers, ...) raises :class:`ParameterTypeError` naming it."""
    return check_tensor(owner, name, value, dtype=dtype, detach=True)


def check_finite(t: torch.Tensor, owner: str, name: str) -> torch.Tensor:
    """``t`` unchanged, or ValueError naming ``name`` when it holds NaN or inf."""
    return _check_finite(owner, name, t)


def check_states(
    model: Any,
    value: Any,
    owner: str,
    name: str,
    layouts=(("K|1", "P", "N"), ("P", "N")),
    *,
    finite: bool = True,
    **sizes: int,
) -> tuple[torch.Tensor, int]:
    """A state / trajectory / input argument checked against ``model``: ``(tensor, layout)``.

    The tensor is float64, detached and on the model's device; ``layouts`` are those of
    :func:`dynrnn._validation.check_shape` with the model's sizes ``K``, ``N``, ``I``, ``O``
    (default: points ``[K or 1, P, N]`` or ``[P, N]``); every free dim must be >= 1. A wrong
    type raises :class:`ParameterTypeError`, a wrong shape (or, with ``finite``, NaN / inf)
    ValueError, each naming ``name``.
    """
    return check_model_tensor(
        owner, name, value, model, layouts, dtype=torch.float64, finite=finite, detach=True,
        **sizes,
    )


def constant_inputs(model: Any, inputs: Any, owner: str) -> torch.Tensor:
    """A constant input per network, ``[K, I]`` float64 (None -> zeros)."""
    K, I = int(model.n_networks), int(model.n_inputs)
    if inputs is None:
        return torch.zeros(K, I, dtype=torch.float64, device=model.device)
    u = as_tensor(inputs, owner, "inputs").to(model.device)
    if u.ndim == 1 and u.shape[0] == I:
        u = u.expand(K, I)
    elif not (u.ndim == 2 and u.shape[-1] == I and u.shape[0] in (1, K)):
        raise ValueError(
            f"The 'inputs' parameter of {owner} must be None or a constant input of shape [{I}] "
            f"or [K={K}, {I}]. Got shape {tuple(u.shape)} instead."
        )
    return check_finite(u.expand(K, I).clone(), owner, "inputs")


def input_series(
    model: Any, inputs: Any, owner: str, batch: int | None = None
) -> tuple[torch.Tensor, bool]:
    """Inputs as ``[K, B, T, I]`` (time series) or ``[K, 1, 1, I]`` (constant) float64.

    Accepts None (zero input), ``[I]``, ``[K, I]`` (constant), ``[B, T, I]`` or
    ``[K or 1, B, T, I]`` (time series). Returns ``(x, is_series)``.
    """
    K, I = int(model.n_networks), int(model.n_inputs)
    if inputs is None or (not torch.is_tensor(inputs) and np.ndim(inputs) <= 2):
        u = constant_inputs(model, inputs, owner)
        return u[:, None, None, :], False
    x = as_tensor(inputs, owner, "inputs").to(model.device)
    if x.ndim <= 2:
        u = constant_inputs(model, x, owner)
        return u[:, None, None, :], False
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[-1] != I or x.shape[0] not in (1, K):
        raise ValueError(
            f"The 'inputs' parameter of {owner} must have shape [I], [K, I], [B, T, I] or "
            f"[K or 1, B, T, I] with I={I}, K={K}. Got {tuple(x.shape)} instead."
        )
    if batch is not None and x.shape[1] not in (1, batch):
        raise ValueError(
            f"The 'inputs' parameter of {owner} must have batch size 1 or {batch}. "
            f"Got {x.shape[1]}."
        )
    return check_finite(x.expand(K, *x.shape[1:]), owner, "inputs"), True


def split_batch(fn, *tensors: torch.Tensor, min_per_thread: int = 256):
    """``fn(*tensors)`` with the leading (batch) dim split over torch's threads.

    For batched LAPACK routines that torch runs one matrix after another on CPU (``eig``,
    ``inv``): each thread takes a contiguous slice of the batch (torch releases the GIL
    inside the call) and the results are concatenated along dim 0. ``fn`` must return a tensor
    or a tuple of tensors, each with the same leading dim as its inputs. Results equal the
    unsplit call (each matrix is processed by the same routine). On CUDA tensors, or when the
    batch is smaller than ``2 * min_per_thread``, ``fn`` is called once.
    """
    n = tensors[0].shape[0]
    n_threads = min(torch.get_num_threads(), n // max(1, min_per_thread))
    if n_threads < 2 or tensors[0].device.type != "cpu":
        return fn(*tensors)
    from concurrent.futures import ThreadPoolExecutor

    # A fresh pool per call, on purpose: a thread that has run a torch op keeps its own OpenMP
    # team alive, and a persistent pool of such threads measured a 3x slowdown of later small
    # torch ops in the same process (a 64-unit Adam loop: 1.2 -> 3.6 ms per iteration).
    bounds = [n * i // n_threads for i in range(n_threads + 1)]
    with ThreadPoolExecutor(n_threads, thread_name_prefix="dynrnn-split") as pool:
        parts = list(
            pool.map(
                lambda i: fn(*(t[bounds[i] : bounds[i + 1]] for t in tensors)),
                range(n_threads),
            )
        )
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    return tuple(torch.cat(list(p)) for p in zip(*parts))


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def log_safe(x: torch.Tensor) -> torch.Tensor:
    """``log`` with ``-inf`` for zeros instead of NaN warnings."""
    return torch.log(torch.clamp(x, min=math.ldexp(1.0, -1070)))


def _check_dataset(ds: Any, owner: str) -> None:
    import xarray as xr

    if not isinstance(ds, xr.Dataset):
        raise ParameterTypeError(
            f"The 'ds' parameter of {owner} must be an xarray.Dataset. Got {type(ds).__name__} "
            f"instead."
        )


def split_complex(ds):
    """Replace every complex variable ``v`` of a Dataset by ``v_real`` and ``v_imag``, for writing
    a result with ``Dataset.to_netcdf`` directly (netCDF has no complex type; the zoo's result
    store, ``Zoo.save_result``, encodes complex variables itself); :func:`merge_complex` undoes
    it."""
    _check_dataset(ds, "split_complex")
    out = ds.copy()
    for name in list(ds.data_vars):
        if np.iscomplexobj(ds[name].values):
            out[f"{name}_real"] = ds[name].real
            out[f"{name}_imag"] = ds[name].imag
            out[f"{name}_real"].attrs = dict(ds[name].attrs, complex_part="real")
            out[f"{name}_imag"].attrs = dict(ds[name].attrs, complex_part="imag")
            out = out.drop_vars(name)
    return out


def merge_complex(ds):
    """Inverse of :func:`split_complex`."""
    _check_dataset(ds, "merge_complex")
    out = ds.copy()
    for name in list(ds.data_vars):
        if name.endswith("_real") and f"{name[:-5]}_imag" in ds:
            base = name[:-5]
            out[base] = ds[name] + 1j * ds[f"{base}_imag"]
            attrs = {k: v for k, v in ds[name].attrs.items() if k != "complex_part"}
            out[base].attrs = attrs
            out = out.drop_vars([name, f"{base}_imag"])
    return out
