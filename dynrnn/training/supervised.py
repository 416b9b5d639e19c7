"""Supervised training of an ensemble of K networks by BPTT, all networks in one batched loop.

Each network has its own loss (``[K]``), its own optimiser state and learning rate, its own
gradient clipping, and its own stopping: a network that reaches the criterion is frozen (its
weights no longer change) while the others go on; a network whose loss or weights become
non-finite is marked failed and frozen, and the rest continue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from .._progress import finish_early, progress_bar, stage
from .._repr import SummaryRepr
from .._validation import (
    Bool,
    Choice,
    Constraint,
    Float,
    Floats,
    Int,
    ParameterTypeError,
    check_bool,
    check_choice,
    check_int,
    resolve_generator,
    validate_config,
)
from ..kernels._threads import IterationThreads, adapts_threads
from ..models.base import RecurrentModel, run
from .curriculum import Curriculum
from .losses import head_accuracy, head_cross_entropy, masked_mse
from .optim import EnsembleOptimizer, clip_scale, per_network_grad_norm

#: the ``kind`` values of a :class:`Curriculum` that ``train(curriculum=...)`` accepts by name
_CURRICULA = ("single", "multi", "sliding")

__all__ = ["TrainConfig", "History", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of :func:`train`.

    Attributes:
        n_steps: maximum number of optimiser steps (iterations).
        batch_size: trials per iteration (the same trials for every network).
        optimizer: ``"adam"`` or ``"sgd"``.
        lr: learning rate, a float or one per network (per-network hyperparameter).
        momentum, nesterov: SGD settings (paper for N-parity: SGD Nesterov, lr 0.05, momentum 0.1).
        weight_decay: L2 regularisation (per-network tuple allowed).
        l1: L1 penalty on recurrent weights (structural regularisation).
        grad_clip: clip each network's gradient norm to this value (0 = off).
        criterion: stop a network when its held-out loss is below this (regression: MSE);
            classification tasks use accuracy > ``accuracy_threshold`` on all heads instead.
        accuracy_threshold: accuracy criterion for classification / curricula (paper: 0.98).
        eval_every: evaluate (criterion, curriculum, history of tau) every this many steps.
        eval_batch_size: held-out trials per evaluation (a fixed set drawn once).
        early_stop: freeze networks that reach the criterion.
        noise: use the model's recurrent/input noise during training.
        divergence_threshold: a loss above this (or non-finite) marks the network failed.
        progress: show a progress bar (tqdm, on stderr) over the optimiser steps; the default
            of :func:`train`'s ``progress`` argument.
    """

    n_steps: int = 2000
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float | tuple[float, ...] = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float | tuple[float, ...] = 0.0
    l1: float = 0.0
    grad_clip: float = 1.0
    criterion: float = 1e-3
    accuracy_threshold: float = 0.98
    eval_every: int = 50
    eval_batch_size: int = 256
    early_stop: bool = True
    noise: bool = True
    divergence_threshold: float = 1e6
    progress: bool = True

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_steps": Int(1),
        "batch_size": Int(1),
        "optimizer": Choice(("adam", "sgd")),
        "lr": Floats(Float(0.0, None, low_inclusive=False)),
        "momentum": Float(0.0, 1.0, high_inclusive=False),
        "nesterov": Bool(),
        "weight_decay": Floats(Float(0.0)),
        "l1": Float(0.0),
        "grad_clip": Float(0.0),
        "criterion": Float(0.0),
        "accuracy_threshold": Float(0.0, 1.0),
        "eval_every": Int(1),
        "eval_batch_size": Int(1),
        "early_stop": Bool(),
        "noise": Bool(),
        "divergence_threshold": Float(0.0, None, low_inclusive=False),
        "progress": Bool(),
    }

    def __post_init__(self):
        validate_config(self)


@dataclass(repr=False)
class History(SummaryRepr):
    """What happened during :func:`train`, per network.

    Attributes:
        loss: training loss ``[K, steps]`` (NaN after a network stopped).
        eval_step: the iteration of each evaluation ``[E]``.
        eval_loss: held-out loss ``[K, E]``.
        eval_accuracy: held-out head accuracies ``[K, E, H]`` (classification), else None.
        level: curriculum level ``[K, E]`` (index into the task's ``n_values``), or None.
        tau: per-neuron time constants ``[K, E, N]`` at each evaluation (models with tau).
        reached: ``[K]`` bool, network reached the criterion (or finished the curriculum).
        failed: ``[K]`` bool, network diverged (non-finite or huge loss/weights).
        steps_to_criterion: ``[K]`` iteration at which the criterion was reached (-1 if never).
        network_metadata: one dict per network (config fields, seed) for coordinates.
    """

    loss: np.ndarray
    eval_step: np.ndarray
    eval_loss: np.ndarray
    eval_accuracy: np.ndarray | None
    level: np.ndarray | None
    tau: np.ndarray | None
    reached: np.ndarray
    failed: np.ndarray
    steps_to_criterion: np.ndarray
    network_metadata: list[dict] = field(default_factory=list)
    n_values: tuple[int, ...] | None = None

    def _summary_rows(self) -> tuple[str, list[tuple[str, str]]]:
        K, steps = self.loss.shape
        with np.errstate(all="ignore"):
            final = np.array([row[np.isfinite(row)][-1] if np.isfinite(row).any() else np.nan
                              for row in self.loss])
        reached = self.steps_to_criterion[self.reached & (self.steps_to_criterion >= 0)]
        rows = [("networks", str(K)), ("steps run", str(steps)),
                ("reached the criterion", f"{int(self.reached.sum())} of {K}"),
                ("diverged", f"{int(self.failed.sum())} of {K}"),
                ("final training loss", f"median {np.nanmedian(final):.3g}, "
                                        f"max {np.nanmax(final):.3g}" if np.isfinite(final).any()
                 else "none finite"),
                ("steps to criterion", f"median {int(np.median(reached))}" if len(reached)
                 else "-")]
        if len(self.eval_step):
            last = self.eval_loss[:, -1]
            rows.append(("last held-out loss", f"median {np.nanmedian(last):.3g} "
                                               f"(step {int(self.eval_step[-1])})"
                         if np.isfinite(last).any() else "none finite"))
        return f"History: {K} networks, {steps} steps", rows


    def to_xarray(self):
        """The history as an ``xarray.Dataset`` with dims ``network``, ``step``, ``eval``
        (and ``head``, ``unit``), and the networks' hyperparameters as coordinates."""
        import xarray as xr

        K = self.loss.shape[0]
        data = {
            "loss": (("network", "step"), self.loss),
            "eval_loss": (("network", "eval"), self.eval_loss),
            "reached": (("network",), self.reached),
            "failed": (("network",), self.failed),
            "steps_to_criterion": (("network",), self.steps_to_criterion),
        }
        if self.eval_accuracy is not None:
            data["eval_accuracy"] = (("network", "eval", "head"), self.eval_accuracy)
        if self.level is not None:
            data["level"] = (("network", "eval"), self.level)
            if self.n_values is not None:
                nv = np.asarray(self.n_values)
                data["max_n"] = (("network", "eval"), nv[self.level])
        if self.tau is not None:
            data["tau"] = (("network", "eval", "unit"), self.tau)
        coords = {
            "network": np.arange(K),
            "step": np.arange(self.loss.shape[1]),
            "eval_step": (("eval",), self.eval_step),
        }
        coords.update(_metadata_coords(self.network_metadata, K))
        return xr.Dataset(data, coords=coords)


def _metadata_coords(meta: list[dict], K: int) -> dict:
    """Scalar per-network metadata as coordinates along ``network``."""
    if not meta:
        return {}
    coords = {}
    for key in meta[0]:
        vals = [m.get(key) for m in meta]
        if all(isinstance(v, (bool, int, float, str, np.number)) for v in vals):
            coords[key] = (("network",), np.asarray(vals))
    return coords


def _seeds(seed: int, n: int) -> list[int]:
    ss = np.random.SeedSequence(seed)
    return [int(s.generate_state(1)[0]) for s in ss.spawn(n)]


def _l1_penalty(model: RecurrentModel) -> torch.Tensor:
    W = getattr(model, "W_rec", None)
    if W is None:
        W = model.W_hh
    return W.abs().reshape(W.shape[0], -1).sum(1)


@adapts_threads
def train(
    model: RecurrentModel,
    task,
    config: TrainConfig | None = None,
    *,
    seed: int = 0,
    curriculum: Curriculum | str | None = None,
    progress: bool | None = None,
) -> History:
    """Train the K networks of ``model`` on ``task`` in place; return the :class:`History`.

    Arguments:
        model: a :class:`~dynrnn.models.RecurrentModel` (K networks).
        task: a task config with ``sample(batch_size, seed)``; regression tasks are trained with
            the masked MSE, classification tasks (N-parity, N-DMS) with per-head cross-entropy.
        config: :class:`TrainConfig`.
        seed: seeds the training batches, the held-out set and the noise (same seed -> same
            result).
        curriculum: for classification tasks with several heads: a :class:`Curriculum` or its
            kind (``"single"``, ``"multi"``, ``"sliding"``); None trains all heads at once.
        progress: show a tqdm progress bar on stderr over the optimiser steps (the held-out
            evaluations show as ``evaluating``, then the number of networks that reached the
            criterion); None (default) takes ``config.progress`` (True unless set). When every
            network has stopped early the bar's total becomes the steps run.

    Returns:
        :class:`History` with per-network losses, evaluations, curriculum levels and taus.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise ParameterTypeError(
            f"The 'config' parameter of train must be a TrainConfig or None. Got "
            f"{type(config).__name__} instead."
        )
    if progress is None:
        progress = config.progress
    check_bool("train", "progress", progress)
    check_int("train", "seed", seed, 0)
    if not isinstance(model, RecurrentModel):
        raise ParameterTypeError(
            f"The 'model' parameter of train must be a RecurrentModel. Got {model!r}."
        )
    if not callable(getattr(task, "sample", None)) or not hasattr(task, "n_inputs"):
        raise ParameterTypeError(
            f"The 'task' parameter of train must be a dynrnn task (sample(), n_inputs). Got "
            f"{type(task).__name__} instead."
        )
    if curriculum is not None and not isinstance(curriculum, (str, Curriculum)):
        raise ParameterTypeError(
            f"The 'curriculum' parameter of train must be a Curriculum, one of "
            f"{list(_CURRICULA)} or None. Got {curriculum!r} instead."
        )
    if isinstance(curriculum, str):
        check_choice("train", "curriculum", curriculum, _CURRICULA)
    if model.n_inputs != task.n_inputs:
        raise ValueError(
            f"The model's n_inputs ({model.n_inputs}) must match the task's n_inputs "
            f"({task.n_inputs}) (the 'model' and 'task' parameters of train)."
        )
    K = model.n_networks
    classification = getattr(task, "kind", "regression") == "classification"
    n_task_heads = len(getattr(task, "n_values", ())) if classification else 0
    if isinstance(curriculum, str):
        curriculum = Curriculum(
            kind=curriculum, n_levels=n_task_heads, threshold=config.accuracy_threshold
        )
    if curriculum is not None and not classification:
        raise ValueError("The 'curriculum' parameter of train needs a classification task.")
    if classification:
        n_heads_out = curriculum.n_output_heads if curriculum else n_task_heads
        if model.n_outputs != 2 * n_heads_out:
            raise ValueError(
                f"The model's n_outputs ({model.n_outputs}) must be 2 x {n_heads_out} output heads "
                f"for this task/curriculum."
            )
    elif model.n_outputs != task.n_outputs:
        raise ValueError(
            f"The model's n_outputs ({model.n_outputs}) must match the task's n_outputs "
            f"({task.n_outputs}) (the 'model' and 'task' parameters of train)."
        )
    _check_per_network_settings(config, K)

    device, dtype = model.device, model.dtype
    data_seed, eval_seed, noise_seed = _seeds(seed, 3)
    data_gen = resolve_generator(data_seed)
    noise_gen = resolve_generator(noise_seed)
    eval_trials = task.sample(config.eval_batch_size, eval_seed).to(device, dtype)

    opt = _optimizer(config, model.parameters())

    level = torch.full((K,), curriculum.start_level if curriculum else 0, dtype=torch.long)
    if classification:
        if curriculum is None:
            head_map = torch.arange(n_task_heads).expand(K, -1).clone()
        else:
            head_map = curriculum.head_map(level)

    active = torch.ones(K, dtype=torch.bool, device=device)
    reached = np.zeros(K, dtype=bool)
    failed = np.zeros(K, dtype=bool)
    steps_to_criterion = np.full(K, -1, dtype=np.int64)
    losses = np.full((K, config.n_steps), np.nan)
    ev_step, ev_loss, ev_acc, ev_level, ev_tau = [], [], [], [], []
    has_tau = hasattr(model, "tau")

    def loss_fn(outputs, trials, hm):
        if classification:
            return head_cross_entropy(outputs, trials.targets, trials.mask, hm)
        return masked_mse(outputs, trials.targets, trials.mask)

    def evaluate(step: int):
        nonlocal head_map, level
        with torch.no_grad():
            _, out = run(model, eval_trials.inputs, generator=eval_seed)
            if classification:
                full_map = head_map
                acc = head_accuracy(out, eval_trials.targets, eval_trials.mask, full_map)
                el = head_cross_entropy(out, eval_trials.targets, eval_trials.mask, full_map)
            else:
                acc = None
                el = masked_mse(out, eval_trials.targets, eval_trials.mask)
        ev_step.append(step)
        ev_loss.append(el.double().cpu().numpy())
        ev_level.append(level.cpu().numpy().copy())
        if has_tau:
            ev_tau.append(model.tau.detach().double().cpu().numpy().copy())
        if acc is not None:
            ev_acc.append(acc.cpu().numpy())
        # criterion / curriculum, only for networks still training
        still = active.cpu() & ~torch.as_tensor(failed)
        if curriculum is not None:
            new_level, finished = curriculum.advance(level, acc.cpu())
            level = torch.where(still, new_level, level)
            head_map = curriculum.head_map(level).to(device)
            done = finished & still
        elif classification:
            done = (torch.nan_to_num(acc, nan=0.0).cpu() > config.accuracy_threshold).all(1) & still
        else:
            done = (el.cpu() < config.criterion) & still
        done_np = done.numpy()
        newly = done_np & ~reached
        steps_to_criterion[newly] = step
        reached[done_np] = True
        if config.early_stop:
            active[torch.as_tensor(done_np, device=device)] = False

    threads = IterationThreads()
    with progress_bar(progress, total=config.n_steps, desc="train", unit="step") as bar:
        for step in range(config.n_steps):
            threads.tick()
            trials = task.sample(config.batch_size, data_gen).to(device, dtype)
            _, outputs = run(
                model, trials.inputs, noise=config.noise, generator=noise_gen, return_states=False
            )
            per_net = loss_fn(outputs, trials, head_map if classification else None)
            total_per_net = per_net + config.l1 * _l1_penalty(model) if config.l1 else per_net
            if not _guarded_step(model, opt, config, per_net, total_per_net, active, failed,
                                 losses[:, step]):
                bar.update(1)
                break
            bar.update(1)
            if (step + 1) % config.eval_every == 0 or step == config.n_steps - 1:
                with stage("evaluating", bar):
                    evaluate(step + 1)
                bar.set_postfix_str(_outcome(reached, failed), refresh=False)
                if not bool(active.any()):
                    break

        if not ev_step or ev_step[-1] != step + 1:
            with stage("evaluating", bar):
                evaluate(step + 1)
        if step + 1 < config.n_steps:
            finish_early(bar, "stopped: " + _outcome(reached, failed))
    reached &= ~failed
    last = step + 1
    return History(
        loss=losses[:, :last],
        eval_step=np.asarray(ev_step),
        eval_loss=np.stack(ev_loss, 1),
        eval_accuracy=np.stack(ev_acc, 1) if ev_acc else None,
        level=np.stack(ev_level, 1) if curriculum is not None else None,
        tau=np.stack(ev_tau, 1) if has_tau else None,
        reached=reached,
        failed=failed,
        steps_to_criterion=steps_to_criterion,
        network_metadata=model.network_metadata(),
        n_values=tuple(getattr(task, "n_values", ())) or None,
    )


def _check_per_network_settings(config: TrainConfig, K: int) -> None:
    """``lr`` and ``weight_decay`` given as lists must have one value per network."""
    for name, value in (("lr", config.lr), ("weight_decay", config.weight_decay)):
        if isinstance(value, (list, tuple)) and len(value) != K:
            raise ValueError(
                f"The {name!r} parameter of TrainConfig has {len(value)} values; the model has "
                f"{K} networks."
            )


def _optimizer(config: TrainConfig, params) -> EnsembleOptimizer:
    """The per-network optimiser of a :class:`TrainConfig`."""
    return EnsembleOptimizer(
        list(params),
        kind=config.optimizer,
        lr=torch.as_tensor(config.lr, dtype=torch.float64),
        momentum=config.momentum if config.optimizer == "sgd" else 0.0,
        nesterov=config.nesterov,
        weight_decay=torch.as_tensor(config.weight_decay, dtype=torch.float64),
    )


def _guarded_step(model: RecurrentModel, opt: EnsembleOptimizer, config: TrainConfig,
                  per_net: torch.Tensor, total: torch.Tensor, active: torch.Tensor,
                  failed: np.ndarray, loss_row: np.ndarray,
                  extra_ok: Callable[[], torch.Tensor] | None = None) -> bool:
    """One optimiser step of the K networks that are still training, never derailed by one.

    A network whose loss ``per_net [K]`` is not finite or above ``divergence_threshold`` is
    marked ``failed`` and leaves ``active`` (both updated in place); ``loss_row [K]`` receives
    the losses of the active networks (NaN for the others). The active networks then take one
    step on ``total [K]`` (loss + penalties) with per-network gradient clipping, the model is
    projected, and a network whose parameters (or ``extra_ok()``, e.g. a fitted initial state)
    became non-finite fails too. Returns False (and takes no step) when none is active."""
    bad = ~torch.isfinite(per_net) | (per_net.detach() > config.divergence_threshold)
    if bool(bad.any()):
        failed[bad.cpu().numpy() & ~failed] = True
        active &= ~bad
    loss_row[:] = np.where(active.cpu().numpy(), per_net.detach().double().cpu().numpy(),
                           np.nan)
    if not bool(active.any()):
        return False
    opt.zero_grad()
    total[active].sum().backward()
    scale = None
    if config.grad_clip > 0:
        scale = clip_scale(per_network_grad_norm(opt.params), config.grad_clip)
    opt.step(active, scale)
    model.project_()
    ok = _finite_per_network(model)
    if extra_ok is not None:
        ok = ok & extra_ok()
    if not bool(ok.all()):
        failed |= ~ok.cpu().numpy()
        active &= ok
    return True


def _outcome(reached: np.ndarray, failed: np.ndarray) -> str:
    """The bar's postfix: how many networks reached the criterion (and failed)."""
    K = len(reached)
    text = f"reached {int((reached & ~failed).sum())}/{K}"
    return text + f", failed {int(failed.sum())}" if failed.any() else text


def _finite_per_network(model: RecurrentModel) -> torch.Tensor:
    ok = None
    for p in model.parameters():
        f = torch.isfinite(p.detach()).reshape(p.shape[0], -1).all(1)
        ok = f if ok is None else ok & f
    return ok
