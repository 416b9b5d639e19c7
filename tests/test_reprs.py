"""Notebook representations: every public object the user holds (models and ensembles,
Trials, Zoo, training histories) has a useful ``__repr__`` and a well-formed ``_repr_html_``."""

from __future__ import annotations

import html.parser

import numpy as np
import pytest
import torch

from dynrnn.models import (
    GRU,
    PLRNN,
    EchoStateConfig,
    EchoStateNetwork,
    Ensemble,
    GRUConfig,
    IzhikevichConfig,
    IzhikevichReservoir,
    PLRNNConfig,
    RateRNNConfig,
)
from dynrnn.tasks import FlipFlopTask
from dynrnn.training import TrainConfig, train
from dynrnn.training.gtf import GTFConfig, train_gtf
from dynrnn.zoo import Zoo


class _Checker(html.parser.HTMLParser):
    """Fails on unbalanced tags (well-formedness of the fragments we emit)."""

    VOID = {"br", "hr", "img", "meta", "input"}

    def __init__(self):
        super().__init__()
        self.stack = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack)
        self.stack.pop()


def _well_formed(fragment: str) -> str:
    checker = _Checker()
    checker.feed(fragment)
    checker.close()
    assert checker.stack == [], checker.stack
    return fragment


MODELS = [
    lambda: Ensemble([RateRNNConfig(3, 16, 3, init_gain=g) for g in (0.9, 1.2, 1.5)], seed=0),
    lambda: GRU(GRUConfig(2, 8, 1), n_networks=2),
    lambda: PLRNN(PLRNNConfig(3, 3)),
    lambda: EchoStateNetwork(EchoStateConfig(n_units=20, n_inputs=1, n_outputs=1)),
    lambda: IzhikevichReservoir(IzhikevichConfig(n_excitatory=8, n_inhibitory=2)),
]


@pytest.mark.parametrize("make", MODELS)
def test_model_reprs(make):
    model = make()
    text = repr(model)
    assert text.startswith(type(model).__name__)
    assert f"networks (K): {model.n_networks}" in text
    assert f"units (N): {model.n_units}" in text
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert f"trainable parameters: {n:,}" in text
    page = _well_formed(model._repr_html_())
    assert type(model).__name__ in page and f"{n:,}" in page


def test_varying_hyperparameters_are_listed():
    model = MODELS[0]()
    assert "init_gain: 0.9, 1.2, 1.5 (3 values)" in repr(model)
    assert "seeds: 0, 1, 2 (3 values)" in repr(model)


def test_trials_history_zoo_reprs(tmp_path):
    task = FlipFlopTask(n_bits=2, n_steps=30)
    trials = task.sample(5, seed=0)
    text = repr(trials)
    assert text.startswith("Trials: 5 trials of 30 steps") and "mask" in text
    assert len(text) < 2000  # a summary, not the tensors
    _well_formed(trials._repr_html_())

    model = Ensemble(RateRNNConfig(2, 8, 2), n_networks=2, seed=0)
    hist = train(model, task, TrainConfig(n_steps=6, batch_size=4, eval_every=3))
    assert "History: 2 networks, 6 steps" in repr(hist)
    _well_formed(hist._repr_html_())

    zoo = Zoo(tmp_path / "zoo")
    assert "does not exist" in zoo._repr_html_()
    zoo.add(model, task=task)
    zoo.add(GRU(GRUConfig(2, 4, 2), n_networks=3), task=task)
    page = _well_formed(zoo._repr_html_())
    assert "Zoo: 5 networks" in page and "gru" in page.lower()

    x = torch.as_tensor(np.sin(np.linspace(0, 30, 400))[:, None].repeat(3, 1),
                        dtype=torch.float32)
    from dynrnn.models import ShallowPLRNN, ShallowPLRNNConfig

    sh = ShallowPLRNN(ShallowPLRNNConfig(3, 3, n_hidden=8), n_networks=2)
    gh = train_gtf(sh, x, GTFConfig(n_iterations=3, seq_len=20, batch_size=2), progress=False)
    assert "GTFHistory: 3 iterations" in repr(gh)
    _well_formed(gh._repr_html_())


def test_html_escapes_user_text(tmp_path):
    from dynrnn._repr import html_table

    page = html_table("<script>", [("a<b", "x&y")])
    assert "<script>" not in page and "&lt;script&gt;" in page and "x&amp;y" in page
    _well_formed(page)
