"""SCYFI (exact fixed points / k-cycles of PLRNNs) against brute-force enumeration."""

import numpy as np
import pytest
import torch

from dynrnn.analyses.scyfi import brute_force_cycles, find_cycles
from dynrnn.models import (
    ALRNN,
    PLRNN,
    ALRNNConfig,
    PLRNNConfig,
    RateRNN,
    RateRNNConfig,
    ShallowPLRNN,
    ShallowPLRNNConfig,
)


def _randomise(model, seed, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "A":
                p.copy_(torch.rand(p.shape, generator=g) * 1.4 - 0.4)
            else:
                fan = p.shape[-1] ** 0.5 if p.ndim == 3 else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * scale / fan)
    return model


def _cycles_by_network(ds):
    out = {}
    for c in range(ds.sizes["cycle"]):
        k = int(ds.network_index[c])
        out.setdefault(k, []).append(ds.points.values[c])
    return out


def _same_cycles(a, b, K, tol=1e-6):
    ca, cb = _cycles_by_network(a), _cycles_by_network(b)
    for k in range(K):
        xa, xb = ca.get(k, []), cb.get(k, [])
        assert len(xa) == len(xb), (k, len(xa), len(xb))
        for pts in xa:  # every cycle of a is a rotation of one cycle of b
            d = [np.min(np.linalg.norm(q - pts[0], axis=1)) for q in xb]
            assert min(d) < tol * (1 + np.linalg.norm(pts[0]))


@pytest.mark.parametrize("M", [2, 3, 4, 5, 6])
def test_scyfi_equals_brute_force_plrnn(M):
    model = _randomise(PLRNN(PLRNNConfig(M, M), n_networks=6, seed=M), seed=M)
    found = 0
    for order in (1, 2):
        bf = brute_force_cycles(model, order)
        sc = find_cycles(model, order, n_restarts=128, n_rounds=2, max_inner=30, seed=1,
                         method="scyfi")
        assert (sc.n_cycles.values == bf.n_cycles.values).all()
        _same_cycles(sc, bf, model.n_networks)
        found += int(bf.n_cycles.sum())
        # nothing spurious: every reported cycle closes under the true map and has period k
        for c in range(sc.sizes["cycle"]):
            net = model.select(int(sc.network_index[c])).double()
            z = torch.as_tensor(sc.points.values[c, 0])[None, None]
            for _ in range(order):
                z = net.step(z)
            assert torch.allclose(z[0, 0], torch.as_tensor(sc.points.values[c, 0]), atol=1e-8)
    assert found > 0


def test_two_cycles_found_and_stability():
    # a PLRNN with sign-flipping dynamics has 2-cycles
    hits = 0
    for seed in range(6):
        model = _randomise(PLRNN(PLRNNConfig(4, 4), n_networks=8, seed=seed), seed, scale=2.5)
        bf = brute_force_cycles(model, 2)
        sc = find_cycles(model, 2, n_restarts=128, n_rounds=2, max_inner=30, seed=seed,
                         method="scyfi")
        _same_cycles(sc, bf, model.n_networks)
        hits += int(bf.n_cycles.sum())
        # stability = eigenvalues of the Jacobian product along the cycle
        for c in range(sc.sizes["cycle"]):
            net = model.select(int(sc.network_index[c])).double()
            pts = torch.as_tensor(sc.points.values[c])
            J = net.jacobian(pts[1][None, None])[0, 0] @ net.jacobian(pts[0][None, None])[0, 0]
            lam = np.abs(np.linalg.eigvals(J.detach().numpy())).max()
            assert lam == pytest.approx(float(sc.max_abs_eigenvalue[c]), rel=1e-8)
            assert bool(sc.stable[c]) == (lam < 1)
    assert hits > 0


def test_scyfi_shallow_and_alrnn():
    sh = _randomise(ShallowPLRNN(ShallowPLRNNConfig(3, 3, n_hidden=5, clipped=True),
                                 n_networks=3), 2)
    al = _randomise(ALRNN(ALRNNConfig(5, 3, n_pwl=3), n_networks=3), 3)
    for model in (sh, al):
        bf = brute_force_cycles(model, 1)
        sc = find_cycles(model, 1, n_restarts=64, n_rounds=2, max_inner=20, method="scyfi")
        _same_cycles(sc, bf, model.n_networks)
    bf = brute_force_cycles(al, 2)
    sc = find_cycles(al, 2, n_restarts=64, n_rounds=2, max_inner=20, method="scyfi")
    _same_cycles(sc, bf, al.n_networks)


def test_auto_method_enumerates_small_models_exhaustively():
    """Where the (2^R)^k region sequences are fewer than one SCYFI run's candidate solves,
    find_cycles enumerates them (exact, and cheaper), says so in its attrs, and equals
    brute_force_cycles; above that it runs SCYFI and says so."""
    model = _randomise(PLRNN(PLRNNConfig(3, 3), n_networks=5, seed=3), seed=3)
    for order in (1, 2):
        ds = find_cycles(model, order)
        assert ds.attrs["analysis"] == "brute_force" and ds.attrs["exhaustive"] == 1
        assert ds.attrs["method"] == "auto" and "<=" in ds.attrs["method_reason"]
        bf = brute_force_cycles(model, order)
        assert (ds.n_cycles.values == bf.n_cycles.values).all()
        _same_cycles(ds, bf, model.n_networks)
    # a budget below 2^(3*2) = 64 sequences: SCYFI, reported as such
    sc = find_cycles(model, 2, n_restarts=4, n_rounds=1, max_inner=10)
    assert sc.attrs["analysis"] == "scyfi" and sc.attrs["exhaustive"] == 0
    assert ">" in sc.attrs["method_reason"]
    forced = find_cycles(model, 1, method="enumerate", n_restarts=1, n_rounds=1, max_inner=1)
    assert forced.attrs["analysis"] == "brute_force"
    with pytest.raises(ValueError, match="'method'"):
        find_cycles(model, 1, method="exact")


def test_bad_input():
    rate = RateRNN(RateRNNConfig(0, 3, 1))
    with pytest.raises(ValueError, match="piecewise linear"):
        find_cycles(rate)
    model = PLRNN(PLRNNConfig(3, 3))
    with pytest.raises(ValueError, match="order"):
        find_cycles(model, order=0)
    big = ShallowPLRNN(ShallowPLRNNConfig(3, 3, n_hidden=50))
    with pytest.raises(ValueError, match="max_sequences"):
        brute_force_cycles(big, 1)
