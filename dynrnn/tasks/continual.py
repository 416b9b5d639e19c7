"""Continual-learning task sequences generated locally: permuted and rotated pattern classification.

A fixed *base* problem — ``n_classes`` non-negative class prototypes in ``n_dims`` dimensions
(sparse binary "images", blurred along the dimension axis); a sample is its class prototype plus
within-class variation along ``n_variations`` shared directions (a low-dimensional "style", as
handwriting varies within a digit) plus small isotropic noise. The data thus has a low effective
dimension (about ``n_classes + n_variations``), like image data sets. The base problem
is turned into a sequence of tasks in the way permuted MNIST is built from MNIST:

* ``variant="permuted"``: task k presents every sample through a fixed random permutation
  ``pi_k`` of the input dimensions (task 0 is the identity);
* ``variant="rotated"``: task k applies a fixed rotation to the input vector, a random orthogonal
  matrix with rotation angle ``k * rotation_deg`` in each of ``n_dims // 2`` random planes.

All tasks share the label set (one output head, domain-incremental), so a network trained on task
k without protection overwrites what it learned on earlier tasks. Prototypes, permutations and
rotations depend only on ``base_seed`` and ``task_id``; trials depend on the ``seed`` of
:meth:`ContinualPatternTask.sample`. Over ``n_steps`` time steps the pattern is presented
(``presentation``) at the first step followed by zeros (a memory period, for recurrent
networks), held at every step, or in ``n_steps`` consecutive chunks (as in sequential MNIST);
with ``n_steps=1`` all three are a single static pattern (feed-forward and spiking networks).
The label is read at the last step.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .._validation import (
    Choice,
    Constraint,
    Float,
    Int,
    check_int,
    resolve_generator,
    validate_config,
)
from .base import Task, Trials, register_task

__all__ = ["ContinualPatternTask", "continual_sequence"]

_VARIANTS = ("permuted", "rotated")


@register_task("continual_patterns")
@dataclass(frozen=True)
class ContinualPatternTask(Task):
    """Task ``task_id`` of a permuted/rotated pattern-classification sequence.

    Arguments:
        n_dims: input dimension D of the pattern.
        n_classes: number of classes C (labels ``0 .. C-1``).
        task_id: index k of the task in the sequence (0 is the unpermuted/unrotated base task).
        variant: ``"permuted"`` or ``"rotated"``.
        n_steps: T, the number of time steps of a trial.
        presentation: ``"first"`` (pattern at step 0, zeros after), ``"hold"`` (pattern at every
            step) or ``"chunks"`` (T consecutive chunks of ``D / T`` dims; T must divide D).
        n_variations: number of shared directions of within-class variation.
        variation_std: standard deviation of the variation along each direction (per dim).
        noise_std: standard deviation of the isotropic Gaussian noise added to each sample.
        density: fraction of active dims of each binary prototype, in (0, 1].
        blur: width (in dims) of the moving-average blur of the prototypes (1: none).
        rotation_deg: rotation angle per task for ``variant="rotated"``.
        base_seed: seed of the prototypes, permutations and rotations (the whole sequence).
    """

    n_dims: int = 96
    n_classes: int = 10
    task_id: int = 0
    variant: str = "permuted"
    n_steps: int = 1
    presentation: str = "first"
    n_variations: int = 8
    variation_std: float = 0.5
    noise_std: float = 0.1
    density: float = 0.3
    blur: int = 3
    rotation_deg: float = 45.0
    base_seed: int = 0

    kind = "classification"

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_dims": Int(1),
        "n_classes": Int(2),
        "task_id": Int(0),
        "variant": Choice(_VARIANTS),
        "n_steps": Int(1),
        "presentation": Choice(("first", "hold", "chunks")),
        "n_variations": Int(0),
        "variation_std": Float(0.0),
        "noise_std": Float(0.0),
        "density": Float(0.0, 1.0, low_inclusive=False),
        "blur": Int(1, "n_dims"),
        "rotation_deg": Float(-360.0, 360.0),
        "base_seed": Int(0),
    }

    def __post_init__(self):
        validate_config(self)

    def _check_relations(self):
        if self.presentation == "chunks" and self.n_dims % self.n_steps:
            raise ValueError(
                f"The 'n_steps' parameter of {type(self).__name__} must divide "
                f"n_dims={self.n_dims} when presentation='chunks'. Got {self.n_steps!r} instead."
            )

    @property
    def n_inputs(self) -> int:
        """Inputs per step: ``n_dims`` (``n_dims / n_steps`` for ``presentation="chunks"``)."""
        return self.n_dims // self.n_steps if self.presentation == "chunks" else self.n_dims

    @property
    def n_outputs(self) -> int:
        """Logits: ``n_classes``."""
        return self.n_classes

    # ------------------------------------------------------------------ fixed structure
    def prototypes(self) -> torch.Tensor:
        """Class prototypes of the base task, ``[C, D]`` float32 in [0, 1] (before transform)."""
        g = resolve_generator(int(self.base_seed) * 7919 + 1)
        D, C = self.n_dims, self.n_classes
        protos = (torch.rand(C, D, generator=g, dtype=torch.float64) < self.density).double()
        if self.blur > 1:
            kernel = torch.ones(1, 1, self.blur, dtype=torch.float64) / self.blur
            protos = torch.nn.functional.conv1d(
                protos[:, None], kernel, padding="same"
            )[:, 0]
        protos = protos / protos.amax(dim=1, keepdim=True).clamp_min(1e-12)
        return protos.float()

    def variations(self) -> torch.Tensor:
        """Directions of within-class variation, ``[n_variations, D]`` (entries of scale ~1)."""
        g = resolve_generator(int(self.base_seed) * 7919 + 2)
        V = torch.randn(self.n_variations, self.n_dims, generator=g, dtype=torch.float64)
        if self.blur > 1 and self.n_variations:
            kernel = torch.ones(1, 1, self.blur, dtype=torch.float64) / math.sqrt(self.blur)
            V = torch.nn.functional.conv1d(V[:, None], kernel, padding="same")[:, 0]
        return V.float()

    def transform(self) -> torch.Tensor:
        """The task's input transform as a ``[D, D]`` matrix M (a sample is ``x_task = M x``)."""
        D = self.n_dims
        if self.task_id == 0:
            return torch.eye(D)
        if self.variant == "permuted":
            g = resolve_generator(int(self.base_seed) * 7919 + 1000 + int(self.task_id))
            perm = torch.randperm(D, generator=g)
            return torch.eye(D)[perm]
        # rotated: k * angle in each of D // 2 random orthogonal planes (one basis per sequence)
        g = resolve_generator(int(self.base_seed) * 7919 + 999)
        q, r = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))[None, :]
        theta = torch.deg2rad(torch.tensor(self.rotation_deg * self.task_id, dtype=torch.float64))
        rot = torch.eye(D, dtype=torch.float64)
        c, s = torch.cos(theta), torch.sin(theta)
        for i in range(D // 2):
            a, b = 2 * i, 2 * i + 1
            rot[a, a], rot[a, b], rot[b, a], rot[b, b] = c, -s, s, c
        return (q @ rot @ q.T).float()

    # ------------------------------------------------------------------ sampling
    def sample(self, batch_size: int, seed: int | torch.Generator | None = None) -> Trials:
        """Draw ``batch_size`` labelled patterns of this task.

        Arguments:
            batch_size: number of trials B.
            seed: int, ``torch.Generator`` or None (fresh entropy).

        Returns:
            :class:`Trials` with ``inputs [B, T, I]`` (float32; the transformed pattern as set by
            ``presentation``, I = :attr:`n_inputs`), ``targets [B, T, 1]`` (long label repeated
            at every step), ``mask [B, T]`` (True at the last step only); ``info``:
            ``labels [B]`` (long), ``task_id``, ``variant``, ``dt`` (1.0), ``task``.
        """
        owner = type(self).__name__
        B = check_int(owner, "batch_size", batch_size, 1)
        gen = resolve_generator(seed)
        labels = torch.randint(0, self.n_classes, (B,), generator=gen)
        protos, variations, transform = _structure(self)
        z = torch.randn(B, self.n_variations, generator=gen)
        x = (
            protos[labels]
            + self.variation_std * z @ variations
            + self.noise_std * torch.randn(B, self.n_dims, generator=gen)
        )
        x = x @ transform.T
        T = self.n_steps
        if self.presentation == "chunks":
            inputs = x.reshape(B, T, self.n_inputs)
        elif self.presentation == "hold":
            inputs = x[:, None].expand(B, T, self.n_dims).contiguous()
        else:
            inputs = torch.zeros(B, T, self.n_dims)
            inputs[:, 0] = x
        targets = labels[:, None, None].expand(B, T, 1).contiguous()
        mask = torch.zeros(B, T, dtype=torch.bool)
        mask[:, -1] = True
        info = {
            "task": "continual_patterns",
            "dt": 1.0,
            "labels": labels,
            "task_id": int(self.task_id),
            "variant": self.variant,
        }
        return Trials(inputs, targets, mask, info)


@functools.lru_cache(maxsize=64)
def _structure(task: ContinualPatternTask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prototypes, variation directions and transform of a task, computed once per config
    (internal: callers must not modify the tensors)."""
    return task.prototypes(), task.variations(), task.transform()


def continual_sequence(n_tasks: int = 3, **kwargs) -> list[ContinualPatternTask]:
    """The first ``n_tasks`` tasks of a permuted/rotated sequence (``task_id`` from 0 to
    ``n_tasks - 1``).

    Arguments:
        n_tasks: number of tasks (>= 1).
        **kwargs: any other field of :class:`ContinualPatternTask` (shared by all tasks).

    Returns:
        list of :class:`ContinualPatternTask`.
    """
    n_tasks = check_int("continual_sequence", "n_tasks", n_tasks, 1)
    if "task_id" in kwargs:
        raise ValueError(
            "The 'task_id' parameter of continual_sequence is set per task; do not pass it."
        )
    return [ContinualPatternTask(task_id=k, **kwargs) for k in range(n_tasks)]
