"""Config dataclasses: constraints declared once per field, validated by one shared validator.

Every config (tasks, models, training, readouts) declares a :class:`~dynrnn._validation.Constraint`
per field in its ``constraints`` dict; :func:`~dynrnn._validation.validate_config` checks and
normalises them. These tests read the declared constraints and derive bad values from them, so
a field added later is covered as soon as it declares its constraint.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynrnn import models as M
from dynrnn import tasks as TS
from dynrnn import training as TR
from dynrnn._validation import (
    Bool,
    Choice,
    Float,
    Floats,
    Int,
    OrNone,
    ParameterTypeError,
    config_constraints,
)
from dynrnn.tasks.chaotic import Lorenz63, Lorenz96, Rossler
from dynrnn.training.readouts import ThreeFactorConfig, ThreeFactorReadout
from dynrnn.zoo import Zoo

#: every config class with the smallest valid arguments
CONFIGS = {
    M.RateRNNConfig: dict(n_inputs=2, n_units=3, n_outputs=1),
    M.GRUConfig: dict(n_inputs=2, n_units=3, n_outputs=1),
    M.LSTMConfig: dict(n_inputs=2, n_units=3, n_outputs=1),
    M.PLRNNConfig: dict(n_latent=3, n_outputs=2),
    M.ShallowPLRNNConfig: dict(n_latent=3, n_outputs=2, n_hidden=4),
    M.ALRNNConfig: dict(n_latent=3, n_outputs=2, n_pwl=2),
    M.EchoStateConfig: dict(n_units=10),
    M.IzhikevichConfig: dict(n_excitatory=8, n_inhibitory=2),
    TS.FlipFlopTask: {},
    TS.SineWaveTask: {},
    TS.PathIntegrationTask: dict(boundary=2.0),
    TS.WhatWhenTask: {},
    TS.DelayedDiscriminationTask: {},
    TS.ContinualPatternTask: {},
    TS.ParityTask: {},
    TS.DMSTask: {},
    TS.ChaoticSystemTask: dict(n_steps=10),
    Lorenz63: {},
    Rossler: {},
    Lorenz96: {},
    TR.TrainConfig: {},
    TR.GTFConfig: {},
    TR.Curriculum: dict(n_levels=3),
    ThreeFactorConfig: {},
    ThreeFactorReadout: dict(n_features=4, n_stimuli=2),
    TR.HLOPConfig: {},
}

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bound(bound, config):
    if isinstance(bound, str):
        return getattr(config, bound)
    if callable(bound):
        return bound(config)
    return bound


def _scalar(constraint):
    """The scalar constraint under OrNone / Floats, and whether None is allowed."""
    allows_none = False
    while isinstance(constraint, (OrNone, Floats)):
        allows_none |= isinstance(constraint, OrNone)
        constraint = constraint.inner
    return constraint, allows_none


def _bad_values(constraint, config):
    """``(wrong-type values, out-of-range values)`` for a field of ``config``."""
    c, allows_none = _scalar(constraint)
    none = [] if allows_none else [None]
    if isinstance(c, Int):
        low, high = _bound(c.low, config), _bound(c.high, config)
        wrong = ["3", 2.0, 1.5, True, np.bool_(False), [1], *none]
        out = ([low - 1] if low is not None else []) + ([high + 1] if high is not None else [])
        return wrong, out
    if isinstance(c, Float):
        low, high = _bound(c.low, config), _bound(c.high, config)
        wrong = ["0.5", True, np.bool_(True), {"a": 1}, *none]
        out = [math.nan]
        if low is not None:
            out += [low - 1.0] + ([] if c.low_inclusive else [low])
        if high is not None:
            out += [high + 1.0] + ([] if c.high_inclusive else [high])
        if high is None:
            out += [math.inf]  # an open range: inf is not a float "in the range"
        if low is None:
            out += [-math.inf]
        return wrong, out
    if isinstance(c, Bool):
        return [0, 1, "True", 1.0, *none], []
    if isinstance(c, Choice):
        return [], ["no-such-choice", 12345, *none]
    return [], []  # Check / IntPair / FloatPair: covered by the configs' own tests


FIELDS = [
    (cls, name)
    for cls in CONFIGS
    for name, constraint in config_constraints(cls).items()
    if any(_bad_values(constraint, cls(**CONFIGS[cls])))
]


def test_every_config_field_declares_a_constraint():
    for cls, kwargs in CONFIGS.items():
        declared = config_constraints(cls)
        init_fields = {f.name for f in dataclasses.fields(cls) if f.init}
        assert init_fields == set(declared), (cls.__name__, init_fields ^ set(declared))
        cls(**kwargs)  # the base arguments are valid


@SETTINGS
@given(data=st.data())
def test_bad_field_values_name_the_field(data):
    cls, name = data.draw(st.sampled_from(FIELDS), label="field")
    base = CONFIGS[cls]
    constraint = config_constraints(cls)[name]
    wrong, out = _bad_values(constraint, cls(**base))
    kind = data.draw(st.sampled_from([k for k, v in (("type", wrong), ("range", out)) if v]))
    value = data.draw(st.sampled_from(wrong if kind == "type" else out), label="value")
    expected = ParameterTypeError if kind == "type" else ValueError
    with pytest.raises(expected) as info:
        cls(**{**base, name: value})
    message = str(info.value)
    assert f"'{name}' parameter of {cls.__name__}" in message
    if kind == "type":
        assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    else:
        assert not isinstance(info.value, TypeError)


@SETTINGS
@given(data=st.data())
def test_numbers_are_stored_normalised(data):
    """A float field given an int (or numpy number) stores a Python float; an int field given a
    numpy int stores a Python int; equal values give equal configs."""
    cls, name = data.draw(st.sampled_from(FIELDS), label="field")
    base = CONFIGS[cls]
    config = cls(**base)
    scalar, _ = _scalar(config_constraints(cls)[name])
    value = getattr(config, name)
    if isinstance(scalar, Float) and isinstance(value, float) and value.is_integer():
        given_as = data.draw(st.sampled_from([int(value), np.int64(int(value)), np.float32(value)]))
        other = cls(**{**base, name: given_as})
        assert type(getattr(other, name)) is float
        assert other == config
    elif isinstance(scalar, Int) and isinstance(value, int):
        other = cls(**{**base, name: np.int64(value)})
        assert type(getattr(other, name)) is int
        assert other == config


def test_float_fields_given_ints_equal_floats_and_zoo_ids(tmp_path):
    a = M.RateRNNConfig(2, 3, 1, tau_init=2, tau_jitter=1, init_gain=1)
    b = M.RateRNNConfig(2, 3, 1, tau_init=2.0, tau_jitter=1.0, init_gain=1.0)
    assert a == b and hash(a) == hash(b)
    assert type(a.tau_init) is float and type(a.tau_jitter) is float
    zoo = Zoo(tmp_path / "zoo", create=True)
    ids_a = zoo.add(M.RateRNN(a, n_networks=2, seed=0))
    ids_b = zoo.add(M.RateRNN(b, n_networks=2, seed=0))
    assert ids_a == ids_b
    assert len(zoo) == 2  # one entry of 2 networks: the second add found the first


def test_normalisation_keeps_float_values_as_given():
    """Zoo ids hash the configs' JSON: a config whose fields were already floats (or ints for
    int fields) must be stored exactly as given, so existing ids do not change."""
    for cls, kwargs in CONFIGS.items():
        config = cls(**kwargs)
        default = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls) if f.init}
        again = cls(**default)
        assert again == config
        for name, value in default.items():
            assert type(getattr(again, name)) is type(value), (cls.__name__, name)
    fields = dict(n_inputs=2, n_units=3, n_outputs=1, tau_init=2.5, dt=0.1)
    config = M.RateRNNConfig(**fields)
    for name, value in fields.items():
        stored = getattr(config, name)
        assert stored == value and type(stored) is type(value)


def test_float_given_for_int_field_is_a_type_error():
    with pytest.raises(ParameterTypeError, match="'n_units' parameter of RateRNNConfig"):
        M.RateRNNConfig(2, 3.0, 1)
    with pytest.raises(ParameterTypeError, match="'n_steps' parameter of TrainConfig"):
        TR.TrainConfig(n_steps=10.0)


def test_messages_keep_the_scikit_learn_form():
    with pytest.raises(ValueError) as info:
        M.RateRNNConfig(2, 3, 1, tau_init=math.inf)
    assert str(info.value) == (
        "The 'tau_init' parameter of RateRNNConfig must be a float in the range [1, inf). "
        "Got inf instead."
    )
    with pytest.raises(ValueError) as info:
        TS.FlipFlopTask(p_pulse=1.5)
    assert str(info.value) == (
        "The 'p_pulse' parameter of FlipFlopTask must be a float in the range [0, 1]. "
        "Got 1.5 instead."
    )
    with pytest.raises(ValueError, match=r"'n_pwl' parameter of ALRNNConfig .* \[0, 3\]"):
        M.ALRNNConfig(3, 2, n_pwl=4)  # a bound given by another field (n_latent)
    with pytest.raises(ValueError, match=r"'lr_end' parameter of GTFConfig .* \(0, 0.001\]"):
        TR.GTFConfig(lr=1e-3, lr_end=1e-2)


def test_cross_field_relations():
    with pytest.raises(ValueError, match="'dale' parameter of RateRNNConfig"):
        M.RateRNNConfig(2, 3, 1, dale=True)  # tanh rates can be negative
    with pytest.raises(ValueError, match="'n_outputs' parameter of PLRNNConfig"):
        M.PLRNNConfig(2, 3)
    with pytest.raises(ValueError, match="'dt' parameter of IzhikevichConfig"):
        M.IzhikevichConfig(dt=0.8, scheme="euler")
    with pytest.raises(ValueError, match="'n_steps' parameter of ContinualPatternTask"):
        TS.ContinualPatternTask(n_dims=10, n_steps=3, presentation="chunks")


def test_sequences_are_stored_as_tuples():
    cfg = TR.TrainConfig(lr=[1e-3, 2], weight_decay=[0, 0.1])
    assert cfg.lr == (1e-3, 2.0) and type(cfg.lr[1]) is float
    assert cfg.weight_decay == (0.0, 0.1)
    with pytest.raises(ValueError, match="'lr' parameter of TrainConfig must not be empty"):
        TR.TrainConfig(lr=[])
    task = TS.DelayedDiscriminationTask(delay_range=[3, 4], f_range=[2, 10])
    assert task.delay_range == (3, 4) and task.f_range == (2.0, 10.0)
