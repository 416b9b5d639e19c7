"""Plots (dynrnn.plot): each takes a result and an optional ax, returns the Axes, shows nothing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402

from dynrnn import plot  # noqa: E402
from dynrnn.analyses import (  # noqa: E402
    find_fixed_points,
    linearise,
    lyapunov_spectrum,
    network_timescale,
)
from dynrnn.models import Ensemble, RateRNNConfig, run  # noqa: E402


@pytest.fixture(scope="module")
def fixed_points():
    """tanh RNN with W = 2 I (3 units): 27 fixed points, 8 stable, 18 saddles, 1 unstable."""
    model = Ensemble(RateRNNConfig(1, 3, 1, bias=False), n_networks=2, seed=0)
    with torch.no_grad():
        model.W_rec.copy_(2.0 * torch.eye(3).expand(2, 3, 3))
        model.W_in.zero_()
    x0 = torch.rand(300, 3, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2
    traj, _ = run(model, torch.zeros(5, 30, 1), torch.randn(2, 5, 3) * 0.3)
    return model, find_fixed_points(model, initial_states=x0), traj.detach()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _scatter_sizes(ax):
    return sorted(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def test_fixed_points_in_pca_space(fixed_points, tmp_path):
    _, ds, traj = fixed_points
    with plot.style():
        ax = plot.plot_fixed_points(ds, network=1, trajectories=traj)
        # one scatter per stability class, sized by the number of points of that class
        assert _scatter_sizes(ax) == [1, 8, 18]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["stable (8)", "saddle (18)", "unstable (1)"]
        # an unstable-direction segment through every saddle / repeller direction
        n_dirs = int(ds.n_unstable.isel(network=1).where(ds.valid.isel(network=1)).sum())
        n_traj = traj.shape[1]
        assert len(ax.lines) == n_traj + n_dirs
        ax.figure.savefig(tmp_path / "fp.pdf")
    assert (tmp_path / "fp.pdf").stat().st_size > 1000


def test_fixed_points_3d_and_shared_basis(fixed_points):
    _, ds, traj = fixed_points
    basis = plot.pca_basis(traj[0], 3)
    ax = plot.plot_fixed_points(ds, 0, n_components=3, basis=basis,
                                show_unstable_directions=False)
    assert ax.name == "3d"
    assert ax.get_zlabel() == "PC 3"
    fig, given_ax = plt.subplots()
    assert plot.plot_fixed_points(ds, 0, ax=given_ax) is given_ax


def test_eigenvalue_spectrum_with_unit_circle(fixed_points):
    _, ds, _ = fixed_points
    ax = plot.plot_eigenvalues(ds, network=0)
    circle = ax.lines[0].get_xydata()
    np.testing.assert_allclose(np.hypot(circle[:, 0], circle[:, 1]), 1.0)
    assert sum(_scatter_sizes(ax)) == 27 * 3
    one = plot.plot_eigenvalues(ds, network=0, fixed_point=0, convention="continuous")
    assert sum(_scatter_sizes(one)) == 3
    # the real parts shown are (lambda - 1) / dt: all negative for a stable point
    offsets = np.concatenate([c.get_offsets() for c in one.collections])
    assert (offsets[:, 0] < 0).all()


def test_eigenvalues_of_a_linearisation(fixed_points):
    model, ds, _ = fixed_points
    lin = linearise(model, ds.points.isel(fixed_point=slice(0, 4)).values)
    ax = plot.plot_eigenvalues(lin, network=1)
    assert sum(_scatter_sizes(ax)) == 4 * 3


def test_lyapunov_spectrum_plot():
    cfgs = [RateRNNConfig(1, 10, 1, init_gain=g) for g in (0.5, 2.5)]
    ds = lyapunov_spectrum(Ensemble(cfgs, seed=0), n_steps=100, burn_in=20, tangent_burn_in=10)
    ax = plot.plot_lyapunov_spectrum(ds)
    ys = [line.get_ydata() for line in ax.lines]
    np.testing.assert_allclose(ys[0], ds.exponents.values[0])
    np.testing.assert_allclose(ys[2], ds.exponents.values.mean(0))  # mean overlay
    assert ax.lines[-1].get_ydata()[0] == 0.0  # zero line
    per_time = plot.plot_lyapunov_spectrum(ds, per_time=True, networks=[1], show_mean=False)
    np.testing.assert_allclose(per_time.lines[0].get_ydata(), ds.exponents_per_time.values[1])


def test_tau_vs_n():
    sizes = (8, 8, 16, 16)
    cfgs = [RateRNNConfig(1, n, 1, tau_init=3.0, leak_form="outside", train_tau=True)
            for n in sizes]
    g = torch.Generator().manual_seed(0)
    states = []
    for n in sorted(set(sizes)):
        m = Ensemble([c for c in cfgs if c.n_units == n], seed=0)
        s, _ = run(m, torch.randn(4, 300, 1, generator=g))
        states.append(network_timescale(s.detach(), m, kind="single"))
    ds = xr.concat(states, dim="network", coords="different", compat="equals",
                   join="outer")
    ax = plot.plot_timescales(ds, x="n_units")
    assert [line.get_label() for line in ax.lines] == [r"$\tau_{net}$", r"single-neuron $\tau$"]
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [8, 16])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [3.0, 3.0])
    with pytest.raises(ValueError, match="'x' parameter"):
        plot.plot_timescales(ds, x="task_N")


def test_style_context_and_bad_input(fixed_points):
    _, ds, _ = fixed_points
    before = matplotlib.rcParams["font.size"]
    with plot.style(**{"font.size": 11}):
        assert matplotlib.rcParams["font.size"] == 11
        assert matplotlib.rcParams["pdf.fonttype"] == 42
        cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        assert cycle[0] == plot.PALETTE["blue"]
    assert matplotlib.rcParams["font.size"] == before
    with pytest.raises(ValueError, match="network"):
        plot.plot_fixed_points(ds, network=5)
    with pytest.raises(ValueError, match="xarray"):
        plot.plot_eigenvalues(np.zeros(3))
    with pytest.raises(ValueError, match="n_components"):
        plot.plot_fixed_points(ds, n_components=4)
    with pytest.raises(ValueError, match="lacks"):
        plot.plot_lyapunov_spectrum(ds)


def test_wrong_kind_of_result_names_needed_and_given_variables():
    """A Lyapunov result given to the fixed-point plot: the error says which variables the plot
    needs, which are missing, and which the given result has."""
    from dynrnn.analyses import lyapunov_spectrum

    model = Ensemble(RateRNNConfig(1, 4, 1), n_networks=2, seed=0)
    lyap = lyapunov_spectrum(model, n_steps=30, burn_in=5, progress=False)
    with pytest.raises(ValueError) as err:
        plot.plot_fixed_points(lyap)
    msg = str(err.value)
    assert "needs the variables ['points', 'stability', 'valid']" in msg
    assert "exponents" in msg or "spectrum" in msg, msg


def test_distance_matrix_hierarchical_order_puts_groups_together():
    """Two interleaved groups of networks (distance 0.1 within, 1 across): the hierarchical
    order draws each group as one block on the diagonal."""
    labels = np.array([0, 1, 0, 1, 0, 1])
    D = np.where(labels[:, None] == labels[None], 0.1, 1.0)
    np.fill_diagonal(D, 0.0)
    ds = xr.Dataset({"dist": (("network", "network_b"), D)})
    ax = plot.plot_distance_matrix(ds)
    order = ax.dynrnn_order
    assert sorted(order) == list(range(6))
    assert len(set(labels[order[:3]])) == 1 and len(set(labels[order[3:]])) == 1
    with pytest.raises(ValueError, match="network_b"):
        plot.plot_distance_matrix(xr.Dataset({"x": (("network",), np.zeros(3))}))


def test_training_history_median_and_band():
    from dynrnn.tasks import FlipFlopTask
    from dynrnn.training import TrainConfig, train

    model = Ensemble(RateRNNConfig(2, 8, 2), n_networks=3, seed=0)
    hist = train(model, FlipFlopTask(n_bits=2, n_steps=20),
                 TrainConfig(n_steps=10, batch_size=4, eval_every=5, progress=False))
    ax = plot.plot_training_history(hist)
    median = [line for line in ax.lines if "median" in line.get_label()]
    assert len(median) == 1
    np.testing.assert_allclose(median[0].get_ydata(), np.median(hist.loss, 0), rtol=1e-6)
    with pytest.raises(ValueError, match="needs the variables"):
        plot.plot_training_history(hist, variable="nope")
