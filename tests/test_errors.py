"""Bad arguments at the door of every public function.

For each public entry point, hypothesis draws bad values of one argument at a time -- wrong
shapes (wrong N, K or I, a missing or extra dim, empty dims), wrong types (strings, dicts,
complex tensors, floats for ints, non-bools for flags), out-of-range values (negative counts,
zero steps, negative seeds, indices past the end) and NaN / inf -- and the call must raise
ValueError or TypeError whose message names that argument, never a raw torch RuntimeError,
IndexError, AttributeError or numpy error (and never crash the interpreter in a C kernel).

Each call is on a tiny model (K=2 networks of N=3 units, I=2 inputs, T <= 6 steps), so an
example takes milliseconds. The base call of every case (all arguments valid) is run once in
``test_base_calls_are_valid`` so that an error is always caused by the bad argument.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dynrnn
from dynrnn import analyses as A
from dynrnn import kernels as KN
from dynrnn import models as M
from dynrnn import plot as P
from dynrnn import tasks as TS
from dynrnn import training as TR
from dynrnn import zoo as Z
from dynrnn._validation import ParameterTypeError

K, N, I, O = 2, 3, 2, 1
B, T = 2, 4

EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.differing_executors],
)


# =============================================================================== fixtures
def _randn(*shape, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return torch.randn(shape, generator=g).to(dtype)


RATE = M.Ensemble(M.RateRNNConfig(n_inputs=I, n_units=N, n_outputs=O), n_networks=K, seed=0)
GRU = M.Ensemble(M.GRUConfig(n_inputs=I, n_units=N, n_outputs=O), n_networks=K)
PLRNN_IN = M.PLRNN(M.PLRNNConfig(3, 2, n_inputs=I), n_networks=K)
PLRNN = M.PLRNN(M.PLRNNConfig(3, 2), n_networks=K)  # autonomous, 2 observations
ALRNN = M.ALRNN(M.ALRNNConfig(3, 2, n_pwl=2), n_networks=K)
ESN = M.EchoStateNetwork(M.EchoStateConfig(n_units=10, n_inputs=1, n_outputs=1), n_networks=K)
TASK = TS.FlipFlopTask(n_bits=2)
TRIALS = TASK.sample(3, 0)
FF_MODEL = M.Ensemble(M.RateRNNConfig(2, 3, 2), n_networks=K)
SERIES = np.random.default_rng(0).normal(size=(30, 2))
LATENT = _randn(K, 6, 3, dtype=torch.float64)

FP = A.find_fixed_points(RATE, n_initial=8, first_order_iters=2, max_newton_iters=3,
                         progress=False)
LYA = A.lyapunov_spectrum(RATE, n_steps=3, burn_in=1, tangent_burn_in=1, progress=False)
TS_DS = A.network_timescale(_randn(K, 2, 20, N, dtype=torch.float64))
REPORT = A.degeneracy_report(FF_MODEL, TASK, n_trials=2, levels=("behaviour",))
SYMBOLS = A.symbol_sequence(ALRNN, LATENT)
GRAPH = A.symbolic_graph(ALRNN, LATENT)


# =============================================================================== strategies
#: values that are no number, tensor or flag at all
JUNK = st.sampled_from(["abc", b"xy", {"a": 1}, object(), [1, "a"], {1, 2}])


def ints(low: int | None = None, high: int | None = None) -> st.SearchStrategy:
    """Bad values of an int parameter in [low, high]: out of range or not an int."""
    parts = [st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3),
             st.booleans(), JUNK, st.just(torch.tensor([1, 2]))]
    if low is not None:
        parts.append(st.integers(max_value=low - 1, min_value=low - 10**6))
    if high is not None:
        parts.append(st.integers(min_value=high + 1, max_value=high + 10**6))
    return st.one_of(parts)


def floats(low: float | None = None, high: float | None = None, *, low_open=False,
           high_open=False) -> st.SearchStrategy:
    """Bad values of a finite float parameter: NaN, +-inf, out of range or not a number."""
    parts = [st.sampled_from([math.nan, math.inf, -math.inf]), st.text(max_size=3),
             st.booleans(), JUNK, st.just([1.0, 2.0])]
    if low is not None:
        top = low if low_open else low - 1e-6 * max(1.0, abs(low))
        parts.append(st.floats(min_value=min(-1e9, 10 * top), max_value=top, allow_nan=False))
    if high is not None:
        bottom = high if high_open else high + 1e-6 * max(1.0, abs(high))
        parts.append(st.floats(min_value=bottom, max_value=max(1e9, 10 * bottom),
                               allow_nan=False))
    return st.one_of(parts)


def bools(none_ok: bool = False) -> st.SearchStrategy:
    parts = [st.integers(), st.text(max_size=3), JUNK, st.just(np.array([True, False]))]
    if not none_ok:
        parts.append(st.none())
    return st.one_of(parts)


SEEDS = st.one_of(st.integers(max_value=-1, min_value=-10**6), st.floats(),
                  st.text(min_size=1, max_size=3), st.booleans(),
                  st.lists(st.integers(), max_size=2))


def choices(valid) -> st.SearchStrategy:
    return st.one_of(st.text(max_size=6).filter(lambda t: t not in valid),
                     st.integers(min_value=-3, max_value=99).filter(lambda i: i not in valid),
                     st.none())


def index(size: int, negative_ok: bool = True) -> st.SearchStrategy:
    """Bad positions among ``size`` (Python-style negative positions allowed if negative_ok)."""
    lowest = -size if negative_ok else 0
    return st.one_of(st.integers(min_value=size, max_value=size + 100),
                     st.integers(min_value=lowest - 100, max_value=lowest - 1),
                     st.floats(), st.text(min_size=1, max_size=2), st.booleans())


def _fits(shape, layouts, sizes, pred=None) -> bool:
    """Whether ``shape`` matches one of ``layouts`` (the convention of check_shape: an int is
    that size, a name in ``sizes`` that size, ``"X|1"`` that size or 1, any other name >= 1)."""
    for lay in layouts:
        if len(lay) != len(shape):
            continue
        ok = True
        for d, n in zip(lay, shape):
            if isinstance(d, int):
                ok = n == d
            elif d.endswith("|1"):
                ok = n == 1 or n == sizes.get(d[:-2], n if n >= 1 else -1)
            elif d in sizes:
                ok = n == sizes[d]
            else:
                ok = n >= 1
            if not ok:
                break
        if ok and (pred is None or pred(shape)):
            return True
    return False


def tensors(layouts, good, *, finite=True, dtype=torch.float32, pred=None, junk=True,
            numpy=False, spoilers=(math.nan, math.inf, -math.inf),
            **sizes) -> st.SearchStrategy:
    """Bad tensor arguments: shapes outside ``layouts`` (wrong N, K, I, a missing or extra dim,
    an empty dim), non-numeric values, a complex tensor of the good shape ``good`` and (with
    ``finite``) one of ``spoilers`` (NaN or inf) in it. ``numpy`` draws the wrong shapes as numpy
    arrays."""
    make = (lambda s: np.random.default_rng(0).normal(size=s)) if numpy else (
        lambda s: torch.randn(s).to(dtype))
    shapes = st.lists(st.integers(0, 5), min_size=0, max_size=5).map(tuple).filter(
        lambda s: not _fits(s, layouts, sizes, pred)
    )
    parts = [shapes.map(make)]
    if junk:
        parts += [st.sampled_from(["abc", {"a": 1}, object()]),
                  st.just(torch.zeros(good, dtype=torch.complex64))]
    if finite:
        def spoil(v):
            t = torch.zeros(good, dtype=dtype)
            t.view(-1)[0] = v
            return t
        parts.append(st.sampled_from(list(spoilers)).map(spoil))
    return st.one_of(parts)


# =============================================================================== the cases
@dataclass(repr=False)
class Case:
    name: str
    fn: Callable
    base: dict
    bad: dict[str, st.SearchStrategy] = field(default_factory=dict)
    #: the name the message must contain, when it differs from the argument's
    names: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Case({self.name!r})"

    def _repr_pretty_(self, p, cycle):  # how hypothesis prints a failing example
        p.text(repr(self))


def _state(*shape):
    return _randn(*shape)


STATE_LAYOUTS = (("K|1", "B", "N"), ("B", "N"))
X_LAYOUTS = (("B", "T", "I"), ("K|1", "B", "T", "I"))
POINT_LAYOUTS = (("K|1", "P", "N"), ("P", "N"))
TRAJ_LAYOUTS = (("K|1", "B", "T", "N"), ("K|1", "M", "N"), ("M", "N"))
MODELS_JUNK = st.one_of(JUNK, st.none())
CONSTANT_INPUTS = st.one_of(
    st.sampled_from([(I + 1,), (K, I + 1), (K + 3, I), (0,)]).map(lambda s: torch.randn(s)),
    st.sampled_from(["abc", {"a": 1}]),
    st.just(torch.full((I,), math.nan)),
)
ANALYSIS_MODEL = st.one_of(JUNK, st.none(), st.just(np.zeros(3)))
#: a time step per network (broadcastable to [K]): not positive, not finite, not numbers
BAD_DT = st.one_of(
    st.floats(max_value=0.0), st.sampled_from([math.nan, math.inf]),
    st.sampled_from(["abc", {"a": 1}, [1, "a"], np.ones(5), np.array([1.0, -1.0])]),
)


def _run_cases():
    out = []
    for label, model in (("rate", RATE), ("gru", GRU), ("plrnn", PLRNN_IN)):
        n = model.n_units
        out.append(Case(
            f"run[{label}].x", dynrnn.run, dict(model=model, x=_state(K, B, T, I)),
            {"x": tensors(X_LAYOUTS, (K, B, T, I), finite=False, K=K, I=I)},
        ))
        out.append(Case(
            f"run[{label}].h0", dynrnn.run,
            dict(model=model, x=_state(K, B, T, I), h0=_state(K, B, n)),
            {"h0": tensors(STATE_LAYOUTS, (K, B, n), finite=False, K=K, N=n, B=B)},
        ))
    out.append(Case(
        "run.options", M.run, dict(model=RATE, x=_state(K, B, T, I)),
        {"noise": bools(), "generator": SEEDS, "return_states": bools(),
         "backend": choices(("auto", "reference")), "check_finite": bools(),
         "model": MODELS_JUNK},
    ))
    return out


def _zoo_dir(tmp=[]):  # noqa: B006 - one directory for the module
    if not tmp:
        import tempfile

        d = tempfile.mkdtemp(prefix="dynrnn-errors-")
        Z.save_model(RATE, f"{d}/m")
        Z.save_dataset(FP, f"{d}/d.nc")
        tmp.append(d)
    return tmp[0]


def _rr(**kw):
    base = dict(x=_state(K, T, B, I), h0=_state(K, B, N), W_in=_state(K, N, I), b=_state(K, N),
                W_T=_state(K, N, N), alpha=None, W_out=_state(K, O, N), b_out=_state(K, O))
    base.update(kw)
    return KN.rate_rnn(**base)


def _esn(**kw):
    base = dict(h0=_state(B, 10).double(), x=_state(T, B, 1).double(),
                W_in=_state(10, 1).double(), bias=_state(10).double(),
                W=(_state(10, 10).double() * (torch.rand(10, 10) < 0.3)), leak=0.5)
    base.update(kw)
    return KN.esn_fast(**base)


def _style(**kw):
    with P.style(**kw):
        pass


def _cases() -> list[Case]:
    zoo_dir = _zoo_dir()
    fp_traj = _state(K, B, T, N)
    out = _run_cases()
    out += [
        # ------------------------------------------------------------------ models
        Case("Ensemble", M.Ensemble, dict(config=M.RateRNNConfig(I, N, O), n_networks=K, seed=0),
             {"n_networks": ints(1), "seed": ints(0),
              "seeds": st.one_of(st.just([-1, 2]), st.just([1]), st.just([1.5, 2.0]),
                                 st.text(min_size=1, max_size=3)),
              "config": st.one_of(JUNK, st.none(), st.just([]))}),
        Case("stack_networks", M.stack_networks, dict(models=[RATE, RATE]),
             {"models": st.one_of(JUNK, st.none(), st.just([]), st.just([RATE, GRU]),
                                  st.just(["a"]))}),
        Case("model_from_spec", M.model_from_spec, dict(spec=RATE.spec()),
             {"spec": st.one_of(JUNK.filter(lambda v: not isinstance(v, dict)), st.none(),
                                st.just({}), st.just({"model": "bogus"}),
                                st.just({"model": "rate_rnn"}))}),
        Case("model.step.h", lambda **kw: RATE.step(**kw), dict(h=_state(K, B, N)),
             {"h": tensors(STATE_LAYOUTS, (K, B, N), finite=False, K=K, N=N)}),
        Case("model.step.x", lambda **kw: RATE.step(**kw),
             dict(h=_state(K, B, N), x=_state(K, B, I)),
             {"x": tensors((("K|1", "B|1", "I"), ("B|1", "I")), (K, B, I), finite=False, K=K,
                           B=B, I=I)}),
        Case("model.jacobian.h", lambda **kw: GRU.jacobian(**kw), dict(h=_state(K, B, N)),
             {"h": tensors(STATE_LAYOUTS, (K, B, N), finite=False, K=K, N=N)}),
        Case("model.jacobian.x", lambda **kw: RATE.jacobian(**kw),
             dict(h=_state(K, B, N), x=_state(K, B, I)),
             {"x": tensors((("K|1", "B|1", "I"), ("B|1", "I")), (K, B, I), finite=False, K=K,
                           B=B, I=I)}),
        Case("model.readout", lambda **kw: RATE.readout(**kw), dict(h=_state(K, B, N)),
             {"h": tensors((("K", "B", "N"), ("K", "B", "T", "N")), (K, B, N), finite=False,
                           K=K, N=N)}),
        Case("model.init_state", lambda **kw: GRU.init_state(**kw), dict(batch_size=2),
             {"batch_size": ints(1)}),
        Case("model.select", lambda **kw: RATE.select(**kw), dict(index=0),
             {"index": st.one_of(index(K), st.just([]), st.just([0, 9]), st.just([0.5]))}),
        # ------------------------------------------------------------------ fixed points
        Case("find_fixed_points", A.find_fixed_points,
             dict(model=RATE, trajectories=fp_traj, n_initial=4, first_order_iters=1,
                  max_newton_iters=1, progress=False),
             {"trajectories": tensors(TRAJ_LAYOUTS, (K, B, T, N), K=K, N=N),
              "inputs": CONSTANT_INPUTS, "model": ANALYSIS_MODEL, "n_initial": ints(1),
              "noise_std": floats(0.0), "seed": SEEDS, "tol_q": floats(0.0, low_open=True),
              "slow_q_max": floats(0.0), "first_order_iters": ints(0),
              "lr": floats(0.0, low_open=True), "handoff_q": floats(0.0),
              "max_newton_iters": ints(0), "dedupe_tol": floats(0.0),
              "outlier_scale": floats(0.0, low_open=True),
              "convention": choices(("discrete", "continuous")), "stability_tol": floats(0.0),
              "eigenvectors": bools(), "return_jacobians": bools(),
              "return_candidates": bools(), "progress": bools(), "chunk_size": ints(1)}),
        Case("find_fixed_points.initial_states", A.find_fixed_points,
             dict(model=RATE, initial_states=_state(K, 3, N), first_order_iters=1,
                  max_newton_iters=1, progress=False),
             {"initial_states": tensors(POINT_LAYOUTS, (K, 3, N), K=K, N=N)}),
        Case("speed", A.speed, dict(model=RATE, points=_state(K, 3, N)),
             {"points": tensors(POINT_LAYOUTS, (K, 3, N), K=K, N=N), "inputs": CONSTANT_INPUTS,
              "model": ANALYSIS_MODEL}),
        Case("sample_initial_states", A.sample_initial_states,
             dict(trajectories=fp_traj, n_initial=3, n_networks=K),
             {"trajectories": tensors(TRAJ_LAYOUTS, (K, B, T, N), K=K),
              "n_initial": ints(1), "noise_std": floats(0.0), "seed": SEEDS,
              "n_networks": ints(1)}),
        Case("classify_eigenvalues", A.classify_eigenvalues,
             dict(eigenvalues=torch.randn(K, 3, dtype=torch.complex128), dt=np.ones(K)),
             {"eigenvalues": st.one_of(st.sampled_from(["abc", {"a": 1}, [1, "a"]]),
                                       st.just(torch.tensor(1.0))),
              "convention": choices(("discrete", "continuous")),
              "dt": BAD_DT, "tol": floats()}),
        Case("local_time_constants", A.local_time_constants,
             dict(eigenvalues=torch.randn(K, 3, dtype=torch.complex128), dt=1.0),
             {"eigenvalues": st.one_of(st.sampled_from(["abc", {"a": 1}, [1, "a"]]),
                                       st.just(torch.tensor(1.0))),
              "dt": BAD_DT, "convention": choices(("discrete", "continuous"))}),
        # ------------------------------------------------------------------ linearisation
        *[Case(name, fn, dict(model=RATE, points=_state(K, 3, N)),
               {"points": tensors(POINT_LAYOUTS + (("K|1", "B", "T", "N"),), (K, 3, N), K=K,
                                  N=N),
                "chunk_size": ints(1), "model": ANALYSIS_MODEL, "inputs": CONSTANT_INPUTS})
          for name, fn in (("jacobians", A.jacobians), ("input_jacobians", A.input_jacobians))],
        Case("linearise", A.linearise, dict(model=RATE, points=_state(K, 3, N)),
             {"points": tensors(POINT_LAYOUTS + (("K|1", "B", "T", "N"),), (K, 3, N),
                                finite=False, K=K, N=N),
              "convention": choices(("discrete", "continuous")), "eigenvectors": bools(),
              "chunk_size": ints(1)}),
        Case("linearise_trajectory", A.linearise_trajectory,
             dict(model=RATE, states=_state(K, B, T, N), inputs=_state(K, B, T, I)),
             {"states": tensors((("K|1", "B", "T", "N"),), (K, B, T, N), K=K, N=N, B=B, T=T),
              "inputs": tensors((("K|1", "B", "T", "I"), ("B", "T", "I"), ("I",),
                                 ("K|1", "I")), (K, B, T, I), K=K, B=B, T=T, I=I),
              "n_modes": ints(1, N), "chunk_size": ints(1),
              "convention": choices(("discrete", "continuous"))}),
        # ------------------------------------------------------------------ Lyapunov
        Case("lyapunov_spectrum", A.lyapunov_spectrum,
             dict(model=RATE, n_steps=3, burn_in=1, tangent_burn_in=1, h0=_state(K, B, N),
                  progress=False),
             {"h0": tensors(STATE_LAYOUTS, (K, B, N), K=K, N=N), "n_steps": ints(1),
              "burn_in": ints(0), "tangent_burn_in": ints(0), "reortho_every": ints(1),
              "n_exponents": ints(1, N), "h0_std": floats(0.0), "seed": SEEDS,
              "return_log_det": bools(), "inputs": CONSTANT_INPUTS, "model": ANALYSIS_MODEL,
              "progress": bools()}),
        Case("lyapunov_spectrum.n_trials", A.lyapunov_spectrum,
             dict(model=RATE, n_steps=3, burn_in=1, tangent_burn_in=1, n_trials=2,
                  progress=False),
             {"n_trials": ints(1)}),
        Case("max_lyapunov_two_trajectory", A.max_lyapunov_two_trajectory,
             dict(model=RATE, n_steps=3, burn_in=1, transient=1, n_trials=2, progress=False),
             {"h0": tensors(STATE_LAYOUTS, (K, B, N), K=K, N=N), "n_trials": ints(1),
              "n_steps": ints(1), "burn_in": ints(0), "transient": ints(0),
              "eps": floats(0.0, low_open=True), "renorm_every": ints(1), "seed": SEEDS,
              "h0_std": floats(0.0)}),
        Case("kaplan_yorke_dimension", A.kaplan_yorke_dimension,
             dict(exponents=np.array([[0.1, -0.5]])),
             {"exponents": st.one_of(st.sampled_from(["abc", {"a": 1}, [1, "a"]]),
                                     st.just(torch.tensor(1.0)),
                                     st.just(torch.zeros(2, dtype=torch.complex64)))}),
        # ------------------------------------------------------------------ timescales
        Case("autocorrelation", A.autocorrelation, dict(x=_state(K, 10)),
             {"x": tensors((("T",), ("A", "T"), ("A", "C", "T"), ("A", "C", "D", "T"),
                            ("A", "C", "D", "E", "T")), (K, 10), pred=lambda s: s[-1] >= 2),
              "max_lag": ints(0, 9), "demean": bools(), "normalise": bools()}),
        Case("fit_exponential", A.fit_exponential, dict(acf=np.exp(-np.arange(10) / 3.0)),
             {"acf": st.one_of(st.sampled_from(["abc", {"a": 1}, [1, "a"]]),
                               st.just(np.ones(1)), st.just(np.zeros(0))),
              "lags": st.one_of(st.sampled_from(["abc", {"a": 1}]), st.just(np.arange(4.0))),
              "kind": choices(("single", "double", "auto")), "min_lag": ints(0, 9),
              "cutoff": floats(None, 1.0)}),
        Case("ar1_timescale", A.ar1_timescale, dict(phi=0.5),
             {"phi": floats(), "dt": floats(0.0, low_open=True)}),
        Case("network_timescale", A.network_timescale,
             dict(states=_state(K, 2, 20, N), model=RATE),
             {"states": tensors((("K", "B", "T", "N"), ("K", "T", "N")), (K, 2, 20, N), K=K,
                                pred=lambda s: s[-2] >= 4),
              "max_lag": ints(1, 19), "kind": choices(("single", "double", "auto")),
              "min_lag": ints(0), "cutoff": floats(None, 1.0), "per_unit": bools(),
              "discard": ints(0, 16), "min_std": floats(0.0), "model": JUNK}),
        # ------------------------------------------------------------------ similarity
        Case("delay_embed", A.delay_embed, dict(x=_state(K, 10, N), n_delays=2),
             {"x": st.one_of(st.sampled_from(["abc", {"a": 1}]), st.just(torch.zeros(K, 1, N)),
                             st.just(torch.zeros(K, 0, N)), st.just(torch.zeros(3))),
              "n_delays": st.one_of(ints(1), st.integers(10, 100)),
              "delay_interval": st.one_of(ints(1), st.integers(10, 100))}),
        Case("fit_dmd", A.fit_dmd, dict(states=_state(K, B, 10, N), n_delays=2, rank=3),
             {"states": tensors((("K", "B", "T", "N"), ("K", "T", "N")), (K, B, 10, N)),
              "n_delays": ints(1), "delay_interval": ints(1), "rank": ints(1, 6),
              "lamb": floats(0.0), "method": choices(("havok", "reduced_rank"))}),
        Case("dsa", A.dsa, dict(states=_state(K, B, 10, N), n_delays=2, rank=3, n_starts=1,
                                max_iters=3, progress=False),
             {"states": tensors((("K", "B", "T", "N"), ("K", "T", "N")), (K, B, 10, N)),
              "states_b": tensors((("K", "B", "T", "N"), ("K", "T", "N")), (K, B, 10, N)),
              "n_starts": ints(1), "max_iters": ints(1), "tol": floats(0.0), "seed": SEEDS,
              "wasserstein": bools(), "progress": bools()}),
        Case("procrustes_vector_fields", A.procrustes_vector_fields,
             dict(A=_state(K, 3, 3), n_starts=1, max_iters=3, progress=False),
             {"A": tensors((("K", "n", "n"), ("n", "n")), (K, 3, 3),
                           pred=lambda s: s[-1] == s[-2]),
              "B": tensors((("K", "n", "n"), ("n", "n")), (K, 3, 3), n=3),
              "n_starts": ints(1), "max_iters": ints(1), "tol": floats(0.0), "seed": SEEDS,
              "n_keep": ints(1), "explore_iters": ints(1), "chunk_size": ints(1),
              "halving": bools(), "return_transforms": bools()}),
        Case("eigenvalue_wasserstein", A.eigenvalue_wasserstein, dict(A=_state(K, 3, 3)),
             {"A": tensors((("K", "n", "n"),), (K, 3, 3), pred=lambda s: s[-1] == s[-2]),
              "B": tensors((("L", "n", "n"),), (K, 3, 3), n=3)}),
        *[Case(name, fn, dict(states=_state(K, 8, N)),
               {"states": tensors((("K", "M", "N"), ("K", "B", "T", "N")), (K, 8, N),
                                  pred=lambda s: s[-2] >= 2 or len(s) == 4 and s[1] * s[2] >= 2),
                "states_b": tensors((("K", "M", "N"), ("K", "B", "T", "N")), (K, 8, N), M=8,
                                    pred=lambda s: len(s) == 3 or s[1] * s[2] == 8)})
          for name, fn in (("procrustes_distance", A.procrustes_distance),
                           ("cca_distance", A.cca_distance), ("cka", A.cka),
                           ("cka_distance", A.cka_distance))],
        Case("cca_distance.eps", A.cca_distance, dict(states=_state(K, 8, N)),
             {"eps": floats(0.0, 1.0)}),
        Case("weight_distance", A.weight_distance, dict(model=RATE, n_restarts=0,
                                                        progress=False),
             {"model": st.one_of(JUNK, st.none(), st.just(GRU)),
              "model_b": st.one_of(JUNK, st.just(GRU),
                                   st.just(M.Ensemble(M.RateRNNConfig(I, 4, O)))),
              "n_restarts": ints(0), "seed": ints(0), "return_permutations": bools()}),
        Case("trajectories", A.trajectories, dict(model=RATE, inputs=_state(B, T, I)),
             {"inputs": tensors(X_LAYOUTS, (B, T, I), finite=False, K=K, I=I),
              "seed": SEEDS, "noise": bools(), "model": ANALYSIS_MODEL}),
        Case("readout_multiplier", A.readout_multiplier, dict(n_units=4),
             {"n_units": ints(1), "regime": choices(("lazy", "standard", "rich"))}),
        # ------------------------------------------------------------------ degeneracy
        Case("behavioural_degeneracy", A.behavioural_degeneracy,
             dict(models=FF_MODEL, task=TASK, n_trials=2),
             {"models": st.one_of(JUNK, st.none(), st.just([])),
              "task": st.one_of(JUNK, st.just(TS.FlipFlopTask(n_bits=3))),
              "ood_task": st.one_of(JUNK, st.just(TS.FlipFlopTask(n_bits=3))),
              "n_trials": ints(1), "seed": ints(0), "ids": st.just(["a"])}),
        Case("degeneracy_report", A.degeneracy_report,
             dict(models=FF_MODEL, task=TASK, n_trials=2, levels=("behaviour",)),
             {"levels": st.one_of(st.just("bogus"), st.just(["bogus"]), st.integers()),
              "group_by": st.one_of(st.just("bogus"), st.integers(), st.just([3])),
              "n_trials": ints(1), "n_dsa_trials": ints(1),
              "dsa_kwargs": st.one_of(st.just("x"), st.just({"bogus": 1}), st.just([1])),
              "weight_kwargs": st.one_of(st.just("x"), st.just({"bogus": 1})),
              "representations": bools(), "seed": ints(0)}),
        Case("degeneracy_summary", A.degeneracy_summary, dict(report=REPORT),
             {"report": st.one_of(JUNK, st.none(), st.just(np.zeros(3))),
              "by": st.one_of(st.just("bogus"), st.integers(), st.just([3]))}),
        # ------------------------------------------------------------------ DSR metrics
        Case("generate", A.generate, dict(model=PLRNN, x0=_state(K, B, 2), n_steps=3),
             {"x0": tensors((("O",), ("B", "O"), ("K|1", "B", "O")), (K, B, 2), K=K, O=2),
              "n_steps": ints(1), "model": ANALYSIS_MODEL}),
        Case("prediction_error", A.prediction_error, dict(model=PLRNN, data=SERIES, n=3,
                                                          n_starts=4),
             {"data": tensors((("T", "O"), (1, "T", "O")), (30, 2), O=2, numpy=True,
                              pred=lambda s: s[-2] > 3),
              "n": st.one_of(ints(1), st.integers(30, 100)), "n_starts": ints(1),
              "seed": ints(0), "model": ANALYSIS_MODEL}),
        Case("power_spectrum_distance", A.power_spectrum_distance,
             dict(x_true=SERIES, x_gen=SERIES[None]),
             {"x_true": tensors((("T", "N"), (1, "T", "N")), (30, 2), N=2, T=30),
              "x_gen": tensors((("T", "N"), ("K", "T", "N")), (K, 30, 2), finite=False, N=2,
                               T=30),
              "sigma": floats(0.0)}),
        Case("state_space_divergence", A.state_space_divergence,
             dict(x_true=SERIES, x_gen=SERIES[None]),
             {"x_true": tensors((("T", "N"), (1, "T", "N")), (30, 2), N=2,
                                pred=lambda s: s[-2] >= 2),
              "x_gen": tensors((("T", "N"), ("K", "T", "N")), (K, 30, 2), finite=False, N=2,
                               pred=lambda s: s[-2] >= 2),
              "method": choices(("bins", "gmm")), "n_bins": ints(1), "margin": floats(0.0),
              "smoothing": floats(0.0, low_open=True), "sigma": floats(0.0, low_open=True),
              "n_points": ints(1), "seed": ints(0)}),
        Case("evaluate_reconstruction", A.evaluate_reconstruction,
             dict(model=PLRNN, data=SERIES, lyapunov=False, pe_steps=3, lyapunov_steps=5,
                  progress=False),
             {"data": tensors((("T", "O"), (1, "T", "O")), (30, 2), O=2,
                              pred=lambda s: s[-2] > 3),
              "n_bins": ints(1), "sigma": floats(0.0),
              "pe_steps": st.one_of(ints(1), st.integers(30, 100)), "lyapunov": bools(),
              "lyapunov_steps": ints(1), "true_lyapunov": floats(),
              "dstsp_method": choices(("bins", "gmm")), "progress": bools(),
              "model": ANALYSIS_MODEL}),
        # ------------------------------------------------------------------ PLRNN analyses
        Case("find_cycles", A.find_cycles, dict(model=PLRNN, n_restarts=4, n_rounds=1,
                                                max_inner=2),
             {"model": st.one_of(JUNK, st.just(RATE), st.just(PLRNN_IN)), "order": ints(1),
              "n_restarts": ints(1), "n_rounds": ints(1), "max_inner": ints(1),
              "init_scale": floats(0.0, low_open=True), "tol": floats(0.0, low_open=True),
              "seed": SEEDS}),
        Case("brute_force_cycles", A.brute_force_cycles, dict(model=PLRNN),
             {"model": st.one_of(JUNK, st.just(RATE)), "order": ints(1),
              "tol": floats(0.0, low_open=True), "max_sequences": ints(1), "chunk": ints(1)}),
        Case("subregion_fixed_points", A.subregion_fixed_points, dict(model=ALRNN),
             {"model": st.one_of(JUNK, st.none(), st.just(RATE))}),
        Case("symbol_sequence", A.symbol_sequence, dict(model=ALRNN, trajectory=LATENT),
             {"trajectory": tensors((("T", "N"), ("K|1", "T", "N")), (K, 6, 3), K=K, N=3),
              "model": st.one_of(JUNK, st.just(RATE))}),
        Case("symbolic_graph", A.symbolic_graph, dict(model=ALRNN, trajectory=LATENT),
             {"trajectory": tensors((("T", "N"), ("K|1", "T", "N")), (K, 6, 3), K=K, N=3),
              "network": index(K, negative_ok=False), "model": st.one_of(JUNK, st.just(RATE))}),
        Case("symbols_used", A.symbols_used, dict(symbols=SYMBOLS),
             {"symbols": st.one_of(st.sampled_from(["abc", {"a": 1}]),
                                   st.just(np.zeros((K, 5))), st.just(np.zeros((0,), int)),
                                   st.just(np.zeros((1, 2, 3), int)))}),
        Case("split_complex", A.split_complex, dict(ds=FP),
             {"ds": st.one_of(JUNK, st.none(), st.just(np.zeros(3)))}),
        Case("merge_complex", A.merge_complex, dict(ds=FP),
             {"ds": st.one_of(JUNK, st.none(), st.just(np.zeros(3)))}),
        # ------------------------------------------------------------------ plot
        Case("pca_basis", P.pca_basis, dict(data=_state(K, B, T, N)),
             {"data": st.one_of(st.sampled_from(["abc", {"a": 1}]), st.just(torch.tensor(1.0)),
                                st.just(torch.full((3, 2), math.nan))),
              "n_components": ints(1)}),
        Case("plot_outputs", P.plot_outputs,
             dict(trials=TRIALS, outputs=torch.randn(1, 3, TRIALS.inputs.shape[1], 2)),
             {"network": index(1), "trial": index(3),
              "outputs": tensors((("K", "B", "T", "O"),), (1, 3, 4, 2), finite=False, B=3,
                                 T=TRIALS.inputs.shape[1], O=2),
              "trials": st.one_of(JUNK, st.none()), "axes": st.one_of(JUNK, st.integers())},
             ),
        Case("plot_fixed_points", P.plot_fixed_points, dict(ds=FP),
             {"ds": st.one_of(JUNK, st.just(LYA)), "network": index(K),
              "trajectories": tensors((("B", "T", "N"), ("K", "B", "T", "N"), ("T", "N")),
                                      (K, B, T, N), finite=False, K=K, N=N),
              "n_components": st.one_of(st.integers().filter(lambda v: v not in (2, 3)),
                                        st.text(max_size=2), st.none()),
              "basis": st.one_of(st.just("b"), st.just((np.zeros(3),)),
                                 st.just((np.zeros(2), np.zeros((2, 2))))),
              "direction_scale": floats(0.0, low_open=True), "max_trajectories": ints(0),
              "show_unstable_directions": bools(), "include_slow_points": bools(),
              "ax": JUNK}),
        Case("plot_eigenvalues", P.plot_eigenvalues, dict(ds=FP),
             {"ds": st.one_of(JUNK, st.just(LYA)), "network": index(K),
              "fixed_point": index(FP.sizes["fixed_point"]),
              "convention": choices(("discrete", "continuous")),
              "colour_by_stability": bools(), "ax": JUNK}),
        Case("plot_lyapunov_spectrum", P.plot_lyapunov_spectrum, dict(ds=LYA),
             {"ds": st.one_of(JUNK, st.just(FP)),
              "networks": st.one_of(index(K), st.just([0, 99])), "per_time": bools(),
              "show_mean": bools(), "ax": JUNK}),
        Case("plot_timescales", P.plot_timescales, dict(ds=TS_DS, x="network"),
             {"ds": st.one_of(JUNK, st.just(FP)), "x": st.one_of(st.just("bogus"),
                                                               st.integers(), st.none()),
              "y": st.one_of(st.just("bogus"), st.integers(), st.none()),
              "show_neuron_tau": bools(), "logy": bools(), "ax": JUNK},
             names={"ds": "ds"}),
        Case("plot_degeneracy", P.plot_degeneracy, dict(report=REPORT),
             {"report": st.one_of(JUNK, st.none()),
              "axes": st.one_of(JUNK, st.integers(), st.just([1, 2, 3]))}),
        Case("plot_attractor_subregions", P.plot_attractor_subregions,
             dict(states=LATENT[0], symbols=SYMBOLS[0]),
             {"states": tensors((("T", "D"),), (6, 3), finite=False, T=6),
              "symbols": st.one_of(st.sampled_from(["abc", {"a": 1}]),
                                   st.just(np.full(6, math.nan)), st.just(np.full(6, 0.5)),
                                   st.just(np.zeros(5))),
              "dims": st.one_of(st.just("ab"), st.just((-1, 0, 1)), st.integers(),
                                st.just((0,)), st.just((5, 6))),
              "s": floats(0.0, low_open=True), "ax": JUNK}),
        Case("plot_symbolic_graph", P.plot_symbolic_graph, dict(graph=GRAPH),
             {"graph": st.one_of(JUNK, st.none()), "min_probability": floats(0.0, 1.0),
              "ax": JUNK}),
        Case("style", _style, dict(), {"bogus_rc_param": st.integers()}),
        # ------------------------------------------------------------------ losses, optim
        Case("masked_mse", TR.masked_mse,
             dict(outputs=_state(K, 3, T, 2), targets=_state(3, T, 2),
                  mask=torch.ones(3, T, dtype=torch.bool)),
             {"outputs": tensors((("K", "B", "T", "O"),), (K, 3, T, 2), finite=False, B=3, T=T,
                                 O=2),
              "targets": tensors((("B", "T", "O"), ("K|1", "B", "T", "O")), (3, T, 2),
                                 finite=False, K=K, B=3, T=T, O=2),
              "mask": tensors((("B", "T"), ("B", "T", "O")), (3, T), finite=False, B=3, T=T,
                              O=2)}),
        *[Case(name, fn, dict(outputs=_state(K, 3, T, 4),
                              labels=torch.zeros(3, T, 2, dtype=torch.long),
                              mask=torch.ones(3, T, dtype=torch.bool),
                              head_map=torch.tensor([[0, 1]] * K)),
               {"outputs": tensors((("K", "B", "T", "O"),), (K, 3, T, 4), finite=False, K=K,
                                   B=3, T=T, pred=lambda s: s[-1] >= 4),
                "labels": st.one_of(st.just(torch.zeros(3, T, 2)),
                                    st.just(torch.zeros(3, T + 1, 2, dtype=torch.long)),
                                    st.just(torch.zeros(3, T, dtype=torch.long)), JUNK),
                "mask": tensors((("B", "T"),), (3, T), finite=False, B=3, T=T),
                "head_map": st.one_of(st.just(torch.tensor([[0, 9]] * K)),
                                      st.just(torch.tensor([[0.0, 1.0]] * K)),
                                      st.just(torch.tensor([[0, 1]] * (K + 1))),
                                      st.just(torch.tensor([[0, 1, 0]] * K)), JUNK)})
          for name, fn in (("head_cross_entropy", TR.head_cross_entropy),
                           ("head_accuracy", TR.head_accuracy))],
        Case("per_network_grad_norm", TR.per_network_grad_norm,
             dict(params=list(RATE.parameters())),
             {"params": st.one_of(st.sampled_from(["abc", {"a": 1}]), st.none(), st.just([]),
                                  st.just([torch.zeros(2), torch.zeros(3)]),
                                  st.just(["a"]))}),
        Case("principal_angles", TR.principal_angles, dict(A=_state(2, 4), B=_state(2, 4)),
             {"A": tensors((("m", "n"),), (2, 4), n=4), "B": tensors((("m", "n"),), (2, 4),
                                                                    n=4)}),
        # ------------------------------------------------------------------ training
        Case("train", TR.train,
             dict(model=M.Ensemble(M.RateRNNConfig(3, 3, 3), n_networks=K),
                  task=TS.FlipFlopTask(n_bits=3),
                  config=TR.TrainConfig(n_steps=1, batch_size=2, eval_batch_size=2,
                                        progress=False)),
             {"model": st.one_of(JUNK, st.none(), st.just(GRU)),
              "task": st.one_of(JUNK, st.none(), st.just(TS.FlipFlopTask(n_bits=2))),
              "config": st.one_of(JUNK, st.just({"n_steps": 1})), "seed": SEEDS,
              "curriculum": st.one_of(st.text(max_size=6).filter(
                  lambda t: t not in ("single", "multi", "sliding")), st.integers()),
              "progress": bools(True)}),
        Case("train_gtf", TR.train_gtf,
             dict(model=M.PLRNN(M.PLRNNConfig(3, 2), n_networks=K), data=SERIES,
                  config=TR.GTFConfig(n_iterations=1, seq_len=5, batch_size=2)),
             # NaN is a missing sample in DSR data (masked); inf stays an error
             {"data": tensors((("T", "N"), ("R", "T", "N")), (30, 2), N=2,
                              pred=lambda s: s[-2] >= 6, spoilers=(math.inf, -math.inf)),
              "config": st.one_of(JUNK, st.just({"a": 1})), "progress": bools(),
              "seed": SEEDS, "callback": st.one_of(st.just("cb"), st.integers()),
              "model": st.one_of(JUNK, st.none())}),
        Case("estimate_forcing_interval", TR.estimate_forcing_interval,
             dict(data=SERIES, max_lag=5),
             {"data": tensors((("T", "N"), ("R", "T", "N")), (30, 2), pred=lambda s: s[-2] >= 7,
                              spoilers=(math.inf, -math.inf)),
              "method": choices(("mi", "ac")), "max_lag": ints(2), "n_bins": ints(2)}),
        Case("force_train", TR.force_train,
             dict(model=ESN, targets=_state(K, 6, 1), x=_state(1, 6, 1), progress=False),
             {"model": st.one_of(JUNK, st.none()),
              "targets": tensors((("T", "O"), ("K|1", "T", "O")), (K, 6, 1), K=K, O=1),
              "x": tensors((("T", "I"), (1, "T", "I"), ("K|1", 1, "T", "I")), (1, 6, 1),
                           finite=False, K=K, T=6, I=1),
              "h0": tensors((("K|1", 1, "N"), (1, "N")), (K, 1, 10), finite=False, K=K, N=10),
              "P0": tensors((("K|1", "F", "F"), ("F", "F")), (K, 10, 10), K=K, F=10),
              "alpha": floats(0.0, low_open=True), "update_every": ints(1),
              "washout": ints(0), "noise": bools(True), "seed": SEEDS, "progress": bools()}),
        Case("ridge_readout", TR.ridge_readout,
             dict(model=ESN, x=_state(B, 6, 1), targets=_state(B, 6, 1), progress=False),
             {"model": st.one_of(JUNK, st.none()),
              "x": tensors(X_LAYOUTS, (B, 6, 1), finite=False, K=K, I=1,
                           pred=lambda s: s[-3] == B and s[-2] == 6),
              "targets": tensors((("B", "T", "O"), ("K|1", "B", "T", "O")), (B, 6, 1), K=K,
                                 B=B, T=6, O=1),
              "features": tensors((("K", "B", "T", "F"),), (K, B, 6, 10), K=K, B=B, T=6, F=10),
              "alpha": floats(0.0, 1e12), "washout": st.one_of(ints(0), st.integers(6, 50)),
              "mask": tensors((("B", "T"),), (B, 6), finite=False, B=B, T=6), "seed": SEEDS,
              "progress": bools()}),
        Case("train_three_factor", TR.train_three_factor,
             dict(model=ESN, x=_state(B, 6, 1), stimuli=_state(B, 6, 2), progress=False),
             {"model": st.one_of(JUNK, st.none()),
              "x": tensors(X_LAYOUTS, (B, 6, 1), finite=False, K=K, I=1,
                           pred=lambda s: s[-3] == B and s[-2] == 6),
              "stimuli": tensors((("B", "T", "S"),), (B, 6, 2), B=B, T=6),
              "cue": tensors((("B", "T"),), (B, 6), B=B, T=6),
              "features": tensors((("K", "B", "T", "F"),), (K, B, 6, 10), B=B, T=6),
              "config": st.one_of(JUNK, st.just({"lr_when": 1.0})), "noise": bools(True),
              "seed": SEEDS, "progress": bools()}),
        Case("reservoir_features", TR.reservoir_features, dict(model=ESN, x=_state(B, 6, 1),
                                                                progress=False),
             {"model": st.one_of(JUNK, st.none()),
              "x": tensors(X_LAYOUTS, (B, 6, 1), finite=False, K=K, I=1),
              "h0": tensors(STATE_LAYOUTS, (K, B, 10), finite=False, K=K, N=10, B=B),
              "seed": SEEDS, "noise": bools(True), "progress": bools()}),
        Case("train_continual", TR.train_continual,
             dict(net=TR.MLP([96, 4, 10]), tasks=TS.continual_sequence(1), steps_per_task=1,
                  batch_size=2, eval_trials=2),
             {"net": st.one_of(JUNK, st.none(), st.just(RATE)),
              "tasks": st.one_of(st.just("abc"), st.just([]), st.integers()),
              "hlop": JUNK, "steps_per_task": ints(1), "batch_size": ints(1),
              "lr": floats(0.0, low_open=True), "momentum": floats(0.0, 1.0, high_open=True),
              "eval_trials": ints(1), "seed": ints(0), "progress": bools()}),
        # ------------------------------------------------------------------ tasks
        Case("task.sample", lambda **kw: TASK.sample(**kw), dict(batch_size=2, seed=0),
             {"batch_size": ints(1), "seed": SEEDS}),
        Case("continual_sequence", TS.continual_sequence, dict(n_tasks=2),
             {"n_tasks": ints(1)}),
        Case("integrate", TS.integrate,
             dict(system="lorenz63", x0=np.ones(3), n_steps=3, dt=0.01, method="rk4",
                  substeps=2),
             {"system": choices(tuple(TS.SYSTEMS)),
              "x0": tensors((("D",), ("B", "D")), (3,), D=3, numpy=True),
              "n_steps": ints(1), "dt": floats(0.0, low_open=True), "transient_steps": ints(0),
              "method": choices(("DOP853", "RK45", "LSODA", "Radau", "rk4")),
              "rtol": floats(0.0, low_open=True), "atol": floats(0.0), "substeps": ints(1)}),
        Case("make_system", TS.make_system, dict(system="lorenz63"),
             {"system": st.one_of(choices(tuple(TS.SYSTEMS)),
                                  st.just({"name": "lorenz63", "bogus": 1}), st.just({}))}),
        Case("task_from_dict", TS.task_from_dict, dict(d=TASK.to_dict()),
             {"d": st.one_of(st.sampled_from(["abc", b"x", object(), [1]]), st.none(),
                             st.just({}), st.just({"task": "bogus"}))}),
        Case("register_task", TS.register_task, dict(name="errors_test_task"),
             {"name": st.one_of(st.integers(), st.none(), st.just(""))}),
        # ------------------------------------------------------------------ zoo
        Case("save_model", Z.save_model, dict(model=RATE, path=f"{zoo_dir}/m2"),
             {"model": st.one_of(JUNK, st.none()), "path": st.one_of(st.integers(), st.none()),
              "metadata": st.one_of(st.just("x"), st.just([1]), st.just({"a": object()}))}),
        Case("load_model", Z.load_model, dict(path=f"{zoo_dir}/m"),
             {"path": st.one_of(st.integers(), st.none()),
              "dtype": st.one_of(st.just("bogus"), st.integers(), st.just(torch.int64)),
              "device": st.just("bogus"), "verify": bools()}),
        Case("save_dataset", Z.save_dataset, dict(dataset=FP, path=f"{zoo_dir}/d2.nc"),
             {"dataset": st.one_of(JUNK, st.none()),
              "path": st.one_of(st.integers(), st.none())}),
        Case("load_dataset", Z.load_dataset, dict(path=f"{zoo_dir}/d.nc"),
             {"path": st.one_of(st.integers(), st.none())}),
        # ------------------------------------------------------------------ kernels
        Case("rate_rnn", _rr, dict(),
             {"x": tensors((("K|1", "T", "B", "I"),), (K, T, B, I), finite=False, K=K, B=B, I=I),
              "h0": st.one_of(st.just(_state(K, B, N + 1)), st.just(_state(K + 1, B, N)),
                              st.just(_state(B, N)), st.just(_state(K, B, N).double()), JUNK),
              "W_in": tensors((("K", "N", "I"),), (K, N, I), finite=False, K=K, N=N, I=I),
              "W_T": tensors((("K", "N", "N"),), (K, N, N), finite=False, K=K, N=N),
              "W_out": tensors((("K", "O", "N"),), (K, O, N), finite=False, K=K, N=N, O=O),
              "b": tensors((("K", "N"),), (K, N), finite=False, K=K, N=N),
              "b_out": tensors((("K", "O"),), (K, O), finite=False, K=K, O=O),
              "alpha": tensors((("K", 1, "N"), ("K", "B", "N")), (K, 1, N), finite=False, K=K,
                               N=N, B=B),
              "nonlinearity": choices(("tanh", "relu", "leaky_relu", "softplus", "sigmoid",
                                       "identity")),
              "leak_form": choices(("inside", "outside")),
              "backend": choices(KN.BACKENDS)}),
        Case("esn_fast", _esn, dict(),
             {"x": tensors((("T", "B", "I"),), (T, B, 1), finite=False, B=B, I=1,
                           dtype=torch.float64),
              "h0": tensors((("B", "N"),), (B, 10), finite=False, B=B, N=10),
              "W_in": tensors((("N", "I"),), (10, 1), finite=False, N=10, I=1),
              "bias": tensors((("N",),), (10,), finite=False, N=10),
              "W": tensors((("N", "N"),), (10, 10), finite=False, N=10),
              "leak": floats(0.0, 1.0, low_open=True)}),
    ]
    return out


CASES = _cases()
PAIRS = [(c, p) for c in CASES for p in c.bad]


def _call(case: Case, **overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return case.fn(**{**case.base, **overrides})
        finally:
            plt.close("all")


# =============================================================================== the tests
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_base_calls_are_valid(case):
    """Every case's base call succeeds, so the errors below come from the bad argument."""
    _call(case)


@pytest.mark.parametrize("case,param", PAIRS, ids=[f"{c.name}-{p}" for c, p in PAIRS])
@EXAMPLES
@given(data=st.data())
def test_bad_argument_is_named(case, param, data):
    value = data.draw(case.bad[param], label=param)
    name = case.names.get(param, param)
    with pytest.raises((ValueError, TypeError), match=f"'{name}'"):
        _call(case, **{param: value})


# =============================================================================== regressions
def test_find_fixed_points_trajectories_of_the_wrong_n():
    """Used to reach a batched matmul and raise a raw torch RuntimeError."""
    with pytest.raises(ValueError, match="'trajectories'.*N=3"):
        A.find_fixed_points(RATE, trajectories=torch.randn(K, 2, 5, N + 1), progress=False)
    with pytest.raises(ValueError, match="'trajectories'"):
        A.find_fixed_points(RATE, trajectories=torch.randn(K + 1, 4, N), progress=False)


def test_plot_outputs_trial_past_the_end():
    """Used to raise a raw IndexError."""
    _, outputs = dynrnn.run(FF_MODEL, TRIALS.inputs)
    with pytest.raises(ValueError, match="'trial'.*range"):
        P.plot_outputs(TRIALS, outputs, trial=99)
    with pytest.raises(ValueError, match="'network'"):
        P.plot_outputs(TRIALS, outputs, network=K)
    assert P.plot_outputs(TRIALS, outputs, trial=-1) is not None  # Python-style positions
    plt.close("all")


def test_run_allows_nan_unless_check_finite():
    x = torch.zeros(K, B, T, I)
    x[0, 1, 2, 0] = math.nan
    states, outputs = dynrnn.run(RATE, x)  # allowed: the NaN propagates from that step on
    assert torch.isnan(states[0, 1, 2:]).all() and torch.isfinite(states[0, 0]).all()
    assert torch.isfinite(states[1]).all()
    with pytest.raises(ValueError, match="'x'.*finite"):
        dynrnn.run(RATE, x, check_finite=True)
    h0 = torch.zeros(K, B, N)
    h0[1, 0, 0] = math.inf
    with pytest.raises(ValueError, match="'h0'.*finite"):
        dynrnn.run(RATE, torch.zeros(K, B, T, I), h0, check_finite=True)
    dynrnn.run(RATE, torch.zeros(K, B, T, I), torch.zeros(K, B, N), check_finite=True)
    assert "NaN" in dynrnn.run.__doc__ and "check_finite" in dynrnn.run.__doc__


def test_run_converts_numpy_and_integer_inputs():
    x = np.zeros((B, T, I))
    s_np, _ = dynrnn.run(RATE, x)
    s_int, _ = dynrnn.run(RATE, torch.zeros(B, T, I, dtype=torch.int64))
    s_ref, _ = dynrnn.run(RATE, torch.zeros(B, T, I))
    assert torch.equal(s_np, s_ref) and torch.equal(s_int, s_ref)
    # a float tensor of the model's dtype is used as it is: gradients reach it
    xg = torch.zeros(B, T, I, requires_grad=True)
    dynrnn.run(RATE, xg)[1].sum().backward()
    assert xg.grad is not None


def test_wrong_types_are_type_errors_and_value_errors():
    """A wrong type raises ParameterTypeError: a TypeError that is also a ValueError."""
    assert issubclass(ParameterTypeError, TypeError) and issubclass(ParameterTypeError, ValueError)
    with pytest.raises(TypeError, match="'n_initial'"):
        A.find_fixed_points(RATE, n_initial="many", progress=False)
    with pytest.raises(TypeError, match="'x'"):
        dynrnn.run(RATE, "inputs")
    with pytest.raises(TypeError, match="'generator'"):
        dynrnn.run(RATE, torch.zeros(B, T, I), generator=1.5)
    with pytest.raises(ValueError, match="'generator'"):
        dynrnn.run(RATE, torch.zeros(B, T, I), generator=-1)


def test_c_kernels_reject_empty_time_axes():
    """An empty time axis used to crash the interpreter inside the compiled ESN loop."""
    with pytest.raises(ValueError, match="'x'"):
        TR.reservoir_features(ESN, torch.zeros(B, 0, 1))
    with pytest.raises(ValueError, match="'x'"):
        _esn(x=torch.zeros(0, B, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="'x'"):
        dynrnn.run(RATE, torch.zeros(B, 0, I))
