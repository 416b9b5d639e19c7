"""Progress bars of the long loops: with ``progress=True`` a tqdm bar goes to stderr, with
``progress=False`` nothing is written; a run that stops early ends its bar full."""

import pytest
import torch

from dynrnn.analyses import BestCheckpoint, find_fixed_points, lyapunov_spectrum
from dynrnn.analyses.lyapunov import max_lyapunov_two_trajectory
from dynrnn.analyses.similarity import dsa, weight_distance
from dynrnn.models import (
    PLRNN,
    EchoStateConfig,
    EchoStateNetwork,
    Ensemble,
    IzhikevichConfig,
    IzhikevichReservoir,
    PLRNNConfig,
    RateRNNConfig,
)
from dynrnn.tasks import FlipFlopTask
from dynrnn.training import TrainConfig, force_train, train
from dynrnn.training.gtf import GTFConfig, train_gtf


@pytest.fixture(autouse=True)
def bars_on(monkeypatch):
    # tests/conftest.py silences the bars of the whole test run; these tests look at them
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def _final(err: str) -> str:
    """The last state of the last bar written (tqdm redraws a bar after '\\r')."""
    return err.strip().split("\n")[-1].split("\r")[-1]


def _check(capsys, fn, *names):
    """fn(progress) writes a bar naming each of ``names`` with True, and nothing with False."""
    capsys.readouterr()
    fn(True)
    err = capsys.readouterr().err
    for name in names:
        assert name in err, (name, err)
    assert "100%" in _final(err), err
    fn(False)
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""
    return err


def _rnn(K=2, N=6):
    return Ensemble(RateRNNConfig(1, N, 1), n_networks=K, seed=0)


def test_train_bar_and_early_stop(capsys):
    task = FlipFlopTask(n_bits=1, n_steps=10)
    # a criterion every network meets at the first evaluation: training stops after 4 of 40
    cfg = TrainConfig(n_steps=40, batch_size=4, eval_every=4, eval_batch_size=8, criterion=1e3)
    capsys.readouterr()
    hist = train(_rnn(), task, cfg)
    err = capsys.readouterr().err
    assert hist.loss.shape[1] == 4 and hist.reached.all()
    final = _final(err)
    assert final.startswith("train") and "100%" in final and "4/4" in final, err
    assert "reached 2/2" in final
    train(_rnn(), task, cfg, progress=False)
    train(_rnn(), task, TrainConfig(n_steps=3, batch_size=4, progress=False))
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""
    with pytest.raises(ValueError, match="progress"):
        train(_rnn(), task, cfg, progress="yes")


def test_train_shows_evaluations(capsys):
    task = FlipFlopTask(n_bits=1, n_steps=10)
    cfg = TrainConfig(n_steps=4, batch_size=4, eval_every=2, eval_batch_size=8, criterion=0.0)
    _check(capsys, lambda p: train(_rnn(), task, cfg, progress=p), "train", "evaluating", "4/4")


def test_train_gtf_bar_checkpoint_and_stop(capsys):
    data = torch.sin(torch.linspace(0, 20, 200))[:, None].repeat(1, 2)
    cfg = GTFConfig(n_iterations=6, seq_len=10, batch_size=2)

    def fit(progress):
        m = PLRNN(PLRNNConfig(3, 2), n_networks=2)
        train_gtf(m, data, cfg, progress=progress, callback=BestCheckpoint(data, every=3))

    _check(capsys, fit, "train_gtf", "evaluating", "6/6")
    # the callback stops training at the first evaluation: the bar ends at 3/3
    ckpt = BestCheckpoint(data, every=3, stop_below=(1e9, 1e9))
    hist = train_gtf(PLRNN(PLRNNConfig(3, 2), n_networks=2), data, cfg, callback=ckpt)
    final = _final(capsys.readouterr().err)
    assert hist.stopped and len(hist.loss) == 3
    assert "100%" in final and "3/3" in final, final


def test_fixed_points_bars(capsys):
    def fp(progress):
        find_fixed_points(
            _rnn(), n_initial=8, first_order_iters=5, max_newton_iters=5, progress=progress
        )

    _check(capsys, fp, "fixed points: Adam", "fixed points: Newton")


def test_lyapunov_bars(capsys):
    m = _rnn(N=4)
    kw = dict(n_steps=10, burn_in=5)
    _check(
        capsys,
        lambda p: lyapunov_spectrum(m, tangent_burn_in=5, progress=p, **kw),
        "lyapunov_spectrum",
        "20/20",
    )
    _check(
        capsys,
        lambda p: max_lyapunov_two_trajectory(m, transient=5, progress=p, **kw),
        "max_lyapunov_two_trajectory",
        "20/20",
    )


def test_similarity_bars(capsys):
    g = torch.Generator().manual_seed(0)
    states = torch.randn(3, 1, 40, 4, generator=g, dtype=torch.float64).cumsum(2)
    _check(
        capsys,
        lambda p: dsa(states, n_delays=2, rank=3, max_iters=20, progress=p),
        "procrustes_vector_fields",
        "eigenvalue_wasserstein",
        "3/3",
    )
    _check(
        capsys,
        lambda p: weight_distance(_rnn(K=2, N=4), n_restarts=0, progress=p),
        "weight_distance",
        "1/1",
    )


def _izh(K=1):
    return IzhikevichReservoir(IzhikevichConfig(n_excitatory=16, n_inhibitory=4), n_networks=K)


def test_simulate_bar_and_chunks_for_it(capsys, monkeypatch):
    m = _izh()
    _check(capsys, lambda p: m.simulate(50, progress=p), "simulate", "50/50")
    # without inputs the C loop runs all steps in one call; for the bar it is cut into chunks,
    # which must not change the spikes (here 100-step chunks, the default being ~2e7
    # neuron-steps)
    import dynrnn.models.spiking as spiking

    monkeypatch.setattr(spiking, "_BAR_CHUNK_NEURON_STEPS", 100 * m.n_neurons)
    a = m.simulate(450, seed=3, progress=False)
    b = m.simulate(450, seed=3, progress=True)
    assert torch.equal(a.spikes, b.spikes)
    assert torch.equal(a.final_state, b.final_state)


def test_force_bar(capsys):
    esn = EchoStateNetwork(
        EchoStateConfig(n_units=20, n_inputs=0, n_outputs=1, feedback_scaling=1.0)
    )
    f = torch.sin(torch.linspace(0, 6, 30))[:, None]
    _check(capsys, lambda p: force_train(esn, f, progress=p), "force_train", "30/30")
    spk = _izh()
    _check(capsys, lambda p: force_train(spk, f, progress=p), "force_train", "30/30")


def test_bars_respect_tqdm_disable(capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    capsys.readouterr()
    lyapunov_spectrum(_rnn(N=4), n_steps=5, burn_in=2, tangent_burn_in=2)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("TQDM_DISABLE", "0")
    lyapunov_spectrum(_rnn(N=4), n_steps=5, burn_in=2, tangent_burn_in=2)
    assert "lyapunov_spectrum" in capsys.readouterr().err
