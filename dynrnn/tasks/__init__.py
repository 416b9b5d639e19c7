"""Task generators: pure functions of (config, seed) -> :class:`Trials`.

Every task is a frozen, validated dataclass registered by name (``TASK_REGISTRY``), so that
``task_from_dict(task.to_dict()) == task``. ``task.sample(batch_size, seed)`` is vectorised over
trials and time and deterministic per seed.
"""

from .base import TASK_REGISTRY, Task, Trials, register_task, task_from_dict
from .chaotic import (
    MAX_LYAPUNOV,
    SYSTEMS,
    ChaoticSystemTask,
    Lorenz63,
    Lorenz96,
    Rossler,
    integrate,
    make_system,
)
from .continual import ContinualPatternTask, continual_sequence
from .delayed_discrimination import DelayedDiscriminationTask
from .flipflop import FlipFlopTask
from .hmm import HMMConfig, cyclic_hmm, fully_connected_hmm, linear_chain_hmm, sample_hmm
from .parity import DMSTask, ParityTask, StringParityTask
from .path_integration import PathIntegrationTask
from .recordings import Recording, load_recording
from .sine import SineWaveTask
from .tomita import TOMITA_DFAS, TOMITA_STATE_COUNTS, SymbolicView, TomitaTask, tomita_accepts
from .what_when import WhatWhenTask

__all__ = [
    "MAX_LYAPUNOV",
    "SYSTEMS",
    "TASK_REGISTRY",
    "ChaoticSystemTask",
    "ContinualPatternTask",
    "DMSTask",
    "DelayedDiscriminationTask",
    "FlipFlopTask",
    "HMMConfig",
    "linear_chain_hmm",
    "fully_connected_hmm",
    "cyclic_hmm",
    "sample_hmm",
    "Lorenz63",
    "Lorenz96",
    "ParityTask",
    "PathIntegrationTask",
    "Recording",
    "load_recording",
    "Rossler",
    "SineWaveTask",
    "StringParityTask",
    "SymbolicView",
    "TOMITA_DFAS",
    "TOMITA_STATE_COUNTS",
    "TomitaTask",
    "tomita_accepts",
    "WhatWhenTask",
    "Task",
    "Trials",
    "continual_sequence",
    "integrate",
    "make_system",
    "register_task",
    "task_from_dict",
]
