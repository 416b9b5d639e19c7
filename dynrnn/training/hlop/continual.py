"""Continual learning of a sequence of classification tasks, with HLOP or plain SGD.

Gradient projection commutes with plain SGD (optionally with momentum, reset at each task); it
does not with Adam's per-element scaling or weight decay, so :func:`train_continual` uses SGD.

Convergence and limits (measured with the tests' permuted-pattern tasks): Oja's rule finds the
strong principal directions within a few hundred iterations, but a direction carrying a fraction
``f`` of the activity power needs of the order of ``1 / (lr f)`` iterations; what matters for
forgetting is the activity power left *outside* the frozen subspace (``x - H^T H x`` of old
inputs), which HLOP does not protect. With low-dimensional activity (the default task: >= 98% of
the power in ~20 dims per layer) task-1 accuracy drops by < 2 points over 3-5 tasks; with more
isotropic input noise spread over all dims it grows: ``noise_std=0.3`` gives a 13-point drop
(SGD: 77), and with also ``variation_std=1.0`` a 26-point drop (SGD: 85).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..._progress import progress_bar, stage
from ..._validation import ParameterTypeError, check_bool, check_float, check_int
from .networks import _HLOPNet
from .projection import HLOP, HLOPConfig

__all__ = ["ContinualResult", "train_continual", "evaluate_accuracy"]


@dataclass
class ContinualResult:
    """Outcome of :func:`train_continual`.

    Attributes:
        accuracy: ``[n_tasks, n_tasks]`` array; ``accuracy[i, j]`` is the test accuracy on task j
            after training on tasks ``0..i``.
        hlop: the :class:`HLOP` state (None for the unprotected baseline).
        losses: training loss per task and step, ``[n_tasks, steps_per_task]``.
    """

    accuracy: np.ndarray
    hlop: HLOP | None
    losses: np.ndarray

    @property
    def first_task(self) -> np.ndarray:
        """Accuracy on task 0 after each task, ``[n_tasks]``."""
        return self.accuracy[:, 0]

    @property
    def first_task_drop(self) -> float:
        """Accuracy on task 0 right after learning it minus after the last task (points, %)."""
        return float(100 * (self.accuracy[0, 0] - self.accuracy[-1, 0]))

    @property
    def mean_final_accuracy(self) -> float:
        return float(self.accuracy[-1].mean())

    def to_xarray(self):
        """``xarray.Dataset`` with ``accuracy(trained, evaluated)`` and ``loss(trained, step)``."""
        import xarray as xr

        n = self.accuracy.shape[0]
        return xr.Dataset(
            {
                "accuracy": (("trained", "evaluated"), self.accuracy),
                "loss": (("trained", "step"), self.losses),
            },
            coords={"trained": np.arange(n), "evaluated": np.arange(n)},
            attrs={"method": "hlop" if self.hlop is not None else "sgd"},
        )


@torch.no_grad()
def evaluate_accuracy(net: nn.Module, task, n_trials: int = 1000, seed: int = 12345) -> float:
    """Fraction of correctly classified trials of ``task`` (label read at the last step)."""
    trials = task.sample(n_trials, seed)
    logits = net(trials.inputs)[0]
    return float((logits.argmax(-1) == trials.info["labels"]).float().mean())


def train_continual(
    net: _HLOPNet,
    tasks: Sequence,
    *,
    hlop: HLOPConfig | None = None,
    steps_per_task: int = 300,
    batch_size: int = 64,
    lr: float = 0.05,
    momentum: float = 0.0,
    eval_trials: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> ContinualResult:
    """Train ``net`` on ``tasks`` one after another, with HLOP (``hlop`` given) or plain SGD.

    For each task: (HLOP) grow new subspace neurons; train ``steps_per_task`` SGD steps on fresh
    batches of the task with every layer's gradient projected out of the frozen subspace;
    (HLOP) train the new neurons with Oja's rule on ``hebbian_batches`` batches of the task's
    presynaptic activity and freeze them; evaluate on every task.

    Arguments:
        net: an :class:`MLP`, :class:`SpikingMLP` or :class:`HLOPRateRNN` (or any module with
            the same ``forward -> (logits, activities)`` / ``hlop_layers()`` protocol).
        tasks: sequence of classification tasks with ``sample(B, seed) -> Trials`` whose
            ``info["labels"]`` are the class labels (e.g. :func:`dynrnn.tasks.continual_sequence`).
        hlop: :class:`HLOPConfig`, or None for the unprotected SGD baseline.
        steps_per_task, batch_size: SGD steps per task and trials per step.
        lr, momentum: SGD constants (the momentum buffer is reset at each task).
        eval_trials: test trials per task (a fixed test set per task).
        seed: seed of the training batches and of the subspace initialisation (same seed ->
            same result).
        progress: show a tqdm progress bar on stderr over the ``n_tasks * steps_per_task``
            SGD steps (the Hebbian phase and the evaluations show on it as ``hebbian`` and
            ``evaluating``).

    Returns:
        :class:`ContinualResult`.
    """
    o = "train_continual"
    if not isinstance(net, nn.Module) or not hasattr(net, "hlop_layers"):
        raise ValueError(
            f"The 'net' parameter of {o} must be an nn.Module with hlop_layers() (MLP, "
            f"SpikingMLP, HLOPRateRNN). Got {type(net).__name__} instead."
        )
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Sequence) or len(tasks) == 0:
        raise ValueError(
            f"The 'tasks' parameter of {o} must be a non-empty sequence of tasks. Got "
            f"{tasks!r} instead."
        )
    if hlop is not None and not isinstance(hlop, HLOPConfig):
        raise ParameterTypeError(
            f"The 'hlop' parameter of {o} must be an HLOPConfig or None. Got "
            f"{type(hlop).__name__} instead."
        )
    steps = check_int(o, "steps_per_task", steps_per_task, 1)
    B = check_int(o, "batch_size", batch_size, 1)
    lr = check_float(o, "lr", lr, 0.0, None, low_inclusive=False)
    momentum = check_float(o, "momentum", momentum, 0.0, 1.0, high_inclusive=False)
    eval_trials = check_int(o, "eval_trials", eval_trials, 1)
    seed = check_int(o, "seed", seed, 0)
    check_bool(o, "progress", progress)

    layers = net.hlop_layers()
    params = [p for p in net.parameters() if p.requires_grad]
    proj = HLOP(net.layer_sizes, hlop, seed=seed) if hlop is not None else None
    n = len(tasks)
    acc = np.zeros((n, n))
    losses = np.zeros((n, steps))
    with progress_bar(progress, total=n * steps, desc=o, unit="step") as bar:
        for t, task in enumerate(tasks):
            opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
            if proj is not None:
                proj.grow()
            for step in range(steps):
                trials = task.sample(B, seed * 1_000_003 + t * 100_003 + step)
                logits, _ = net(trials.inputs)
                loss = nn.functional.cross_entropy(logits, trials.info["labels"])
                opt.zero_grad(set_to_none=False)
                loss.backward()
                if proj is not None:
                    proj.project_gradients(layers)
                opt.step()
                losses[t, step] = float(loss.detach())
                bar.update(1)
            if proj is not None:
                with torch.no_grad(), stage("hebbian", bar):
                    hb = hlop.hebbian_batch_size or B
                    for k in range(hlop.hebbian_batches):
                        trials = task.sample(hb, seed * 1_000_003 + t * 100_003 + 50_000 + k)
                        proj.hebbian_update(net(trials.inputs)[1])
                proj.freeze()
            with stage("evaluating", bar):
                for j, other in enumerate(tasks):
                    acc[t, j] = evaluate_accuracy(net, other, eval_trials, seed=987_654 + j)
    return ContinualResult(acc, proj, losses)
