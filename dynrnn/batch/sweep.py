"""Hyperparameter sweeps: declare a grid of networks, plan it into chunks, train the chunks
(in process, in local processes or on Dask) into a zoo, resume after any interruption.

**Declaration.** A sweep is a :class:`Sweep` (Python) or a TOML file read by
:func:`load_sweep`, with the tables::

    [sweep]                      # name (a file-name segment), seeds = [0, 1] or n_seeds = 2,
    name = "flipflop_sizes"      # chunk_size (networks per train call, default 64),
    n_seeds = 4                  # training_seed (seed of the trials; default 0)
    chunk_size = 16

    [task]                       # name = a TASK_REGISTRY name, then the task's fields
    name = "flipflop"
    n_bits = 3

    [model]                      # kind = "rate_rnn" | "gru" | "lstm", then config fields;
    kind = "rate_rnn"            # n_inputs / n_outputs default to the task's
    nonlinearity = "tanh"

    [training]                   # TrainConfig fields (not `progress`)
    n_steps = 500

    [grid]                       # the axes varied: "<table>.<field>" = [values]
    "model.n_units" = [16, 32, 64, 128]
    "training.weight_decay" = [0.0, 1e-4]

Only ``[grid]`` varies anything: a list in ``[task]``/``[model]`` is that field's value (e.g.
``ParityTask.n_values``). Every value is checked by the config it belongs to; an error is a
ValueError (a wrong type: :class:`~dynrnn._validation.ParameterTypeError`) whose message
starts with the file (or ``<Sweep>``) and the field, e.g. ``sweep.toml: [grid] model.n_units:
The 'n_units' parameter of RateRNNConfig must be ...``.

**Plan** (:func:`plan`). The networks are the product of the grid axes (in declaration order)
and the seeds (innermost). A network's id is the first 16 hex digits of the sha256 of the
canonical JSON (sorted keys, no spaces) of ``{"task": task.to_dict(), "model": {"kind": ...,
every model config field}, "training": every TrainConfig field but progress, "training_seed":
..., "seed": ...}``, all values as normalised by the configs (so ``l1 = 0`` and ``l1 = 0.0``
give one id): it depends on nothing but the network's resolved configuration, so it is the same
on every run and machine. Networks that can share one model and one :func:`train` call -- the
same task, model kind, the model class's ``structural_fields`` and every training field except
the per-network ``lr`` and ``weight_decay`` -- form a *group*; each group is cut, in plan order,
into *chunks* of at most ``chunk_size`` networks. A chunk's id is the first 12 hex digits of the
sha256 of ``{"sweep": name, "networks": [its network ids]}``.

**Run** (:func:`run_sweep`). Each chunk is one work item of
:func:`dynrnn.batch.executors.map_chunks`: the worker (:func:`train_chunk`) builds the model
with the chunk's per-network configs and seeds (network k is initialised from its own seed,
never from its position), trains it with ``train(seed=training_seed)`` and returns the weights
(numpy arrays) and the per-network outcome; only this process writes, one
:meth:`~dynrnn.zoo.Zoo.add` per chunk, tagged ``sweep:<name>`` and ``chunk:<chunk id>``, with
the outcome fields ``sweep`` (name), ``sweep_id`` (network id), ``chunk``, ``status``
(``"done"`` or ``"failed"``), ``diverged``, ``reached``, ``steps_to_criterion``,
``final_eval_loss`` and the training fields that the grid varies (by field name, e.g.
``weight_decay``); model fields and the seed are the zoo's own columns, task fields its
``task.<field>`` columns. A chunk's weights depend only on the chunk (fixed by the plan), not
on the executor, the worker or the other chunks of the run. Without training noise
(``rec_noise_std``/``input_noise_std`` 0 or ``training.noise = false``) and random initial
states (``h0_scale = 0``) a network's weights do not even depend on the other networks of its
chunk (``tests/test_sweep.py`` compares ``chunk_size=1`` with larger chunks); with them, the
noise is drawn for the whole chunk, so a network's stream depends on its place in the chunk.

**Resume.** The zoo is the record of finished chunks: a chunk is done when an entry tagged with
its id exists (``Zoo.add`` writes the entry JSON last and atomically, so an interrupted write is
never a finished chunk; it is redone and, being deterministic, gives the same entry). Running
the same sweep again trains only the chunks not done. The resolved plan is written once, as
``<out>/sweeps/<name>.json`` (the manifest: networks, chunks, a sha256 of the plan); a
different plan under the same name and out directory is refused with a ValueError.

**Faults.** A chunk whose worker raises is recorded in ``<out>/sweeps/<name>/failed/<chunk
id>.json`` (error line, traceback, network ids; written atomically) and the other chunks go
on; later runs report failed chunks and skip them unless ``retry_failed=True``, and the record
is removed once the chunk succeeds. A network that diverges inside a chunk (``train`` marks and
freezes it) is stored with its chunk with ``status="failed"``, ``diverged=True``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._validation import ParameterTypeError, check_bool, check_int
from .executors import check_executor, map_chunks

__all__ = [
    "SWEEP_MODELS",
    "Sweep",
    "Plan",
    "PlannedNetwork",
    "Chunk",
    "Estimate",
    "SweepStatus",
    "load_sweep",
    "plan",
    "run_sweep",
    "sweep_status",
    "train_chunk",
]

#: model kinds a sweep trains (by BPTT with :func:`dynrnn.training.train`)
SWEEP_MODELS = ("rate_rnn", "gru", "lstm")
#: TrainConfig fields that may differ between the networks of one train call
PER_NETWORK_TRAINING = ("lr", "weight_decay")
_TABLES = ("sweep", "task", "model", "training", "grid")
_GRID_TABLES = ("task", "model", "training")
_SWEEP_KEYS = ("name", "seeds", "n_seeds", "chunk_size", "training_seed")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MANIFEST_FORMAT = "dynrnn.sweep"
MANIFEST_VERSION = 1
NETWORK_ID_LENGTH = 16
CHUNK_ID_LENGTH = 12


# --------------------------------------------------------------------------- helpers
def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _sha(obj: Any, n: int) -> str:
    return hashlib.sha256(_canonical(obj).encode("utf-8")).hexdigest()[:n]


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _tuples(value: Any) -> Any:
    """TOML/JSON lists -> tuples (the configs' sequence fields)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _reraise(err: Exception, prefix: str) -> Exception:
    """``err`` with ``prefix`` before its message, same class (ParameterTypeError stays one);
    TypeError of a constructor (missing/unexpected argument) becomes a ValueError."""
    cls = type(err) if isinstance(err, ValueError) else ValueError
    try:
        new = cls(f"{prefix}{err}")
    except Exception:  # noqa: BLE001 - an exception class with another signature
        new = ValueError(f"{prefix}{err}")
    return new


def _registries():
    from ..models.base import MODEL_REGISTRY
    from ..tasks import TASK_REGISTRY
    from ..training.supervised import TrainConfig

    return TASK_REGISTRY, MODEL_REGISTRY, TrainConfig


def _field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


# --------------------------------------------------------------------------- declaration
@dataclass(frozen=True)
class Sweep:
    """A declared sweep (see the module docstring for the format and the rules).

    Arguments:
        name: the sweep's name, a file-name segment (letters, digits, ``_ . -``).
        task: ``{"name": <TASK_REGISTRY name>, **task fields}``.
        model: ``{"kind": one of SWEEP_MODELS, **model config fields}``; ``n_inputs`` /
            ``n_outputs`` default to the task's (2 per head for classification tasks).
        training: TrainConfig fields (``progress`` is not a sweep setting).
        grid: ``{"<task|model|training>.<field>": [values, ...]}``; nested tables
            (``{"model": {"n_units": [...]}}``, what TOML makes of an unquoted dotted key) are
            flattened.
        seeds: model seeds, one network per seed and grid point; or ``n_seeds`` (seeds
            ``0 .. n_seeds-1``); default one seed, 0.
        chunk_size: most networks trained in one model / train call.
        training_seed: the ``seed`` of every :func:`train` call (trials, held-out set, noise).
        source: where the declaration came from, prefixed to every error (a file path, or
            ``"<Sweep>"``); not part of the sweep's identity.

    Raises:
        ValueError / ParameterTypeError: an unknown table, key, field, task or model kind, an
            empty or non-list grid axis, a grid key that names no field, a value its config
            refuses -- the message starts with ``source`` and names the field.
    """

    name: str
    task: Mapping[str, Any]
    model: Mapping[str, Any]
    training: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    seeds: Sequence[int] | None = None
    n_seeds: int | None = None
    chunk_size: int = 64
    training_seed: int = 0
    source: str = field(default="<Sweep>", compare=False)

    def __post_init__(self):
        src = self.source if isinstance(self.source, str) else str(self.source)
        object.__setattr__(self, "source", src)

        def fail(where: str, message: str, cls=ValueError):
            raise cls(f"{src}: {where}: {message}")

        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            fail("[sweep] name", "must be a non-empty name of letters, digits, '_', '.', '-' "
                 f"(it names the manifest file). Got {self.name!r}.",
                 ValueError if isinstance(self.name, str) else ParameterTypeError)
        for table, value in (("task", self.task), ("model", self.model),
                             ("training", self.training), ("grid", self.grid)):
            if not isinstance(value, Mapping):
                fail(f"[{table}]", f"must be a table (dict). Got {type(value).__name__}.",
                     ParameterTypeError)
        object.__setattr__(self, "task", {k: _tuples(v) for k, v in self.task.items()})
        object.__setattr__(self, "model", {k: _tuples(v) for k, v in self.model.items()})
        object.__setattr__(self, "training", {k: _tuples(v) for k, v in self.training.items()})
        object.__setattr__(self, "grid", _flatten_grid(self.grid, src))
        # sweep settings
        if self.seeds is not None and self.n_seeds is not None:
            fail("[sweep] seeds", "give seeds or n_seeds, not both.")
        if self.seeds is None:
            n = 1 if self.n_seeds is None else self._int("n_seeds", self.n_seeds, 1)
            seeds = tuple(range(n))
        else:
            if isinstance(self.seeds, (str, bytes)) or not isinstance(self.seeds, Sequence):
                fail("[sweep] seeds", f"must be a list of ints >= 0. Got {self.seeds!r}.",
                     ParameterTypeError)
            seeds = tuple(self._int("seeds", s, 0) for s in self.seeds)
            if not seeds:
                fail("[sweep] seeds", "must not be empty.")
            if len(set(seeds)) != len(seeds):
                fail("[sweep] seeds", f"must be distinct. Got {list(seeds)}.")
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "n_seeds", None)
        object.__setattr__(self, "chunk_size", self._int("chunk_size", self.chunk_size, 1))
        object.__setattr__(self, "training_seed",
                           self._int("training_seed", self.training_seed, 0))
        _check_tables(self)

    def _int(self, key: str, value: Any, low: int) -> int:
        try:
            return check_int("Sweep", key, value, low)
        except ValueError as err:
            raise _reraise(err, f"{self.source}: [sweep] {key}: ") from None

    @classmethod
    def from_dict(cls, tables: Mapping[str, Any], source: str = "<Sweep>") -> Sweep:
        """A sweep from the tables of a sweep file (``{"sweep": {...}, "task": {...},
        "model": {...}, "training": {...}, "grid": {...}}``)."""
        if not isinstance(tables, Mapping):
            raise ParameterTypeError(
                f"{source}: a sweep must be a dict of tables {list(_TABLES)}. "
                f"Got {type(tables).__name__}."
            )
        unknown = [k for k in tables if k not in _TABLES]
        if unknown:
            raise ValueError(f"{source}: [{unknown[0]}]: unknown table; a sweep file has the "
                             f"tables {list(_TABLES)}.")
        for t in ("sweep", "task", "model"):
            if t not in tables:
                raise ValueError(f"{source}: [{t}]: the table is missing.")
        head = tables["sweep"]
        if not isinstance(head, Mapping):
            raise ParameterTypeError(f"{source}: [sweep]: must be a table. Got {head!r}.")
        bad = [k for k in head if k not in _SWEEP_KEYS]
        if bad:
            raise ValueError(f"{source}: [sweep] {bad[0]}: unknown key; [sweep] takes "
                             f"{list(_SWEEP_KEYS)}.")
        if "name" not in head:
            raise ValueError(f"{source}: [sweep] name: missing (every sweep has a name).")
        return cls(
            name=head["name"], task=tables["task"], model=tables["model"],
            training=tables.get("training", {}), grid=tables.get("grid", {}),
            seeds=head.get("seeds"), n_seeds=head.get("n_seeds"),
            chunk_size=head.get("chunk_size", 64), training_seed=head.get("training_seed", 0),
            source=source,
        )

    def to_dict(self) -> dict:
        """The sweep as tables (JSON-serialisable; :meth:`from_dict` gives it back)."""
        return {
            "sweep": {"name": self.name, "seeds": list(self.seeds),
                      "chunk_size": self.chunk_size, "training_seed": self.training_seed},
            "task": _jsonable(dict(self.task)),
            "model": _jsonable(dict(self.model)),
            "training": _jsonable(dict(self.training)),
            "grid": {k: _jsonable(list(v)) for k, v in self.grid.items()},
        }

    def replace(self, **changes: Any) -> Sweep:
        """A copy with some arguments changed; ``task=``, ``model=``, ``training=`` are merged
        into the existing tables (e.g. ``training={"n_steps": 5}``), ``grid=`` replaces axes
        by key (an axis set to None is removed)."""
        kw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        kw["n_seeds"] = None
        for table in ("task", "model", "training"):
            if table in changes:
                kw[table] = {**kw[table], **changes.pop(table)}
        if "grid" in changes:
            grid = {**kw["grid"], **_flatten_grid(changes.pop("grid"), self.source, check=False)}
            kw["grid"] = {k: v for k, v in grid.items() if v is not None}
        if "n_seeds" in changes:
            kw["seeds"] = None
        kw.update(changes)
        return Sweep(**kw)


def _flatten_grid(grid: Mapping, src: str, check: bool = True) -> dict[str, tuple]:
    """``{"model": {"n_units": [..]}}`` and ``{"model.n_units": [..]}`` -> dotted keys; each
    axis a non-empty tuple of distinct values."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any):
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
            return
        out[prefix] = value

    if not isinstance(grid, Mapping):
        raise ParameterTypeError(f"{src}: [grid]: must be a table. Got {grid!r}.")
    walk("", grid)
    if not check:
        return out
    axes = {}
    for key, values in out.items():
        where = f"{src}: [grid] {key}: "
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
            raise ParameterTypeError(
                f"{where}a grid axis must be a list of the values to sweep. Got {values!r}."
            )
        if not values:
            raise ValueError(f"{where}the grid axis is empty; give at least one value.")
        values = tuple(_tuples(v) for v in values)
        seen = []
        for v in values:
            if any(type(v) is type(s) and v == s for s in seen):
                raise ValueError(f"{where}the value {v!r} appears twice in the grid axis.")
            seen.append(v)
        axes[key] = values
    return axes


def _check_tables(sw: Sweep) -> None:
    """Names of tables, kinds and fields; every value checked by building the base configs
    with each grid value in turn (the full product is checked by :func:`plan`)."""
    task_reg, model_reg, train_cls = _registries()
    src = sw.source
    task = dict(sw.task)
    if "name" not in task:
        raise ValueError(f"{src}: [task] name: missing; one of {sorted(task_reg)}.")
    tname = task.pop("name")
    if tname not in task_reg:
        cls = ParameterTypeError if not isinstance(tname, str) else ValueError
        raise cls(f"{src}: [task] name: unknown task {tname!r}; known tasks: "
                  f"{sorted(task_reg)}.")
    model = dict(sw.model)
    if "kind" not in model:
        raise ValueError(f"{src}: [model] kind: missing; one of {list(SWEEP_MODELS)}.")
    kind = model.pop("kind")
    if kind not in SWEEP_MODELS:
        known = "" if kind not in model_reg else " (a sweep trains models by BPTT)"
        raise ValueError(f"{src}: [model] kind: unknown model kind {kind!r}{known}; one of "
                         f"{list(SWEEP_MODELS)}.")
    fields = {
        "task": _field_names(task_reg[tname]),
        "model": _field_names(model_reg[kind].config_class),
        "training": [f for f in _field_names(train_cls) if f != "progress"],
    }
    for table, values in (("task", task), ("model", model), ("training", sw.training)):
        for key in values:
            if key not in fields[table]:
                hint = (" (progress bars are an argument of run_sweep / --quiet)"
                        if key == "progress" else "")
                raise ValueError(f"{src}: [{table}] {key}: unknown field{hint}; "
                                 f"{_owner(table, tname, kind)} has {fields[table]}.")
    for key in sw.training:
        if key in PER_NETWORK_TRAINING and isinstance(sw.training[key], (tuple, list)):
            raise ParameterTypeError(
                f"{src}: [training] {key}: must be one number; vary it in [grid] as "
                f'"training.{key}" = [...]. Got {list(sw.training[key])!r}.'
            )
    for key, values in sw.grid.items():
        table, dot, fname = key.partition(".")
        if table not in _GRID_TABLES or not dot:
            raise ValueError(f"{src}: [grid] {key}: a grid key is '<table>.<field>' with table "
                             f"one of {list(_GRID_TABLES)}.")
        if table == "task" and fname == "name" or table == "model" and fname == "kind":
            raise ValueError(f"{src}: [grid] {key}: the task and the model kind cannot be "
                             "varied by a grid (write one sweep per task / model kind).")
        if fname not in fields[table]:
            raise ValueError(f"{src}: [grid] {key}: {fname!r} is not a field of "
                             f"{_owner(table, tname, kind)}; its fields: {fields[table]}.")
        if table == "training" and fname in PER_NETWORK_TRAINING:
            for v in values:
                if isinstance(v, tuple):
                    raise ParameterTypeError(f"{src}: [grid] {key}: each value must be one "
                                             f"number. Got {list(v)!r}.")
    # every value on its own (the others at their base / first grid value)
    first = {k: v[0] for k, v in sw.grid.items()}
    _resolve(sw, first, where="")
    for key, values in sw.grid.items():
        for v in values[1:]:
            _resolve(sw, {**first, key: v})


def _owner(table: str, tname: str, kind: str) -> str:
    if table == "task":
        return f"task {tname!r}"
    if table == "model":
        return f"model kind {kind!r}"
    return "TrainConfig"


def _resolve(sw: Sweep, point: Mapping[str, Any], where: str = ""):
    """Build ``(task, model config, TrainConfig)`` for one grid point; errors name the file
    and the field (``where`` names the grid value being checked)."""
    task_reg, model_reg, train_cls = _registries()
    src = sw.source
    over = {t: {} for t in _GRID_TABLES}
    for key, v in point.items():
        table, _, fname = key.partition(".")
        over[table][fname] = v

    def origin(table: str, fname: str) -> str:
        return f"[grid] {table}.{fname}" if fname in over[table] else f"[{table}] {fname}"

    def build(table, cls, kwargs, owner):
        try:
            return cls(**kwargs)
        except TypeError as err:
            if isinstance(err, ParameterTypeError):
                raise _reraise(err, _prefix(err, table)) from None
            m = re.search(r"missing \d+ required (?:positional|keyword-only) arguments?: (.*)",
                          str(err))
            if m:
                missing = re.findall(r"'(\w+)'", m.group(1))
                raise ValueError(
                    f"{src}: {where}[{table}] {missing[0]}: required by {owner}; set it in "
                    f'[{table}] or vary it in [grid] as "{table}.{missing[0]}".'
                ) from None
            raise _reraise(err, f"{src}: {where}[{table}]: ") from None
        except ValueError as err:
            raise _reraise(err, _prefix(err, table)) from None

    def _prefix(err: Exception, table: str) -> str:
        m = re.search(r"The '(\w+)' parameter of", str(err))
        if m:
            return f"{src}: {where or ''}{origin(table, m.group(1))}: "
        return f"{src}: {where}[{table}]: "

    tfields = {k: v for k, v in sw.task.items() if k != "name"}
    tname = sw.task["name"]
    task = build("task", task_reg[tname], {**tfields, **over["task"]}, f"task {tname!r}")
    kind = sw.model["kind"]
    mcls = model_reg[kind]
    mkw = {k: v for k, v in sw.model.items() if k != "kind"}
    mkw.update(over["model"])
    classification = getattr(task, "kind", "regression") == "classification"
    mkw.setdefault("n_inputs", task.n_inputs)
    mkw.setdefault("n_outputs", 2 * len(task.n_values) if classification else task.n_outputs)
    mcfg = build("model", mcls.config_class, mkw, f"model kind {kind!r}")
    tr = build("training", train_cls, {**sw.training, **over["training"], "progress": False},
               "TrainConfig")
    if mcfg.n_inputs != task.n_inputs:
        raise ValueError(f"{src}: {where}{origin('model', 'n_inputs')}: the model's n_inputs "
                         f"({mcfg.n_inputs}) must equal the task's ({task.n_inputs}).")
    want = 2 * len(task.n_values) if classification else task.n_outputs
    if mcfg.n_outputs != want:
        raise ValueError(f"{src}: {where}{origin('model', 'n_outputs')}: the model's n_outputs "
                         f"({mcfg.n_outputs}) must be {want} for this task.")
    return task, mcfg, tr


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep TOML file (format in the module docstring).

    Raises:
        FileNotFoundError: no such file (the message names it).
        ValueError / ParameterTypeError: invalid TOML or an invalid sweep; the message starts
            with the path and names the field.
    """
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"No sweep file {p}: " + (
            "it is not a file." if p.exists() else "it does not exist."))
    try:
        tables = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{p}: not a valid TOML file: {err}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{p}: not a text (UTF-8) file: {err}") from None
    return Sweep.from_dict(tables, source=str(p))


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class PlannedNetwork:
    """One network of a plan: ``id`` (16 hex digits), ``index`` (plan order), ``seed``,
    ``coords`` (``{"<table>.<field>": value}`` of the grid axes), ``group``, ``chunk`` (id), the
    resolved ``task`` (``Task.to_dict()``), ``model_kind``, ``model`` (config fields) and
    ``training`` (TrainConfig fields without ``progress``)."""

    id: str
    index: int
    seed: int
    coords: dict
    group: int
    chunk: str
    task: dict
    model_kind: str
    model: dict
    training: dict


@dataclass(frozen=True)
class Chunk:
    """One train call: ``id`` (12 hex digits), ``index``, ``group`` and the ids of its networks
    (at most ``chunk_size``), in plan order."""

    id: str
    index: int
    group: int
    networks: tuple[str, ...]


@dataclass(frozen=True)
class Estimate:
    """What :meth:`Plan.estimate` measured: ``seconds`` (all chunks, every network running all
    ``n_steps``: an upper bound, early stopping shortens it), ``per_group`` (seconds per
    structural group), ``calibration_steps`` (steps timed per group)."""

    seconds: float
    per_group: tuple[float, ...]
    calibration_steps: int


def _coord_column(key: str, model_fields: Iterable[str]) -> str:
    """The zoo column that shows a grid axis: model fields by name, task fields as
    ``task.<field>``, training fields by name (``training.<field>`` if a model field has the
    name)."""
    table, _, fname = key.partition(".")
    if table == "task":
        return key
    if table == "training" and (fname in model_fields or fname in _RESERVED_COLUMNS):
        return key
    return fname


#: columns the zoo sets itself (an outcome field may not use these names)
_RESERVED_COLUMNS = ("id", "entry", "k", "model", "seed", "task", "tags", "created", "dtype",
                     "dynrnn_version", "sweep", "sweep_id", "chunk", "status", "diverged",
                     "reached", "steps_to_criterion", "final_eval_loss")


@dataclass(frozen=True)
class Plan:
    """The resolved sweep: ``networks`` (:class:`PlannedNetwork`, plan order), ``chunks``
    (:class:`Chunk`), ``groups`` (per group: the structural values shared by its networks).

    ``table()`` is the networks as a pandas DataFrame (``id``, ``seed``, one column per grid
    axis named as in the zoo, ``group``, ``chunk``); ``sha256`` identifies the plan (network ids
    and chunk composition)."""

    sweep: Sweep
    networks: tuple[PlannedNetwork, ...]
    chunks: tuple[Chunk, ...]
    groups: tuple[dict, ...]

    @property
    def name(self) -> str:
        return self.sweep.name

    @property
    def sha256(self) -> str:
        return _sha({"name": self.sweep.name, "training_seed": self.sweep.training_seed,
                     "chunks": [[c.id, list(c.networks)] for c in self.chunks]}, 64)

    def network(self, network_id: str) -> PlannedNetwork:
        return self._by_id()[network_id]

    def _by_id(self) -> dict[str, PlannedNetwork]:
        return {n.id: n for n in self.networks}

    def coord_columns(self) -> dict[str, str]:
        """``{grid key: zoo column}`` for every grid axis."""
        fields = self.networks[0].model.keys() if self.networks else ()
        return {k: _coord_column(k, fields) for k in self.sweep.grid}

    def rows(self) -> list[dict]:
        """One dict per network: ``id``, ``seed``, the grid coordinates (zoo column names),
        ``group``, ``chunk``."""
        cols = self.coord_columns()
        return [{"id": n.id, "seed": n.seed,
                 **{cols[k]: _jsonable(v) for k, v in n.coords.items()},
                 "group": n.group, "chunk": n.chunk} for n in self.networks]

    def table(self):
        """:meth:`rows` as a ``pandas.DataFrame``."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def work_item(self, chunk: Chunk | str) -> dict:
        """The picklable work of one chunk, the argument of :func:`train_chunk`: ``chunk``
        (id), ``model_kind``, ``configs`` (one model config dict per network), ``seeds``,
        ``task`` (dict), ``training`` (TrainConfig fields; ``lr`` and ``weight_decay`` one per
        network), ``training_seed``, ``networks`` (ids)."""
        if isinstance(chunk, str):
            chunk = next(c for c in self.chunks if c.id == chunk)
        by = self._by_id()
        nets = [by[i] for i in chunk.networks]
        training = dict(nets[0].training)
        for f in PER_NETWORK_TRAINING:
            training[f] = [n.training[f] for n in nets]
        return {
            "chunk": chunk.id, "model_kind": nets[0].model_kind,
            "configs": [dict(n.model) for n in nets], "seeds": [n.seed for n in nets],
            "task": dict(nets[0].task), "training": training,
            "training_seed": self.sweep.training_seed, "networks": list(chunk.networks),
        }

    def estimate(self, steps: int = 3) -> Estimate:
        """Time ``steps`` training steps of the largest chunk of every group (in this process)
        and scale them to the whole plan: seconds per step x ``n_steps`` x the group's
        networks / the timed chunk's networks. An upper bound (early stopping ends networks
        sooner); includes one held-out evaluation per calibration."""
        steps = check_int("Plan.estimate", "steps", steps, 1)
        per_group = []
        for g in range(len(self.groups)):
            chunks = [c for c in self.chunks if c.group == g]
            big = max(chunks, key=lambda c: len(c.networks))
            item = self.work_item(big)
            n_steps = item["training"]["n_steps"]
            item["training"] = {**item["training"], "n_steps": min(steps, n_steps)}
            t0 = time.perf_counter()
            train_chunk(item)
            sps = (time.perf_counter() - t0) / min(steps, n_steps)
            n_nets = sum(len(c.networks) for c in chunks)
            per_group.append(sps * n_steps * n_nets / len(big.networks))
        return Estimate(float(sum(per_group)), tuple(per_group), steps)

    def summary(self) -> str:
        """A few lines: networks, chunks, groups (their structural values) and the grid."""
        lines = [f"sweep {self.name} ({self.sweep.source}): {len(self.networks)} networks, "
                 f"{len(self.chunks)} chunks (at most {self.sweep.chunk_size} networks each), "
                 f"{len(self.groups)} structural groups"]
        for key, values in self.sweep.grid.items():
            lines.append(f"  grid {key}: {[_jsonable(v) for v in values]}")
        lines.append(f"  seeds: {list(self.sweep.seeds)}")
        for g, shared in enumerate(self.groups):
            n_chunks = sum(1 for c in self.chunks if c.group == g)
            n_nets = sum(1 for n in self.networks if n.group == g)
            text = ", ".join(f"{k}={_jsonable(v)}" for k, v in shared.items()) or "(all alike)"
            plural = "" if n_chunks == 1 else "s"
            lines.append(f"  group {g}: {n_nets} networks in {n_chunks} chunk{plural}: {text}")
        return "\n".join(lines)


def plan(sweep: Sweep | str | Path) -> Plan:
    """Expand a sweep (or a sweep file) into networks and chunks (rules in the module
    docstring); every grid point's configs are built and checked.

    Raises:
        ValueError / ParameterTypeError: as :class:`Sweep`, for the first grid point that a
            config refuses (the message names the file and the grid values), or two grid
            points that resolve to the same network.
    """
    sw = _as_sweep(sweep)
    _, model_reg, _ = _registries()
    kind = sw.model["kind"]
    structural = model_reg[kind].structural_fields
    keys = list(sw.grid)
    networks: list[dict] = []
    group_keys: dict[str, int] = {}
    groups: list[dict] = []
    seen: dict[str, dict] = {}
    for values in itertools.product(*(sw.grid[k] for k in keys)):
        point = dict(zip(keys, values))
        where = ("[grid] " + ", ".join(f"{k} = {v!r}" for k, v in point.items()) + ": "
                 if point else "")
        task, mcfg, tr = _resolve(sw, point, where=where)
        tdict = _jsonable(task.to_dict())
        mdict = _jsonable(dataclasses.asdict(mcfg))
        trdict = _jsonable({k: v for k, v in dataclasses.asdict(tr).items() if k != "progress"})
        shared = {"task": tdict, "model_kind": kind,
                  "model": {f: mdict[f] for f in structural},
                  "training": {k: v for k, v in trdict.items() if k not in PER_NETWORK_TRAINING}}
        gkey = _canonical(shared)
        if gkey not in group_keys:
            group_keys[gkey] = len(groups)
            groups.append(_group_view(shared, keys))
        for seed in sw.seeds:
            nid = _sha({"task": tdict, "model": {"kind": kind, **mdict}, "training": trdict,
                        "training_seed": sw.training_seed, "seed": seed}, NETWORK_ID_LENGTH)
            if nid in seen:
                raise ValueError(
                    f"{sw.source}: {where or '[grid]: '}resolves to the same network as "
                    f"{seen[nid]} (seed {seed}); remove the duplicate grid value."
                )
            seen[nid] = point
            resolved = {"task": tdict, "model": mdict, "training": trdict}
            coords = {k: resolved[k.partition(".")[0]][k.partition(".")[2]] for k in keys}
            networks.append({"id": nid, "seed": seed, "coords": coords,
                             "group": group_keys[gkey], "task": tdict, "model_kind": kind,
                             "model": mdict, "training": trdict})
    chunks: list[Chunk] = []
    chunk_of: dict[str, str] = {}
    for g in range(len(groups)):
        members = [n["id"] for n in networks if n["group"] == g]
        for start in range(0, len(members), sw.chunk_size):
            ids = tuple(members[start:start + sw.chunk_size])
            cid = _sha({"sweep": sw.name, "networks": list(ids)}, CHUNK_ID_LENGTH)
            chunks.append(Chunk(cid, len(chunks), g, ids))
            chunk_of.update({i: cid for i in ids})
    planned = tuple(PlannedNetwork(index=i, chunk=chunk_of[n["id"]], **n)
                    for i, n in enumerate(networks))
    return Plan(sw, planned, tuple(chunks), tuple(groups))


def _group_view(shared: dict, keys: list[str]) -> dict:
    """What the groups differ in, for display: the structural values of the gridded fields."""
    view = {}
    for key in keys:
        table, _, fname = key.partition(".")
        if table == "task":
            view[key] = shared["task"].get(fname)
        elif table == "model" and fname in shared["model"]:
            view[key] = shared["model"][fname]
        elif table == "training" and fname in shared["training"]:
            view[key] = shared["training"][fname]
    return view


def _as_sweep(sweep) -> Sweep:
    if isinstance(sweep, Sweep):
        return sweep
    if isinstance(sweep, (str, Path)):
        return load_sweep(sweep)
    if isinstance(sweep, Mapping):
        return Sweep.from_dict(sweep)
    raise ParameterTypeError(
        "The 'sweep' parameter must be a Sweep, a dict of sweep tables or the path of a sweep "
        f"TOML file. Got {type(sweep).__name__}."
    )


# --------------------------------------------------------------------------- the worker
def train_chunk(item: dict) -> dict:
    """Train one chunk (a :meth:`Plan.work_item`); runs in a worker, writes nothing.

    Returns:
        ``{"chunk": id, "state": {name: numpy array [K, ...]}, "outcome": {field: [K values]}}``
        with outcome fields ``diverged``, ``reached``, ``steps_to_criterion``,
        ``final_eval_loss`` (held-out loss at the last evaluation).
    """
    import numpy as np

    from ..tasks import task_from_dict
    from ..training.supervised import TrainConfig, train

    model = _build_model(item)
    task = task_from_dict(item["task"])
    training = {k: (tuple(v) if isinstance(v, list) else v) for k, v in item["training"].items()}
    cfg = TrainConfig(**training, progress=False)
    history = train(model, task, cfg, seed=item["training_seed"], progress=False)
    state = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    final = history.eval_loss[:, -1]
    return {
        "chunk": item["chunk"],
        "state": state,
        "outcome": {
            "diverged": [bool(x) for x in history.failed],
            "reached": [bool(x) for x in history.reached],
            "steps_to_criterion": [int(x) for x in history.steps_to_criterion],
            "final_eval_loss": [float(x) for x in np.asarray(final, dtype=float)],
        },
    }


def _build_model(item: dict):
    from ..models.base import MODEL_REGISTRY

    cls = MODEL_REGISTRY[item["model_kind"]]
    configs = [cls.config_class(**{k: _tuples(v) for k, v in c.items()}) for c in item["configs"]]
    return cls(configs, seeds=list(item["seeds"]))


# --------------------------------------------------------------------------- on disk
def _sweeps_dir(out: Path) -> Path:
    return out / "sweeps"


def _manifest_path(out: Path, name: str) -> Path:
    return _sweeps_dir(out) / f"{name}.json"


def _failed_dir(out: Path, name: str) -> Path:
    return _sweeps_dir(out) / name / "failed"


def _atomic_write_json(path: Path, obj: Any) -> None:
    from ..zoo import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(obj, indent=1, allow_nan=True).encode("utf-8"))


def _manifest(p: Plan) -> dict:
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "name": p.name,
        "plan_sha256": p.sha256,
        "source": p.sweep.source,
        "declaration": p.sweep.to_dict(),
        "coords": p.coord_columns(),
        "chunks": [{"id": c.id, "group": c.group, "networks": list(c.networks)}
                   for c in p.chunks],
        "networks": p.rows(),
    }


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot be read as a sweep record ({err}).") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a sweep record (not a JSON object).")
    return data


def _read_manifest(path: Path) -> dict:
    data = _read_json(path)
    if data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("chunks"), list):
        raise ValueError(f"{path}: not a dynrnn sweep manifest (missing 'format': "
                         f"{MANIFEST_FORMAT!r} or 'chunks').")
    return data


def _ensure_manifest(out: Path, p: Plan) -> None:
    """Write the manifest once; refuse a different plan under the same name."""
    path = _manifest_path(out, p.name)
    if path.exists():
        old = _read_manifest(path)
        if old.get("plan_sha256") != p.sha256:
            raise ValueError(
                f"{p.sweep.source}: the sweep {p.name!r} in {out} was planned differently "
                f"(from {old.get('source')}, manifest {path}): its networks or chunks differ "
                f"from this declaration's. Use a new out directory or a new [sweep] name."
            )
        return
    _atomic_write_json(path, _manifest(p))


def _done_chunks(out: Path, chunk_ids: Iterable[str]) -> dict[str, list[dict]]:
    """``{chunk id: zoo rows}`` of the chunks (of ``chunk_ids``) stored in the zoo at ``out``."""
    from ..zoo import Zoo

    wanted = set(chunk_ids)
    if not (out / "entries").is_dir():
        return {}
    done: dict[str, list[dict]] = {}
    for row in Zoo(out).networks(as_frame=False):
        for tag in row.get("tags", ()):
            if tag.startswith("chunk:") and tag[6:] in wanted:
                done.setdefault(tag[6:], []).append(row)
    return done


def _failed_chunks(out: Path, name: str) -> dict[str, dict]:
    d = _failed_dir(out, name)
    if not d.is_dir():
        return {}
    records = {}
    for f in sorted(d.glob("*.json")):
        if f.name.startswith("."):
            continue
        try:
            records[f.stem] = _read_json(f)
        except ValueError as err:  # an unreadable record still marks the chunk failed
            records[f.stem] = {"error": str(err)}
    return records


@dataclass(frozen=True)
class SweepStatus:
    """Where one sweep stands in an out directory.

    Attributes:
        name: the sweep's name; ``manifest``: its manifest file.
        chunks_done / chunks_failed / chunks_pending: chunk ids (a failed chunk is not done;
            pending = neither).
        networks: planned networks; ``networks_done``: networks stored; ``diverged``: stored
            networks that diverged (``status="failed"`` in the zoo).
        errors: ``{chunk id: error line}`` of the failed chunks.
        trained: chunk ids trained by the call that returned this (``run_sweep``), else ().
    """

    name: str
    manifest: str
    chunks_done: tuple[str, ...]
    chunks_failed: tuple[str, ...]
    chunks_pending: tuple[str, ...]
    networks: int
    networks_done: int
    diverged: int
    errors: dict = field(default_factory=dict)
    trained: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.chunks_failed and not self.chunks_pending

    def summary(self) -> str:
        n = len(self.chunks_done) + len(self.chunks_failed) + len(self.chunks_pending)
        text = (f"{self.name}: {len(self.chunks_done)}/{n} chunks done, "
                f"{len(self.chunks_failed)} failed, {len(self.chunks_pending)} pending; "
                f"{self.networks_done}/{self.networks} networks stored")
        if self.diverged:
            text += f" ({self.diverged} diverged)"
        return text


def _status(out: Path, name: str, chunk_ids: Sequence[str], n_networks: int,
            trained: Sequence[str] = ()) -> SweepStatus:
    done = _done_chunks(out, chunk_ids)
    failed = {c: r for c, r in _failed_chunks(out, name).items() if c not in done}
    rows = [r for c in done for r in done[c]]
    return SweepStatus(
        name=name,
        manifest=str(_manifest_path(out, name)),
        chunks_done=tuple(c for c in chunk_ids if c in done),
        chunks_failed=tuple(c for c in chunk_ids if c in failed),
        chunks_pending=tuple(c for c in chunk_ids if c not in done and c not in failed),
        networks=n_networks,
        networks_done=len({r.get("sweep_id", r["id"]) for r in rows}),
        diverged=sum(1 for r in rows if r.get("diverged") is True),
        errors={c: str(failed[c].get("error")) for c in chunk_ids if c in failed},
        trained=tuple(trained),
    )


def sweep_status(out: str | Path) -> list[SweepStatus]:
    """The status of every sweep planned in ``out`` (one per manifest ``sweeps/*.json``).

    Raises:
        FileNotFoundError: ``out`` does not exist.
        ValueError: ``out`` holds no sweep manifest, or one that cannot be read.
    """
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"No sweep directory {out}: " + (
            "it is not a directory." if out.exists() else "it does not exist."))
    manifests = sorted(p for p in _sweeps_dir(out).glob("*.json") if not p.name.startswith("."))
    if not manifests:
        raise ValueError(f"{out} holds no sweep (no manifest in {_sweeps_dir(out)}); "
                         "`dynrnn sweep run FILE --out DIR` makes one.")
    result = []
    for path in manifests:
        m = _read_manifest(path)
        ids = [c["id"] for c in m["chunks"]]
        result.append(_status(out, m.get("name", path.stem), ids, len(m.get("networks", []))))
    return result


# --------------------------------------------------------------------------- the runner
def run_sweep(
    sweep: Sweep | str | Path,
    out: str | Path,
    *,
    executor: str = "inprocess",
    workers: int | None = None,
    scheduler: str | None = None,
    retry_failed: bool = False,
    progress: bool = False,
) -> SweepStatus:
    """Train every chunk of ``sweep`` not yet in the zoo at ``out`` (see the module docstring
    for what is stored, the resume rule and the fault records).

    Arguments:
        sweep: a :class:`Sweep`, a dict of sweep tables or a sweep TOML file.
        out: the zoo directory (created when needed); the manifest and fault records go to
            ``<out>/sweeps/``.
        executor, workers, scheduler: where chunks run
            (:func:`dynrnn.batch.executors.map_chunks`); the weights do not depend on it.
        retry_failed: also run the chunks recorded as failed (default: report, skip them).
        progress: a progress bar over the chunks (stderr).

    Returns:
        :class:`SweepStatus` after the run (``trained``: the chunks this call stored).

    Raises:
        ValueError: an invalid sweep, a different plan already under this name in ``out``,
            bad executor arguments.
    """
    from .._progress import progress_bar
    from ..tasks import task_from_dict
    from ..zoo import Zoo

    check_bool("run_sweep", "retry_failed", retry_failed)
    check_bool("run_sweep", "progress", progress)
    if not isinstance(out, (str, Path)):
        raise ParameterTypeError(f"The 'out' parameter of run_sweep must be a path. Got "
                                 f"{type(out).__name__}.")
    p = plan(sweep)
    out = Path(out)
    # the executor's arguments, checked before anything is written (map_chunks' own check)
    check_executor(executor, workers, scheduler, None)
    if out.exists() and not out.is_dir():
        raise ValueError(f"The 'out' parameter of run_sweep: {out} exists and is not a "
                         "directory.")
    zoo = Zoo(out, create=True)
    zoo.remove_stale_temporaries()  # left by a run killed inside a write (never read)
    _ensure_manifest(out, p)
    chunk_ids = [c.id for c in p.chunks]
    done = _done_chunks(out, chunk_ids)
    failed = _failed_chunks(out, p.name)
    todo = [c for c in p.chunks
            if c.id not in done and (retry_failed or c.id not in failed)]
    items = [p.work_item(c) for c in todo]
    by_id = p._by_id()
    cols = p.coord_columns()
    train_cols = {k: v for k, v in cols.items() if k.startswith("training.")}
    trained = []
    fn = train_chunk  # looked up at call time (a test may replace it)
    with progress_bar(progress, total=len(items), desc=f"sweep {p.name}", unit="chunk") as bar:
        for i, outcome in map_chunks(fn, items, executor=executor, workers=workers,
                                     scheduler=scheduler):
            item = items[i]
            cid = item["chunk"]
            if not outcome.ok:
                _atomic_write_json(_failed_dir(out, p.name) / f"{cid}.json", {
                    "chunk": cid, "sweep": p.name, "networks": item["networks"],
                    "error": outcome.error, "traceback": outcome.traceback,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                })
                bar.update(1)
                continue
            _store(zoo, p, item, outcome.value, by_id, train_cols, task_from_dict)
            record = _failed_dir(out, p.name) / f"{cid}.json"
            if record.exists():
                record.unlink()
            trained.append(cid)
            bar.update(1)
    return _status(out, p.name, chunk_ids, len(p.networks), trained)


def _store(zoo, p: Plan, item: dict, value: dict, by_id, train_cols, task_from_dict) -> None:
    """Write one trained chunk into the zoo (the only writer)."""
    import torch

    model = _build_model(item)
    state = {k: torch.from_numpy(v) for k, v in value["state"].items()}
    model.load_state_dict(state)
    nets = [by_id[n] for n in item["networks"]]
    res = value["outcome"]
    outcome = {
        "sweep": p.name,
        "sweep_id": [n.id for n in nets],
        "chunk": item["chunk"],
        "status": ["failed" if d else "done" for d in res["diverged"]],
        **res,
    }
    for key, column in train_cols.items():
        outcome[column] = [_jsonable(n.coords[key]) for n in nets]
    zoo.add(model, task=task_from_dict(item["task"]), outcome=outcome,
            tags=[f"sweep:{p.name}", f"chunk:{item['chunk']}"])
