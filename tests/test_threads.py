"""Threads on a shared machine: importing dynrnn makes OpenMP's waiting threads sleep instead of
spin (``OMP_WAIT_POLICY=PASSIVE``) when torch is not loaded yet, and keeps a value the user set.
(The timing that motivates it is in ``dynrnn/__init__.py`` and ``benchmarks/busy.py``; tests never
assert wall-clock time.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PRINT = "import os; {imports}; print(os.environ.get('OMP_WAIT_POLICY'))"


def _policy(imports: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", PRINT.format(imports=imports)], env=environ,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_sets_passive_wait_policy_before_torch_loads():
    assert _policy("import dynrnn") == "PASSIVE"
    assert _policy("import dynrnn.models") == "PASSIVE"  # the package's __init__ runs first


@pytest.mark.parametrize("value", ["ACTIVE", "passive"])
def test_users_value_is_kept(value):
    assert _policy("import dynrnn", OMP_WAIT_POLICY=value) == value


def test_nothing_is_set_once_torch_is_loaded():
    # OpenMP has read its environment already: setting the variable then would only mislead
    assert _policy("import torch; import dynrnn") == "None"


def test_thread_probe_keeps_the_count_or_falls_back_to_one(monkeypatch):
    """The probe returns the requested count or 1 (never anything else), keeps torch's thread
    count as it was, returns the request untouched when turned off, and the context restores
    the count after the block."""
    import torch

    from dynrnn.kernels import _threads

    before = torch.get_num_threads()
    assert _threads.usable_threads(1) == 1
    assert _threads.usable_threads(2) in (1, 2)
    assert torch.get_num_threads() == before
    monkeypatch.setenv("DYNRNN_THREAD_PROBE", "0")
    assert _threads.usable_threads(3) == 3
    monkeypatch.delenv("DYNRNN_THREAD_PROBE")
    # a machine whose threaded burst is slow -> one thread inside the block, restored after
    times = iter([1.0, 5.0, 5.0])  # single, warm-up, threaded
    monkeypatch.setattr(_threads, "_burst", lambda x, cap=None: next(times))
    torch.set_num_threads(2)
    try:
        with _threads.busy_machine_threads() as n:
            assert n == 1 and torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        times = iter([1.0, 1.0, 1.0])
        monkeypatch.setattr(_threads, "_burst", lambda x, cap=None: next(times))
        with _threads.busy_machine_threads() as n:
            assert n == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_barrier_probe_is_reused_for_a_second_then_measured_again(monkeypatch):
    """The ESN loop's probe answer is cached per requested count for BARRIER_PROBE_TTL seconds:
    a second call within the TTL does not probe, a call after it probes again."""
    from dynrnn.kernels import _threads

    calls = []

    def fake_probe(n):
        calls.append(n)
        return 1 if len(calls) == 1 else n

    clock = iter([100.0, 100.0, 100.5, 102.0, 102.0])
    monkeypatch.setattr(_threads, "usable_threads", fake_probe)
    monkeypatch.setattr(_threads, "_clock", lambda: next(clock))
    monkeypatch.setattr(_threads, "_BARRIER_CACHE", {})
    assert _threads.barrier_threads(2) == 1  # probed at t=100
    assert _threads.barrier_threads(2) == 1  # t=100.5: cached
    assert _threads.barrier_threads(2) == 2  # t=102: probed again
    assert calls == [2, 2]


def test_iteration_threads_follow_the_measured_iterations(monkeypatch):
    """On a fake clock where a threaded iteration takes 3x a single-threaded one (a busy
    machine), the loop runs on one thread except at its probes, which grow sparser (interval
    doubling up to the cap); once threads get 2x faster (the machine is idle again) the next
    probe switches to them and the interval returns to its base."""
    import torch

    from dynrnn.kernels import _threads

    monkeypatch.delenv("DYNRNN_THREAD_PROBE", raising=False)
    before = torch.get_num_threads()
    now = [0.0]
    try:
        torch.set_num_threads(2)
        tuner = _threads.IterationThreads(2, interval=4, max_interval=16, clock=lambda: now[0])
        counts = []
        for i in range(60):
            n = tuner.tick()
            counts.append(n)
            assert torch.get_num_threads() == n
            busy = i < 40
            now[0] += (3.0 if n > 1 else 1.0) if busy else (0.5 if n > 1 else 1.0)
        threaded_while_busy = [i for i in range(40) if counts[i] == 2]
        assert threaded_while_busy == [0, 2, 12, 30]  # warm-up at the entry count, then probes
        assert [h[0] for h in tuner.history] == [3, 13, 31, 49, 55]
        assert [h[3] for h in tuner.history] == [1, 1, 1, 2, 2]
        assert counts[50:53] == [2, 2, 2] and counts[53] == 1  # probe again after 4 iterations
        # entry probe chose one thread: the first check waits 2 x interval
        torch.set_num_threads(1)
        tuner = _threads.IterationThreads(2, interval=4, clock=lambda: now[0])
        assert [tuner.tick() for _ in range(10)] == [1] * 8 + [1, 2]
    finally:
        torch.set_num_threads(before)


def test_iteration_threads_do_nothing_for_one_thread_or_when_turned_off(monkeypatch):
    """With one thread requested, or DYNRNN_THREAD_PROBE=0, tick never changes the count; an
    entry point's block restores a count changed inside it."""
    import torch

    from dynrnn.kernels import _threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("DYNRNN_THREAD_PROBE", "0")
        tuner = _threads.IterationThreads(2, clock=lambda: 0.0)
        assert [tuner.tick() for _ in range(5)] == [2] * 5
        monkeypatch.delenv("DYNRNN_THREAD_PROBE")
        tuner = _threads.IterationThreads(1, clock=lambda: 0.0)
        assert [tuner.tick() for _ in range(5)] == [2] * 5  # untouched: the caller's count
        monkeypatch.setattr(_threads, "usable_threads", lambda n: n)
        with _threads.busy_machine_threads():
            torch.set_num_threads(1)  # e.g. an IterationThreads loop's last choice
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
