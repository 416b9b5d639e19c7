"""Fixed points, slow points and linearisation (dynrnn.analyses.fixed_points / linearisation).

Analytic oracles: a linear system's single fixed point, a 1-D map with known fixed points, the
tanh network with W = a I (3^N fixed points), a saddle-node ghost (slow point). Trained flip-flop
networks must show 2^n_bits stable fixed points whose readouts are the memories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from _flipflop import flipflop_outcome, train_flipflop_ensemble
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from dynrnn.analyses import (
    CANDIDATE_STATUS,
    classify_eigenvalues,
    find_fixed_points,
    input_jacobians,
    jacobians,
    linearise,
    linearise_trajectory,
    local_time_constants,
    merge_complex,
    sample_initial_states,
    speed,
    split_complex,
)
from dynrnn.models import GRU, Ensemble, GRUConfig, RateRNNConfig
from dynrnn.models.base import RecurrentModel
from dynrnn.zoo import load_model


# --------------------------------------------------------------------------- helpers
@dataclass(frozen=True)
class ScalarMapConfig:
    """A family of scalar maps used as analytic oracles (only through the model protocol)."""

    n_inputs: int = 1
    n_units: int = 1
    n_outputs: int = 1
    kind: str = "logistic"  # "logistic": r h (1 - h); "ghost": h + h^2 + r
    r: float = 2.5
    dt: float = 1.0


class ScalarMap(RecurrentModel):
    config_class = ScalarMapConfig
    model_name = "test_scalar_map"
    structural_fields = ("n_inputs", "n_units", "n_outputs", "kind")

    def _init_network(self, c, g):
        return {"r": torch.tensor(float(c.r)), "W_in": torch.ones(c.n_units, c.n_inputs)}

    @property
    def n_units(self):
        return int(self.config.n_units)

    def input_drive(self, x):
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        out = torch.matmul(flat, self.W_in.transpose(1, 2))
        return out.reshape(self.n_networks, *x.shape[1:-1], self.n_units)

    def step_drive(self, h, drive, params, noise=None):
        r = self.r[:, None, None]
        if self.config.kind == "logistic":
            return r * h * (1 - h) + drive
        return h + h * h + r + drive

    def readout(self, h):
        return h


def tanh_diag_model(gains, n_units=3):
    """tanh RNN with W = a I, no bias, no input: h' = tanh(a h) unit by unit."""
    cfgs = [RateRNNConfig(1, n_units, 1, init_gain=float(a), bias=False) for a in gains]
    model = Ensemble(cfgs, seed=0)
    with torch.no_grad():
        for k, a in enumerate(gains):
            model.W_rec[k] = a * torch.eye(n_units)
        model.W_in.zero_()
    return model


def tanh_root(a):
    return brentq(lambda x: x - math.tanh(a * x), 1e-3, 2.0)


def valid(ds, k, var):
    d = ds.isel(network=k)
    return d[var].values[d.valid.values]


# --------------------------------------------------------------------------- analytic cases
def test_linear_system_single_fixed_point_exactly():
    """h' = W h + U u + b has the single fixed point (I - W)^-1 (U u + b)."""
    N, K = 5, 3
    model = Ensemble(RateRNNConfig(2, N, 1, nonlinearity="identity"), n_networks=K, seed=3)
    g = torch.Generator().manual_seed(0)
    radii = [0.5, 1.6, 2.5]  # stable, saddle, all-unstable
    with torch.no_grad():
        for k, rho in enumerate(radii):
            Q = torch.linalg.qr(torch.randn(N, N, generator=g)).Q
            diag = torch.tensor([rho, 0.3, -0.2, 0.6 * rho, -0.9 * rho])
            model.W_rec[k] = Q @ torch.diag(diag) @ Q.T
            model.b[k] = torch.randn(N, generator=g)
    u = torch.tensor([0.7, -0.4])
    ds = find_fixed_points(model, u, n_initial=64, seed=1)
    for k in range(K):
        W = model.W_rec[k].detach().double()
        drive = (model.W_in[k].double() @ u.double() + model.b[k].double()).detach()
        expect = torch.linalg.solve(torch.eye(N, dtype=torch.float64) - W, drive).numpy()
        assert int(ds.n_fixed_points[k]) == 1
        assert int(ds.n_members[k, 0]) == 64  # every candidate reached it
        np.testing.assert_allclose(valid(ds, k, "points")[0], expect, rtol=0, atol=1e-9)
        assert valid(ds, k, "q")[0] < 1e-20
        lam = np.sort(np.abs(valid(ds, k, "eigenvalues")[0]))
        np.testing.assert_allclose(lam, np.sort(np.abs(torch.linalg.eigvals(W).numpy())),
                                   atol=1e-10)
        n_unst = int((np.abs(torch.linalg.eigvals(W).numpy()) > 1).sum())
        assert int(valid(ds, k, "n_unstable")[0]) == n_unst
    assert list(valid(ds, 0, "stability")) == [0]
    assert list(valid(ds, 1, "stability")) == [1]
    np.testing.assert_allclose(ds.inputs.values, np.tile(u.numpy(), (K, 1)))
    assert (ds.candidate_status == CANDIDATE_STATUS["converged"]).all()


def test_logistic_map_fixed_points_and_both_conventions():
    """F(x) = r x (1 - x): fixed points 0 (F' = r) and 1 - 1/r (F' = 2 - r)."""
    model = ScalarMap([ScalarMapConfig(r=2.5), ScalarMapConfig(r=3.2)])
    x0 = torch.linspace(-0.2, 1.2, 41)[:, None]
    for convention in ("discrete", "continuous"):
        ds = find_fixed_points(model, initial_states=x0, convention=convention,
                               outlier_scale=None)
        for k, r in enumerate((2.5, 3.2)):
            pts = valid(ds, k, "points")[:, 0]
            order = np.argsort(pts)
            np.testing.assert_allclose(pts[order], [0.0, 1 - 1 / r], atol=1e-12)
            lam = valid(ds, k, "eigenvalues")[:, 0][order]
            np.testing.assert_allclose(lam.real, [r, 2 - r], atol=1e-10)
            stab = valid(ds, k, "stability")[order]
            if convention == "discrete":
                # r = 2.5: x* stable (|F'| = 0.5); r = 3.2: x* unstable (F' = -1.2)
                assert list(stab) == ([2, 0] if r == 2.5 else [2, 2])
            else:
                # as the Euler step of a flow, F' = -1.2 means Re(mu) = -2.2 < 0: stable
                assert list(stab) == [2, 0]
        assert ds.attrs["convention"] == convention


def test_tanh_diagonal_network_has_3_to_the_n_fixed_points():
    """W = a I: each unit has fixed points {0, +-x*(a)}, so 3^N points, 2^N stable."""
    gains = (2.0, 1.5)
    model = tanh_diag_model(gains, n_units=3)
    x0 = (torch.rand(400, 3, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2)
    ds = find_fixed_points(model, initial_states=x0, seed=0)
    for k, a in enumerate(gains):
        xs = tanh_root(a)
        assert int(ds.n_fixed_points[k]) == 27
        assert int(ds.n_stable[k]) == 8
        assert int(ds.n_unstable_points[k]) == 1
        assert int(ds.n_saddles[k]) == 18
        pts = valid(ds, k, "points")
        # every coordinate is 0 or +-x*
        dist = np.min(np.abs(np.abs(pts)[..., None] - np.array([0.0, xs])), axis=-1)
        assert dist.max() < 1e-9
        n_zero = (np.abs(pts) < 1e-6).sum(1)
        np.testing.assert_array_equal(valid(ds, k, "n_unstable"), n_zero)
        # slopes: a at 0, a (1 - x*^2) at +-x*
        lam = np.sort(valid(ds, k, "eigenvalues").real, axis=1)
        expect = np.sort(np.where(n_zero[:, None] > np.arange(3), a, a * (1 - xs**2)), 1)
        np.testing.assert_allclose(lam, expect, atol=1e-9)
        assert valid(ds, k, "q").max() < 1e-16
    # fixed points are ordered: stable first
    assert list(valid(ds, 0, "stability")[:8]) == [0] * 8
    # left and right eigenvectors are biorthogonal
    d = ds.isel(network=0, fixed_point=3)
    prod = d.left_eigenvectors.values.conj().T @ d.right_eigenvectors.values
    np.testing.assert_allclose(prod, np.eye(3), atol=1e-10)


def test_constant_input_moves_the_fixed_points():
    """tanh, W = a I, input u on unit 0: unit 0's fixed points solve x = tanh(a x + u)."""
    a, u = 2.0, 0.3
    model = tanh_diag_model([a], n_units=2)
    with torch.no_grad():
        model.W_in[0, 0, 0] = 1.0
    x0 = torch.rand(300, 2, generator=torch.Generator().manual_seed(1)) * 2.4 - 1.2
    ds = find_fixed_points(model, torch.tensor([u]), initial_states=x0)
    f = lambda x: x - math.tanh(a * x + u)  # noqa: E731
    grid = np.linspace(-1.5, 1.5, 3001)
    roots = [brentq(f, lo, hi) for lo, hi in zip(grid[:-1], grid[1:]) if f(lo) * f(hi) < 0]
    assert len(roots) == 3
    pts = valid(ds, 0, "points")
    assert int(ds.n_fixed_points[0]) == 9
    got0 = np.unique(np.round(pts[:, 0], 8))
    np.testing.assert_allclose(np.sort(got0), np.sort(roots), atol=1e-8)
    q_check = speed(model, torch.as_tensor(pts)[None], torch.tensor([u]))
    assert float(q_check.max()) < 1e-16


def test_slow_point_of_a_saddle_node_ghost():
    """F(x) = x + x^2 + c (c > 0) has no fixed point; x = 0 is a slow point with q = c^2 / 2."""
    c = 1e-3
    model = ScalarMap(ScalarMapConfig(kind="ghost", r=c))
    x0 = torch.linspace(-0.5, 0.5, 21)[:, None]
    ds = find_fixed_points(model, initial_states=x0, dedupe_tol=0.05)
    assert int(ds.n_fixed_points[0]) == 0
    assert int(ds.n_slow_points[0]) >= 1
    slow = valid(ds, 0, "is_slow_point")
    assert slow.all()
    assert np.abs(valid(ds, 0, "points")).max() < 0.05
    np.testing.assert_allclose(valid(ds, 0, "q").min(), c**2 / 2, rtol=1e-2)
    assert not valid(ds, 0, "converged").any()
    assert (ds.candidate_status == CANDIDATE_STATUS["slow_point"]).all()


def test_points_that_never_converge_are_reported_with_their_q():
    """F(x) = x + x^2 + 1: q >= 1/2 everywhere, nothing converges; nothing is hidden."""
    model = ScalarMap(ScalarMapConfig(kind="ghost", r=1.0))
    ds = find_fixed_points(model, initial_states=torch.linspace(-1, 1, 16)[:, None])
    assert int(ds.n_fixed_points[0]) == 0 and int(ds.n_slow_points[0]) == 0
    assert int(ds.n_not_converged[0]) == 16
    assert (ds.candidate_status == CANDIDATE_STATUS["not_converged"]).all()
    assert (ds.candidate_q >= 0.5 - 1e-12).all()
    assert (ds.candidate_fixed_point == -1).all()


def test_gru_fixed_points_via_default_jacobian():
    """GRU (autodiff Jacobian of the protocol): found points are fixed points to q < 1e-16."""
    model = GRU(GRUConfig(2, 8, 2, init_scale=3.0), n_networks=2, seed=0)
    ds = find_fixed_points(model, n_initial=64, seed=0)
    assert (ds.n_fixed_points >= 1).all()
    for k in range(2):
        conv = valid(ds, k, "converged")
        pts = torch.as_tensor(valid(ds, k, "points")[conv])
        q = speed(model.select(k), pts[None])
        assert float(q.max()) < 1e-16
        # the Jacobian eigenvalues agree with an independent autodiff Jacobian
        m64 = model.select(k).double()

        def f(s, m64=m64):
            return m64.step(s[None, None])[0, 0]

        J = torch.func.jacrev(f)(pts[0].double())
        lam = np.sort(np.abs(torch.linalg.eigvals(J.detach()).numpy()))
        np.testing.assert_allclose(np.sort(np.abs(valid(ds, k, "eigenvalues")[conv][0])), lam,
                                   atol=1e-10)


def test_outliers_are_flagged_not_hidden():
    """The linear map h' = 0.5 h + 100 has its fixed point at 200, far from inits near 0."""
    model = Ensemble(RateRNNConfig(1, 2, 1, nonlinearity="identity"), n_networks=1, seed=0)
    with torch.no_grad():
        model.W_rec[0] = 0.5 * torch.eye(2)
        model.b[0] = 100.0
    x0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    ds = find_fixed_points(model, initial_states=x0)
    assert int(ds.n_outliers[0]) == 32 and int(ds.n_fixed_points[0]) == 0
    assert (ds.candidate_status == CANDIDATE_STATUS["outlier"]).all()
    kept = find_fixed_points(model, initial_states=x0, outlier_scale=None)
    np.testing.assert_allclose(valid(kept, 0, "points")[0], [200.0, 200.0], atol=1e-9)


def test_dataset_layout_and_network_coordinates():
    cfgs = [RateRNNConfig(1, 6, 1, init_gain=g) for g in (0.5, 0.5, 1.8, 1.8)]
    model = Ensemble(cfgs, seed=0)
    ds = find_fixed_points(model, n_initial=32, seed=0, return_jacobians=True,
                           return_candidates=True)
    assert set(ds.dims) >= {"network", "fixed_point", "unit", "eigen", "initial_state", "input"}
    np.testing.assert_array_equal(ds.seed.values, [0, 1, 2, 3])
    np.testing.assert_array_equal(ds.init_gain.values, [0.5, 0.5, 1.8, 1.8])
    counts = ds.n_fixed_points.groupby("init_gain").sum()
    assert counts.sizes["init_gain"] == 2
    # padding is consistent with the counts
    for k in range(4):
        n_valid = int(ds.valid[k].sum())
        assert n_valid == int(ds.n_fixed_points[k]) + int(ds.n_slow_points[k])
        assert np.isnan(ds.q[k].values[n_valid:]).all()
        assert (ds.stability[k].values[n_valid:] == -1).all()
    # Jacobians stored for every point match the protocol's Jacobian
    J = jacobians(model, torch.nan_to_num(torch.as_tensor(ds.points.values)))
    ok = ds.valid.values
    np.testing.assert_allclose(ds.jacobians.values[ok], J.numpy()[ok], atol=1e-12)
    assert ds.final_states.shape == (4, 32, 6)
    # every converged candidate points at a fixed point within dedupe_tol
    for k in range(4):
        idx = ds.candidate_fixed_point[k].values
        for p in np.flatnonzero(idx >= 0):
            d = np.linalg.norm(ds.final_states[k, p].values - ds.points[k, idx[p]].values)
            assert d < ds.attrs["dedupe_tol"]
    # the model is untouched
    assert model.W_rec.dtype == torch.float32 and model.W_rec.grad is None
    # complex variables survive a real-only (netCDF-style) round trip
    flat = split_complex(ds)
    assert not any(np.iscomplexobj(v.values) for v in flat.data_vars.values())
    back = merge_complex(flat)
    np.testing.assert_array_equal(back.eigenvalues.values, ds.eigenvalues.values)
    assert set(back.data_vars) == set(ds.data_vars)


def test_default_initial_states_and_sampling_are_seeded():
    model = Ensemble(RateRNNConfig(1, 5, 1, init_gain=1.5), n_networks=2, seed=0)
    a = find_fixed_points(model, n_initial=16, seed=3)
    b = find_fixed_points(model, n_initial=16, seed=3)
    np.testing.assert_array_equal(a.candidate_q.values, b.candidate_q.values)
    traj = torch.randn(2, 4, 10, 5)
    x0 = sample_initial_states(traj, 7, noise_std=0.0, seed=0)
    flat = traj.reshape(2, 40, 5).double()
    for k in range(2):  # with zero noise every sample is a trajectory state of its network
        d = (x0[k][:, None] - flat[k][None]).norm(dim=-1).min(1).values
        assert float(d.max()) < 1e-12


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    K=st.integers(1, 3),
    N=st.integers(1, 6),
    P=st.integers(1, 12),
    gain=st.floats(0.2, 2.5),
    seed=st.integers(0, 100),
)
def test_invariants_random_networks(K, N, P, gain, seed):
    model = Ensemble(RateRNNConfig(2, N, 1, init_gain=gain), n_networks=K, seed=seed)
    ds = find_fixed_points(model, n_initial=P, seed=seed, first_order_iters=20)
    assert ds.sizes["network"] == K and ds.sizes["initial_state"] == P
    assert ds.sizes["unit"] == N and ds.sizes["eigen"] == N
    assert (ds.candidate_q >= 0).all()
    counts = (ds.candidate_status.values[..., None] == np.arange(5)).sum(1)
    assert (counts.sum(1) == P).all()
    residual = _residuals(model, ds)
    for k in range(K):
        conv = valid(ds, k, "converged")
        assert (valid(ds, k, "q")[conv] < ds.attrs["tol_q"]).all()
        # converged points of every kind are polished to rounding, not left at sqrt(2 tol_q)
        assert (residual[k][ds.valid.values[k]][conv] <= 1e-10).all()
        pts = valid(ds, k, "points")
        if len(pts) > 1:  # deduplicated
            d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(len(pts)) * 1e9
            assert d.min() >= ds.attrs["dedupe_tol"]
        n_u = valid(ds, k, "n_unstable")
        lam = valid(ds, k, "eigenvalues")
        np.testing.assert_array_equal(n_u, (np.abs(lam) > 1).sum(1))


def test_dedupe_matches_all_pairs_greedy_oracle():
    """The greedy deduplication (distances from each representative only) equals the greedy
    rule written out over all pairs, on clustered points with ties broken by index."""
    from dynrnn.analyses.fixed_points import _dedupe

    rng = np.random.default_rng(0)
    for trial in range(20):
        centres = rng.normal(size=(int(rng.integers(1, 12)), 5))
        pts = centres[rng.integers(0, len(centres), 300)] + rng.normal(size=(300, 5)) * 10.0 ** (
            -rng.integers(2, 8))
        q = rng.random(300) * 10.0 ** -rng.integers(5, 20, 300)
        if trial % 4 == 0:
            q[:50] = q[0]  # ties
        tol = 10.0 ** -rng.integers(1, 4)
        reps, assign = _dedupe(pts, q, tol)
        order = np.argsort(q, kind="stable")
        d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
        expect_reps, expect = [], np.full(300, -1)
        for i in order:
            if expect[i] >= 0:
                continue
            members = (expect < 0) & (d[i] < tol)
            members[i] = True
            expect[members] = len(expect_reps)
            expect_reps.append(i)
        np.testing.assert_array_equal(reps, expect_reps)
        np.testing.assert_array_equal(assign, expect)


def test_representatives_polished_duplicates_released_converged():
    """One candidate per fixed point is polished to rounding; the others stop once converged,
    each below tol_q and never below its point's q, so every reported point is the lowest-q
    member of its cluster. With dedupe_tol = 0 every candidate is polished."""
    model = tanh_diag_model((2.0, 1.5), n_units=3)
    x0 = torch.rand(400, 3, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2
    ds = find_fixed_points(model, initial_states=x0, seed=0, progress=False)
    tol_q = ds.attrs["tol_q"]
    for k in range(2):
        conv = ds.candidate_status.values[k] == CANDIDATE_STATUS["converged"]
        assert conv.mean() > 0.9
        cq, fp = ds.candidate_q.values[k], ds.candidate_fixed_point.values[k]
        assert (cq[conv] < tol_q).all()
        q_point = ds.q.values[k][fp[conv]]
        assert (cq[conv] >= q_point).all()
        assert (valid(ds, k, "q")[valid(ds, k, "converged")] < 1e-16).all()
        # most candidates were released before the polish (q not driven to rounding)
        assert (cq[conv] > 1e-24).mean() > 0.5
    every = find_fixed_points(model, initial_states=x0, seed=0, progress=False, dedupe_tol=0.0)
    conv = every.candidate_status.values == CANDIDATE_STATUS["converged"]
    assert (every.candidate_q.values[conv] < 1e-16).all()
    for k in range(2):  # the same zeros: every reported point is one of the polished ones
        pts = valid(ds, k, "points")
        d = np.linalg.norm(pts[:, None] - valid(every, k, "points")[None], axis=-1)
        assert d.min(1).max() < 1e-9


def test_eigenvalues_only_when_eigenvectors_are_not_asked_for():
    """``eigenvectors=False`` computes only the eigenvalues: the same points, eigenvalues and
    stability as with eigenvectors, and no eigenvector variables."""
    model = Ensemble(RateRNNConfig(2, 12, 1, init_gain=1.8), n_networks=3, seed=4)
    a = find_fixed_points(model, n_initial=64, seed=2, progress=False)
    b = find_fixed_points(model, n_initial=64, seed=2, progress=False, eigenvectors=False)
    assert "right_eigenvectors" in a and "right_eigenvectors" not in b
    assert int(a.n_fixed_points.sum()) >= 3
    np.testing.assert_array_equal(a.points.values, b.points.values)
    np.testing.assert_array_equal(a.stability.values, b.stability.values)
    ok = a.valid.values
    # as sets per point (LAPACK's two paths may order a tie of |lambda| differently)
    np.testing.assert_allclose(np.sort(b.eigenvalues.values[ok], -1),
                               np.sort(a.eigenvalues.values[ok], -1), atol=1e-9)


# --------------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors():
    model = Ensemble(RateRNNConfig(2, 4, 1), n_networks=2, seed=0)
    bad = torch.zeros(5, 4)
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="initial_states.*finite"):
        find_fixed_points(model, initial_states=bad)
    with pytest.raises(ValueError, match="trajectories.*finite"):
        find_fixed_points(model, trajectories=torch.full((2, 3, 4, 4), float("inf")))
    with pytest.raises(ValueError, match="inputs"):
        find_fixed_points(model, torch.zeros(3))
    with pytest.raises(ValueError, match="inputs.*finite"):
        find_fixed_points(model, torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="initial_states"):
        find_fixed_points(model, initial_states=torch.zeros(5, 3))
    with pytest.raises(ValueError, match="either"):
        find_fixed_points(model, initial_states=torch.zeros(5, 4), trajectories=torch.zeros(5, 4))
    with pytest.raises(ValueError, match="n_initial"):
        find_fixed_points(model, n_initial=0)
    with pytest.raises(ValueError, match="convention"):
        find_fixed_points(model, convention="sideways")
    with pytest.raises(ValueError, match="tol_q"):
        find_fixed_points(model, tol_q=-1.0)
    broken = Ensemble(RateRNNConfig(2, 4, 1), n_networks=2, seed=0)
    with torch.no_grad():
        broken.W_rec[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite.*W_rec"):
        find_fixed_points(broken)
    with pytest.raises(ValueError, match="protocol"):
        find_fixed_points(object())


# --------------------------------------------------------------------------- linearisation
def test_jacobians_and_input_jacobians_match_autodiff():
    model = Ensemble(RateRNNConfig(3, 5, 1, tau_init=2.0, tau_jitter=1.0), n_networks=2, seed=1)
    pts = torch.randn(2, 4, 5, dtype=torch.float64)
    u = torch.randn(2, 3, dtype=torch.float64)
    J = jacobians(model, pts, u)
    B = input_jacobians(model, pts, u)
    m64 = model.double()
    for k in range(2):
        for p in range(4):
            def f(h, x, k=k):
                return m64.step(h.expand(2, 1, 5), x.expand(2, 1, 3))[k, 0]

            Jr, Br = torch.func.jacrev(f, argnums=(0, 1))(pts[k, p][None, None], u[k][None, None])
            Jr, Br = Jr.detach().reshape(5, 5).numpy(), Br.detach().reshape(5, 3).numpy()
            np.testing.assert_allclose(J[k, p].numpy(), Jr, atol=1e-12)
            np.testing.assert_allclose(B[k, p].numpy(), Br, atol=1e-12)


def test_local_time_constants():
    lam = np.array([0.9, -0.5, 1.0, 1.1, 0.8 * np.exp(1j * np.pi / 4)])
    tau, period = local_time_constants(lam, dt=1.0)
    np.testing.assert_allclose(tau[:2], [-1 / math.log(0.9), -1 / math.log(0.5)])
    assert np.isinf(tau[2]) and tau[3] < 0
    np.testing.assert_allclose(period[[1, 4]], [2.0, 8.0])
    # continuous: lambda = 1 - dt / tau_c for the Euler step of dx/dt = -x / tau_c
    tau_c, _ = local_time_constants(np.array([1 - 0.1 / 5.0]), dt=0.1, convention="continuous")
    np.testing.assert_allclose(tau_c, [5.0])


def test_linearise_modes_and_input_coupling():
    """Linear map with known modes: input along mode 0's right eigenvector couples only to it."""
    N = 3
    model = Ensemble(RateRNNConfig(1, N, 1, nonlinearity="identity", bias=False),
                     n_networks=1, seed=0)
    V = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    lam = torch.tensor([0.9, 0.5, -0.3])
    with torch.no_grad():
        model.W_rec[0] = V @ torch.diag(lam) @ torch.linalg.inv(V)
        model.W_in[0] = V[:, :1]
    ds = linearise(model, torch.zeros(1, 2, N))
    np.testing.assert_allclose(ds.eigenvalues[0, 0].values.real, [0.9, 0.5, -0.3], atol=1e-12)
    coupling = np.abs(ds.input_coupling[0, 0, :, 0].values)
    right0 = ds.right_eigenvectors[0, 0, :, 0].values
    np.testing.assert_allclose(coupling, [np.linalg.norm(V[:, 0].numpy())
                                          / np.linalg.norm(right0), 0, 0], atol=1e-6)
    np.testing.assert_allclose(ds.input_alignment[0, 0, 0, 0], 1.0, atol=1e-12)
    np.testing.assert_allclose(ds.time_constants[0, 0, 0], -1 / math.log(0.9))


def test_linearise_trajectory_volume_and_radius():
    model = Ensemble(RateRNNConfig(2, 6, 1, init_gain=1.2), n_networks=2, seed=0)
    states = torch.tanh(torch.randn(2, 3, 7, 6, generator=torch.Generator().manual_seed(0)))
    x = torch.randn(3, 7, 2, generator=torch.Generator().manual_seed(1))
    ds = linearise_trajectory(model, states, x)
    J = jacobians(model, states, x[None].expand(2, -1, -1, -1))
    np.testing.assert_allclose(ds.log_abs_det.values, torch.linalg.slogdet(J)[1].numpy(),
                               atol=1e-10)
    rho = torch.linalg.eigvals(J).abs().amax(-1).numpy()
    np.testing.assert_allclose(ds.spectral_radius.values, rho, atol=1e-10)
    with pytest.raises(ValueError, match="T=7"):
        linearise_trajectory(model, states, x[:, :5])


def test_classify_eigenvalues_conventions():
    lam = np.array([[0.5, -1.5, 0.2], [1.2, 1.1, 1.01], [0.1, 0.2, 0.3]])
    n, code = classify_eigenvalues(lam)
    np.testing.assert_array_equal(n, [1, 3, 0])
    np.testing.assert_array_equal(code, [1, 2, 0])
    n, code = classify_eigenvalues(lam, "continuous", dt=0.1)
    np.testing.assert_array_equal(n, [0, 3, 0])  # -1.5 is a decaying oscillation of the flow


# --------------------------------------------------------------------------- trained networks
# Fast tier: networks trained once by the package's own ``train`` (tests/_flipflop.py, written
# by tests/data/make_flipflop_fixtures.py) and stored in float64; analysed in float64, so the
# outcome does not depend on the CPU. Slow tier: a fresh ensemble of 16, trained here.
FLIPFLOP_DATA = Path(__file__).parent / "data"


def _check_stored_flipflop(name, n_bits):
    """Every stored network that comes to rest has exactly 2^n stable fixed points, whose
    readouts are the 2^n corners of the cube, and the free-running network rests on them; a
    network whose memories sit on limit cycles does not come to rest. The outcome equals the
    one recorded when the fixture was written."""
    model, meta = load_model(FLIPFLOP_DATA / name)
    out = flipflop_outcome(model, n_bits)
    np.testing.assert_array_equal(out["canonical"], meta["canonical_when_written"])
    np.testing.assert_array_equal(out["n_stable"], meta["n_stable_when_written"])
    assert out["at_rest"].sum() >= 3, out["free_step"]
    for k in np.flatnonzero(out["at_rest"]):
        d = out["fixed_points"].isel(network=int(k))
        assert int(d.n_stable) == 2**n_bits
        assert out["corners"][k] and out["ends_on_stable"][k]
        assert int(d.n_saddles) >= 1
        assert out["q_max"][k] < 1e-10
    # networks not at rest move by O(1) per step: far from any rounding threshold
    assert np.all(out["free_step"][~out["at_rest"]] > 1e-3)
    # every point reported as converged -- stable, saddle or unstable -- is a zero of F - h to
    # rounding, recomputed here with the model's own step in float64
    ds = out["fixed_points"]
    residual = _residuals(model, ds)
    conv = ds.converged.values
    for code in (0, 1):  # stable points and saddles are both present
        assert (conv & (ds.stability.values == code)).any()
    assert residual[conv].max() <= 1e-10, residual[conv].max()
    return out


def _residuals(model, ds):
    """``|F(h) - h|`` (Euclidean, float64) of every stored point ``[network, fixed_point]``
    at the dataset's inputs (NaN for padding)."""
    m = model.double()
    h = torch.as_tensor(np.nan_to_num(ds.points.values), dtype=torch.float64)
    x = torch.as_tensor(ds.inputs.values, dtype=torch.float64)[:, None, :].expand(
        h.shape[0], h.shape[1], -1)
    with torch.no_grad():
        r = (m.step(h, x) - h).norm(dim=-1).numpy()
    return np.where(ds.valid.values, r, np.nan)


def test_trained_two_bit_flipflop_has_four_stable_fixed_points():
    _check_stored_flipflop("flipflop2_rate24", n_bits=2)


def test_trained_three_bit_flipflop_has_eight_stable_fixed_points():
    out = _check_stored_flipflop("flipflop3_rate64", n_bits=3)
    assert (out["canonical"]).sum() == 4  # networks 0-3 of the ensemble; the fifth cycles
    assert out["n_stable"][~out["at_rest"]].tolist() == [0]


@pytest.mark.slow
def test_most_trained_three_bit_flipflop_networks_have_exactly_eight_stable_fixed_points():
    """16 networks (64 tanh units) trained at once by ``train`` on ``FlipFlopTask``: at least 10
    come to rest with exactly 8 stable fixed points at the cube's corners.

    Measured (seed 0, AMD EPYC, 2 cores): with the C kernels all 16 reached the criterion and
    14 of 16 were canonical (the other 2 hold their memories on limit cycles: free-run step
    ~6, no stable points); with DYNRNN_DISABLE_C=1 (plain torch loop) 15 of 16 (network 11
    cycles). The bound 10/16 leaves a margin of 4 networks below the lower measurement (for
    p = 14/16 the chance of fewer than 10 of 16 is about 1%). Passed in 514 s on a loaded
    2-core machine.
    """
    model, history = train_flipflop_ensemble(3, 64, 16, seed=0)
    assert history.reached.sum() >= 14, history.reached
    out = flipflop_outcome(model, 3)
    assert out["canonical"].sum() >= 10, (out["canonical"], out["n_stable"], out["free_step"])
    # no network with stationary memories has more or fewer than 8 stable points
    rest = out["at_rest"] & history.reached
    assert (out["n_stable"][rest] == 8).all(), out["n_stable"]
