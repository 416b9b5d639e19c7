"""The what/when prediction paradigm: blocks, ground-truth prediction object, determinism."""

import pytest
import torch

from dynrnn.tasks import task_from_dict
from dynrnn.tasks.what_when import WhatWhenTask


def _task(**kw):
    base = dict(
        n_stimuli=3, n_steps=60, cue_time=5, stim_duration=3, block_delays=(20.0, 32.0),
        delay_std=1.5, block_probs=((0.6, 0.3, 0.1), (0.1, 0.3, 0.5)), trials_per_block=100,
    )  # fmt: skip
    base.update(kw)
    return WhatWhenTask(**base)


def test_shapes_determinism_and_roundtrip():
    task = _task()
    a, b = task.sample(50, seed=3), task.sample(50, seed=3)
    assert a.inputs.shape == (50, 60, 4) and a.targets.shape == (50, 60, 3)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, task.sample(50, seed=4).inputs)
    assert task_from_dict(task.to_dict()) == task
    ds = a.to_xarray()
    assert "expected_time" in ds and "probs" in ds


def test_blocks_switch_timing_and_probability():
    task = _task()
    tr = task.sample(300, seed=0)
    info = tr.info
    assert info["timing_block"].tolist() == [0] * 100 + [1] * 100 + [0] * 100
    assert info["expected_time"][:100].eq(25).all() and info["expected_time"][100:200].eq(37).all()
    torch.testing.assert_close(info["probs"][150], torch.tensor([0.1, 0.3, 0.5]))
    # a continued session picks up where the last one stopped
    later = _task(first_trial=100).sample(10, seed=0)
    assert later.info["timing_block"].eq(1).all()


def test_statistics_match_the_prediction_object():
    task = _task(trials_per_block=10_000)
    tr = task.sample(6000, seed=1)
    ident, delay = tr.info["identity"], tr.info["delay"]
    freq = torch.stack([(ident == s).double().mean() for s in range(3)])
    torch.testing.assert_close(
        freq, torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64), atol=0.02, rtol=0
    )
    assert (ident == -1).double().mean().item() == pytest.approx(0.0, abs=1e-9)  # sums to 1
    assert delay.double().mean().item() == pytest.approx(20.0, abs=0.1)
    assert delay.double().std().item() == pytest.approx(1.5, abs=0.1)
    # stimuli appear exactly at stim_time for stim_duration steps on the identity's channel
    b = 0
    t0, s = tr.info["stim_time"][b].item(), ident[b].item()
    assert tr.inputs[b, t0 : t0 + 3, 1 + s].eq(1).all() and tr.inputs[b, :, 1:].sum() == 3
    assert tr.inputs[b, 5:7, 0].eq(1).all() and tr.inputs[b, :, 0].sum() == 2
    # the targets are the ideal predictions: their trial average equals the empirical average
    emp = tr.info["stimuli"].mean(0)
    torch.testing.assert_close(tr.targets.mean(0), emp, atol=0.03, rtol=0)
    peak = tr.targets[0].sum(1).argmax().item()
    assert abs(peak - (25 + 1)) <= 1  # expected onset + half the stimulus duration
    heights = tr.targets[0].max(0).values
    assert heights[0] > heights[1] > heights[2]


def test_omissions():
    task = _task(block_probs=((0.5, 0.2, 0.1),), trials_per_block=10_000)
    tr = task.sample(4000, seed=2)
    omitted = tr.info["identity"] == -1
    assert omitted.double().mean().item() == pytest.approx(0.2, abs=0.03)
    assert tr.info["stim_time"][omitted].eq(-1).all()
    assert tr.inputs[omitted][..., 1:].sum() == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"block_probs": ((0.7, 0.7, 0.1),)}, "'block_probs' parameter"),
        ({"block_probs": ((0.5, 0.5),)}, "'block_probs' parameter"),
        ({"block_delays": (58.0,)}, "'block_delays' parameter"),
        ({"block_delays": ()}, "'block_delays' parameter"),
        ({"delay_std": -1.0}, "'delay_std' parameter"),
        ({"n_stimuli": 0}, "'n_stimuli' parameter"),
        ({"trials_per_block": 0}, "'trials_per_block' parameter"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _task(**kwargs)
