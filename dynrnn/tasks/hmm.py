"""Hidden Markov models as tasks: RNNs that emulate HMM emission statistics.

Torre, E., Viscione, M., Pompe, L., Grewe, B. F. & Mante, V. (2025). "Mechanistic
interpretability of RNNs emulating hidden Markov models." Advances in Neural Information
Processing Systems 38 (NeurIPS 2025); arXiv:2510.25674.

An HMM with S hidden states and O output symbols is

    z_0 ~ pi,    z_t | z_{t-1} ~ A[z_{t-1}, :],    y_t | z_t ~ E[z_t, :],

with transition matrix ``A [S, S]``, emission matrix ``E [S, O]`` and initial distribution
``pi [S]`` (every row a probability distribution). A network emulating it receives no
task input: it is driven by i.i.d. Gaussian noise and must emit symbol sequences whose
distribution matches that of the HMM (trained by distribution matching,
:func:`dynrnn.training.train_hmm_emulator`).

The paper's three families (3 output symbols; all with a uniform initial distribution, as in
the authors' code):

* linear chain with S = 2..5 states (:func:`linear_chain_hmm`): ``q = 0.05^(1/(S-1))``; the two
  end states stay with probability ``1 - q`` and move to their neighbour with ``q``; interior
  states stay with ``1 - 2q`` and move to each neighbour with ``q``. State i emits
  ``[0.99 (1 - a), 0.01, 0.99 a]`` with ``a = i / (S - 1)``;
* fully connected with 3 states (:func:`fully_connected_hmm`): stay 0.95, 0.025 to each other
  state; emissions 0.98 on the diagonal (0.01 elsewhere);
* cyclic with 4 states (:func:`cyclic_hmm`): stay 0.95, 0.025 to each of the two neighbours on
  the ring; emissions the linear-chain rule above with S = 4 (the authors' default "linear"
  emissions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .._validation import (
    Check,
    Constraint,
    Int,
    OrNone,
    ParameterTypeError,
    check_int,
    resolve_generator,
    validate_config,
)
from .base import Task, Trials, register_task

__all__ = [
    "HMMConfig",
    "linear_chain_hmm",
    "fully_connected_hmm",
    "cyclic_hmm",
    "sample_hmm",
]

#: absolute tolerance on row sums of the probability matrices
ROW_SUM_TOL = 1e-6


def _matrix(owner: str, name: str, value: Any, ndim: int) -> tuple:
    """A nested tuple of floats (a frozen, JSON-able probability vector / matrix)."""
    if value is None or isinstance(value, (str, bytes, dict, set)):
        raise ParameterTypeError(
            f"The {name!r} parameter of {owner} must be a {'matrix' if ndim == 2 else 'vector'} "
            f"of probabilities. Got {type(value).__name__} {value!r} instead."
        )
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterTypeError(
            f"The {name!r} parameter of {owner} must be an array of real numbers. Got "
            f"{type(value).__name__} instead."
        ) from None
    if arr.ndim != ndim or min(arr.shape, default=0) < 1:
        shape = "[S, S] / [S, O]" if ndim == 2 else "[S]"
        raise ValueError(
            f"The {name!r} parameter of {owner} must have shape {shape} (non-empty). Got shape "
            f"{arr.shape} instead."
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"The {name!r} parameter of {owner} must be finite. Got {value!r}.")
    if (arr < 0).any():
        idx = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise ValueError(
            f"The {name!r} parameter of {owner} must hold probabilities >= 0. Got "
            f"{arr[idx]!r} at index {idx} instead."
        )
    rows = arr.reshape(-1, arr.shape[-1]).sum(-1)
    bad = np.abs(rows - 1.0) > ROW_SUM_TOL
    if bad.any():
        i = int(np.argmax(bad))
        what = f"row {i}" if ndim == 2 else "it"
        raise ValueError(
            f"The {name!r} parameter of {owner} must have rows that are probability "
            f"distributions (sum 1 within {ROW_SUM_TOL:g}); {what} sums to {rows[i]!r}."
        )
    return tuple(map(tuple, arr.tolist())) if ndim == 2 else tuple(arr.tolist())


def _check_transition(owner, name, value, config):
    t = _matrix(owner, name, value, 2)
    if len(t) != len(t[0]):
        raise ValueError(
            f"The {name!r} parameter of {owner} must be a square [S, S] matrix. Got shape "
            f"({len(t)}, {len(t[0])}) instead."
        )
    return t


def _check_emission(owner, name, value, config):
    e = _matrix(owner, name, value, 2)
    S = len(config.transition)
    if len(e) != S:
        raise ValueError(
            f"The {name!r} parameter of {owner} must have one row per hidden state: shape "
            f"[S={S}, O] (S from 'transition'). Got {len(e)} rows instead."
        )
    return e


def _check_initial(owner, name, value, config):
    if value is None:
        return None
    p = _matrix(owner, name, value, 1)
    S = len(config.transition)
    if len(p) != S:
        raise ValueError(
            f"The {name!r} parameter of {owner} must have S={S} entries (S from "
            f"'transition'). Got {len(p)} instead."
        )
    return p


@register_task("hmm")
@dataclass(frozen=True)
class HMMConfig(Task):
    """A hidden Markov model as a task (Torre et al., NeurIPS 2025; see the module docstring).

    Arguments:
        transition: ``A [S, S]``, rows are distributions (``A[i, j] = P(z_t = j | z_{t-1} =
            i)``).
        emission: ``E [S, O]``, rows are distributions (``E[i, o] = P(y_t = o | z_t = i)``).
        initial: ``pi [S]``, a distribution; None (default) is uniform.
        seq_len: sequence length T (>= 2: transitions need two steps).
        n_noise: dimension I of the Gaussian noise that drives the network (the trials'
            ``inputs``; the paper's configuration: 100).

    Matrices may be given as arrays, tensors or nested lists; they are stored as nested tuples
    of floats (frozen, hashable, JSON-serialisable). Rows must sum to 1 within 1e-6.

    ``sample(B, seed)`` returns :class:`Trials` with ``inputs [B, T, I]`` i.i.d. N(0, 1) noise
    (float32; what the network is run on), ``targets [B, T, O]`` the one-hot HMM symbols
    (float32), ``mask [B, T]`` all True, and ``info``: ``states [B, T]`` (long, latent HMM
    states), ``symbols [B, T]`` (long), ``task``, ``dt``.
    """

    transition: tuple = ((0.95, 0.05), (0.05, 0.95))
    emission: tuple = ((0.99, 0.01, 0.0), (0.0, 0.01, 0.99))
    initial: tuple | None = None
    seq_len: int = 30
    n_noise: int = 100

    kind = "distribution"

    constraints: ClassVar[dict[str, Constraint]] = {
        "transition": Check(_check_transition),
        "emission": Check(_check_emission),
        "initial": OrNone(Check(_check_initial)),
        "seq_len": Int(2),
        "n_noise": Int(1),
    }

    def __post_init__(self):
        validate_config(self)

    @property
    def n_states(self) -> int:
        return len(self.transition)

    @property
    def n_symbols(self) -> int:
        return len(self.emission[0])

    @property
    def n_inputs(self) -> int:
        return self.n_noise

    @property
    def n_outputs(self) -> int:
        return self.n_symbols

    def matrices(self, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(A [S, S], E [S, O], pi [S])`` as tensors (pi uniform when ``initial`` is None)."""
        A = torch.tensor(self.transition, dtype=dtype)
        E = torch.tensor(self.emission, dtype=dtype)
        if self.initial is None:
            pi = torch.full((self.n_states,), 1.0 / self.n_states, dtype=dtype)
        else:
            pi = torch.tensor(self.initial, dtype=dtype)
        return A, E, pi

    def stationary(self) -> np.ndarray:
        """The stationary distribution of ``A`` (left eigenvector of eigenvalue 1), ``[S]``."""
        A = np.asarray(self.transition)
        w, v = np.linalg.eig(A.T)
        p = np.real(v[:, int(np.argmin(np.abs(w - 1.0)))])
        return p / p.sum()

    def sample(self, batch_size: int, seed: int | torch.Generator | None = None,
               **kw) -> Trials:
        """Draw ``batch_size`` HMM sequences of length ``seq_len`` with their driving noise.

        Arguments:
            batch_size: number of sequences B.
            seed: int, ``torch.Generator`` or None (fresh entropy).

        Returns:
            :class:`Trials` as described in the class docstring.
        """
        B = check_int(type(self).__name__, "batch_size", batch_size, 1)
        gen = resolve_generator(seed)
        states, symbols = sample_hmm(self, B, gen)
        noise = torch.randn(B, self.seq_len, self.n_noise, generator=gen)
        targets = torch.nn.functional.one_hot(symbols, self.n_symbols).float()
        mask = torch.ones(B, self.seq_len, dtype=torch.bool)
        info = {"task": "hmm", "dt": 1.0, "states": states, "symbols": symbols}
        return Trials(noise, targets, mask, info)


def sample_hmm(hmm: HMMConfig, batch_size: int, seed: int | torch.Generator | None = None,
               seq_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent states and symbols of ``batch_size`` HMM sequences, fully vectorised.

    The chain is drawn without a loop over time: every step t gets one uniform ``u_t`` per
    sequence, which defines the map ``m_t(i) = inverse-CDF of A[i, :] at u_t`` for every current
    state i (``[B, T, S]``); ``z_t = m_t(m_{t-1}(... m_1(z_0)))`` is then a prefix composition of
    maps on S elements, computed by a Hillis--Steele scan in ``ceil(log2 T)`` gathers. Symbols
    are drawn by the inverse CDF of ``E[z_t, :]``. The law is exactly that of the HMM.

    Arguments:
        hmm: an :class:`HMMConfig`.
        batch_size: B.
        seed: int, ``torch.Generator`` or None.
        seq_len: T (default ``hmm.seq_len``; >= 1).

    Returns:
        ``(states [B, T], symbols [B, T])`` as long tensors.
    """
    owner = "sample_hmm"
    if not isinstance(hmm, HMMConfig):
        raise ParameterTypeError(
            f"The 'hmm' parameter of {owner} must be an HMMConfig. Got {type(hmm).__name__}."
        )
    B = check_int(owner, "batch_size", batch_size, 1)
    T = hmm.seq_len if seq_len is None else check_int(owner, "seq_len", seq_len, 1)
    gen = seed if isinstance(seed, torch.Generator) else resolve_generator(seed)
    A, E, pi = hmm.matrices()
    S = hmm.n_states
    cA = A.cumsum(-1)
    cA[:, -1] = 1.0 + 1e-9  # guard against rounding of the row sums
    cE = E.cumsum(-1)
    cE[:, -1] = 1.0 + 1e-9
    cpi = pi.cumsum(-1)
    cpi[-1] = 1.0 + 1e-9
    u0 = torch.rand(B, generator=gen, dtype=torch.float64)
    z0 = torch.searchsorted(cpi, u0[:, None], right=True).squeeze(-1).clamp(max=S - 1)
    if T > 1:
        u = torch.rand(B, T - 1, generator=gen, dtype=torch.float64)
        # maps[b, t, i] = next state from state i at step t + 1
        maps = (u[:, :, None, None] >= cA[None, None]).sum(-1).clamp(max=S - 1)  # [B, T-1, S]
        d = 1
        while d < T - 1:
            # prefix composition: P_t <- P_t o P_{t-d} for t >= d
            later = maps[:, d:]
            earlier = maps[:, :-d]
            maps = torch.cat([maps[:, :d], later.gather(-1, earlier)], dim=1)
            d *= 2
        rest = maps.gather(-1, z0[:, None, None].expand(B, T - 1, 1)).squeeze(-1)
        states = torch.cat([z0[:, None], rest], dim=1)
    else:
        states = z0[:, None]
    v = torch.rand(B, T, generator=gen, dtype=torch.float64)
    symbols = (v[:, :, None] >= cE[states]).sum(-1).clamp(max=hmm.n_symbols - 1)
    return states.long(), symbols.long()


def linear_chain_hmm(n_states: int = 2, *, seq_len: int = 30, n_noise: int = 100) -> HMMConfig:
    """The paper's linear-chain HMM with ``n_states`` S in 2..5 and 3 symbols (Torre et al.,
    NeurIPS 2025): ``q = 0.05^(1/(S-1))``; end states stay with ``1 - q``, interior states with
    ``1 - 2q``, moving to each neighbour with ``q``; state i emits ``[0.99 (1 - a), 0.01,
    0.99 a]``, ``a = i / (S - 1)``; uniform initial distribution."""
    S = check_int("linear_chain_hmm", "n_states", n_states, 2, 5)
    q = 0.05 ** (1.0 / (S - 1))
    A = np.zeros((S, S))
    for i in range(S):
        if i > 0:
            A[i, i - 1] = q
        if i < S - 1:
            A[i, i + 1] = q
        A[i, i] = 1.0 - A[i].sum()
    a = np.arange(S) / (S - 1)
    E = np.stack([0.99 * (1 - a), np.full(S, 0.01), 0.99 * a], axis=1)
    return HMMConfig(A, E, None, seq_len=seq_len, n_noise=n_noise)


def fully_connected_hmm(*, seq_len: int = 30, n_noise: int = 100) -> HMMConfig:
    """The paper's fully connected HMM (Torre et al., NeurIPS 2025): 3 states, stay 0.95 and
    0.025 to each other state; emissions 0.98 on the diagonal, 0.01 elsewhere (3 symbols)."""
    A = np.full((3, 3), 0.025) + np.eye(3) * (0.95 - 0.025)
    E = np.full((3, 3), 0.01) + np.eye(3) * (0.98 - 0.01)
    return HMMConfig(A, E, None, seq_len=seq_len, n_noise=n_noise)


def cyclic_hmm(*, seq_len: int = 30, n_noise: int = 100) -> HMMConfig:
    """The paper's cyclic HMM (Torre et al., NeurIPS 2025): 4 states on a ring, stay 0.95 and
    0.025 to each neighbour; emissions the linear rule ``[0.99 (1 - a), 0.01, 0.99 a]``,
    ``a = i / 3`` (3 symbols)."""
    S = 4
    A = np.eye(S) * 0.95
    for i in range(S):
        A[i, (i + 1) % S] += 0.025
        A[i, (i - 1) % S] += 0.025
    a = np.arange(S) / (S - 1)
    E = np.stack([0.99 * (1 - a), np.full(S, 0.01), 0.99 * a], axis=1)
    return HMMConfig(A, E, None, seq_len=seq_len, n_noise=n_noise)

