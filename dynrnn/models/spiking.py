"""Izhikevich spiking reservoirs (Izhikevich 2003; spiking FORCE after Nicola & Clopath 2017).

Neuron model (Izhikevich, IEEE Trans. Neural Netw. 14:1569, 2003), time in ms, v in mV::

    v' = 0.04 v^2 + 5 v + 140 - u + I,   u' = a (b v - u),   if v >= v_peak: v <- c, u <- u + d

Heterogeneous population (r ~ U(0, 1) per neuron): excitatory a=0.02, b=0.2, c=-65+15 r^2,
d=8-6 r^2; inhibitory a=0.02+0.08 r, b=0.25-0.05 r, c=-65, d=2. The step, the synapses and the
integration scheme are :mod:`dynrnn.functional.izhikevich` (``half_step``: Izhikevich's
scheme, v in two halves of dt/2 then u with the new v; ``euler``).

The model follows the :class:`~dynrnn.models.base.RecurrentModel` protocol with the state
``h = [v, u, r, x]`` (``4 N`` values per network and trial: membrane, recovery, filtered rate,
and the last spikes (``delta`` synapses) or the synaptic rise variable (``double_exp``)), so
``run`` and the analyses apply; without gradients ``run`` takes the fused loop
(:meth:`IzhikevichReservoir.fused_loop`, :func:`dynrnn.kernels.izhikevich_fast`).
:meth:`IzhikevichReservoir.simulate` is the entry point that draws the thalamic noise inside
the loop (splitmix64/ziggurat streams, the same numbers in C and torch), records spikes and
filtered rates instead of whole states, and goes through the same kernel loop with the same
backend names. It shows a progress bar over the time steps (``progress=True``); ``run`` shows
none, being also the inner loop of training and of the analyses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .._progress import progress_bar
from .._validation import (
    Check,
    Choice,
    Constraint,
    Float,
    Int,
    OrNone,
    check_bool,
    check_choice,
    check_float,
    check_int,
    resolve_generator,
    validate_config,
)
from ..functional.izhikevich import IZHIKEVICH_SCHEMES as SCHEMES
from ..functional.izhikevich import IZHIKEVICH_SYNAPSES as SYNAPSES
from ..functional.izhikevich import izhikevich_step
from ..kernels._backends import check_backend
from ..kernels.izhikevich import (
    cpp_extension_available,
    izhikevich_fast,
    noise_streams,
)
from .base import RecurrentModel

#: Neuron-steps (K B N times steps) per chunk when the single-call C loop is cut for a progress
#: bar: ~0.5 s of work against a fixed cost of ~0.2-0.5 ms per call (measured, 50-1000 neurons).
_BAR_CHUNK_NEURON_STEPS = 20_000_000

__all__ = [
    "IzhikevichConfig",
    "IzhikevichReservoir",
    "NEURON_TYPES",
    "SpikingResult",
    "MAX_STABLE_DT",
    "DEFAULT_DT",
]

#: (a, b, c, d) of the named regimes of Izhikevich (2003), Fig. 2.
NEURON_TYPES: dict[str, tuple[float, float, float, float]] = {
    "RS": (0.02, 0.2, -65.0, 8.0),  # regular spiking
    "IB": (0.02, 0.2, -55.0, 4.0),  # intrinsically bursting
    "CH": (0.02, 0.2, -50.0, 2.0),  # chattering
    "FS": (0.1, 0.2, -65.0, 2.0),  # fast spiking
    "LTS": (0.02, 0.25, -65.0, 2.0),  # low-threshold spiking
    "TC": (0.02, 0.25, -65.0, 0.05),  # thalamo-cortical
    "RZ": (0.1, 0.26, -65.0, 2.0),  # resonator
}

#: Largest step (ms) per scheme: beyond it the quadratic v term overshoots so far within one step
#: that the recovery variable u is corrupted (and v overflows for strong input).
MAX_STABLE_DT = {"half_step": 1.0, "euler": 0.5}
#: Default step (ms) per scheme when ``dt`` is not given. ``half_step`` with 1 ms is Izhikevich's
#: (2003) own program, and the network's statistics depend on the step (the scheme's error at
#: 1 ms is part of the published network): 800 E / 200 I, 5 seeds, 5 s, measured here at 1 ms
#: E 7.1-7.3 Hz, I 6.6-7.1 Hz, population peak 7.5-8.5 Hz, as a line-by-line transcription of
#: the paper's program gives (E 7.3-7.5, I 6.7-6.9 Hz, 7-8.5 Hz); at 0.5 ms the same network
#: fires faster (E 8.3-8.8, I 8.9-9.3 Hz). ``euler`` is stable only up to 0.5 ms.
DEFAULT_DT = {"half_step": 1.0, "euler": 0.5}


def _check_param(owner, name, value, n):
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(check_float(owner, name, value, -1e6, 1e6))
    try:
        vals = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"The {name!r} parameter of {owner} must be None, a float, or a sequence of {n} "
            f"floats (one per neuron). Got {value!r} instead."
        ) from None
    if len(vals) != n:
        raise ValueError(
            f"The {name!r} parameter of {owner} must have one value per neuron (length {n}). "
            f"Got length {len(vals)} instead."
        )
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"The {name!r} parameter of {owner} must be finite. Got {value!r}.")
    return vals


def _check_neuron_param(owner, name, value, config):
    return _check_param(owner, name, value, config.n_excitatory + config.n_inhibitory)


def _check_n_inhibitory(owner, name, value, config):
    value = check_int(owner, name, value, 0)
    if config.n_excitatory + value < 1:
        raise ValueError(
            f"{owner} needs at least one neuron: n_excitatory + n_inhibitory must be >= 1. "
            f"Got {config.n_excitatory} + {value}."
        )
    return value


@dataclass(frozen=True)
class IzhikevichConfig:
    """One Izhikevich reservoir (all times in ms, currents in the units of Izhikevich 2003).

    Arguments:
        n_excitatory, n_inhibitory: population sizes (N = their sum); the first
            ``n_excitatory`` neurons are excitatory.
        n_inputs: input channels (weights ``input_scale * N(0, 1)``).
        n_outputs: readout channels (readout ``W_out r`` of the filtered rates, zeros until
            trained with FORCE / ridge / the three-factor rule).
        dt: step in ms; at most ``MAX_STABLE_DT[scheme]`` (1 ms for ``half_step``, 0.5 for
            ``euler``). Default (None): ``DEFAULT_DT[scheme]``, 1 ms for ``half_step`` --
            Izhikevich's (2003) step, at which the default network reproduces his network's
            statistics (see :data:`DEFAULT_DT`) -- and 0.5 ms for ``euler``.
        scheme: ``"half_step"`` (Izhikevich 2003) or ``"euler"``.
        neuron_type: ``"heterogeneous"`` (the 2003 E/I population) or a key of
            :data:`NEURON_TYPES` (all neurons of that type).
        a, b, c, d: optional overrides, a float or one value per neuron.
        v_peak: spike cut-off (mV).
        connectivity: ``"classic"`` (Izhikevich 2003: ``w_exc * U(0,1)`` from excitatory,
            ``-w_inh * U(0,1)`` from inhibitory neurons) or ``"gaussian"`` (``N(0, 1/(p N))``,
            spectral radius ~ gain, for FORCE); ``density`` p of non-zero weights; ``gain`` G
            multiplies all recurrent weights.
        w_exc, w_inh: scales of the classic weights.
        synapse: ``"delta"`` (a spike adds ``W / dt`` for one step, i.e. the charge of
            Izhikevich's 1 ms pulse of ``W`` at any dt),
            ``"exp"`` (decay ``tau_decay``) or ``"double_exp"`` (``tau_rise``, ``tau_decay``).
        bias: constant current to every neuron.
        noise_exc, noise_inh: std of the Gaussian ("thalamic") current per 1 ms sample (per
            step ``std * sqrt(1 ms / dt)``, so that dt = 1 ms is Izhikevich's network).
        feedback_gain: Q of the readout feedback ``Q * U(-1, 1)`` encoders (0 = none).
        init: ``"rest"`` (v = -65, u = b v) or ``"random"`` (v uniform in [-65, -55]).
    """

    n_excitatory: int = 800
    n_inhibitory: int = 200
    n_inputs: int = 1
    n_outputs: int = 1
    dt: float | None = None
    scheme: str = "half_step"
    neuron_type: str = "heterogeneous"
    a: Any = None
    b: Any = None
    c: Any = None
    d: Any = None
    v_peak: float = 30.0
    connectivity: str = "classic"
    density: float = 1.0
    gain: float = 1.0
    w_exc: float = 0.5
    w_inh: float = 1.0
    synapse: str = "delta"
    tau_rise: float = 2.0
    tau_decay: float = 20.0
    bias: float = 0.0
    noise_exc: float = 5.0
    noise_inh: float = 2.0
    input_scale: float = 1.0
    feedback_gain: float = 0.0
    init: str = "rest"

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_excitatory": Int(0),
        "n_inhibitory": Check(_check_n_inhibitory),
        "n_inputs": Int(0),
        "n_outputs": Int(0),
        "scheme": Choice(SCHEMES),
        "dt": OrNone(Float(0.0, None, low_inclusive=False)),
        "neuron_type": Choice(("heterogeneous", *NEURON_TYPES)),
        "a": Check(_check_neuron_param),
        "b": Check(_check_neuron_param),
        "c": Check(_check_neuron_param),
        "d": Check(_check_neuron_param),
        "v_peak": Float(-100.0, 1000.0),
        "connectivity": Choice(("classic", "gaussian")),
        "density": Float(0.0, 1.0, low_inclusive=False),
        "gain": Float(0.0, 1e9),
        "w_exc": Float(0.0, 1e9),
        "w_inh": Float(0.0, 1e9),
        "synapse": Choice(SYNAPSES),
        "tau_rise": Float(0.0, None, low_inclusive=False),
        "tau_decay": Float(0.0, None, low_inclusive=False),
        "bias": Float(-1e9, 1e9),
        "noise_exc": Float(0.0, 1e9),
        "noise_inh": Float(0.0, 1e9),
        "input_scale": Float(0.0, 1e9),
        "feedback_gain": Float(0.0, 1e12),
        "init": Choice(("rest", "random")),
    }

    def __post_init__(self):
        validate_config(self)

    def _check_relations(self):
        if self.dt is None:
            object.__setattr__(self, "dt", DEFAULT_DT[self.scheme])
        limit = MAX_STABLE_DT[self.scheme]
        if self.dt > limit:
            raise ValueError(
                f"The 'dt' parameter of {type(self).__name__} must be <= {limit} ms for stable "
                f"integration with scheme={self.scheme!r} (the quadratic v term overshoots and "
                f"corrupts u). Got {self.dt!r} instead."
            )

    @property
    def n_neurons(self) -> int:
        return self.n_excitatory + self.n_inhibitory


@dataclass
class SpikingResult:
    """Output of :meth:`IzhikevichReservoir.simulate`.

    Attributes:
        spikes: ``[K, B, T, N]`` bool.
        rates: ``[K, B, T, N]`` filtered rates r (1/ms) or None.
        outputs: ``[K, B, T, O]`` readout ``W_out r`` or None.
        final_state: ``[K, B, 4N]``.
        dt: step (ms).
    """

    spikes: torch.Tensor
    rates: torch.Tensor | None
    outputs: torch.Tensor | None
    final_state: torch.Tensor
    dt: float

    def firing_rates(self) -> torch.Tensor:
        """Mean rate per neuron in Hz, ``[K, B, N]``."""
        T = self.spikes.shape[2]
        return self.spikes.sum(2).to(torch.float64) / (T * self.dt * 1e-3)

    def spike_times(self, k: int = 0, b: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(times_ms, neuron_index)`` of all spikes of network k, trial b (a raster)."""
        t, i = self.spikes[k, b].nonzero(as_tuple=True)
        return t.to(torch.float64) * self.dt, i

    def to_xarray(self):
        """Spikes and rates as an ``xarray.Dataset`` (dims network, trial, time (ms), neuron)."""
        import xarray as xr

        K, B, T, N = self.spikes.shape
        coords = {"time": torch.arange(T).numpy() * self.dt}
        dims = ("network", "trial", "time", "neuron")
        data = {"spikes": (dims, self.spikes.cpu().numpy())}
        if self.rates is not None:
            data["rates"] = (dims, self.rates.cpu().numpy())
        if self.outputs is not None:
            data["outputs"] = (("network", "trial", "time", "output"), self.outputs.cpu().numpy())
        return xr.Dataset(data, coords=coords, attrs={"dt": self.dt, "time_units": "ms"})


class IzhikevichReservoir(RecurrentModel):
    """K Izhikevich reservoirs (leading dim K on every tensor), run on B trials at once.

    Buffers: ``a, b, c, d, bias, noise_std [K, N]``, ``W [K, N, N]`` (including the gain),
    ``W_in [K, N, I]``, ``eta [K, N, O]`` (feedback encoders incl. Q), ``W_out [K, O, N]``
    (readout of the filtered rates; set by the readout learning rules in
    :mod:`dynrnn.training.readouts`).
    """

    config_class = IzhikevichConfig
    model_name = "izhikevich"
    structural_fields = (
        "n_excitatory", "n_inhibitory", "n_inputs", "n_outputs", "dt", "scheme", "synapse",
        "tau_rise", "tau_decay", "v_peak",
    )  # fmt: skip

    def _init_network(self, cfg: IzhikevichConfig, gen: torch.Generator):
        ne, ni = cfg.n_excitatory, cfg.n_inhibitory
        n = ne + ni
        f64 = torch.float64
        if cfg.neuron_type == "heterogeneous":
            re, ri = (
                torch.rand(ne, generator=gen, dtype=f64),
                torch.rand(ni, generator=gen, dtype=f64),
            )
            a = torch.cat([torch.full((ne,), 0.02, dtype=f64), 0.02 + 0.08 * ri])
            b = torch.cat([torch.full((ne,), 0.2, dtype=f64), 0.25 - 0.05 * ri])
            c = torch.cat([-65.0 + 15.0 * re**2, torch.full((ni,), -65.0, dtype=f64)])
            d = torch.cat([8.0 - 6.0 * re**2, torch.full((ni,), 2.0, dtype=f64)])
        else:
            a, b, c, d = (torch.full((n,), v, dtype=f64) for v in NEURON_TYPES[cfg.neuron_type])
        over = {"a": cfg.a, "b": cfg.b, "c": cfg.c, "d": cfg.d}
        params = {"a": a, "b": b, "c": c, "d": d}
        for k, val in over.items():
            if val is not None:
                params[k] = torch.as_tensor(val, dtype=f64).expand(n).clone()
        if cfg.connectivity == "classic":
            W = torch.rand(n, n, generator=gen, dtype=f64)
            W[:, :ne] *= cfg.w_exc
            W[:, ne:] *= -cfg.w_inh
        else:
            W = torch.randn(n, n, generator=gen, dtype=f64) / math.sqrt(cfg.density * n)
        if cfg.density < 1.0:
            W = W * (torch.rand(n, n, generator=gen, dtype=f64) < cfg.density)
        W = cfg.gain * W
        noise = torch.cat([torch.full((ne,), cfg.noise_exc, dtype=f64),
                           torch.full((ni,), cfg.noise_inh, dtype=f64)])  # fmt: skip
        W_in = cfg.input_scale * torch.randn(n, cfg.n_inputs, generator=gen, dtype=f64)
        eta = cfg.feedback_gain * (2 * torch.rand(n, cfg.n_outputs, generator=gen, dtype=f64) - 1)
        out = {
            **params,
            "W": W,
            "W_in": W_in,
            "eta": eta,
            "W_out": torch.zeros(cfg.n_outputs, n, dtype=f64),
            "bias": torch.full((n,), cfg.bias, dtype=f64),
            "noise_std": noise,
            "init_random": torch.tensor(1.0 if cfg.init == "random" else 0.0, dtype=f64),
        }
        return {k: v.to(torch.get_default_dtype()) for k, v in out.items()}

    # ----------------------------------------------------------------- protocol
    @property
    def n_neurons(self) -> int:
        return self.config.n_neurons

    @property
    def n_units(self) -> int:
        return 4 * self.n_neurons

    @property
    def dt(self) -> float:
        return float(self.config.dt)

    def _cfg(self) -> dict:
        c = self.config
        return {
            "dt": float(c.dt),
            "scheme": c.scheme,
            "synapse": c.synapse,
            "v_peak": float(c.v_peak),
            "tau_rise": float(c.tau_rise),
            "tau_decay": float(c.tau_decay),
        }

    def prepare(self) -> dict[str, torch.Tensor]:
        has_fb = bool((self.eta != 0).any()) and self.n_outputs > 0
        delta = self.config.synapse == "delta"
        return {
            "a": self.a[:, None, :],
            "b": self.b[:, None, :],
            "c": self.c[:, None, :],
            "d": self.d[:, None, :],
            # delta synapses deliver the charge of a 1 ms pulse of W at any dt (Izhikevich 2003)
            "W_T": (self.W.transpose(1, 2) * (1.0 / self.dt if delta else 1.0)).contiguous(),
            "W_out_T": self.W_out.transpose(1, 2),
            "eta_T": self.eta.transpose(1, 2) if has_fb else None,
        }

    def prepare_simulation(self) -> dict[str, torch.Tensor]:
        """:meth:`prepare` plus ``bias [K, 1, N]`` and the per-step noise std ``[K, N]``."""
        p = self.prepare()
        p["bias"] = self.bias[:, None, :]
        p["noise_std"] = self.noise_std * math.sqrt(1.0 / self.dt)
        return p

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        """``W_in x + bias``: ``x [K or 1, B, (T,) I]`` -> ``[K, B, (T,) N]``."""
        K = self.n_networks
        lead = x.shape[:-1]
        flat = x.reshape(x.shape[0], math.prod(lead[1:]), x.shape[-1]).expand(K, -1, -1)
        drive = torch.bmm(flat, self.W_in.transpose(1, 2)) + self.bias[:, None, :]
        return drive.reshape(K, *lead[1:], self.n_neurons)

    def split_state(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``h [..., 4N]`` -> ``(v, u, r, x)``."""
        return tuple(h.chunk(4, dim=-1))

    def step_drive(self, h, drive, params, noise=None):
        ext = drive if noise is None else drive + noise
        state, _ = izhikevich_step(self.split_state(h), ext, params, self._cfg())
        return torch.cat(state, -1)

    def _readout_input(self, h):
        return h[..., 2 * self.n_neurons : 3 * self.n_neurons]

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        r = self._readout_input(h)
        K = r.shape[0]
        y = torch.bmm(r.reshape(K, -1, r.shape[-1]), self.W_out.transpose(1, 2))
        return y.reshape(*h.shape[:-1], self.n_outputs)

    def init_state(self, batch_size, generator=None):
        batch_size = check_int("init_state", "batch_size", batch_size, 1)
        K, N = self.n_networks, self.n_neurons
        dtype = self.dtype
        v = torch.full((K, batch_size, N), -65.0, dtype=dtype)
        rnd = self.init_random.to(dtype).view(K, 1, 1) > 0
        if bool(rnd.any()):
            gen = resolve_generator(generator if generator is not None else 0)
            v = torch.where(rnd, -65.0 + 10.0 * torch.rand(v.shape, generator=gen, dtype=dtype), v)
        u = self.b[:, None, :] * v
        z = torch.zeros_like(v)
        return torch.cat([v, u, z, z], -1)

    def has_fused_loop(self) -> bool:
        """Whether :func:`~dynrnn.models.run` may take :meth:`fused_loop` (no gradients: the
        kernel loops are not differentiable; float32/float64)."""
        return not torch.is_grad_enabled() and self.dtype in (torch.float32, torch.float64)

    def fused_loop(self, h0, x, noise, backend: str = "auto"):
        """The whole trial in one kernel loop (:func:`dynrnn.kernels.izhikevich_fast`).

        Arguments:
            h0: ``[K, B, 4N]``; x: inputs ``[K or 1, T, B, I]`` (time-major);
            noise: current noise ``[K, T, B, N]`` or None; backend: a backend name
            (``auto``, ``reference``, ``cpu``, ``cpu-torch``, ``triton``).

        Returns:
            ``(states [K, T, B, 4N], outputs [K, T, B, O])``, equal to the reference loop of
            :func:`~dynrnn.models.run` (spikes identical in float64).
        """
        with torch.no_grad():
            drive = self.input_drive(x.to(self.dtype))  # [K, T, B, N]
            *_, S = izhikevich_fast(
                self.split_state(h0), self.prepare_simulation(), self._cfg(), x.shape[1],
                drive=drive, noise=noise, record_states=True, backend=backend,
            )  # fmt: skip
            return S, self.readout(S)

    def sample_noise(self, batch_size, n_steps, generator):
        """Per-step Gaussian current ``[K, T, B, N]``: std ``noise_std * sqrt(1 ms / dt)`` per
        neuron (white noise whose 1 ms samples have std ``noise_std``, as in Izhikevich 2003)."""
        shape = (self.n_networks, n_steps, batch_size, self.n_neurons)
        noise = torch.randn(shape, generator=generator, dtype=self.dtype)
        return noise * (self.noise_std * math.sqrt(1.0 / self.dt))[:, None, None, :]

    # ----------------------------------------------------------------- simulation
    def simulate(
        self,
        n_steps: int | None = None,
        x: torch.Tensor | None = None,
        *,
        batch_size: int = 1,
        h0: torch.Tensor | None = None,
        seed: int | torch.Generator | None = 0,
        noise: bool = True,
        record_rates: bool = False,
        record_outputs: bool = False,
        backend: str = "auto",
        noise_rng: str = "auto",
        chunk_steps: int = 250,
        progress: bool = True,
    ) -> SpikingResult:
        """Simulate with thalamic noise, recording spikes (and optionally rates / outputs).

        :func:`dynrnn.run` simulates this model too (states ``[K, B, T, 4N]``, through
        :meth:`fused_loop`, the same kernel loops and the same equations of
        :mod:`dynrnn.functional.izhikevich`). ``simulate`` is the entry point for long
        recordings: it keeps only the spikes (``[K, B, T, N]`` bools, 1/32 of the float64
        states ``run`` returns) and draws the thalamic noise inside the loop from per-trial
        streams instead of taking a ``[K, T, B, N]`` noise tensor, which ``run``'s protocol
        (``sample_noise``) would have to hold in memory. It is not a second loop: it calls
        the kernel :meth:`fused_loop` calls, with a spike-only output.

        Arguments:
            n_steps: number of steps T (or give ``x``).
            x: inputs ``[B, T, I]`` or ``[K or 1, B, T, I]`` (None = no input).
            batch_size: B trials when ``x`` is None.
            h0: initial state ``[K or 1, B, 4N]`` (default ``init_state``).
            seed: seed / generator of the noise (and of a random initial state).
            noise_rng: ``"streams"`` (one splitmix64/ziggurat stream per network and
                trial, :mod:`dynrnn.kernels._noise`, drawn inside the C loop; the
                torch loops draw the same numbers, so the noise does not depend on whether a
                C compiler exists), ``"torch"`` (``torch.randn`` from ``seed`` per chunk of
                ``chunk_steps`` steps as ``[K, chunk, B, N]``, as :meth:`sample_noise`), or
                ``"auto"`` (= ``"streams"``). All backends see the same noise for the same
                choice.
            noise: add the per-step Gaussian current.
            record_rates, record_outputs: also return r and ``W_out r`` per step.
            backend: a backend name, as for :func:`dynrnn.run`:
                ``"reference"`` (the plain loop over the functional step), ``"auto"``,
                ``"cpu"`` (C), ``"cpu-torch"``, ``"triton"`` (fast loops of
                :mod:`dynrnn.kernels.izhikevich`, identical spikes).
            chunk_steps: steps per call of the loop when inputs or torch noise are cut into
                chunks (without inputs and with noise streams the C loop runs all steps in one
                call).
            progress: show a tqdm progress bar on stderr over the time steps, advanced after
                each chunk. The single-call C loop is then cut into chunks of about 2e7
                neuron-steps (K B N steps per chunk; ~0.5 s each): a call costs a fixed
                ~0.2-0.5 ms, so these chunks cost ~0.1%, and the spikes are the same (the
                noise streams carry over).

        Returns:
            :class:`SpikingResult`.
        """
        owner = "IzhikevichReservoir.simulate"
        backend = check_backend(owner, backend)
        check_bool(owner, "noise", noise)
        check_bool(owner, "progress", progress)
        check_choice(owner, "noise_rng", noise_rng, ("auto", "streams", "torch"))
        if noise_rng == "auto":
            noise_rng = "streams"
        chunk_steps = check_int(owner, "chunk_steps", chunk_steps, 1)
        K, N = self.n_networks, self.n_neurons
        if x is not None:
            if x.ndim == 3:
                x = x.unsqueeze(0)
            if x.ndim != 4 or x.shape[0] not in (1, K) or x.shape[-1] != self.n_inputs:
                raise ValueError(
                    f"The 'x' argument of {owner} must have shape [K or 1, B, T, "
                    f"{self.n_inputs}]. Got {tuple(x.shape)}."
                )
            B, T = x.shape[1], x.shape[2]
        else:
            if n_steps is None:
                raise ValueError(f"{owner} needs 'n_steps' or 'x'.")
            T = check_int(owner, "n_steps", n_steps, 1)
            B = check_int(owner, "batch_size", batch_size, 1)
        gen = resolve_generator(seed)
        dtype = self.dtype
        h = self.init_state(B, gen) if h0 is None else self._check_state(h0).to(dtype)
        if h.shape[1] != B:
            raise ValueError(f"The 'h0' argument must have batch size {B}. Got {h.shape[1]}.")
        h = h.expand(K, -1, -1)
        state = self.split_state(h)
        rng = None
        if noise and noise_rng == "streams":
            rng = noise_streams(int(torch.randint(0, 2**62, (1,), generator=gen)), K, B)
        with torch.no_grad():
            p = self.prepare_simulation()
            cfg = self._cfg()
            spikes = torch.empty(K, B, T, N, dtype=torch.bool)
            want_r = record_rates or record_outputs
            rates = torch.empty(K, B, T, N, dtype=dtype) if want_r else None
            in_loop = backend == "cpu" or (
                backend == "auto" and self.device.type == "cpu" and cpp_extension_available(dtype)
            )  # the C loop, which draws the noise streams inside the time loop
            if x is None and rng is not None and in_loop:
                chunk_steps = T  # nothing of size T is materialised
                if progress:  # chunks for the bar, large enough to cost nothing measurable
                    chunk_steps = min(T, max(1, -(-_BAR_CHUNK_NEURON_STEPS // (K * B * N))))
            with progress_bar(progress, total=T, desc="simulate", unit="step") as bar:
                for t0 in range(0, T, chunk_steps):
                    t1 = min(T, t0 + chunk_steps)
                    kw = {"record_rates": want_r}
                    if x is not None:
                        kw["drive"] = self.input_drive(x[:, :, t0:t1].to(dtype)).transpose(1, 2)
                    if noise and rng is None:
                        kw["noise"] = self.sample_noise(B, t1 - t0, gen)
                    elif noise:
                        kw["rng"] = rng
                    elif x is None:
                        kw["drive"] = p["bias"][:, None].expand(K, t1 - t0, B, N)
                    state, spk, r = izhikevich_fast(state, p, cfg, t1 - t0, backend=backend,
                                                    **kw)
                    spikes[:, :, t0:t1] = spk.transpose(1, 2)
                    if want_r:
                        rates[:, :, t0:t1] = r.transpose(1, 2)
                    bar.update(t1 - t0)
            outputs = None
            if record_outputs:
                outputs = torch.einsum("kbtn,kon->kbto", rates, self.W_out.to(dtype))
            return SpikingResult(
                spikes=spikes,
                rates=rates if record_rates else None,
                outputs=outputs,
                final_state=torch.cat(state, -1),
                dt=self.dt,
            )
