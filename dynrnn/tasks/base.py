"""The common currency of all task generators: :class:`Trials`.

A task is a frozen, validated config with ``sample(batch_size, seed) -> Trials``. Sampling is a
pure function of (config, seed): the same seed gives identical tensors. Sampling is vectorised
over trials and time steps (no Python loop over either).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._repr import SummaryRepr
from .._validation import ParameterTypeError

__all__ = ["Trials", "Task"]


@dataclass(repr=False)
class Trials(SummaryRepr):
    """A batch of trials.

    Attributes:
        inputs: ``[B, T, I]`` float tensor.
        targets: ``[B, T, O]`` tensor: float targets for regression tasks, or ``long`` class
            labels (one column per head) for classification tasks.
        mask: ``[B, T]`` or ``[B, T, O]`` bool tensor, True where the loss is evaluated.
        info: per-trial latent variables: tensors with leading dim B (e.g. ``lengths``,
            ``p_bit``), plus scalars/metadata (e.g. ``dt``, ``task``).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.inputs.ndim != 3:
            raise ValueError(
                f"Trials.inputs must be [B, T, I]; got shape {tuple(self.inputs.shape)}."
            )
        B, T = self.inputs.shape[:2]
        if self.targets.shape[:2] != (B, T):
            raise ValueError(
                f"Trials.targets must start with [B, T] = {(B, T)}; "
                f"got {tuple(self.targets.shape)}."
            )
        if self.mask.shape[:2] != (B, T) or self.mask.dtype != torch.bool:
            raise ValueError(
                f"Trials.mask must be a bool tensor starting with [B, T] = {(B, T)}; got "
                f"{tuple(self.mask.shape)} of dtype {self.mask.dtype}."
            )

    @property
    def batch_size(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.inputs.shape[1])

    def _summary_rows(self) -> tuple[str, list[tuple[str, str]]]:
        B, T = self.batch_size, self.n_steps
        tgt = self.targets
        kind = "class labels" if not tgt.is_floating_point() else "values"
        rows = [("trials (B)", str(B)), ("time steps (T)", str(T)),
                ("inputs (I)", f"{self.inputs.shape[-1]} ({str(self.inputs.dtype)[6:]})"),
                ("targets", f"{tuple(tgt.shape[2:]) or (1,)} {kind} per step "
                            f"({str(tgt.dtype)[6:]})"),
                ("mask", f"{float(self.mask.float().mean()):.1%} of the entries evaluated")]
        per_trial = [k for k, v in self.info.items()
                     if torch.is_tensor(v) and v.ndim >= 1 and v.shape[0] == B]
        other = {k: v for k, v in self.info.items() if k not in per_trial}
        if per_trial:
            rows.append(("info per trial", ", ".join(per_trial)))
        for k, v in other.items():
            rows.append((f"info {k}", repr(v) if not isinstance(v, str) else v))
        return f"Trials: {B} trials of {T} steps", rows


    def to(self, device=None, dtype=None) -> Trials:
        """Move tensors to ``device``; cast floating tensors to ``dtype``."""

        def move(t):
            if not torch.is_tensor(t):
                return t
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return Trials(
            move(self.inputs),
            move(self.targets),
            move(self.mask),
            {k: move(v) for k, v in self.info.items()},
        )

    def __getitem__(self, index) -> Trials:
        """Select trials (first dim) with an int, slice, index tensor or bool mask."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        B = self.batch_size
        info = {
            k: (v[index] if torch.is_tensor(v) and v.ndim >= 1 and v.shape[0] == B else v)
            for k, v in self.info.items()
        }
        return Trials(self.inputs[index], self.targets[index], self.mask[index], info)

    def to_xarray(self):
        """Return an ``xarray.Dataset`` with dims ``trial``, ``time``, ``input``, ``output``.

        Per-trial tensors in ``info`` become variables over ``trial`` (extra dims are named
        ``<key>_dim<i>``); scalars become attributes.
        """
        import xarray as xr

        dt = self.info.get("dt", 1.0)
        B, T = self.batch_size, self.n_steps
        data_vars = {
            "inputs": (("trial", "time", "input"), self.inputs.detach().cpu().numpy()),
            "targets": (("trial", "time", "output"), self.targets.detach().cpu().numpy()),
        }
        if self.mask.ndim == 2:
            data_vars["mask"] = (("trial", "time"), self.mask.cpu().numpy())
        else:
            data_vars["mask"] = (("trial", "time", "output"), self.mask.cpu().numpy())
        attrs = {}
        for key, value in self.info.items():
            if torch.is_tensor(value) and value.ndim >= 1 and value.shape[0] == B:
                arr = value.detach().cpu().numpy()
                dims = ("trial",) + tuple(f"{key}_dim{i}" for i in range(1, arr.ndim))
                data_vars[key] = (dims, arr)
            elif isinstance(value, (int, float, str, bool, np.integer, np.floating)):
                attrs[key] = value
            elif torch.is_tensor(value) and value.ndim == 0:
                attrs[key] = value.item()
            else:
                attrs[key] = repr(value)
        coords = {"trial": np.arange(B), "time": np.arange(T) * float(dt)}
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)


class Task:
    """Base class of task configs (frozen dataclasses).

    Subclasses define ``n_inputs``, ``n_outputs``, ``kind`` ("regression" or
    "classification") and ``sample(batch_size, seed)``.
    """

    kind: str = "regression"

    @property
    def name(self) -> str:
        return type(self).__name__.removesuffix("Task").removesuffix("Config").lower()

    def to_dict(self) -> dict:
        """JSON-serialisable description: ``{"task": <registry name>, **fields}``."""
        from dataclasses import asdict

        d = asdict(self)  # type: ignore[call-overload]
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
        return {"task": TASK_NAMES.get(type(self), type(self).__name__), **d}


TASK_NAMES: dict[type, str] = {}


def register_task(name: str):
    """Class decorator: make a task config constructible by name (CLI, zoo metadata)."""
    if not isinstance(name, str) or not name:
        raise ParameterTypeError(
            f"The 'name' parameter of register_task must be a non-empty str. Got {name!r}."
        )

    def deco(cls):
        TASK_NAMES[cls] = name
        TASK_REGISTRY[name] = cls
        return cls

    return deco


TASK_REGISTRY: dict[str, type] = {}


def task_from_dict(d: dict) -> Task:
    """Inverse of :meth:`Task.to_dict`."""
    if not isinstance(d, dict):
        raise ParameterTypeError(
            f"The 'd' parameter of task_from_dict must be a dict from Task.to_dict(). Got "
            f"{type(d).__name__} instead."
        )
    d = dict(d)
    name = d.pop("task", None)
    if name not in TASK_REGISTRY:
        raise ValueError(
            f"The 'd' parameter of task_from_dict names an unknown task {name!r} (its 'task' "
            f"entry); known tasks: {sorted(TASK_REGISTRY)}."
        )
    cls = TASK_REGISTRY[name]
    import dataclasses

    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in d:
            v = d[f.name]
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**kwargs)
