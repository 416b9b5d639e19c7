"""dynrnn.batch.executors: the same outcomes in process, in local processes and on Dask; a
failing item is reported and the others finish; workers do not oversubscribe threads."""

import os

import pytest

from dynrnn.batch.executors import EXECUTORS, ChunkOutcome, default_threads, map_chunks


def _square_or_fail(x):
    """Module-level, so it pickles for the process and Dask executors."""
    import torch

    if x == 3:
        raise ValueError("item three fails")
    return x * x, torch.get_num_threads()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_every_item_once_failures_reported_threads_capped(executor):
    kwargs = {} if executor == "inprocess" else {"workers": 2}
    out = list(map_chunks(_square_or_fail, range(6), executor=executor, **kwargs))
    assert sorted(i for i, _ in out) == list(range(6))  # each item exactly once
    by = dict(out)
    assert all(isinstance(o, ChunkOutcome) for o in by.values())
    assert not by[3].ok and by[3].error == "ValueError: item three fails"
    assert "Traceback" in by[3].traceback and by[3].value is None
    for i in (0, 1, 2, 4, 5):
        assert by[i].ok and by[i].value[0] == i * i
        if executor != "inprocess":  # workers x threads <= cores
            assert by[i].value[1] == default_threads(2) <= max(1, (os.cpu_count() or 1) // 2)


def test_explicit_threads_per_worker():
    out = dict(map_chunks(_square_or_fail, [1, 2], executor="processes", workers=2,
                          threads_per_worker=1))
    assert [out[i].value[1] for i in (0, 1)] == [1, 1]


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"executor": "threads"}, "executor"),
        ({"executor": "inprocess", "workers": 2}, "workers"),
        ({"executor": "processes", "workers": 0}, "workers"),
        ({"executor": "processes", "scheduler": "tcp://x:1"}, "scheduler"),
        ({"executor": "dask", "scheduler": "localhost"}, "scheduler"),
        ({"executor": "processes", "threads_per_worker": 0}, "threads_per_worker"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, word):
    with pytest.raises(ValueError, match=word):
        list(map_chunks(_square_or_fail, [1], **kwargs))
