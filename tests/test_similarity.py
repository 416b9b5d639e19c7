"""Similarity at three levels: DSA, representational metrics, weight distance.

Scientific checks: zero distance for transformed copies at the right level, planted orthogonal
transforms (both determinant signs) and planted permutations recovered, distance growing with the
eigenvalue gap, metric properties, agreement of the DSA optimiser with many random restarts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynrnn.analyses import (
    cca_distance,
    cka,
    delay_embed,
    dsa,
    eigenvalue_wasserstein,
    fit_dmd,
    procrustes_distance,
    procrustes_vector_fields,
    weight_distance,
)
from dynrnn.analyses.similarity.orthogonal import _optimise_c, _random_orthogonal
from dynrnn.models import Ensemble, RateRNNConfig


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _orth(n, seed, det=None):
    Q = _random_orthogonal(1, n, _gen(seed))[0]
    if det is not None and torch.sign(torch.linalg.det(Q)) != det:
        Q[:, 0] = -Q[:, 0]
    return Q


def _linear_trajectories(M, n_trials=4, T=200, seed=0, noise=0.05):
    """x_{t+1} = M x_t + small noise, several trials ``[B, T, n]`` (float64)."""
    g = _gen(seed)
    n = M.shape[0]
    x = torch.randn(n_trials, n, generator=g, dtype=torch.float64)
    out = []
    for _ in range(T):
        x = x @ M.T + noise * torch.randn(n_trials, n, generator=g, dtype=torch.float64)
        out.append(x)
    return torch.stack(out, 1)


def _rotation_system(thetas, radius=0.97):
    """Block-diagonal map with eigenvalues radius * exp(+-i theta_k)."""
    blocks = []
    for th in thetas:
        c, s = math.cos(th), math.sin(th)
        blocks.append(radius * torch.tensor([[c, -s], [s, c]], dtype=torch.float64))
    return torch.block_diag(*blocks)


# --------------------------------------------------------------------------- DMD
def test_delay_embed_layout():
    x = torch.arange(10, dtype=torch.float64).reshape(1, 5, 2)  # T=5, N=2
    H = delay_embed(x, n_delays=3, delay_interval=1)
    assert H.shape == (1, 3, 6)
    # row t: [x_t, x_{t-1}, x_{t-2}] starting at t = 2
    assert torch.equal(H[0, 0], torch.tensor([4.0, 5, 2, 3, 0, 1], dtype=torch.float64))
    with pytest.raises(ValueError, match="n_delays"):
        delay_embed(x, n_delays=5)


def test_dmd_recovers_eigenvalues_of_a_linear_system():
    M = _rotation_system([0.2, 0.5, 1.1])
    X = _linear_trajectories(M, noise=0.02)
    A = fit_dmd(X[None], n_delays=1, rank=6)
    ev = np.sort_complex(torch.linalg.eigvals(A[0]).numpy())
    ev_true = np.sort_complex(torch.linalg.eigvals(M).numpy())
    assert np.abs(ev - ev_true).max() < 0.02


def test_reduced_rank_dmd_agrees_with_havok_at_full_rank_and_is_low_rank_consistent():
    M = _rotation_system([0.2, 0.7])
    X = _linear_trajectories(M, noise=0.02)[None]
    A_h = fit_dmd(X, n_delays=1, rank=4)
    A_r = fit_dmd(X, n_delays=1, rank=4, method="reduced_rank")
    # at full rank both are the same map in orthogonally related coordinates
    assert procrustes_vector_fields(A_h, A_r)["angular"].values[0, 0] < 1e-6
    # 3 delays of a 4-dim system: the predictable outputs span 8 dims; the rank-8 estimate
    # contains the system's 4 eigenvalues (the other 4 are near 0)
    A8 = fit_dmd(X, n_delays=3, rank=8, method="reduced_rank")
    ev = torch.linalg.eigvals(A8[0]).numpy()
    assert A8.shape == (1, 8, 8)
    for lam in torch.linalg.eigvals(M).numpy():
        assert np.abs(ev - lam).min() < 0.02
    assert np.sum(np.abs(ev) < 0.2) == 4


def test_fit_dmd_validates():
    X = torch.randn(2, 1, 50, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="'rank'"):
        fit_dmd(X, n_delays=2, rank=7)
    with pytest.raises(ValueError, match="'method'"):
        fit_dmd(X, n_delays=2, rank=3, method="exact")
    with pytest.raises(ValueError, match="'lamb'"):
        fit_dmd(X, n_delays=2, rank=3, lamb=-1.0)
    X[0, 0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        fit_dmd(X, n_delays=2, rank=3)


# --------------------------------------------------------------------------- DSA distance
@pytest.mark.parametrize("det", [1.0, -1.0])
def test_planted_orthogonal_transform_is_recovered(det):
    n = 12
    A = torch.randn(3, n, n, generator=_gen(1), dtype=torch.float64) / math.sqrt(n)
    Qs = [_orth(n, s, det) for s in range(3)]
    B = torch.stack([Q @ a @ Q.T for Q, a in zip(Qs, A)])
    ds = procrustes_vector_fields(A, B, return_transforms=True)
    diag = np.diagonal(ds["angular"].values)
    assert diag.max() < 1e-6
    assert np.diagonal(ds["euclidean"].values).max() < 1e-6
    assert (np.diagonal(ds["det_c"].values) == det).all()
    for k in range(len(Qs)):  # A = C B C^T with C = Q^T
        C = ds["transform"].values[k, k]
        assert np.abs(C @ B[k].numpy() @ C.T - A[k].numpy()).max() < 1e-6


def test_dsa_zero_for_orthogonally_transformed_trajectories():
    M = _rotation_system([0.3, 0.8])
    X = _linear_trajectories(M)
    Qp, Qm = _orth(4, 3, 1.0), _orth(4, 4, -1.0)
    states = torch.stack([X, X @ Qp.T, X @ Qm.T])
    ds = dsa(states, n_delays=2, rank=8)
    assert ds["dsa"].values.max() < 1e-5
    assert ds["wasserstein"].values.max() < 1e-8


def test_dsa_grows_with_eigenvalue_gap():
    base = [0.3, 0.9]
    gaps = [0.0, 0.1, 0.2, 0.4, 0.8]
    trajs = [_linear_trajectories(_rotation_system([base[0] + g, base[1]])) for g in gaps]
    trajs.append(_linear_trajectories(_rotation_system(base), seed=1))  # same system, new noise
    ds = dsa(torch.stack(trajs), n_delays=1, rank=4)
    d = ds["dsa"].values[0, 1:-1]
    assert np.all(np.diff(d) > 0), d
    assert ds["dsa"].values[0, -1] < 0.5 * d[0]  # noise alone is below the smallest gap
    w = ds["wasserstein"].values[0, 1:-1]
    assert np.all(np.diff(w) > 0), w


def test_optimiser_matches_many_random_restarts():
    """Unstructured random maps have many local optima: 16 starts find the best of 64 random
    restarts on every pair; the default (8) is within 0.01 rad of it."""
    n, K = 6, 6
    A = torch.randn(K, n, n, generator=_gen(7), dtype=torch.float64)
    A = A / torch.linalg.matrix_norm(A)[:, None, None]
    ds = procrustes_vector_fields(A, n_starts=16)
    default = procrustes_vector_fields(A)["angular"].values
    i, j = np.triu_indices(K, 1)
    S = 64
    X = A[i].repeat_interleave(S, 0)
    Y = A[j].repeat_interleave(S, 0)
    C0 = _random_orthogonal(len(i) * S, n, _gen(11))
    _, f, _ = _optimise_c(X, Y, C0, 3000, 1e-12)
    best = np.arccos(np.clip(f.reshape(len(i), S).max(1).values.numpy(), -1, 1))
    ours = ds["angular"].values[i, j]
    assert np.all(ours <= best + 1e-6), (ours - best).max()
    assert np.all(default[i, j] <= best + 1e-2)


def test_procrustes_vector_fields_metric_properties():
    n, K = 4, 5
    A = torch.randn(K, n, n, generator=_gen(3), dtype=torch.float64)
    ds = procrustes_vector_fields(A, n_starts=12)
    for name in ("angular", "euclidean"):
        D = ds[name].values
        assert np.allclose(D, D.T) and np.all(np.diag(D) == 0) and np.all(D >= 0)
        viol = D[:, :, None] - (D[:, None, :] + D[None, :, :].transpose(0, 2, 1))
        assert viol.max() < 1e-6  # d(i, k) <= d(i, j) + d(j, k)


def test_procrustes_vector_fields_validates():
    with pytest.raises(ValueError, match="'A'"):
        procrustes_vector_fields(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="same map size"):
        procrustes_vector_fields(torch.zeros(2, 3, 3), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="'n_starts'"):
        procrustes_vector_fields(torch.zeros(2, 3, 3), n_starts=0)


# --------------------------------------------------------------------------- representations
def test_representational_metrics_invariances():
    g = _gen(5)
    X = torch.randn(1, 300, 10, generator=g, dtype=torch.float64)
    Q = _orth(10, 2, -1.0)
    G = torch.randn(10, 10, generator=g, dtype=torch.float64) + 3 * torch.eye(10)
    other = torch.randn(1, 300, 10, generator=g, dtype=torch.float64)
    states = torch.cat([X, 2.5 * X @ Q + 1.0, X @ G, other])
    P = procrustes_distance(states)["procrustes"].values
    C = cca_distance(states)["cca"].values
    K = cka(states)["cka_distance"].values
    assert P[0, 1] < 1e-6 and K[0, 1] < 1e-6 and C[0, 1] < 1e-6  # rotation + scale + shift
    assert C[0, 2] < 1e-6  # CCA: invariant to any invertible linear map
    assert P[0, 2] > 0.05  # Procrustes is not
    for D in (P, C, K):
        assert D[0, 3] > 0.5  # unrelated data far apart
        assert np.allclose(D, D.T) and np.allclose(np.diag(D), 0)


def test_representations_of_different_sizes():
    g = _gen(6)
    X = torch.randn(2, 200, 5, generator=g, dtype=torch.float64)
    Y = torch.cat([X[:1] @ torch.randn(5, 8, generator=g, dtype=torch.float64)])
    ds = cca_distance(X, Y)
    assert ds["cca"].shape == (2, 1)
    assert ds["cca"].values[0, 0] < 1e-6
    with pytest.raises(ValueError, match="same number of samples"):
        procrustes_distance(X, torch.randn(1, 100, 5))


@settings(max_examples=15, deadline=None)
@given(
    K=st.integers(2, 4),
    M=st.integers(5, 30),
    N=st.integers(1, 6),
    seed=st.integers(0, 1000),
)
def test_representation_metrics_shapes_and_symmetry(K, M, N, seed):
    X = torch.randn(K, M, N, generator=_gen(seed), dtype=torch.float64)
    for ds in (procrustes_distance(X), cca_distance(X), cka(X)):
        for name in ds.data_vars:
            D = ds[name].values
            assert D.shape == (K, K)
            assert np.allclose(D, D.T, atol=1e-12)
            assert np.all(np.isfinite(D))
        angle = next(v for v in ("procrustes", "cca", "cka_distance") if v in ds)
        D = ds[angle].values
        assert np.all((D >= 0) & (D <= math.pi / 2 + 1e-9))
        assert np.allclose(np.diag(D), 0)
        assert np.all(D[:, :, None] <= D[:, None, :] + D[None, :, :].transpose(0, 2, 1) + 1e-7)


@settings(max_examples=10, deadline=None)
@given(K=st.integers(2, 4), n=st.integers(1, 5), seed=st.integers(0, 1000))
def test_dsa_distances_shapes_and_symmetry(K, n, seed):
    A = torch.randn(K, n, n, generator=_gen(seed), dtype=torch.float64)
    ds = procrustes_vector_fields(A, n_starts=4)
    w = eigenvalue_wasserstein(A)["wasserstein"].values
    for D in (ds["angular"].values, ds["euclidean"].values, w):
        assert D.shape == (K, K)
        assert np.allclose(D, D.T) and np.allclose(np.diag(D), 0) and np.all(D >= 0)
    assert np.all(ds["angular"].values <= math.pi + 1e-12)
    # W2 between spectra is a metric
    assert np.all(w[:, :, None] <= w[:, None, :] + w[None, :, :].transpose(0, 2, 1) + 1e-9)


# --------------------------------------------------------------------------- weights
def _permuted_copy(model, perm):
    other = model.select([0])
    with torch.no_grad():
        other.W_rec.copy_(model.W_rec[:1][:, perm][:, :, perm])
        other.W_in.copy_(model.W_in[:1][:, perm])
        other.W_out.copy_(model.W_out[:1][:, :, perm])
        other.b.copy_(model.b[:1][:, perm] + 0.0)
    return other


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weight_distance_recovers_planted_permutation_64_units(seed):
    cfg = RateRNNConfig(n_inputs=3, n_units=64, n_outputs=2)
    m = Ensemble(cfg, seed=seed)
    with torch.no_grad():  # non-zero biases so that they must be permuted too
        m.b.copy_(0.1 * torch.randn(1, 64, generator=_gen(seed)))
    perm = torch.randperm(64, generator=_gen(100 + seed))
    other = _permuted_copy(m, perm)
    ds = weight_distance(m, other, return_permutations=True)
    assert ds["weight_distance"].values[0, 0] < 1e-12
    # unit i of the first network is unit argsort(perm)[i] of the permuted copy
    assert np.array_equal(ds["permutation"].values[0, 0], np.argsort(perm.numpy()))
    # a different network is far away
    far = weight_distance(m, Ensemble(cfg, seed=seed + 50))["weight_distance"].values[0, 0]
    assert far > 1e-4


def test_weight_distance_pairwise_and_normalised():
    cfg = RateRNNConfig(n_inputs=2, n_units=10, n_outputs=1)
    m = Ensemble(cfg, n_networks=3, seed=0)
    ds = weight_distance(m)
    D = ds["weight_distance"].values
    assert D.shape == (3, 3) and np.allclose(D, D.T) and np.all(np.diag(D) == 0)
    n_params = 10 * 10 + 10 * 2 + 10 + 1 * 10 + 1
    assert ds.attrs["n_params"] == n_params
    assert np.allclose(D * n_params, ds["weight_distance_unnormalised"].values)
    # no permutation beats the optimum found: compare with the identity matching
    W = [dict(W=m.W_rec[k].detach().double().numpy()) for k in range(3)]
    ident = np.sqrt(((W[0]["W"] - W[1]["W"]) ** 2).sum())
    plain = weight_distance(W)["weight_distance_unnormalised"].values[0, 1]
    assert plain <= ident + 1e-12
    with pytest.raises(ValueError, match="same parameters and shapes"):
        weight_distance(m, Ensemble(RateRNNConfig(n_inputs=2, n_units=11, n_outputs=1)))


def test_weight_layout_is_the_models_knowledge():
    from dynrnn._validation import ParameterTypeError
    from dynrnn.models import GRU, GRUConfig, RateRNN

    cfg = RateRNNConfig(n_inputs=2, n_units=6, n_outputs=3, nonlinearity="relu", dale=True,
                        train_tau=True)
    m = RateRNN(cfg, n_networks=2, seed=1)
    layout = m.weight_layout()
    assert set(layout) == {"recurrent", "input", "output", "bias", "output_bias", "tau"}
    assert torch.equal(layout["recurrent"], m.effective_weights())
    assert layout["input"] is m.W_in and layout["output"] is m.W_out and layout["tau"] is m.tau
    assert layout["recurrent"].shape == (2, 6, 6) and layout["bias"].shape == (2, 6)
    ds = weight_distance(m, n_restarts=0, progress=False)
    assert ds.attrs["parameters"] == "U V W b c tau"
    gru = GRU(GRUConfig(n_inputs=2, n_units=4, n_outputs=1))
    with pytest.raises(NotImplementedError, match="gate-aware"):
        gru.weight_layout()
    with pytest.raises(ParameterTypeError, match="weight_layout|gate-aware"):
        weight_distance(gru)
