"""Evaluation and reverse-engineering of RNNs that emulate hidden Markov models.

Torre, E., Viscione, M., Pompe, L., Grewe, B. F. & Mante, V. (2025). "Mechanistic
interpretability of RNNs emulating hidden Markov models." Advances in Neural Information
Processing Systems 38 (NeurIPS 2025); arXiv:2510.25674. Networks trained by
:func:`dynrnn.training.train_hmm_emulator` emit symbols ``y_t ~ softmax(W_out h_t)`` while
driven by Gaussian noise. Every function is batched over the K networks and returns an
``xarray.Dataset`` with a ``network`` dimension.

Evaluation (symbol statistics of emitted sequences ``[K, B, T]``):

* :func:`emission_statistics` -- symbol frequencies ``f_o = P(y = o)``, the empirical
  symbol-transition matrix ``P(y_t = j | y_{t-1} = i)``, volatility (the fraction of steps
  with ``y_t != y_{t-1}``, the paper's "rate of symbol changes") and dwell-time
  distributions (lengths of runs of one symbol; runs cut by the start or end of a sequence
  are censored and left out);
* :func:`hmm_symbol_statistics` -- the exact expectations of the same frequencies and
  symbol-transition matrix under an HMM (averaged over the T positions of a sequence);
* :func:`fit_hmm` -- a batched Baum--Welch (EM) fit of an S-state categorical HMM to the
  emissions of every network (scaled forward--backward, Rabiner 1989, "A tutorial on hidden
  Markov models and selected applications in speech recognition", Proc. IEEE 77:257-286);
  :func:`compare_hmm` matches fitted and true states by the Hungarian algorithm on the L1
  distances of their emission rows (``scipy.optimize.linear_sum_assignment``) and reports
  the permuted transition matrix and its max abs error;
* :func:`evaluate_emulation` -- all of the above for a model against an HMM.

Why Baum--Welch is written here: hmmlearn is in limited maintenance ("limited-maintenance
mode" on its project page) and fits one model at a time (a Python loop over K networks and
restarts); here all K networks and R random restarts are one ``[K * R, B, S]`` computation in
float64 torch, a few dozen lines of standard EM.

Reverse-engineering (the paper's findings: without input the activity collapses to a single
fixed point; with noise, noise-sustained orbits; slow noise-driven regions joined by fast
transitions; "kick neurons" start the transitions):

* :func:`autonomous_dynamics` -- runs without input from ``h_0 ~ N(0, I)`` and the fixed points
  of the autonomous map (:func:`dynrnn.analyses.find_fixed_points` seeded from those runs);
* :func:`noise_orbits` -- long noise-driven runs projected on their top principal components:
  explained variance, radius and winding (net rotation of the phase angle in the PC1-PC2
  plane);
* :func:`trajectory_speed` -- the deterministic drift ``|F(h_t, 0) - h_t|`` (the speed of the
  fixed-point finder, at zero input) along noise-driven runs, and its ratio at symbol switches
  to elsewhere (slow regions vs fast transitions);
* :func:`symbol_clusters` -- states grouped by the symbol they emit: centroids, spreads,
  separation and nearest-centroid accuracy;
* :func:`kick_neurons` -- switch-triggered averages of every unit and its kick score, the
  effect size ``(mean activity in the w steps before a switch - mean activity) / std``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from .._validation import (
    ParameterTypeError,
    check_float,
    check_int,
    check_tensor,
    resolve_generator,
)
from ..models.base import run
from ..tasks.hmm import HMMConfig
from ..training.distribution_matching import _noise_run, emit, gumbel_softmax_st
from ._common import check_model, network_coords, to_numpy
from .fixed_points import find_fixed_points, speed

__all__ = [
    "emission_statistics",
    "hmm_symbol_statistics",
    "fit_hmm",
    "compare_hmm",
    "evaluate_emulation",
    "autonomous_dynamics",
    "noise_orbits",
    "trajectory_speed",
    "symbol_clusters",
    "kick_neurons",
]


# --------------------------------------------------------------------------- inputs
def _symbols(value: Any, owner: str, n_symbols: int | None = None) -> np.ndarray:
    """Symbols ``[K, B, T]`` (or ``[B, T]`` -> K = 1) as an int64 numpy array."""
    t = check_tensor(owner, "symbols", value, detach=True)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[-1] < 2 or min(t.shape) < 1:
        raise ValueError(
            f"The 'symbols' parameter of {owner} must have shape [K, B, T] or [B, T] with T >= "
            f"2. Got {tuple(t.shape)} instead."
        )
    y = t.cpu().numpy()
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)) or np.any(y < 0):
        raise ValueError(
            f"The 'symbols' parameter of {owner} must hold non-negative integer symbols."
        )
    y = y.astype(np.int64)
    if n_symbols is not None and y.max() >= n_symbols:
        raise ValueError(
            f"The 'symbols' parameter of {owner} holds symbol {int(y.max())}, outside "
            f"0..{n_symbols - 1} (n_symbols={n_symbols})."
        )
    return y


def _n_symbols(y: np.ndarray, n_symbols: int | None, owner: str) -> int:
    if n_symbols is None:
        return int(y.max()) + 1
    return check_int(owner, "n_symbols", n_symbols, 1)


# --------------------------------------------------------------------------- statistics
def emission_statistics(symbols: Any, n_symbols: int | None = None, *,
                        max_dwell: int | None = None) -> xr.Dataset:
    """Symbol frequencies, symbol-transition matrix, volatility and dwell times.

    Arguments:
        symbols: ``[K, B, T]`` (K networks, B sequences of T symbols) or ``[B, T]``; integer
            symbols in ``0 .. O-1``.
        n_symbols: O (default: largest symbol + 1).
        max_dwell: longest dwell time tabulated (default T - 2, the longest complete run).

    Returns:
        Dataset over ``network``, ``symbol``, ``symbol_to``, ``dwell``: ``frequency [network,
        symbol]``; ``transition [network, symbol, symbol_to]`` = ``P(y_t = j | y_{t-1} = i)``
        (NaN rows for symbols never followed); ``transition_counts``; ``volatility [network]``
        (fraction of steps with a change); ``dwell_time [network, symbol, dwell]`` (the
        distribution of complete run lengths per symbol, NaN where none), ``mean_dwell``,
        ``n_runs``.
    """
    owner = "emission_statistics"
    y = _symbols(symbols, owner, n_symbols)
    O = _n_symbols(y, n_symbols, owner)
    K, B, T = y.shape
    D = T - 2 if max_dwell is None else check_int(owner, "max_dwell", max_dwell, 1)
    D = max(D, 1)
    flat = y.reshape(K, -1)
    freq = np.stack([np.bincount(f, minlength=O)[:O] for f in flat]) / flat.shape[1]
    prev, nxt = y[:, :, :-1].reshape(K, -1), y[:, :, 1:].reshape(K, -1)
    code = np.arange(K)[:, None] * O * O + prev * O + nxt
    counts = np.bincount(code.ravel(), minlength=K * O * O).reshape(K, O, O).astype(float)
    rows = counts.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        trans = np.where(rows > 0, counts / np.where(rows > 0, rows, 1), np.nan)
    vol = (y[:, :, 1:] != y[:, :, :-1]).mean((1, 2))

    # runs: a new run starts at t = 0 and wherever the symbol changes
    seqs = y.reshape(K * B, T)
    start = np.ones((K * B, T), dtype=bool)
    start[:, 1:] = seqs[:, 1:] != seqs[:, :-1]
    run_id = np.cumsum(start.ravel()) - 1
    lengths = np.bincount(run_id)
    pos = np.flatnonzero(start.ravel())
    t0 = pos % T
    run_seq = pos // T
    run_net = run_seq // B
    run_sym = seqs.ravel()[pos]
    complete = (t0 > 0) & (t0 + lengths < T)
    dwell = np.zeros((K, O, D))
    n_runs = np.zeros((K, O), dtype=np.int64)
    sel = complete & (lengths <= D)
    np.add.at(dwell, (run_net[sel], run_sym[sel], lengths[sel] - 1), 1.0)
    np.add.at(n_runs, (run_net[complete], run_sym[complete]), 1)
    mean_dwell = np.full((K, O), np.nan)
    tot = np.zeros((K, O))
    np.add.at(tot, (run_net[complete], run_sym[complete]), lengths[complete])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_dwell = np.where(n_runs > 0, tot / np.maximum(n_runs, 1), np.nan)
        dist = np.where(n_runs[..., None] > 0, dwell / np.maximum(n_runs[..., None], 1), np.nan)
    ds = xr.Dataset(
        {
            "frequency": (("network", "symbol"), freq, {"long_name": "symbol frequency"}),
            "transition": (("network", "symbol", "symbol_to"), trans,
                           {"long_name": "P(y_t = symbol_to | y_{t-1} = symbol)"}),
            "transition_counts": (("network", "symbol", "symbol_to"), counts),
            "volatility": (("network",), vol,
                           {"long_name": "fraction of steps with a symbol change"}),
            "dwell_time": (("network", "symbol", "dwell"), dist,
                           {"long_name": "distribution of complete run lengths"}),
            "mean_dwell": (("network", "symbol"), mean_dwell, {"units": "steps"}),
            "n_runs": (("network", "symbol"), n_runs),
        },
        coords={"network": np.arange(K), "symbol": np.arange(O), "symbol_to": np.arange(O),
                "dwell": np.arange(1, D + 1)},
        attrs={"n_sequences": B, "seq_len": T},
    )
    return ds


def hmm_symbol_statistics(hmm: HMMConfig, seq_len: int | None = None) -> xr.Dataset:
    """The exact symbol frequencies and symbol-transition matrix of an HMM's sequences.

    With state marginals ``p_t = pi A^t``, the frequency is ``f = (1/T) sum_t p_t E`` and the
    symbol-transition matrix is ``P(j | i) = J_ij / sum_j J_ij`` with the joint
    ``J = sum_{t=1}^{T-1} (diag(p_{t-1}) E)^T A E`` -- the expectations of what
    :func:`emission_statistics` measures on sequences of length T, plus ``volatility =
    1 - trace(J) / sum(J)``.

    Returns:
        Dataset over ``symbol``, ``symbol_to``: ``frequency``, ``transition``, and
        ``volatility`` (scalar).
    """
    owner = "hmm_symbol_statistics"
    if not isinstance(hmm, HMMConfig):
        raise ParameterTypeError(
            f"The 'hmm' parameter of {owner} must be an HMMConfig. Got {type(hmm).__name__}."
        )
    T = hmm.seq_len if seq_len is None else check_int(owner, "seq_len", seq_len, 2)
    A, E, pi = (m.numpy() for m in hmm.matrices())
    p = pi.copy()
    f = np.zeros(E.shape[1])
    J = np.zeros((E.shape[1], E.shape[1]))
    for t in range(T):
        f += p @ E
        if t < T - 1:
            J += (p[:, None] * E).T @ A @ E
        p = p @ A
    f /= T
    trans = J / J.sum(1, keepdims=True)
    return xr.Dataset(
        {"frequency": (("symbol",), f), "transition": (("symbol", "symbol_to"), trans),
         "volatility": ((), 1.0 - np.trace(J) / J.sum())},
        coords={"symbol": np.arange(E.shape[1]), "symbol_to": np.arange(E.shape[1])},
        attrs={"seq_len": T},
    )


# --------------------------------------------------------------------------- Baum-Welch
def _forward_backward(A, E, pi, y):
    """Scaled forward--backward (Rabiner 1989, Sec. V.A). ``A [R, S, S]``, ``E [R, S, O]``,
    ``pi [R, S]``, ``y [R, B, T]`` long -> ``(gamma [R, B, T, S], xi_sum [R, S, S],
    loglik [R])``."""
    R, B, T = y.shape
    S = A.shape[-1]
    Et = E.transpose(1, 2)  # [R, O, S]
    Ey = torch.gather(Et, 1, y.reshape(R, B * T, 1).expand(R, B * T, S)).reshape(R, B, T, S)
    alpha = torch.empty(R, B, T, S, dtype=A.dtype)
    c = torch.empty(R, B, T, dtype=A.dtype)
    a = pi[:, None, :] * Ey[:, :, 0]
    for t in range(T):
        if t > 0:
            a = torch.bmm(alpha[:, :, t - 1], A) * Ey[:, :, t]
        ct = a.sum(-1).clamp_min(1e-300)
        c[:, :, t] = ct
        alpha[:, :, t] = a / ct[..., None]
    beta = torch.ones(R, B, S, dtype=A.dtype)
    gamma = torch.empty_like(alpha)
    xi = torch.zeros(R, S, S, dtype=A.dtype)
    gamma[:, :, T - 1] = alpha[:, :, T - 1]
    for t in range(T - 1, 0, -1):
        w = Ey[:, :, t] * beta / c[:, :, t, None]  # [R, B, S]
        xi += torch.bmm(alpha[:, :, t - 1].transpose(1, 2), w) * A
        beta = torch.bmm(w, A.transpose(1, 2))
        gamma[:, :, t - 1] = alpha[:, :, t - 1] * beta
    loglik = torch.log(c).sum((1, 2))
    return gamma, xi, loglik


def fit_hmm(symbols: Any, n_states: int, n_symbols: int | None = None, *,
            n_iter: int = 200, tol: float = 1e-7, n_restarts: int = 4,
            seed: int | torch.Generator | None = 0) -> xr.Dataset:
    """Fit an S-state categorical HMM to the symbols of every network by Baum--Welch (EM).

    EM (Baum et al. 1970; Rabiner 1989): the E-step computes state posteriors ``gamma_t(i)``
    and expected transition counts ``sum_t xi_t(i, j)`` by the scaled forward--backward
    recursions; the M-step sets ``pi = mean_b gamma_0``, ``A_ij = sum xi(i, j) / sum_j sum
    xi(i, j)``, ``E_io = sum_{t: y_t = o} gamma_t(i) / sum_t gamma_t(i)`` (probabilities floored
    at 1e-10 and renormalised). Iterates until the log-likelihood per symbol improves by less
    than ``tol`` or ``n_iter`` iterations. ``n_restarts`` random initialisations (rows drawn
    from a flat Dirichlet, seeded) run in the same batch; the one with the highest
    log-likelihood is kept per network.

    Arguments:
        symbols: ``[K, B, T]`` or ``[B, T]`` integer symbols.
        n_states: S (>= 1). n_symbols: O (default: largest symbol + 1).
        n_iter, tol, n_restarts, seed: see above.

    Returns:
        Dataset over ``network``, ``state``, ``state_to``, ``symbol``: ``transition [network,
        state, state_to]``, ``emission [network, state, symbol]``, ``initial [network,
        state]``, ``log_likelihood [network]`` (per symbol), ``n_iterations``.
    """
    owner = "fit_hmm"
    y = _symbols(symbols, owner, n_symbols)
    O = _n_symbols(y, n_symbols, owner)
    S = check_int(owner, "n_states", n_states, 1)
    n_iter = check_int(owner, "n_iter", n_iter, 1)
    tol = check_float(owner, "tol", tol, 0.0, None)
    Rn = check_int(owner, "n_restarts", n_restarts, 1)
    gen = resolve_generator(seed, owner=owner)
    K, B, T = y.shape
    R = K * Rn
    yt = torch.from_numpy(y).repeat_interleave(Rn, dim=0)  # [K * Rn, B, T]

    def dirichlet(*shape):
        g = -torch.log(torch.rand(*shape, generator=gen, dtype=torch.float64).clamp_min(1e-300))
        return g / g.sum(-1, keepdim=True)

    # starting transition matrices lean towards staying (half a Dirichlet row, half identity)
    A = 0.5 * dirichlet(R, S, S) + 0.5 * torch.eye(S, dtype=torch.float64)
    E = dirichlet(R, S, O)
    pi = torch.full((R, S), 1.0 / S, dtype=torch.float64)
    onehot = torch.nn.functional.one_hot(yt, O).to(torch.float64).reshape(R, B * T, O)
    prev = torch.full((R,), -np.inf, dtype=torch.float64)
    done = torch.zeros(R, dtype=torch.bool)
    iters = torch.zeros(R, dtype=torch.int64)
    n_sym = B * T
    for _ in range(n_iter):
        gamma, xi, ll = _forward_backward(A, E, pi, yt)
        ll = ll / n_sym
        newly = (ll - prev).abs() < tol
        g = gamma.reshape(R, B * T, S)
        A_new = xi / xi.sum(-1, keepdim=True).clamp_min(1e-300)
        E_new = torch.bmm(g.transpose(1, 2), onehot)
        E_new = E_new / E_new.sum(-1, keepdim=True).clamp_min(1e-300)
        pi_new = gamma[:, :, 0].mean(1)
        A_new = (A_new.clamp_min(1e-10)) / A_new.clamp_min(1e-10).sum(-1, keepdim=True)
        E_new = (E_new.clamp_min(1e-10)) / E_new.clamp_min(1e-10).sum(-1, keepdim=True)
        keep = done[:, None, None]
        A = torch.where(keep, A, A_new)
        E = torch.where(keep, E, E_new)
        pi = torch.where(done[:, None], pi, pi_new)
        prev = torch.where(done, prev, ll)
        iters += (~done).long()
        done = done | newly
        if bool(done.all()):
            break
    _, _, ll = _forward_backward(A, E, pi, yt)
    ll = (ll / n_sym).reshape(K, Rn)
    best = ll.argmax(1)
    idx = torch.arange(K) * Rn + best
    return xr.Dataset(
        {
            "transition": (("network", "state", "state_to"), A[idx].numpy()),
            "emission": (("network", "state", "symbol"), E[idx].numpy()),
            "initial": (("network", "state"), pi[idx].numpy()),
            "log_likelihood": (("network",), ll.max(1).values.numpy(),
                               {"long_name": "log-likelihood per symbol"}),
            "n_iterations": (("network",), iters[idx].numpy()),
        },
        coords={"network": np.arange(K), "state": np.arange(S), "state_to": np.arange(S),
                "symbol": np.arange(O)},
        attrs={"n_restarts": Rn, "n_iter": n_iter, "tol": tol},
    )


def compare_hmm(fit: xr.Dataset, hmm: HMMConfig) -> xr.Dataset:
    """A fitted HMM (:func:`fit_hmm`) against the true one, up to a permutation of states.

    The permutation pairs each true state i with the fitted state ``perm[i]`` minimising the
    total L1 distance between the emission rows (Hungarian algorithm,
    ``scipy.optimize.linear_sum_assignment``).

    Returns:
        Dataset: ``matched_transition [network, state, state_to]`` and ``matched_emission``
        (fitted matrices in the true states' order), ``permutation [network, state]``,
        ``transition_error`` and ``emission_error [network]`` (max abs differences).
    """
    from scipy.optimize import linear_sum_assignment

    owner = "compare_hmm"
    if not isinstance(fit, xr.Dataset) or not {"transition", "emission"} <= set(fit.data_vars):
        raise ParameterTypeError(
            f"The 'fit' parameter of {owner} must be the Dataset of fit_hmm. Got "
            f"{type(fit).__name__}."
        )
    if not isinstance(hmm, HMMConfig):
        raise ParameterTypeError(
            f"The 'hmm' parameter of {owner} must be an HMMConfig. Got {type(hmm).__name__}."
        )
    A_fit, E_fit = fit["transition"].values, fit["emission"].values
    K, S, O = E_fit.shape
    if S != hmm.n_states or O != hmm.n_symbols:
        raise ValueError(
            f"The 'fit' parameter of {owner} has {S} states and {O} symbols; the 'hmm' has "
            f"{hmm.n_states} and {hmm.n_symbols}."
        )
    A_true, E_true, _ = (m.numpy() for m in hmm.matrices())
    perms = np.zeros((K, S), dtype=np.int64)
    At = np.zeros_like(A_fit)
    Et = np.zeros_like(E_fit)
    for k in range(K):
        cost = np.abs(E_true[:, None, :] - E_fit[k][None, :, :]).sum(-1)
        _, col = linear_sum_assignment(cost)
        perms[k] = col
        At[k] = A_fit[k][np.ix_(col, col)]
        Et[k] = E_fit[k][col]
    return xr.Dataset(
        {
            "matched_transition": (("network", "state", "state_to"), At),
            "matched_emission": (("network", "state", "symbol"), Et),
            "true_transition": (("state", "state_to"), A_true),
            "true_emission": (("state", "symbol"), E_true),
            "permutation": (("network", "state"), perms),
            "transition_error": (("network",), np.abs(At - A_true).max((1, 2)),
                                 {"long_name": "max |A_fit - A_true| (matched states)"}),
            "emission_error": (("network",), np.abs(Et - E_true).max((1, 2))),
        },
        coords={"network": np.arange(K), "state": np.arange(S), "state_to": np.arange(S),
                "symbol": np.arange(O)},
    )


def evaluate_emulation(model: Any, hmm: HMMConfig, *, n_sequences: int = 1000,
                       seq_len: int | None = None, seed: int = 0, fit: bool = True,
                       n_restarts: int = 4) -> xr.Dataset:
    """Evaluate K HMM-emulating networks against the HMM they were trained on.

    The networks emit ``n_sequences`` sequences of length ``seq_len`` (default the HMM's)
    under Gaussian noise (:func:`dynrnn.training.emit`); their :func:`emission_statistics` are
    compared with the exact expectations of the HMM (:func:`hmm_symbol_statistics`), and, with
    ``fit``, an HMM with the true number of states is fitted to each network's emissions
    (:func:`fit_hmm`) and compared with the truth (:func:`compare_hmm`).

    Returns:
        Dataset with the network's statistics, ``true_frequency [symbol]``,
        ``true_symbol_transition [symbol, symbol_to]``, ``true_volatility``,
        ``frequency_error`` / ``symbol_transition_error [network]`` (max abs), and with ``fit``
        the variables of :func:`compare_hmm` plus ``fit_log_likelihood``; networks' coordinates
        from the model.
    """
    owner = "evaluate_emulation"
    check_model(model, owner)
    if not isinstance(hmm, HMMConfig):
        raise ParameterTypeError(
            f"The 'hmm' parameter of {owner} must be an HMMConfig. Got {type(hmm).__name__}."
        )
    T = hmm.seq_len if seq_len is None else check_int(owner, "seq_len", seq_len, 2)
    y = emit(model, n_sequences, T, seed=seed)
    O = hmm.n_symbols
    ds = emission_statistics(y, O)
    truth = hmm_symbol_statistics(hmm, T)
    ds["true_frequency"] = truth["frequency"]
    ds["true_symbol_transition"] = truth["transition"]
    ds["true_volatility"] = truth["volatility"]
    ds["frequency_error"] = np.abs(ds["frequency"] - ds["true_frequency"]).max("symbol")
    ds["symbol_transition_error"] = np.abs(
        ds["transition"] - ds["true_symbol_transition"]).max(("symbol", "symbol_to"))
    if fit:
        f = fit_hmm(y, hmm.n_states, O, n_restarts=n_restarts, seed=seed)
        cmp = compare_hmm(f, hmm)
        ds = xr.merge([ds, cmp], combine_attrs="override")
        ds["fit_log_likelihood"] = f["log_likelihood"]
    return ds.assign_coords({k: v for k, v in network_coords(model).items() if k != "network"})


# --------------------------------------------------------------------------- dynamics
def autonomous_dynamics(model: Any, *, n_trajectories: int = 64, n_steps: int = 200,
                        seed: int = 0, tol: float = 1e-3, max_rate: float = 0.99,
                        fixed_point_kwargs: dict | None = None) -> xr.Dataset:
    """Dynamics without input: runs from ``h_0 ~ N(0, I)`` and the autonomous fixed points.

    Each network is run for ``n_steps`` steps at zero input from ``n_trajectories`` standard
    normal initial states; :func:`dynrnn.analyses.find_fixed_points` (zero input) is seeded
    from those runs. With ``p`` the candidate attractor (a stable fixed point, or the origin
    of a homogeneous map, below) nearest to a run's final state and
    ``d_t = |h_t - p|`` (Euclidean), the run *converges* to ``p`` when

        d_T < tol    or    d_T <= d_{T'} max_rate^(T - T'),   T' = floor(T / 2),

    i.e. it ends within ``tol`` of ``p``, or its distance to ``p`` shrank over the second half
    of the run at a geometric rate of at most ``max_rate`` (< 1) per step. The second rule
    counts a run that decays slowly to the origin (e.g. ``h -> relu(0.98 h)``: ``d_300 ~
    0.01``) as converging although ``n_steps`` were too few to bring it within ``tol``; a run
    that grows along a ray, settles on another attractor or circles does not shrink
    geometrically towards ``p`` and never satisfies it. The paper's finding (Torre, Viscione,
    Pompe, Grewe & Mante 2025, "Mechanistic interpretability of RNNs emulating hidden Markov
    models", NeurIPS 2025): trained networks collapse to a single stable fixed point, i.e.
    ``collapses``.

    For the paper's bias-free ReLU networks the origin is always a fixed point, and any other
    fixed point comes with its whole ray (``relu(W c h) = c relu(W h)`` for ``c > 0``). The map
    is not differentiable at the origin: its Jacobian ``diag(relu'(0)) W`` is the zero matrix
    under the convention ``relu'(0) = 0`` (stable whatever W is), and a point the finder
    returns within rounding of the origin is labelled by the activation pattern of that
    arbitrary offset (stable or a saddle). Whether the activity really collapses is therefore
    decided by the runs: for a positively homogeneous map (checked numerically, ``F(2 h) =
    2 F(h)`` on the initial states) a fixed point within ``tol`` of the origin is a candidate
    attractor whatever its label (``n_attracting`` counts these and the points labelled
    stable), and ``fraction_converged`` (runs that grow along a ray never reach the origin)
    is part of ``collapses``.

    Returns:
        The fixed-point Dataset (``points``, ``n_fixed_points``, ``n_stable``, ...) plus
        ``state_norm [network, trajectory, time]`` (``|h_t|``), ``final_states [network,
        trajectory, unit]``, ``distance_to_stable [network, trajectory]`` (``d_T``, to the
        nearest candidate attractor; inf if none), ``contraction_rate [network, trajectory]``
        (``(d_T / d_{T'})^(1 / (T - T'))``; NaN where ``d_{T'} = 0``), ``growth_rate [network,
        trajectory]`` (the same rate of ``|h_t|``: > 1 for runs that grow),
        ``run_converged [network, trajectory]`` (the rule above), ``homogeneous
        [network]``, ``n_attracting [network]``, ``fraction_converged [network]`` and
        ``collapses [network]`` (exactly one fixed point, it is stable or the origin of a
        homogeneous map, and every run converged to it).

    Arguments:
        model: K networks (a dynrnn model with zero-input dynamics ``h_t = F(h_{t-1}, 0)``).
        n_trajectories: P runs per network; n_steps: T >= 2 steps per run.
        seed: seed of the initial states and of the fixed-point finder.
        tol: distance below which a run has reached a fixed point (> 0).
        max_rate: largest per-step contraction rate of ``d_t`` that counts as converging, in
            (0, 1).
        fixed_point_kwargs: keyword arguments of :func:`dynrnn.analyses.find_fixed_points`.
    """
    owner = "autonomous_dynamics"
    check_model(model, owner)
    P = check_int(owner, "n_trajectories", n_trajectories, 1)
    T = check_int(owner, "n_steps", n_steps, 2)
    tol = check_float(owner, "tol", tol, 0.0, None, low_inclusive=False)
    max_rate = check_float(owner, "max_rate", max_rate, 0.0, 1.0, low_inclusive=False,
                           high_inclusive=False)
    gen = resolve_generator(seed, owner=owner)
    K, N = model.n_networks, model.n_units
    h0 = torch.randn(K, P, N, generator=gen, dtype=model.dtype)
    with torch.no_grad():
        states, _ = run(model, n_steps=T, h0=h0)
    kw = dict(n_initial=256, seed=seed, progress=False)
    kw.update(fixed_point_kwargs or {})
    # candidates come from the finite part of the runs (runs that grow may overflow)
    finite_t = torch.isfinite(states).all(-1).all(1).all(0)  # [T]
    t_ok = int(finite_t.long().cumprod(0).sum())
    traj = states[:, :, :t_ok] if t_ok > 0 else h0[:, :, None]
    fps = find_fixed_points(model, None, trajectories=traj, **kw)
    final = to_numpy(states[:, :, -1]).astype(np.float64)
    final = np.where(np.isfinite(final), final, np.inf)
    T_mid = T // 2
    mid = to_numpy(states[:, :, T_mid - 1]).astype(np.float64)  # h_{T'} (states[t] = h_{t+1})
    mid = np.where(np.isfinite(mid), mid, np.inf)
    pts = fps["points"].values
    found = fps["valid"].values & fps["converged"].values
    stable = found & (fps["stability"].values == 0)
    # the origin of a positively homogeneous map (F(c h) = c F(h), c > 0; checked on the
    # initial states with c = 2) is a point where F is not differentiable: the finder labels a
    # point within rounding of it by the activation pattern of that arbitrary offset, so it
    # is tested by the runs like the labelled stable points
    homogeneous = _positively_homogeneous(model, h0)
    at_origin = found & (np.linalg.norm(np.nan_to_num(pts), axis=-1) <= tol) & homogeneous[:, None]
    attracting = stable | at_origin
    dist = np.full((K, P), np.inf)
    dist_mid = np.full((K, P), np.inf)
    for k in range(K):
        if attracting[k].any():
            sp = pts[k][attracting[k]]
            with np.errstate(invalid="ignore", over="ignore"):
                d = np.linalg.norm(final[k][:, None, :] - sp[None], axis=-1)  # [P, S]
                d = np.where(np.isfinite(d), d, np.inf)
                near = d.argmin(1)
                dm = np.linalg.norm(mid[k] - sp[near], axis=-1)
            dist[k] = d[np.arange(P), near]
            dist_mid[k] = np.where(np.isfinite(dm), dm, np.inf)
    steps = T - T_mid
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rate = np.where(np.isfinite(dist) & np.isfinite(dist_mid) & (dist_mid > 0),
                        (dist / np.where(dist_mid > 0, dist_mid, 1.0)) ** (1.0 / steps), np.nan)
        norms = to_numpy(states.norm(dim=-1)).astype(np.float64)  # [K, P, T]
        n_end, n_mid = norms[..., -1], norms[..., T_mid - 1]
        growth = np.where(np.isfinite(n_end) & np.isfinite(n_mid) & (n_mid > 0),
                          (n_end / np.where(n_mid > 0, n_mid, 1.0)) ** (1.0 / steps), np.nan)
        growth = np.where(np.isfinite(n_mid) & ~np.isfinite(n_end), np.inf, growth)
        converged = (dist < tol) | (np.isfinite(dist)
                                    & (dist <= dist_mid * max_rate ** steps))
    frac = converged.mean(1)
    n_attracting = attracting.sum(1)
    collapses = (fps["n_fixed_points"].values == 1) & (n_attracting == 1) & (frac == 1)
    ds = fps.assign(
        state_norm=(("network", "trajectory", "time"), to_numpy(states.norm(dim=-1))),
        final_states=(("network", "trajectory", "unit"), final),
        distance_to_stable=(("network", "trajectory"), dist),
        contraction_rate=(("network", "trajectory"), rate),
        growth_rate=(("network", "trajectory"), growth),
        run_converged=(("network", "trajectory"), converged),
        n_attracting=(("network",), n_attracting),
        homogeneous=(("network",), homogeneous),
        fraction_converged=(("network",), frac),
        collapses=(("network",), collapses),
    )
    ds["state_norm"].attrs["long_name"] = "|h_t| without input"
    ds.attrs.update(autonomous_steps=T, autonomous_tol=tol, autonomous_max_rate=max_rate)
    return ds


def _positively_homogeneous(model, h: torch.Tensor) -> np.ndarray:
    """``[K]`` bool: the zero-input map satisfies ``F(2 h) = 2 F(h)`` on the states ``h [K, P,
    N]`` (relative error <= 1e-5), as a bias-free ReLU network does."""
    with torch.no_grad():
        one = model.step(h.to(model.dtype), None).double()
        two = model.step(2 * h.to(model.dtype), None).double()
    err = (two - 2 * one).flatten(1).abs().amax(1)
    scale = (2 * one).flatten(1).abs().amax(1).clamp_min(1e-30)
    eps = 1e-5 if model.dtype == torch.float32 else 1e-10
    return to_numpy(err <= eps * scale + 1e-30).astype(bool)


def _noise_states(model, n_steps, n_trajectories, seed, noise_std=1.0):
    """Noise-driven states ``[K, B, T, N]`` and emitted symbols ``[K, B, T]`` (float64)."""
    gen = resolve_generator(seed)
    with torch.no_grad():
        states, logits = _noise_run(model, n_trajectories, n_steps, gen, noise_std, 1.0,
                                    return_states=True)
        symbols = gumbel_softmax_st(logits, gen).argmax(-1)
    return states.double(), symbols


def noise_orbits(model: Any, *, n_steps: int = 2000, burn_in: int = 100, n_components: int = 3,
                 seed: int = 0, noise_std: float = 1.0) -> xr.Dataset:
    """Noise-sustained orbits: one long noise-driven run per network in its top PCs.

    The run (after ``burn_in`` steps) is centred and projected on the principal components of
    its own states. In the PC1-PC2 plane, ``radius_t = |(pc1, pc2)|`` and the phase
    ``phi_t = atan2(pc2, pc1)``; the *winding* is the net unwrapped phase change in turns per
    100 steps, and ``radius_cv`` the coefficient of variation of the radius (small on a ring
    that avoids the centre).

    Returns:
        Dataset: ``projection [network, time, component]``, ``symbols [network, time]``,
        ``explained_variance [network, component]`` (fractions), ``radius``, ``phase
        [network, time]``, ``winding [network]``, ``radius_cv [network]``, ``components
        [network, component, unit]``, ``diverged [network]`` (the run overflowed; its results
        are NaN).
    """
    owner = "noise_orbits"
    check_model(model, owner)
    T = check_int(owner, "n_steps", n_steps, 2)
    burn = check_int(owner, "burn_in", burn_in, 0)
    C = check_int(owner, "n_components", n_components, 2, model.n_units)
    noise_std = check_float(owner, "noise_std", noise_std, 0.0, None)
    states, symbols = _noise_states(model, T + burn, 1, seed, noise_std)
    X = states[:, 0, burn:]  # [K, T, N]
    Y = to_numpy(symbols[:, 0, burn:])
    diverged = ~torch.isfinite(X).all(-1).all(-1)  # runs that overflowed: results NaN
    X = torch.where(diverged[:, None, None], torch.zeros_like(X), X)
    Xc = X - X.mean(1, keepdim=True)
    _, s, Vh = torch.linalg.svd(Xc, full_matrices=False)
    V = Vh[:, :C]  # [K, C, N]
    proj = torch.bmm(Xc, V.transpose(1, 2))
    var = s**2
    ev = (var[:, :C] / var.sum(1, keepdim=True).clamp_min(1e-300))
    p = to_numpy(proj)
    radius = np.hypot(p[..., 0], p[..., 1])
    phase = np.arctan2(p[..., 1], p[..., 0])
    unwrapped = np.unwrap(phase, axis=1)
    winding = (unwrapped[:, -1] - unwrapped[:, 0]) / (2 * np.pi) * 100.0 / T
    cv = radius.std(1) / np.maximum(radius.mean(1), 1e-300)
    bad = to_numpy(diverged)
    for arr in (p, radius, phase):
        arr[bad] = np.nan
    ev = torch.where(diverged[:, None], torch.full_like(ev, float("nan")), ev)
    winding[bad] = np.nan
    cv[bad] = np.nan
    return xr.Dataset(
        {
            "diverged": (("network",), bad, {"long_name": "the run overflowed (inf / NaN)"}),
            "projection": (("network", "time", "component"), p),
            "symbols": (("network", "time"), Y),
            "explained_variance": (("network", "component"), to_numpy(ev)),
            "radius": (("network", "time"), radius),
            "phase": (("network", "time"), phase),
            "winding": (("network",), winding, {"units": "turns per 100 steps"}),
            "radius_cv": (("network",), cv),
            "components": (("network", "component", "unit"), to_numpy(V)),
        },
        coords={**network_coords(model), "time": np.arange(T), "component": np.arange(C)},
        attrs={"burn_in": burn, "noise_std": noise_std},
    )


def trajectory_speed(model: Any, *, n_steps: int = 1000, n_trajectories: int = 8,
                     burn_in: int = 50, seed: int = 0, min_dwell: int = 3,
                     window: int = 2) -> xr.Dataset:
    """Slow regions vs fast transitions: the deterministic drift along noise-driven runs.

    At every visited state the drift ``v_t = |F(h_t, 0) - h_t| = sqrt(2 q(h_t))`` (q the speed
    of the fixed-point finder at zero input, :func:`dynrnn.analyses.speed`) measures how fast
    the deterministic part of the dynamics moves; ``step_t = |h_{t+1} - h_t|`` is the actual
    (noise-driven) step. Symbol *switches* are changes ``y_{t-1} != y_t`` between runs of at
    least ``min_dwell`` steps each (one-step blips are not switches). ``switch_speed_ratio``
    is the median drift within ``window`` steps of a switch over the median drift elsewhere
    (> 1: transitions are fast, dwelling is slow).

    Returns:
        Dataset: ``drift``, ``step [network, trajectory, time]``, ``symbols``, ``switch``
        (bool), ``switch_speed_ratio [network]``, ``n_switches [network]``.
    """
    owner = "trajectory_speed"
    check_model(model, owner)
    T = check_int(owner, "n_steps", n_steps, 2)
    P = check_int(owner, "n_trajectories", n_trajectories, 1)
    burn = check_int(owner, "burn_in", burn_in, 0)
    md = check_int(owner, "min_dwell", min_dwell, 1)
    w = check_int(owner, "window", window, 0)
    states, symbols = _noise_states(model, T + burn, P, seed)
    X = states[:, :, burn:]
    Y = to_numpy(symbols[:, :, burn:])
    K, N = X.shape[0], X.shape[-1]
    ok = torch.isfinite(X).all(-1)  # [K, P, T]; runs that grow may overflow
    Xf = torch.where(ok[..., None], X, torch.zeros_like(X))
    q = speed(model, Xf.reshape(K, -1, N))  # float64
    drift = to_numpy(torch.sqrt(2 * q.clamp_min(0))).reshape(K, P, T)
    drift[~to_numpy(ok)] = np.nan
    step = np.full((K, P, T), np.nan)
    step[:, :, :-1] = to_numpy((Xf[:, :, 1:] - Xf[:, :, :-1]).norm(dim=-1))
    step[:, :, :-1][~to_numpy(ok[:, :, 1:] & ok[:, :, :-1])] = np.nan
    sw = _switches(Y, md)
    near = sw.copy()
    for d in range(1, w + 1):  # within w steps of a switch, without wrapping around
        near[..., d:] |= sw[..., :-d]
        near[..., :-d] |= sw[..., d:]
    ratio = np.full(K, np.nan)
    for k in range(K):
        fin = np.isfinite(drift[k])
        a, b = near[k] & fin, ~near[k] & fin
        if a.any() and b.any():
            ratio[k] = np.median(drift[k][a]) / max(np.median(drift[k][b]), 1e-300)
    return xr.Dataset(
        {
            "drift": (("network", "trajectory", "time"), drift,
                      {"long_name": "|F(h, 0) - h|"}),
            "step": (("network", "trajectory", "time"), step, {"long_name": "|h_{t+1} - h_t|"}),
            "symbols": (("network", "trajectory", "time"), Y),
            "switch": (("network", "trajectory", "time"), sw),
            "switch_speed_ratio": (("network",), ratio),
            "n_switches": (("network",), sw.sum((1, 2))),
        },
        coords={**network_coords(model), "trajectory": np.arange(P), "time": np.arange(T)},
        attrs={"min_dwell": md, "window": w, "burn_in": burn},
    )


def _switches(Y: np.ndarray, min_dwell: int) -> np.ndarray:
    """``[..., T]`` bool: a change of symbol at t between runs of >= ``min_dwell`` steps."""
    T = Y.shape[-1]
    sw = np.zeros(Y.shape, dtype=bool)
    change = np.zeros(Y.shape, dtype=bool)
    change[..., 1:] = Y[..., 1:] != Y[..., :-1]
    if min_dwell <= 1:
        return change
    # length of the run ending at t (backwards) and starting at t (forwards)
    back = np.ones(Y.shape, dtype=np.int64)
    for t in range(1, T):
        back[..., t] = np.where(change[..., t], 1, back[..., t - 1] + 1)
    fwd = np.ones(Y.shape, dtype=np.int64)
    for t in range(T - 2, -1, -1):
        fwd[..., t] = np.where(change[..., t + 1], 1, fwd[..., t + 1] + 1)
    sw[..., 1:] = change[..., 1:] & (back[..., :-1] >= min_dwell) & (fwd[..., 1:] >= min_dwell)
    return sw


def symbol_clusters(model: Any, *, n_steps: int = 500, n_trajectories: int = 8,
                    burn_in: int = 50, seed: int = 0, n_components: int = 2) -> xr.Dataset:
    """States grouped by the symbol they emit along noise-driven runs.

    For each symbol o with visits: the centroid ``c_o`` of the states emitting o, the spread
    ``s_o`` (RMS distance of those states to ``c_o``); ``separation`` is the smallest distance
    between two centroids over the largest spread (> 1: the clusters are apart), and
    ``nearest_centroid_accuracy`` the fraction of states whose nearest centroid is that of
    their own symbol. The states are also returned projected on their top PCs for plotting.

    Returns:
        Dataset: ``centroid [network, symbol, unit]``, ``spread``, ``n_visits [network,
        symbol]``, ``separation``, ``nearest_centroid_accuracy [network]``, ``projection
        [network, sample, component]``, ``sample_symbol [network, sample]``,
        ``centroid_projection [network, symbol, component]``.
    """
    owner = "symbol_clusters"
    check_model(model, owner)
    T = check_int(owner, "n_steps", n_steps, 1)
    P = check_int(owner, "n_trajectories", n_trajectories, 1)
    burn = check_int(owner, "burn_in", burn_in, 0)
    C = check_int(owner, "n_components", n_components, 1, model.n_units)
    states, symbols = _noise_states(model, T + burn, P, seed)
    K, N, O = model.n_networks, model.n_units, model.n_outputs
    X = to_numpy(states[:, :, burn:]).reshape(K, -1, N)
    Y = to_numpy(symbols[:, :, burn:]).reshape(K, -1)
    cent = np.full((K, O, N), np.nan)
    spread = np.full((K, O), np.nan)
    visits = np.zeros((K, O), dtype=np.int64)
    sep = np.full(K, np.nan)
    acc = np.full(K, np.nan)
    proj = np.zeros((K, X.shape[1], C))
    cproj = np.full((K, O, C), np.nan)
    for k in range(K):
        if not np.isfinite(X[k]).all():  # an overflowed run: nothing to cluster
            proj[k] = np.nan
            continue
        for o in range(O):
            sel = Y[k] == o
            visits[k, o] = sel.sum()
            if sel.any():
                cent[k, o] = X[k, sel].mean(0)
                spread[k, o] = np.sqrt(((X[k, sel] - cent[k, o]) ** 2).sum(1).mean())
        have = np.flatnonzero(visits[k] > 0)
        if len(have) >= 2:
            d = np.linalg.norm(cent[k, have][:, None] - cent[k, have][None], axis=-1)
            d = d[np.triu_indices(len(have), 1)]
            sep[k] = d.min() / max(np.nanmax(spread[k, have]), 1e-300)
        dist = np.linalg.norm(X[k][:, None, :] - cent[k, have][None], axis=-1)
        acc[k] = (have[dist.argmin(1)] == Y[k]).mean()
        mu = X[k].mean(0)
        _, _, Vh = np.linalg.svd(X[k] - mu, full_matrices=False)
        proj[k] = (X[k] - mu) @ Vh[:C].T
        cproj[k, have] = (cent[k, have] - mu) @ Vh[:C].T
    return xr.Dataset(
        {
            "centroid": (("network", "symbol", "unit"), cent),
            "spread": (("network", "symbol"), spread),
            "n_visits": (("network", "symbol"), visits),
            "separation": (("network",), sep),
            "nearest_centroid_accuracy": (("network",), acc),
            "projection": (("network", "sample", "component"), proj),
            "sample_symbol": (("network", "sample"), Y),
            "centroid_projection": (("network", "symbol", "component"), cproj),
        },
        coords={**network_coords(model), "symbol": np.arange(O), "component": np.arange(C)},
    )


def kick_neurons(model: Any, *, n_steps: int = 2000, n_trajectories: int = 8,
                 burn_in: int = 50, window: int = 5, min_dwell: int = 3,
                 threshold: float = 1.0, seed: int = 0) -> xr.Dataset:
    """Units whose activity precedes symbol switches ("kick neurons", Torre et al. 2025).

    Along noise-driven runs, switches are changes of symbol between runs of at least
    ``min_dwell`` steps (as in :func:`trajectory_speed`). For unit i with mean ``m_i`` and
    standard deviation ``s_i`` over all visited states, the switch-triggered average is
    ``STA_i(l) = mean over switches t_s of h_i(t_s + l)``, ``l = -window .. window``, and the
    kick score is the effect size

        kick_i = (mean_{l = -window..-1} STA_i(l) - m_i) / s_i,

    computed for all switches and per switch direction (from symbol a to b). A unit is a kick
    neuron when ``kick_i > threshold`` for some direction (its activity rises before switches
    of that direction); units that never vary (``s_i = 0``, e.g. silent ReLUs) score 0.

    Returns:
        Dataset: ``triggered_average [network, lag, unit]`` (all switches),
        ``kick_score [network, unit]`` (NaN for a network without switches or whose run
        overflowed), ``kick_score_by_direction [network, direction, unit]``
        (NaN for directions without switches), ``n_switches_by_direction``, ``is_kick
        [network, unit]``, ``n_kick [network]``; coordinate ``direction`` holds "a->b".
    """
    owner = "kick_neurons"
    check_model(model, owner)
    T = check_int(owner, "n_steps", n_steps, 2)
    P = check_int(owner, "n_trajectories", n_trajectories, 1)
    burn = check_int(owner, "burn_in", burn_in, 0)
    w = check_int(owner, "window", window, 1)
    md = check_int(owner, "min_dwell", min_dwell, 1)
    thr = check_float(owner, "threshold", threshold, 0.0, None)
    states, symbols = _noise_states(model, T + burn, P, seed)
    X = to_numpy(states[:, :, burn:])  # [K, P, T, N]
    Y = to_numpy(symbols[:, :, burn:])
    K, N, O = model.n_networks, model.n_units, model.n_outputs
    sw = _switches(Y, md)
    sw[..., :w] = False
    sw[..., T - w:] = False
    with np.errstate(invalid="ignore", over="ignore"):
        m = X.reshape(K, -1, N).astype(np.float64).mean(1)
        s = X.reshape(K, -1, N).astype(np.float64).std(1)
    lags = np.arange(-w, w + 1)
    dirs = [(a, b) for a in range(O) for b in range(O) if a != b]
    sta = np.full((K, len(lags), N), np.nan)
    score_dir = np.full((K, len(dirs), N), np.nan)
    n_dir = np.zeros((K, len(dirs)), dtype=np.int64)
    score = np.zeros((K, N))
    for k in range(K):
        pi, ti = np.nonzero(sw[k])
        if len(ti) == 0 or not np.isfinite(X[k]).all():  # no switch, or an overflowed run
            score[k] = np.nan
            continue
        seg = X[k][pi[:, None], ti[:, None] + lags[None, :]]  # [E, L, N]
        sta[k] = seg.mean(0)
        safe = np.where(s[k] > 0, s[k], 1.0)
        pre = seg[:, :w].mean(1)  # [E, N]
        score[k] = np.where(s[k] > 0, (pre.mean(0) - m[k]) / safe, 0.0)
        frm, to = Y[k][pi, ti - 1], Y[k][pi, ti]
        for j, (a, b) in enumerate(dirs):
            sel = (frm == a) & (to == b)
            n_dir[k, j] = sel.sum()
            if sel.any():
                score_dir[k, j] = np.where(s[k] > 0, (pre[sel].mean(0) - m[k]) / safe, 0.0)
    is_kick = np.nan_to_num(score_dir, nan=-np.inf).max(1) > thr
    return xr.Dataset(
        {
            "triggered_average": (("network", "lag", "unit"), sta),
            "kick_score": (("network", "unit"), score,
                           {"long_name": "(pre-switch mean - mean) / std"}),
            "kick_score_by_direction": (("network", "direction", "unit"), score_dir),
            "n_switches_by_direction": (("network", "direction"), n_dir),
            "is_kick": (("network", "unit"), is_kick),
            "n_kick": (("network",), is_kick.sum(1)),
            "unit_mean": (("network", "unit"), m),
            "unit_std": (("network", "unit"), s),
        },
        coords={**network_coords(model), "lag": lags, "unit": np.arange(N),
                "direction": [f"{a}->{b}" for a, b in dirs]},
        attrs={"window": w, "min_dwell": md, "threshold": thr},
    )
