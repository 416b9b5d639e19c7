"""The protocol every dynrnn model follows, and the one simulation loop :func:`run`.

Shapes are the contract (see DESIGN.md):

* states ``h``: ``[K, B, N]`` -- K networks, B trials, N units (K=1 for one network, never
  squeezed);
* inputs ``x``: ``[K or 1, B, T, I]`` (a whole trial) or ``[K or 1, B, I]`` (one step);
* ``step(h, x) -> h_next`` is the discrete-time map F (continuous-time models are their
  discretisation with the stated ``dt``); ``readout(h) -> y``; ``init_state(B)``;
  ``jacobian(h, x) -> [K, B, N, N]`` with ``J[k, b, i, j] = d h_next[i] / d h[j]``.

Internally a step is split in two so that the input projection is computed once per trial
outside the time loop (the FlashRNN pattern): ``input_drive(x)`` maps inputs to a drive
``[K, B, (T,) D]`` and ``step_drive(h, drive_t, params)`` advances the state, where ``params``
comes from ``prepare()`` (effective weights after constraints such as Dale's law, computed once
per call of :func:`run`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from .._repr import describe_values, html_table, text_summary
from .._validation import (
    ParameterTypeError,
    check_bool,
    check_int,
    check_model_tensor,
    resolve_generator,
)
from .._validation import check_finite as check_finite_values
from ..kernels._backends import check_backend
from .protocol import RUN_PROTOCOL

__all__ = [
    "RecurrentModel", "run", "MODEL_REGISTRY", "model_from_spec", "stack_networks",
    "jacobian_by_autodiff",
]

MODEL_REGISTRY: dict[str, type[RecurrentModel]] = {}
#: what :func:`run` needs of a model (:class:`~dynrnn.models.protocol.DynamicalSystem`)
_RUN_PROTOCOL = RUN_PROTOCOL


def _as_batched_input(
    model: RecurrentModel, x: Any, name: str = "x", owner: str = "run"
) -> torch.Tensor:
    """Inputs ``[B, T, I]`` (shared by all networks) or ``[K or 1, B, T, I]`` as
    ``[K or 1, B, T, I]`` in the model's dtype (numpy arrays and integer tensors are converted);
    a wrong type or shape raises naming ``name``."""
    x, layout = check_model_tensor(
        owner, name, x, model, [("B", "T", "I"), ("K|1", "B", "T", "I")], dtype=model.dtype
    )
    return x.unsqueeze(0) if layout == 0 else x


class RecurrentModel(nn.Module):
    """Base class: a batch of K discrete-time recurrent networks with identical architecture.

    Every parameter and buffer has the network dimension K first, so that ``select`` and
    :func:`stack_networks` can slice and concatenate networks, and the zoo can store them.

    Subclasses set ``config_class``, ``structural_fields`` (config fields that must agree across
    the networks of one model, because they fix shapes or code paths) and implement
    ``_init_network(config, generator) -> dict[name, tensor]`` (parameters of ONE network,
    without the K dim), ``input_drive``, ``step_drive``, ``readout`` and ``n_units``.
    """

    config_class: ClassVar[type]
    model_name: ClassVar[str]
    structural_fields: ClassVar[tuple[str, ...]] = ()
    #: names of tensors from ``_init_network`` that are trained (the rest become buffers)
    trainable: ClassVar[tuple[str, ...]] = ()
    #: config fields added after models of this class were first saved, with the value that
    #: reproduces the behaviour of files written before the field existed (used when a stored
    #: config lacks the field)
    legacy_config_defaults: ClassVar[dict[str, Any]] = {}
    #: state tensors added later: a stored file without them loads with their initial values
    optional_state: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "model_name" in cls.__dict__:
            MODEL_REGISTRY[cls.model_name] = cls

    def __init__(
        self,
        config: Any | Sequence[Any],
        n_networks: int | None = None,
        seed: int = 0,
        seeds: Sequence[int] | None = None,
    ):
        super().__init__()
        configs = self._normalise_configs(config, n_networks, seeds)
        if seeds is None:
            seed = check_int(type(self).__name__, "seed", seed, 0)
            seeds = [seed + k for k in range(len(configs))]
        if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
            raise ParameterTypeError(
                f"The 'seeds' parameter of {type(self).__name__} must be a sequence of "
                f"non-negative ints, one per network. Got {seeds!r} instead."
            )
        seeds = [check_int(type(self).__name__, "seeds", s, 0) for s in seeds]
        if len(seeds) != len(configs):
            raise ValueError(
                f"The 'seeds' parameter of {type(self).__name__} must have one seed per network "
                f"({len(configs)}). Got {len(seeds)} seeds instead."
            )
        self.configs: list[Any] = configs
        self.seeds: list[int] = seeds
        per_network = [
            self._init_network(cfg, resolve_generator(s)) for cfg, s in zip(configs, seeds)
        ]
        for name in per_network[0]:
            value = torch.stack([p[name] for p in per_network])
            if name in self.trainable_names():
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    # ----------------------------------------------------------------- configuration
    def _normalise_configs(self, config, n_networks, seeds) -> list[Any]:
        owner = type(self).__name__
        if isinstance(config, self.config_class):
            k = n_networks if n_networks is not None else (len(seeds) if seeds is not None else 1)
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ValueError(
                    f"The 'n_networks' parameter of {owner} must be an int in the range [1, inf). "
                    f"Got {n_networks!r} instead."
                )
            return [config] * k
        configs = list(config) if isinstance(config, Sequence) else None
        if not configs or not all(isinstance(c, self.config_class) for c in configs):
            raise ValueError(
                f"The 'config' parameter of {owner} must be a {self.config_class.__name__} or a "
                f"non-empty sequence of them. Got {config!r} instead."
            )
        if n_networks is not None and n_networks != len(configs):
            raise ValueError(
                f"The 'n_networks' parameter of {owner} ({n_networks}) must match the number of "
                f"configs ({len(configs)})."
            )
        for field in self.structural_fields:
            values = {getattr(c, field) for c in configs}
            if len(values) > 1:
                raise ValueError(
                    f"All networks of one {owner} must share the structural field {field!r}; "
                    f"got {sorted(map(repr, values))}. Build separate models instead."
                )
        return configs

    def trainable_names(self) -> tuple[str, ...]:
        return self.trainable

    @property
    def config(self):
        """The first network's config (structural fields are shared by all networks)."""
        return self.configs[0]

    @property
    def n_networks(self) -> int:
        return len(self.configs)

    @property
    def n_inputs(self) -> int:
        return int(self.config.n_inputs)

    @property
    def n_outputs(self) -> int:
        return int(self.config.n_outputs)

    @property
    def n_units(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def dt(self) -> float:
        return float(getattr(self.config, "dt", 1.0))

    def spec(self) -> dict:
        """JSON-serialisable description from which :func:`model_from_spec` rebuilds the model."""
        return {
            "model": self.model_name,
            "configs": [dataclasses.asdict(c) for c in self.configs],
            "seeds": list(self.seeds),
        }

    def network_metadata(self) -> list[dict]:
        """One flat dict per network (config fields + seed), e.g. for xarray coordinates."""
        return [
            {"model": self.model_name, "seed": s, **dataclasses.asdict(c)}
            for c, s in zip(self.configs, self.seeds)
        ]

    # ----------------------------------------------------------------- summaries
    def _summary_rows(self) -> tuple[str, list[tuple[str, str]]]:
        """Title and (field, value) rows: sizes, dtype, trainable parameters, then every
        config field (one value, or the distinct values across the K networks)."""
        K = self.n_networks
        n_params = sum(int(p.numel()) for p in self.parameters() if p.requires_grad)
        title = (f"{type(self).__name__}: {K} network{'s' * (K != 1)} of {self.n_units} "
                 f"units")
        rows = [("networks (K)", str(K)), ("units (N)", str(self.n_units)),
                ("inputs (I)", str(self.n_inputs)), ("outputs (O)", str(self.n_outputs)),
                ("dtype", str(self.dtype).replace("torch.", "")),
                ("trainable parameters", f"{n_params:,} ({n_params // K:,} per network)")]
        configs = [dataclasses.asdict(c) for c in self.configs]
        for field in configs[0]:
            if field in ("n_inputs", "n_units", "n_outputs"):
                continue
            rows.append((field, describe_values([c[field] for c in configs])))
        rows.append(("seeds", describe_values(self.seeds)))
        return title, rows

    def __repr__(self) -> str:
        return text_summary(*self._summary_rows())

    def _repr_html_(self) -> str:
        return html_table(*self._summary_rows())

    # ----------------------------------------------------------------- network subsets
    def select(self, index: int | Sequence[int] | torch.Tensor) -> RecurrentModel:
        """A new model holding the networks ``index`` (copies of the weights)."""
        if isinstance(index, int) and not isinstance(index, bool):
            index = [index]
        msg = (
            f"The 'index' parameter of select must be an int, a sequence of ints or an integer "
            f"tensor selecting networks in [0, {self.n_networks}). Got {index!r} instead."
        )
        try:
            idx = torch.as_tensor(index).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise ParameterTypeError(msg) from None
        if idx.dtype == torch.bool or idx.is_floating_point() or idx.is_complex():
            raise ParameterTypeError(msg)
        idx = idx.to(torch.long)
        if idx.numel() == 0 or idx.min() < -self.n_networks or idx.max() >= self.n_networks:
            raise ValueError(msg)
        idx = idx % self.n_networks
        new = type(self)(
            [self.configs[i] for i in idx.tolist()], seeds=[self.seeds[i] for i in idx.tolist()]
        )
        state = {k: v.detach()[idx].clone() for k, v in self.state_dict().items()}
        return _load_exact(new, state)

    def _device_dtype(self):
        p = next(iter(self.state_dict().values()))
        return p.device, p.dtype

    @property
    def device(self) -> torch.device:
        return self._device_dtype()[0]

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            return p.dtype
        return self._device_dtype()[1]

    # ----------------------------------------------------------------- the protocol
    def _init_network(self, config, generator: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def prepare(self) -> dict[str, torch.Tensor]:
        """Derived tensors needed by ``step_drive`` (effective weights), computed once per run."""
        return {}

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs ``[K or 1, B, (T,) I]`` to the drive ``[K, B, (T,) D]`` of ``step_drive``."""
        raise NotImplementedError

    def step_drive(
        self,
        h: torch.Tensor,
        drive: torch.Tensor,
        params: dict[str, torch.Tensor],
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Advance ``h [K, B, N]`` one step given the drive ``[K, B, D]``."""
        raise NotImplementedError

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """Outputs ``[K, B, (T,) O]`` from states ``[K, B, (T,) N]``.

        Default: the linear readout ``W_out r + b_out`` of ``r = self._readout_input(h)``
        (the state itself, or e.g. the ``h`` half of an LSTM state).
        """
        h = self._check_readout_state(h)
        r = self._readout_input(h)
        K = r.shape[0]
        flat = r.reshape(K, -1, r.shape[-1])
        if self.config.readout_bias:
            y = torch.baddbmm(self.b_out[:, None, :], flat, self.W_out.transpose(1, 2))
        else:
            y = torch.bmm(flat, self.W_out.transpose(1, 2))
        return y.reshape(*h.shape[:-1], self.n_outputs)

    def _readout_input(self, h: torch.Tensor) -> torch.Tensor:
        return h

    def _check_readout_state(self, h: Any) -> torch.Tensor:
        """States ``[K, B, N]`` or ``[K, B, T, N]`` for :meth:`readout` (a wrong type or shape
        raises naming ``h``)."""
        if torch.is_tensor(h) and h.dtype == self.dtype and h.ndim in (3, 4) and (
            h.shape[0] == self.n_networks and h.shape[-1] == self.n_units
        ):
            return h  # the hot path of run: nothing to convert
        h, _ = check_model_tensor(
            "readout", "h", h, self, [("K", "B", "N"), ("K", "B", "T", "N")], dtype=self.dtype
        )
        return h

    def init_state(
        self, batch_size: int, generator: torch.Generator | int | None = None
    ) -> torch.Tensor:
        """Initial states ``[K, B, N]`` (zeros unless the model says otherwise)."""
        batch_size = check_int("init_state", "batch_size", batch_size, 1)
        return torch.zeros(
            self.n_networks, batch_size, self.n_units, device=self.device, dtype=self.dtype
        )

    def step(self, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """The map F: ``h [K, B, N]``, ``x [K or 1, B, I]`` (None = zero input) -> ``[K, B, N]``."""
        h = self._check_state(h, "step")
        return self.step_drive(h, self._drive_for_step(h, x, "step"), self.prepare())

    def _drive_for_step(
        self, h: torch.Tensor, x: torch.Tensor | None, owner: str = "step"
    ) -> torch.Tensor:
        if x is None:
            x = torch.zeros(1, h.shape[1], self.n_inputs, device=h.device, dtype=h.dtype)
        x, layout = check_model_tensor(
            owner, "x", x, self, [("K|1", "B|1", "I"), ("B|1", "I")], dtype=h.dtype,
            B=h.shape[1],
        )
        if layout == 1:
            x = x.unsqueeze(0)
        return self.input_drive(x).expand(h.shape[0], h.shape[1], -1)

    def _check_state(self, h: Any, owner: str = "step", name: str = "h") -> torch.Tensor:
        """``h`` as ``[K, B, N]`` in the model's dtype from ``[K or 1, B, N]`` or ``[B, N]``
        (a wrong type or shape raises naming ``name``)."""
        return _state_for(self, h, owner, name)

    def jacobian(self, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Jacobian of the map, ``[K, B, N, N]`` with ``J[..., i, j] = d F_i / d h_j``.

        Default: forward-mode autodiff (``torch.func.jvp`` vmapped over the N basis directions),
        exact to float precision. Subclasses override it with an analytic form where cheap.
        """
        h = self._check_state(h, "jacobian")
        return jacobian_by_autodiff(self, h, self._drive_for_step(h, x, "jacobian"))

    def project_(self) -> None:
        """Re-impose parameter constraints after an optimiser step (e.g. tau >= tau_min)."""

    def weight_layout(self) -> dict[str, torch.Tensor]:
        """The weights by role, for comparisons that permute the hidden units (e.g.
        :func:`dynrnn.analyses.weight_distance`).

        Returns:
            ``{"recurrent": [K, N, N], "input": [K, N, I], "output": [K, O, N]}`` plus, where the
            model has them, ``"bias" [K, N]``, ``"output_bias" [K, O]`` and ``"tau" [K, N]``;
            one permutation of the N hidden units must act on all of them consistently (rows
            and columns of ``recurrent``, rows of ``input``, columns of ``output``, entries of
            ``bias`` and ``tau``).

        Raises:
            NotImplementedError: by default; a model defines it only when its weights have that
            layout.
        """
        raise NotImplementedError(
            f"{type(self).__name__} defines no weight_layout(): its weights have no single "
            "recurrent / input / output / bias layout that one permutation of the hidden units "
            "acts on."
        )

    def has_fused_loop(self) -> bool:
        """Whether :meth:`fused_loop` is available (see :mod:`dynrnn.kernels`)."""
        return False

    def fused_loop(self, h0, x, noise):
        """Whole trial at once (a :mod:`dynrnn.kernels` fast path): inputs ``x [Kx, T, B, I]``
        (time-major per network), state noise ``[K, T, B, N]`` or None -> ``(states
        [K, T, B, N], outputs [K, T, B, O])``; must equal the reference loop of :func:`run`."""
        raise NotImplementedError

    def has_fused_forced_rollout(self) -> bool:
        """Whether :meth:`fused_forced_rollout` is available (teacher forcing,
        :func:`dynrnn.training.gtf.gtf_loss`)."""
        return False

    def fused_forced_rollout(
        self, zhat: torch.Tensor, weights: torch.Tensor, z0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced rollout in one call (a :mod:`dynrnn.kernels` fast path) of
        ``z~_{t-1} = z_{t-1} + w_t (zhat_{t-1} - z_{t-1})``, ``z_t = F(z~_{t-1})`` (no input).

        Arguments:
            zhat: data-inferred latent states ``[K, S+1, B, N]`` (time-major).
            weights: forcing weights ``[S, K, 1, N]`` (entry t applies before step t).
            z0: first state ``[K, B, N]`` (gradients flow into it).

        Returns:
            ``(Z, ZF)``, the states after each step and the forced states before it, both
            ``[K, S, B, N]`` (``ZF`` carries no gradient); must equal the step-by-step loop.
        """
        raise NotImplementedError

    def perturb_inputs(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Inputs ``[K or 1, B, T, I]`` with the model's input noise added (default: unchanged)."""
        return x

    def sample_noise(
        self, batch_size: int, n_steps: int, generator: torch.Generator
    ) -> torch.Tensor | None:
        """Per-step state noise ``[K, T, B, N]`` for :func:`run` (Gaussian with the per-network
        std ``rec_noise_std [K]``), or None if the model has none."""
        std = getattr(self, "rec_noise_std", None)
        if std is None or not bool((std > 0).any()):
            return None
        shape = (self.n_networks, n_steps, batch_size, self.n_units)
        noise = torch.randn(shape, generator=generator, dtype=self.dtype, device=self.device)
        return noise * std.to(self.dtype)[:, None, None, None]


def stack_networks(models: Sequence[RecurrentModel]) -> RecurrentModel:
    """Concatenate models of the same class along the network dimension K.

    Structural config fields must agree (ValueError otherwise); per-network hyperparameters may
    differ. The result's network ``k`` is an exact copy of the corresponding input network.
    """
    if isinstance(models, (str, bytes)) or not isinstance(models, Sequence):
        raise ParameterTypeError(
            "The 'models' parameter of stack_networks must be a non-empty sequence of models. "
            f"Got {type(models).__name__} instead."
        )
    models = list(models)
    if not models:
        raise ValueError("The 'models' parameter of stack_networks must be a non-empty sequence.")
    if not all(isinstance(m, RecurrentModel) for m in models):
        raise ParameterTypeError(
            "The 'models' parameter of stack_networks must hold dynrnn models. Got "
            f"{sorted({type(m).__name__ for m in models})}."
        )
    cls = type(models[0])
    if any(type(m) is not cls for m in models):
        raise ValueError(
            "The 'models' parameter of stack_networks must hold models of one class. Got "
            f"{sorted({type(m).__name__ for m in models})}."
        )
    configs = [c for m in models for c in m.configs]
    seeds = [s for m in models for s in m.seeds]
    new = cls(configs, seeds=seeds)
    states = [m.state_dict() for m in models]
    return _load_exact(new, {k: torch.cat([s[k].detach() for s in states]) for k in states[0]})


def _load_exact(model: RecurrentModel, state: dict[str, torch.Tensor]) -> RecurrentModel:
    """Load ``state`` into ``model`` keeping the tensors' dtype and device (no rounding)."""
    first = next(iter(state.values()))
    model.to(device=first.device, dtype=first.dtype if first.is_floating_point() else None)
    model.load_state_dict(state)
    return model


def model_from_spec(spec: dict) -> RecurrentModel:
    """Rebuild a model (freshly initialised from its seeds) from :meth:`RecurrentModel.spec`."""
    if not isinstance(spec, dict):
        raise ParameterTypeError(
            "The 'spec' parameter of model_from_spec must be a dict from RecurrentModel.spec(). "
            f"Got {type(spec).__name__} instead."
        )
    name = spec.get("model")
    if name not in MODEL_REGISTRY:
        raise ValueError(
            f"The 'spec' parameter of model_from_spec names an unknown model {name!r}; known "
            f"models: {sorted(MODEL_REGISTRY)}."
        )
    cls = MODEL_REGISTRY[name]
    field_names = {f.name for f in dataclasses.fields(cls.config_class)}
    if not isinstance(spec.get("configs"), (list, tuple)) or not all(
        isinstance(c, dict) for c in spec["configs"]
    ) or not isinstance(spec.get("seeds"), (list, tuple)):
        raise ValueError(
            "The 'spec' parameter of model_from_spec must hold 'configs' (a list of dicts) and "
            f"'seeds' (a list of ints). Got keys {sorted(spec)}."
        )
    configs = []
    for c in spec["configs"]:
        kwargs = {
            k: (tuple(v) if isinstance(v, list) else v) for k, v in c.items() if k in field_names
        }
        for k, v in cls.legacy_config_defaults.items():
            kwargs.setdefault(k, v)
        configs.append(cls.config_class(**kwargs))
    return cls(configs, seeds=spec["seeds"])


def jacobian_by_autodiff(model: Any, h: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
    """``J [K, B, N, N]``, ``J[k, b, i, j] = d F_i / d h_j``, of ``model.step_drive`` at states
    ``h [K, B, N]`` and drive ``[K, B, D]`` by forward-mode autodiff (``torch.func.jvp`` vmapped
    over the N basis directions; exact to float precision). The one autodiff Jacobian path: the
    default of :meth:`RecurrentModel.jacobian`, and usable by any protocol model."""
    params = model.prepare()
    n = h.shape[-1]
    basis = torch.eye(n, device=h.device, dtype=h.dtype)[:, None, None, :].expand(n, *h.shape)

    def f(state):
        return model.step_drive(state, drive, params)

    cols = torch.func.vmap(lambda v: torch.func.jvp(f, (h,), (v,))[1])(basis)
    return cols.permute(1, 2, 3, 0)


def _state_for(model: Any, h: Any, owner: str, name: str) -> torch.Tensor:
    """``h`` as ``[K, B, N]`` for any protocol model: ``[K or 1, B, N]`` or ``[B, N]``,
    converted to the model's dtype; a wrong type or shape raises naming ``name``."""
    h, layout = check_model_tensor(
        owner, name, h, model, [("K|1", "B", "N"), ("B", "N")], dtype=model.dtype
    )
    if layout == 1:
        h = h.unsqueeze(0)
    if h.shape[0] == 1 and model.n_networks > 1:
        h = h.expand(model.n_networks, -1, -1)
    return h


def run(
    model: RecurrentModel,
    x: torch.Tensor | None = None,
    h0: torch.Tensor | None = None,
    *,
    n_steps: int | None = None,
    batch_size: int | None = None,
    noise: bool = False,
    generator: torch.Generator | int | None = None,
    return_states: bool = True,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    backend: str = "auto",
    check_finite: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The one simulation loop: run ``model`` on inputs ``x`` (or ``n_steps`` steps without
    input) from initial state ``h0``.

    Every multi-step simulation of the package goes through here (training, the DSR metrics'
    free runs, the Lyapunov burn-ins, the fixed-point finder's initial-state rollouts); models
    with a fused kernel (``model.has_fused_loop()``, :mod:`dynrnn.kernels`) are run by it, the
    rest by the reference loop below (the specification the kernels are tested against).

    Arguments:
        model: any object following :class:`~dynrnn.models.DynamicalSystem` (e.g. a
            :class:`RecurrentModel`) with K networks.
        x: inputs ``[B, T, I]`` (shared by all networks) or ``[K or 1, B, T, I]`` with
            ``B, T >= 1``; a tensor, numpy array or nested list, converted to the model's dtype
            (a floating tensor of that dtype is used as it is, so gradients flow into it). None:
            zero input for ``n_steps`` steps (an autonomous run; no ``[B, T, I]`` tensor is
            made).
        h0: initial state ``[K or 1, B, N]`` or ``[B, N]`` (converted like ``x``); default
            ``model.init_state(B, generator)``.
        n_steps: number of steps T when ``x`` is None (must not be given with ``x``).
        batch_size: trials B when neither ``x`` nor ``h0`` give it (default 1).
        noise: add the model's recurrent/input noise (training); needs ``generator`` for
            reproducibility.
        generator: seed or ``torch.Generator`` for initial states and noise.
        return_states: if False, ``states`` is returned as None and the reference loop keeps
            only the outputs (and the current state), never the ``[K, B, T, N]`` states.
        callback: ``callback(t, h)`` after every step ``t = 0 .. T-1`` with the state ``h [K, B,
            N]`` after that step (e.g. to accumulate a statistic without storing states). With
            a fused kernel the whole trial runs first and the callback sees each step's state
            afterwards (same values, same order).
        backend: ``"auto"`` uses the model's fused loop where it has one (``backend="auto"``
            passed on, the kernel picks); ``"reference"`` forces the plain autograd loop below;
            a kernel name (``"cpu"``, ``"cpu-torch"``, ``"triton"``; see
            :data:`dynrnn.kernels.BACKENDS`) is passed to the model's fused loop (ValueError for
            a model without one).
        check_finite: raise ValueError naming ``x`` or ``h0`` when they hold NaN or inf. By
            default (False) non-finite values are allowed and simply propagate: a NaN input
            makes the states and outputs of its trial NaN from that step on (and, through the
            weights, spreads to every unit), which is how masked or missing data shows up
            downstream; the check costs one pass over ``x``.

    Returns:
        ``(states [K, B, T, N], outputs [K, B, T, O])``. From a fused kernel (time-major
        internally) both are transposed views, not copies; call ``.contiguous()`` where a
        contiguous layout is needed.

    Raises:
        ValueError: a wrong shape (I, K, N or the batch size of ``h0``), an empty batch or time
            axis, an unknown ``backend``, a negative seed, ``x`` and ``n_steps`` both or
            neither given, or (with ``check_finite``) NaN / inf.
        TypeError: a ``model`` without the protocol, or an argument of the wrong type (a
            string, a complex tensor, a non-bool flag, a callback that is not callable).
    """
    missing = [a for a in _RUN_PROTOCOL if not hasattr(model, a)]
    if missing:
        raise ParameterTypeError(
            f"The 'model' parameter of run must follow the dynrnn model protocol "
            f"(dynrnn.models.DynamicalSystem; missing {missing}). Got {type(model).__name__} "
            "instead."
        )
    check_bool("run", "noise", noise)
    check_bool("run", "return_states", return_states)
    check_bool("run", "check_finite", check_finite)
    backend = check_backend("run", backend)
    if callback is not None and not callable(callback):
        raise ParameterTypeError(
            f"The 'callback' parameter of run must be callable as callback(t, h) or None. Got "
            f"{type(callback).__name__} instead."
        )
    K = model.n_networks
    if x is None:
        if n_steps is None:
            raise ValueError("run needs inputs 'x' or a number of steps 'n_steps'. Got neither.")
        T = check_int("run", "n_steps", n_steps, 1)
        if h0 is not None:
            B = _state_for(model, h0, "run", "h0").shape[1]
        else:
            B = 1 if batch_size is None else check_int("run", "batch_size", batch_size, 1)
        if batch_size is not None and check_int("run", "batch_size", batch_size, 1) != B:
            raise ValueError(
                f"The 'batch_size' parameter of run ({batch_size}) must match the batch size of "
                f"h0 ({B})."
            )
        x_zero = torch.zeros(1, 1, 1, model.n_inputs, device=model.device, dtype=model.dtype)
        x_tm = x_zero.expand(1, T, B, model.n_inputs)  # [1, T, B, I], no memory
    else:
        if n_steps is not None:
            raise ValueError(
                "The 'n_steps' parameter of run is for runs without input; with inputs 'x' the "
                f"number of steps is x's T. Got n_steps={n_steps!r} and x as well."
            )
        x = _as_batched_input(model, x)
        B, T = x.shape[1], x.shape[2]
        if batch_size is not None and check_int("run", "batch_size", batch_size, 1) != B:
            raise ValueError(
                f"The 'batch_size' parameter of run ({batch_size}) must match x's B ({B})."
            )
        x_tm = None
    gen = None
    if generator is not None or noise:
        gen = resolve_generator(generator, owner="run", name="generator")
    if h0 is None:
        h = model.init_state(B, gen)
    else:
        h = _state_for(model, h0, "run", "h0")
        if h.shape[1] != B:
            raise ValueError(
                f"The 'h0' parameter of run must have batch size B={B} like x. Got "
                f"{tuple(h.shape)} instead."
            )
    if check_finite:
        if x is not None:
            check_finite_values("run", "x", x)
        check_finite_values("run", "h0", h)
    if h.shape[0] == 1 and K > 1:
        h = h.expand(K, -1, -1)
    if x_tm is None:
        if noise and hasattr(model, "perturb_inputs"):
            x = model.perturb_inputs(x, gen)
        # Layout [K, T, B, D]: each step is a batch of contiguous B x D matrices (see kernels).
        x_tm = x.transpose(1, 2)
    state_noise = None  # [K, T, B, N]
    if noise and hasattr(model, "sample_noise"):
        state_noise = model.sample_noise(B, T, gen)
    has_fused = getattr(model, "has_fused_loop", None)
    fused = backend != "reference" and has_fused is not None and has_fused()
    if backend not in ("auto", "reference") and not fused:
        raise ValueError(
            f"The 'backend' parameter of run is {backend!r}, a fused kernel, but "
            f"{type(model).__name__} has no fused loop here; use 'auto' or 'reference'."
        )
    if fused:
        if backend == "auto":
            S, Y = model.fused_loop(h, x_tm, state_noise)  # [K, T, B, N], [K, T, B, O]
        else:
            S, Y = model.fused_loop(h, x_tm, state_noise, backend=backend)
        if callback is not None:
            for t, h_t in enumerate(S.unbind(1)):
                callback(t, h_t)
        return (S.transpose(1, 2) if return_states else None), Y.transpose(1, 2)
    params = model.prepare()
    constant_drive = x is None  # zero input: one drive for every step
    if constant_drive:
        drive_steps = [model.input_drive(x_tm[:, 0]).expand(K, B, -1)] * T
    else:
        # unbind (not drive[:, t]) so that the backward is one stack, not T scatters into a
        # zero tensor of the whole sequence
        drive_steps = model.input_drive(x_tm).expand(K, -1, -1, -1).unbind(1)
    noise_steps = state_noise.unbind(1) if state_noise is not None else [None] * T
    states, outputs = [], []
    for t in range(T):
        h = model.step_drive(h, drive_steps[t], params, noise_steps[t])
        if return_states:
            states.append(h)
        else:
            outputs.append(model.readout(h))
        if callback is not None:
            callback(t, h)
    if not return_states:
        return None, torch.stack(outputs, dim=2)
    S = torch.stack(states, dim=2)  # [K, B, T, N] directly: no transposed copy
    return S, model.readout(S)
