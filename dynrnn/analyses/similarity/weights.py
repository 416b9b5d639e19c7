"""Permutation-invariant weight distance between networks, pairwise.

``min_P ||W_1 - P^T W_2 P||`` over permutations of the hidden units, with input weights, biases,
time constants and readout weights permuted consistently, normalised by the number of parameters
compared (Huang, Singh, Martinelli & Rajan 2025, "Measuring and controlling solution degeneracy
across task-trained recurrent neural networks", arXiv:2410.03972). It is a quadratic assignment
problem; we solve it with ``scipy.optimize.quadratic_assignment`` (FAQ: Vogelstein et al. 2015,
"Fast approximate quadratic programming for graph matching", PLOS ONE 10(4), e0121002) on a graph
whose hidden nodes are permuted and whose input, output and bias nodes are fixed
(``partial_match``), so the input/output terms enter the same objective. FAQ starts from the
Hungarian match of permutation-invariant unit features (sorted incoming and outgoing weights,
input and readout weights, bias) and from a few randomised starts; the best permutation is kept.

Which tensor of a model plays which role (recurrent, input, output, biases, time constants) is
the model's knowledge: :meth:`dynrnn.models.RecurrentModel.weight_layout`, implemented by the
models whose hidden units one permutation acts on consistently (:class:`~dynrnn.models.RateRNN`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..._progress import progress_bar
from ..._validation import ParameterTypeError, check_bool, check_int
from .._common import as_tensor, to_numpy
from ._pairwise import _fill, _matrix_dataset, _pair_index

__all__ = ["weight_distance"]

#: role in ``weight_layout()`` -> key of the per-network weight dicts used below
_ROLES = {
    "recurrent": "W",
    "input": "U",
    "output": "V",
    "bias": "b",
    "output_bias": "c",
    "tau": "tau",
}


def _network_weights(model: Any, owner: str, name: str = "model") -> list[dict[str, np.ndarray]]:
    """Per network: ``W [N, N]``, ``U [N, I]``, ``V [O, N]``, ``b [N]``, ``c [O]``, ``tau [N]``
    as float64 numpy arrays, from a list of such dicts or from the model's
    :meth:`~dynrnn.models.RecurrentModel.weight_layout` (effective recurrent weights)."""
    if isinstance(model, (list, tuple)):
        out = []
        for d in model:
            if not isinstance(d, dict) or "W" not in d:
                raise ParameterTypeError(
                    f"The {name!r} parameter of {owner} must be a RateRNN-like model or a list of "
                    "dicts with at least 'W' [N, N] (optional 'U' [N, I], 'b' [N], 'V' [O, N], "
                    "'c' [O], 'tau' [N])."
                )
            out.append({k: np.asarray(to_numpy(as_tensor(v, owner, k))) for k, v in d.items()})
        return out
    layout_fn = getattr(model, "weight_layout", None)
    if not callable(layout_fn):
        raise ParameterTypeError(
            f"The {name!r} parameter of {owner} must be a model with weight_layout() (e.g. a "
            f"RateRNN) or a list of weight dicts; got {type(model).__name__}."
        )
    try:
        with torch.no_grad():
            layout = layout_fn()
    except NotImplementedError as err:
        raise ParameterTypeError(
            f"The {name!r} parameter of {owner} must be a model whose hidden units one "
            f"permutation acts on (e.g. a RateRNN); got {type(model).__name__}: {err}"
        ) from err
    unknown = set(layout) - set(_ROLES)
    if "recurrent" not in layout or unknown:
        raise ParameterTypeError(
            f"{type(model).__name__}.weight_layout() must return 'recurrent' and optionally "
            f"{sorted(set(_ROLES) - {'recurrent'})}; got {sorted(layout)}."
        )
    arrays = {
        _ROLES[role]: to_numpy(layout[role].detach().double())
        for role in _ROLES
        if role in layout
    }
    return [{key: a[k] for key, a in arrays.items()} for k in range(arrays["W"].shape[0])]


def _graph(d: dict) -> tuple[np.ndarray, int]:
    """Adjacency of the network graph: hidden nodes first (permuted), then fixed nodes (inputs,
    outputs, one bias node). Edge (i, j) holds the weight from j to i."""
    W = d["W"]
    N = W.shape[0]
    U = d.get("U", np.zeros((N, 0)))
    V = d.get("V", np.zeros((0, N)))
    I, O = U.shape[1], V.shape[0]
    size = N + I + O + 1
    G = np.zeros((size, size))
    G[:N, :N] = W
    G[:N, N : N + I] = U
    G[N + I : N + I + O, :N] = V
    bias = N + I + O
    if "b" in d:
        G[:N, bias] = d["b"]
    if "tau" in d:  # per-unit parameter: an edge from the unit to the bias node
        G[bias, :N] = d["tau"]
    if "c" in d:
        G[N + I : N + I + O, bias] = d["c"]
    return G, N


def _unit_features(d: dict) -> np.ndarray:
    """Permutation-invariant features of each hidden unit (for the Hungarian seed)."""
    W = d["W"]
    N = W.shape[0]
    parts = [np.sort(W, axis=1), np.sort(W, axis=0).T, np.diag(W)[:, None]]
    if "U" in d:
        parts.append(d["U"])
    if "V" in d:
        parts.append(d["V"].T)
    for key in ("b", "tau"):
        if key in d:
            parts.append(np.asarray(d[key]).reshape(N, 1))
    return np.concatenate(parts, axis=1)


def _match_pair(d1: dict, d2: dict, n_restarts: int, rng: np.random.Generator):
    """Best hidden-unit permutation ``perm`` (unit i of net 1 <-> unit perm[i] of net 2)."""
    from scipy.optimize import linear_sum_assignment, quadratic_assignment

    G1, N = _graph(d1)
    G2, _ = _graph(d2)
    size = G1.shape[0]
    fixed = np.arange(N, size)
    partial = np.stack([fixed, fixed], 1) if len(fixed) else None
    f1, f2 = _unit_features(d1), _unit_features(d2)
    cost = ((f1[:, None, :] - f2[None, :, :]) ** 2).sum(-1)
    _, seed_perm = linear_sum_assignment(cost)
    candidates = [seed_perm]

    def sq_dist(perm):
        full = np.concatenate([perm, fixed])
        return float(((G1 - G2[np.ix_(full, full)]) ** 2).sum())

    def run_faq(P0):
        opts = {"maximize": True, "P0": P0, "tol": 1e-8, "maxiter": 100,
                "rng": np.random.default_rng(int(rng.integers(2**31)))}
        if partial is not None:
            opts["partial_match"] = partial
        res = quadratic_assignment(G1, G2, method="faq", options=opts)
        return np.asarray(res.col_ind)[:N]

    # FAQ's P0 refers to the free (unmatched) nodes only
    E = np.eye(N)[seed_perm]
    candidates.append(run_faq(E))
    for _ in range(n_restarts):
        # randomised start: barycentre mixed with a random doubly stochastic matrix
        M = rng.random((N, N))
        for _ in range(20):
            M /= M.sum(0, keepdims=True)
            M /= M.sum(1, keepdims=True)
        candidates.append(run_faq(0.5 * M + 0.5 * np.full((N, N), 1.0 / N)))
    scores = [sq_dist(c) for c in candidates]
    best = int(np.argmin(scores))
    return candidates[best], scores[best]


def weight_distance(
    model: Any,
    model_b: Any = None,
    *,
    n_restarts: int = 2,
    seed: int = 0,
    return_permutations: bool = False,
    progress: bool = True,
    index_offsets: tuple[int, int] = (0, 0),
) -> xr.Dataset:
    """Permutation-invariant weight distance (Huang et al. 2025), pairwise.

    ``d = min_P sqrt(||W_1 - P^T W_2 P||^2 + ||U_1 - P^T U_2||^2 + ||b_1 - P^T b_2||^2 +
    ||tau_1 - P^T tau_2||^2 + ||V_1 - V_2 P||^2 + ||c_1 - c_2||^2) / n_params`` over permutations
    P of the hidden units (one permutation for all weights, so input and readout weights move
    with their units); ``n_params`` is the number of parameters compared. Solved as a quadratic
    assignment (graph matching) with scipy's FAQ, hidden nodes free and input/output/bias nodes
    fixed (``partial_match``), seeded by the Hungarian match of sorted weight features plus
    ``n_restarts`` randomised starts.

    Arguments:
        model: a model with K networks that implements
            :meth:`~dynrnn.models.RecurrentModel.weight_layout` (a RateRNN: its effective
            recurrent weights are used, so Dale's law and masks are respected), or a list of dicts
            ``{"W", "U", "b", "V", "c", "tau"}``.
        model_b: L other networks of the same sizes, or None (pairs within ``model``).
        n_restarts: randomised FAQ starts per pair in addition to the seeded one.
        seed: seeds the randomised starts. Each pair has its own stream,
            ``numpy.random.default_rng([seed, a, b])`` for networks ``a`` of ``model`` and ``b``
            of ``model_b`` (or of ``model``), so a pair's distance does not depend on which other
            pairs are computed in the same call.
        index_offsets: ``(a0, b0)`` added to ``a`` and ``b`` in those seeds: the positions of
            this call's first networks in a larger matrix computed in blocks (as
            ``dynrnn.batch.analyze`` does), so the blocks equal the matrix computed at once.
        return_permutations: also return ``permutation [network, network_b, unit]`` (unit i of
            network a is matched with unit ``permutation[a, b, i]`` of network b).
        progress: show a tqdm progress bar on stderr over the pairs (one graph matching each).

    Returns:
        ``xarray.Dataset`` with ``weight_distance [network, network_b]`` (normalised),
        ``weight_distance_unnormalised`` (the Frobenius norm) and attr ``n_params``.
    """
    owner = "weight_distance"
    check_int(owner, "n_restarts", n_restarts, 0)
    check_int(owner, "seed", seed, 0)
    check_bool(owner, "return_permutations", return_permutations)
    check_bool(owner, "progress", progress)
    if not (isinstance(index_offsets, (tuple, list)) and len(index_offsets) == 2):
        raise ValueError(
            f"The 'index_offsets' parameter of {owner} must be a pair (a0, b0) of ints >= 0. "
            f"Got {index_offsets!r}."
        )
    a0 = check_int(owner, "index_offsets[0]", index_offsets[0], 0)
    b0 = check_int(owner, "index_offsets[1]", index_offsets[1], 0)
    nets = _network_weights(model, owner)
    nets_b = nets if model_b is None else _network_weights(model_b, owner, "model_b")
    keys = set(nets[0])
    shapes = {k: np.shape(v) for k, v in nets[0].items()}
    for d in list(nets) + list(nets_b):
        if set(d) != keys or any(np.shape(d[k]) != shapes[k] for k in keys):
            raise ValueError(
                f"The networks of the 'model' and 'model_b' parameters of {owner} must all have "
                f"the same parameters and shapes; got "
                f"{ {k: np.shape(v) for k, v in d.items()} } vs {shapes}."
            )
    n_params = int(sum(np.prod(s) for s in shapes.values()))
    K = len(nets)
    L = None if model_b is None else len(nets_b)
    i, j = _pair_index(K, L)
    vals = np.empty(len(i))
    perms = np.empty((len(i), shapes["W"][0]), dtype=np.int64)
    with progress_bar(progress, total=len(i), desc="weight_distance", unit="pair") as bar:
        for p, (a, b) in enumerate(zip(i, j)):
            rng = np.random.default_rng([seed, a0 + int(a), b0 + int(b)])
            perm, sq = _match_pair(nets[a], nets_b[b], n_restarts, rng)
            vals[p] = math.sqrt(max(sq, 0.0))
            perms[p] = perm
            bar.update(1)
    ds = _matrix_dataset(
        {
            "weight_distance": _fill(K, L, i, j, vals / n_params),
            "weight_distance_unnormalised": _fill(K, L, i, j, vals),
        },
        K,
        L,
        attrs=dict(
            analysis="weight_distance",
            method="scipy quadratic_assignment (FAQ), Hungarian-seeded + randomised restarts",
            references="Huang et al. 2025; Vogelstein et al. 2015 (FAQ)",
            n_params=n_params,
            parameters=" ".join(sorted(keys)),
        ),
    )
    if return_permutations:
        N = shapes["W"][0]
        Pm = np.tile(np.arange(N), (K, K if L is None else L, 1))
        Pm[i, j] = perms
        if L is None:
            Pm[j, i] = np.argsort(perms, axis=1)
        ds["permutation"] = (("network", "network_b", "unit"), Pm)
    return ds
