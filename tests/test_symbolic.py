"""AL-RNN symbolic dynamics: symbols = ReLU sign patterns, transition graph, subregion fixed
points, plots, bad input."""

import matplotlib

matplotlib.use("Agg")

import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dynrnn.analyses.dsr_metrics import generate  # noqa: E402
from dynrnn.analyses.symbolic import (  # noqa: E402
    subregion_fixed_points,
    symbol_sequence,
    symbolic_graph,
    symbols_used,
)
from dynrnn.models import ALRNN, ALRNNConfig, RateRNN, RateRNNConfig  # noqa: E402
from dynrnn.plot import plot_attractor_subregions, plot_symbolic_graph  # noqa: E402


def _tent_alrnn():
    m = ALRNN(ALRNNConfig(2, 2, n_pwl=2)).double()
    with torch.no_grad():
        m.A.zero_()
        m.W.copy_(torch.tensor([[[-1.9, -1.9], [1.9, 1.9]]]))  # x' = 1 - 1.9 |x|
        m.h.copy_(torch.tensor([[1.0, -1.0]]))
    return m


def _random_alrnn(P=2, K=2):
    m = ALRNN(ALRNNConfig(5, 3, n_pwl=P), n_networks=K, seed=3).double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        m.W.copy_(0.4 * torch.randn(m.W.shape, generator=g, dtype=torch.float64))
        m.h.copy_(torch.randn(m.h.shape, generator=g, dtype=torch.float64))
        m.A.mul_(0.5)
    return m


def test_symbols_are_relu_sign_patterns():
    m = _random_alrnn(P=3)
    z = torch.randn(2, 50, 5, dtype=torch.float64)
    s = symbol_sequence(m, z)
    manual = ((z[..., 2] > 0) * 4 + (z[..., 3] > 0) * 2 + (z[..., 4] > 0) * 1).numpy()
    assert s.shape == (2, 50) and np.array_equal(s, manual)


def test_tent_map_graph():
    m = _tent_alrnn()
    _, Z = generate(m, torch.tensor([0.1234, -0.1234]), 2000)
    traj = Z[0, 0, 100:]
    G = symbolic_graph(m, traj)
    assert isinstance(G, nx.DiGraph)
    # x > 0 <-> symbol 0b10 (z1 > 0, z2 < 0), x < 0 <-> 0b01
    assert set(G.nodes) == {1, 2} and symbols_used(symbol_sequence(m, traj)) == [2]
    assert nx.is_strongly_connected(G)
    for n in G.nodes:
        out = sum(p for _, _, p in G.out_edges(n, data="probability"))
        assert out == pytest.approx(1.0)
        assert G.has_edge(n, n)  # dwelling
    assert sum(G.nodes[n]["occupancy"] for n in G) == pytest.approx(1.0)
    assert G.graph["n_subregions"] == 4


def test_subregion_fixed_points():
    m = _random_alrnn(P=2)
    ds = subregion_fixed_points(m)
    assert ds.fixed_point.shape == (2, 4, 5)
    for k in range(2):
        net = m.select(k)
        for s in range(4):
            z = torch.as_tensor(ds.fixed_point.values[k, s])
            d = torch.tensor([(s >> 1) & 1, s & 1], dtype=torch.float64)
            mats, c = net.affine_pieces(d[None, None])
            assert torch.allclose(mats[0, 0] @ z + c[0, 0], z, atol=1e-10)
            in_region = bool((net.region_code(z[None, None])[0, 0] == d).all())
            assert in_region == bool(ds["real"].values[k, s])
            if in_region:  # a real fixed point is a fixed point of the full map
                assert torch.allclose(net.step(z[None, None])[0, 0], z, atol=1e-10)
            eig = np.abs(np.linalg.eigvals(mats[0, 0].detach().numpy())).max()
            assert eig == pytest.approx(float(ds.max_abs_eigenvalue.values[k, s]))


def test_plots():
    m = _tent_alrnn()
    _, Z = generate(m, torch.tensor([0.1234, -0.1234]), 500)
    G = symbolic_graph(m, Z[0, 0])
    ax = plot_symbolic_graph(G)
    assert ax.figure is not None
    ax2 = plot_attractor_subregions(Z[0, 0], symbol_sequence(m, Z[0, 0])[0])
    assert ax2.figure is not None
    with pytest.raises(ValueError, match="same T"):
        plot_attractor_subregions(Z[0, 0], np.zeros(3))


def test_bad_input():
    with pytest.raises(ValueError, match="piecewise linear"):
        symbol_sequence(RateRNN(RateRNNConfig(0, 3, 1)), np.zeros((5, 3)))
    m = _random_alrnn()
    bad = np.zeros((10, 5))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        symbolic_graph(m, bad)
    with pytest.raises(ValueError, match="trajectory"):
        symbolic_graph(m, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="network"):
        symbolic_graph(m, np.zeros((10, 5)), network=5)
