"""A directory of trained networks (safetensors + JSON) and of analysis results (netCDF).

Layout of a zoo directory::

    <root>/
      entries/<entry>.safetensors   weights of one added model: state_dict tensors [K, ...]
      entries/<entry>.json          its metadata (the source of truth): model spec, task,
                                    per-network outcome, tags, created, versions, dtype,
                                    sha256 of the weights file (see ``dynrnn.zoo._io``)
      index.json                    optional cache of all entry JSONs; rebuilt when missing,
                                    corrupt or stale (an entry JSON was added/removed/changed)
      results/<name>.nc             analysis results (``save_result``); ``name`` may contain
                                    ``/`` to make subdirectories, e.g. ``"lyapunov/<entry>"``

An *entry* is the K networks of one :meth:`Zoo.add` call; a *network id* is ``"<entry>/<k>"``.
The entry id is the first 12 hex digits of a sha256 over the weights and the JSON content (spec,
task, outcome, tags, dtype), so concurrent writers never collide and adding identical content
twice is idempotent (the existing ids are returned). Every file is written to a hidden temporary
file in the same directory and moved into place with ``os.replace``; the entry JSON is written
last, so a reader never sees a half-written entry. Nothing in a zoo is unpickled or executed.

Opening and creating: ``Zoo(path)`` touches nothing on disk. Every read (listing, queries,
loading, results) of a path that does not exist raises FileNotFoundError naming the path, so a
mistyped path is never taken for an empty zoo; an existing directory without ``entries/`` is an
empty zoo. Directories are created only by writing (:meth:`Zoo.add`, :meth:`Zoo.save_result`)
or explicitly with ``Zoo(path, create=True)``.

Integrity: every load verifies the weights against the sha256 in the entry JSON by default
(``verify=False`` skips it), so damaged weights raise :class:`ZooIntegrityError` (a ValueError
naming the file) instead of loading silently wrong networks. The check hashes each weights file
involved in one sequential read, also when :meth:`Zoo.load` takes only some of its networks.
An entry whose JSON cannot be read (truncated, invalid) is skipped by listings and queries with
a :class:`ZooIntegrityWarning` naming its id and file; every other entry stays usable, and
loading the damaged entry raises :class:`ZooIntegrityError`. :meth:`Zoo.check` (and
``dynrnn zoo check PATH``) lists every problem as a :class:`ZooProblem`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .._validation import check_float
from ..models.base import MODEL_REGISTRY, RecurrentModel
from . import _io
from ._io import ZooIntegrityError
from ._results import load_dataset, save_dataset

__all__ = [
    "Zoo",
    "ZooKeyError",
    "UnknownNetworkError",
    "ZooIntegrityError",
    "ZooIntegrityWarning",
    "ZooProblem",
]

ENTRIES_DIR = "entries"
RESULTS_DIR = "results"
INDEX_FILE = "index.json"
INDEX_FORMAT = "dynrnn.zoo.index"
INDEX_VERSION = 1
RESULT_SUFFIX = ".nc"
ENTRY_ID_LENGTH = 12
_ENTRY_ID_RE = re.compile(rf"^[0-9a-f]{{{ENTRY_ID_LENGTH}}}$")

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_=+,@-][A-Za-z0-9_.=+,@-]*$")
#: row columns set by the zoo itself; outcome fields may not use these names
_RESERVED = ("id", "entry", "k", "model", "seed", "task", "tags", "created", "dtype",
             "dynrnn_version")


class ZooKeyError(KeyError, ValueError):
    """Something named is not in the zoo (both a KeyError and a ValueError)."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


class UnknownNetworkError(ZooKeyError):
    """A network or entry id that is not in the zoo."""


class ZooIntegrityWarning(UserWarning):
    """A damaged zoo entry was skipped while listing the zoo (the message names its id and file)."""


#: the kinds of :class:`ZooProblem`
PROBLEM_KINDS = ("json", "weights", "orphan", "result")


@dataclasses.dataclass(frozen=True)
class ZooProblem:
    """One problem found by :meth:`Zoo.check`.

    Attributes:
        entry: the entry id the problem belongs to (None for a result file).
        path: the damaged (or missing) file.
        kind: ``"json"`` (entry JSON unreadable or invalid), ``"weights"`` (weights file
            missing, not valid safetensors, layout disagreeing with the JSON or the model spec,
            sha256 mismatch), ``"orphan"`` (weights file without an entry JSON) or ``"result"``
            (a result file that cannot be read).
        description: what is wrong, in words.
    """

    entry: str | None
    path: Path
    kind: str
    description: str

    def __str__(self) -> str:
        where = f" (entry {self.entry})" if self.entry is not None else ""
        return f"{self.path}: {self.kind}{where}: {self.description}"


def _check_entry_header(header: dict, path: Path) -> None:
    """Raise ZooIntegrityError unless the zoo-specific keys of an entry JSON are well formed
    (``read_header`` has checked the weights-file keys)."""
    K = len(header["spec"]["seeds"])
    outcome = header.get("outcome")
    if outcome is not None and not (
        isinstance(outcome, dict)
        and all(isinstance(v, list) and len(v) == K for v in outcome.values())
    ):
        raise ZooIntegrityError(
            f"{path}: 'outcome' must be a dict of field -> list of {K} values."
        )
    tags = header.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise ZooIntegrityError(f"{path}: 'tags' must be a list of strings.")
    task = header.get("task")
    if task is not None and not isinstance(task, dict):
        raise ZooIntegrityError(f"{path}: 'task' must be a dict or null.")


def _read_entry_header(path: Path) -> dict:
    header = _io.read_header(path)
    _check_entry_header(header, path)
    return header


def _as_id_list(ids: str | Iterable[str], argname: str = "ids") -> list[str]:
    if isinstance(ids, str):
        return [ids]
    try:
        out = list(ids)
    except TypeError:
        raise ValueError(
            f"The {argname!r} argument must be a network id or a sequence of them. Got {ids!r}."
        ) from None
    bad = [i for i in out if not isinstance(i, str)]
    if bad:
        raise ValueError(f"The {argname!r} argument must hold strings. Got {bad[0]!r}.")
    return out


def _per_network(outcome: Mapping[str, Any] | None, K: int, reserved: set[str]) -> dict:
    """Normalise ``outcome`` to ``{field: [value] * K}`` (JSON-safe)."""
    import numpy as np

    if outcome is None:
        return {}
    if not isinstance(outcome, Mapping):
        raise ValueError(
            "The 'outcome' argument must be a dict of field -> scalar or length-K sequence. "
            f"Got {type(outcome).__name__}."
        )
    out = {}
    for key, value in outcome.items():
        if not isinstance(key, str) or not key:
            raise ValueError(
                f"The 'outcome' argument must have non-empty string keys. Got {key!r}."
            )
        if key in reserved or key.startswith("task."):
            raise ValueError(
                f"The outcome field {key!r} clashes with a column the zoo sets itself (id, entry, "
                "k, model, seed, config fields, task.*, tags, created, dtype); rename it."
            )
        where = f"The outcome field {key!r}"
        if torch.is_tensor(value) or isinstance(value, np.ndarray):
            value = value.tolist() if getattr(value, "ndim", 0) > 0 else value.item()
        if isinstance(value, (list, tuple)):
            if len(value) != K:
                raise ValueError(
                    f"{where} must be a scalar or have one value per network (K={K}). "
                    f"Got {len(value)} values."
                )
            out[key] = _io.to_jsonable(list(value), where)
        else:
            v = _io.to_jsonable(value, where)
            if isinstance(v, (list, dict)):
                raise ValueError(f"{where} must be a scalar or a length-K sequence. Got {value!r}.")
            out[key] = [v] * K
    return out


def _normalise_tags(tags) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    try:
        tags = list(tags)
    except TypeError:
        raise ValueError(
            f"The 'tags' argument must be a string or strings. Got {tags!r}."
        ) from None
    if not all(isinstance(t, str) for t in tags):
        raise ValueError(f"The 'tags' argument must hold only strings. Got {tags!r}.")
    return sorted(set(tags))


def _task_dict(task) -> dict | None:
    if task is None:
        return None
    if hasattr(task, "to_dict") and callable(task.to_dict):
        task = task.to_dict()
    if not isinstance(task, Mapping):
        raise ValueError(
            "The 'task' argument must be a dynrnn Task (with to_dict) or a dict. "
            f"Got {type(task).__name__}."
        )
    return _io.to_jsonable(dict(task), "The 'task' argument")


def _match(value: Any, cond: Any) -> bool:
    """Rules of :meth:`Zoo.query` for one field."""
    if callable(cond):
        return bool(cond(value))
    if isinstance(value, list) and isinstance(cond, (set, frozenset)):
        return any(c in value for c in cond)  # e.g. tags={"a", "b"}: any of them
    if isinstance(value, list) and not isinstance(cond, (list, tuple)):
        return cond in value  # e.g. tags="trained"
    if isinstance(cond, (set, frozenset)) or (
        isinstance(cond, (list, tuple)) and not isinstance(value, (list, tuple))
    ):
        return value in cond  # one of several values
    if isinstance(cond, (list, tuple)) and isinstance(value, (list, tuple)):
        return list(cond) == list(value)
    if isinstance(cond, bool) or isinstance(value, bool):
        return type(cond) is type(value) and cond == value  # True must not match 1
    return value == cond


def _runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted unique ints -> maximal contiguous ``[start, stop)`` runs."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


class Zoo:
    """A directory of trained networks and analysis results (see the module docstring).

    Arguments:
        path: the zoo directory. Constructing a Zoo touches nothing on disk; reading a path
            that does not exist raises FileNotFoundError naming it; :meth:`add` and
            :meth:`save_result` create the directory (with parents) when needed.
        create: create the (empty) zoo directory now, with parents, if it does not exist
            (default False).

    Raises:
        ValueError: ``path`` exists and is not a directory.

    Example::

        zoo = Zoo("runs/zoo")                     # or Zoo("runs/zoo", create=True)
        ids = zoo.add(model, task=task, outcome={"reached": reached, "final_loss": loss})
        good = zoo.query(n_units=64, reached=True)
        model = zoo.load(good)                    # one RecurrentModel with len(good) networks
        df = zoo.networks()                       # pandas DataFrame, one row per network
        problems = zoo.check()                    # [] when every file is intact
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = False):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"The zoo path {self.path} exists and is not a directory.")
        if create:
            (self.path / ENTRIES_DIR).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"Zoo({str(self.path)!r})"

    def _repr_html_(self) -> str:
        """The zoo in a notebook: path, counts, and the networks grouped by model, size and
        task (one row per group with its count). Reads the entries' JSON metadata only."""
        from .._repr import html_table

        if not self.path.is_dir():
            return html_table(f"Zoo {self.path}", [("status", "does not exist (yet)")])
        rows = self.networks(as_frame=False)
        groups: dict[tuple, int] = {}
        for r in rows:
            key = (r.get("model", ""), r.get("n_units", ""), r.get("task", "") or "")
            groups[key] = groups.get(key, 0) + 1
        head = [("path", str(self.path)), ("networks", f"{len(rows):,}"),
                ("entries", f"{len(self.entries()):,}"),
                ("results", ", ".join(self.results()) or "none")]
        body = [(*key, f"{n:,}") for key, n in sorted(groups.items(), key=str)]
        return html_table(f"Zoo: {len(rows):,} networks", head,
                          columns=("model", "n_units", "task", "networks"), body=body)

    # ----------------------------------------------------------------- paths
    @property
    def _entries_dir(self) -> Path:
        return self.path / ENTRIES_DIR

    def _stem(self, entry: str) -> Path:
        return self._entries_dir / entry

    def _weights_path(self, entry: str) -> Path:
        return self._entries_dir / (entry + _io.WEIGHTS_SUFFIX)

    def _json_path(self, entry: str) -> Path:
        return self._entries_dir / (entry + _io.META_SUFFIX)

    def _require(self) -> None:
        """Raise FileNotFoundError (naming the path) unless the zoo directory exists."""
        if not self.path.is_dir():
            if self.path.exists():
                raise ValueError(f"The zoo path {self.path} exists and is not a directory.")
            raise FileNotFoundError(
                f"No zoo at {self.path}: the directory does not exist (Zoo(path, create=True) "
                "makes an empty zoo; add() and save_result() create it when writing)."
            )

    # ----------------------------------------------------------------- writing
    def add(
        self,
        model: RecurrentModel,
        task=None,
        outcome: Mapping[str, Any] | None = None,
        tags: str | Iterable[str] | None = None,
    ) -> list[str]:
        """Store the K networks of ``model`` as one new entry.

        Arguments:
            model: a :class:`~dynrnn.models.RecurrentModel` with K networks; its state_dict
                tensors ``[K, ...]`` are stored in their own dtype.
            task: the task the networks were trained on: a dynrnn Task (stored via
                ``to_dict()``) or a JSON-serialisable dict; appears as ``task`` / ``task.<field>``
                columns.
            outcome: per-network results, each a length-K sequence (list, numpy array, tensor)
                or a scalar applied to all networks, e.g.
                ``{"reached": [bool] * K, "final_loss": [float] * K}``. Field names must not
                clash with the zoo's own columns.
            tags: a string or strings attached to every network of the entry.

        Returns:
            The K network ids ``["<entry>/0", ..., "<entry>/<K-1>"]``. Adding exactly the same
            weights and metadata again returns the existing ids and writes nothing.
        """
        data, header = _io.serialize_model(model)
        K = header["n_networks"]
        config_fields = {k for c in header["spec"]["configs"] for k in c}
        content = {
            "task": _task_dict(task),
            "outcome": _per_network(outcome, K, set(_RESERVED) | config_fields),
            "tags": _normalise_tags(tags),
        }
        digest = hashlib.sha256()
        digest.update(header["content_sha256"].encode())
        digest.update(_io.canonical_json({"spec": header["spec"], "dtype": header["dtype"],
                                          **content}).encode())
        entry = digest.hexdigest()[:ENTRY_ID_LENGTH]
        ids = [f"{entry}/{k}" for k in range(K)]
        if self._json_path(entry).exists():
            return ids
        header = {**header, "entry": entry, **content}
        _io.write_pair(self._stem(entry), data, header)
        return ids

    # ----------------------------------------------------------------- the index
    def _scan(self, *, warn: bool = True) -> dict[str, dict]:
        """``{entry: header}`` of every readable entry (damaged ones skipped with a warning)."""
        entries, bad = self._scan_all()
        if warn:
            for entry, (path, message) in sorted(bad.items()):
                warnings.warn(
                    f"Skipping the damaged zoo entry {entry!r} ({path}): "
                    f"{_strip_path(message, path)} (Zoo.check() or `dynrnn zoo check` lists "
                    "every problem).",
                    ZooIntegrityWarning,
                    stacklevel=_caller_stacklevel(),
                )
        return entries

    def _scan_all(self) -> tuple[dict[str, dict], dict[str, tuple[Path, str]]]:
        """``({entry: header}, {entry: (json path, problem)})`` for every committed entry,
        using/refreshing the index cache; raises FileNotFoundError for a missing zoo."""
        self._require()
        index_path = self.path / INDEX_FILE
        cached: dict = {}
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError, KeyError):
            raw = json.loads(index_path.read_text(encoding="utf-8"))
            if raw.get("format") == INDEX_FORMAT and raw.get("format_version") == INDEX_VERSION:
                cached = dict(raw["entries"])
        entries: dict[str, dict] = {}
        bad: dict[str, tuple[Path, str]] = {}
        fresh: dict[str, dict] = {}
        changed = False
        try:
            it = os.scandir(self._entries_dir)
        except FileNotFoundError:  # an existing directory without entries/: an empty zoo
            return {}, {}
        with it:
            for de in it:
                name = de.name
                if name.startswith(".") or not name.endswith(_io.META_SUFFIX):
                    continue
                entry = name[: -len(_io.META_SUFFIX)]
                try:
                    st = de.stat()
                except FileNotFoundError:  # removed while scanning
                    continue
                stamp = [st.st_mtime_ns, st.st_size]
                hit = cached.get(entry)
                if isinstance(hit, dict) and hit.get("stamp") == stamp and "header" in hit:
                    header = hit["header"]
                else:
                    changed = True
                    try:
                        header = _read_entry_header(Path(de.path))
                    except FileNotFoundError:  # removed while scanning
                        continue
                    except (OSError, ValueError) as err:
                        bad[entry] = (Path(de.path), str(err))
                        continue
                entries[entry] = header
                fresh[entry] = {"stamp": stamp, "header": header}
        if changed or set(fresh) != set(cached):
            self._write_index(fresh)
        return entries, bad

    def _entry_headers(
        self, entries: Iterable[str]
    ) -> tuple[dict[str, dict], dict[str, tuple[Path, str]]]:
        """``({entry: header}, {entry: (json path, problem)})`` for the named entries only, each
        read from its own JSON: what :meth:`_scan_all` returns for them (a committed entry never
        changes), without listing the whole zoo, so loading a few networks of a zoo of thousands
        of entries costs a few file reads. Names that are not entry ids, or have no committed
        JSON, are in neither dict; raises FileNotFoundError for a missing zoo."""
        self._require()
        found: dict[str, dict] = {}
        bad: dict[str, tuple[Path, str]] = {}
        for entry in dict.fromkeys(entries):
            if not _ENTRY_ID_RE.match(entry):
                continue
            path = self._json_path(entry)
            try:
                found[entry] = _read_entry_header(path)
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as err:
                bad[entry] = (path, str(err))
        return found, bad

    def _damaged(self, entry: str, bad: dict) -> ZooIntegrityError:
        path, message = bad[entry]
        if str(path) not in message:
            message = f"{path}: {message}"
        return ZooIntegrityError(f"The zoo entry {entry!r} in {self} is damaged: {message}")

    def _write_index(self, entries: dict) -> None:
        payload = {"format": INDEX_FORMAT, "format_version": INDEX_VERSION, "entries": entries}
        with contextlib.suppress(OSError):  # the index is only a cache (read-only zoo: fine)
            _io.atomic_write_bytes(
                self.path / INDEX_FILE, json.dumps(payload, allow_nan=True).encode("utf-8")
            )

    @staticmethod
    def _rows(entry: str, header: dict) -> list[dict]:
        spec = header["spec"]
        task = header.get("task")
        outcome = header.get("outcome") or {}
        rows = []
        for k, (cfg, seed) in enumerate(zip(spec["configs"], spec["seeds"])):
            row = {"id": f"{entry}/{k}", "entry": entry, "k": k, "model": spec["model"],
                   "seed": seed, **cfg}
            if isinstance(task, dict):
                row["task"] = task.get("task")
                row.update({f"task.{f}": v for f, v in task.items() if f != "task"})
            for f, values in outcome.items():
                row[f] = values[k] if isinstance(values, list) and k < len(values) else values
            row["tags"] = list(header.get("tags") or [])
            row["created"] = header.get("created")
            row["dtype"] = header.get("dtype")
            rows.append(row)
        return rows

    def _sorted_entries(self) -> list[tuple[str, dict]]:
        entries = self._scan()
        return sorted(entries.items(), key=lambda kv: (str(kv[1].get("created", "")), kv[0]))

    def _all_rows(self) -> list[dict]:
        return [row for entry, hdr in self._sorted_entries() for row in self._rows(entry, hdr)]

    # ----------------------------------------------------------------- listing
    # Every listing (entries, ids, len, iteration, ``in``, networks, query) raises
    # FileNotFoundError for a missing zoo and skips damaged entries with a ZooIntegrityWarning.
    def entries(self) -> list[str]:
        """Entry ids, oldest first."""
        return [entry for entry, _ in self._sorted_entries()]

    def ids(self) -> list[str]:
        """All network ids ``"<entry>/<k>"``, oldest entry first."""
        return [row["id"] for row in self._all_rows()]

    def __len__(self) -> int:
        """Number of networks (not entries)."""
        return sum(len(h["spec"]["seeds"]) for h in self._scan().values())

    def __iter__(self):
        return iter(self.ids())

    def __contains__(self, ids) -> bool:
        """``"<entry>/<k>" in zoo``, ``"<entry>" in zoo``, or ``[id, ...] in zoo`` (all).

        False for the ids of a damaged entry (they are not listed); FileNotFoundError if the
        zoo does not exist."""
        try:
            wanted = _as_id_list(ids)
        except ValueError:
            return False
        entries = self._scan()
        for i in wanted:
            entry, sep, k = i.partition("/")
            if entry not in entries:
                return False
            if sep and not (k.isdigit() and int(k) < len(entries[entry]["spec"]["seeds"])):
                return False
        return True

    def networks(self, *, as_frame: bool = True):
        """One row per network.

        Columns: ``id``, ``entry``, ``k`` (index in the entry), ``model``, ``seed``, every
        config field (``n_units``, ``tau_init``, ...), ``task`` (registry name) and
        ``task.<field>`` when a task was given, every outcome field, ``tags`` (list of str),
        ``created`` (UTC ISO time), ``dtype``. Fields a network lacks (e.g. ``tau_init`` of a
        GRU) are NaN in the DataFrame and absent from the dicts.

        Damaged entries (unreadable JSON) are left out with a :class:`ZooIntegrityWarning`.

        Arguments:
            as_frame: return a ``pandas.DataFrame`` (default) or a list of dicts.

        Raises:
            FileNotFoundError: the zoo directory does not exist.
        """
        sorted_entries = self._sorted_entries()
        rows = [row for entry, hdr in sorted_entries for row in self._rows(entry, hdr)]
        if not as_frame:
            return rows
        import pandas as pd

        head = ["id", "entry", "k", "model", "seed"]
        tail = ["tags", "created", "dtype"]
        outcome = list(dict.fromkeys(f for _, h in sorted_entries for f in h.get("outcome") or {}))
        seen = list(dict.fromkeys(c for row in rows for c in row))
        task = [c for c in seen if c == "task" or c.startswith("task.")]
        config = [c for c in seen if c not in {*head, *tail, *task, *outcome}]
        return pd.DataFrame(rows, columns=head + config + task + outcome + tail)

    def query(self, *predicates: Callable[[dict], bool], **conditions: Any) -> list[str]:
        """Ids of the networks whose row satisfies every predicate and condition.

        Arguments:
            predicates: callables ``row -> bool`` on the row dict of :meth:`networks`.
            conditions: ``field=value`` (equality; ``True`` does not match ``1``),
                ``field=[v1, v2]`` or a set (any of them), ``field=callable`` (applied to the
                value), and for list fields such as ``tags``: ``tags="x"`` (membership) or
                ``tags={"x", "y"}`` (any of them). Fields
                with dots are passed as ``**{"task.n_bits": 3}``. A network lacking a field never
                matches it.

        Returns:
            Matching network ids in :meth:`networks` order.

        Raises:
            ValueError: a condition names a field no network has (likely a typo).
            FileNotFoundError: the zoo directory does not exist.
        """
        for p in predicates:
            if not callable(p):
                raise ValueError(f"Positional arguments of query must be callables. Got {p!r}.")
        rows = self._all_rows()
        if rows:
            known = {k for row in rows for k in row}
            unknown = sorted(set(conditions) - known)
            if unknown:
                raise ValueError(
                    f"No network in the zoo has the field(s) {unknown}; known fields: "
                    f"{sorted(known)}."
                )
        return [
            row["id"]
            for row in rows
            if all(k in row and _match(row[k], v) for k, v in conditions.items())
            and all(p(row) for p in predicates)
        ]

    def _resolve(self, ids: str | Iterable[str]):
        """``(ids as a list, [(entry, k), ...], {entry: header})``; unknown ids raise
        UnknownNetworkError, ids of a damaged entry ZooIntegrityError."""
        wanted = _as_id_list(ids)
        if not wanted:
            raise ValueError("The 'ids' argument must name at least one network.")
        entries, bad = self._entry_headers(i.partition("/")[0] for i in wanted)
        out = []
        for i in wanted:
            entry, sep, k = i.partition("/")
            if entry in bad:
                raise self._damaged(entry, bad)
            if entry not in entries:
                raise UnknownNetworkError(
                    f"Unknown network id {i!r}: no entry {entry!r} in {self}."
                )
            K = len(entries[entry]["spec"]["seeds"])
            if not sep:
                raise UnknownNetworkError(
                    f"{i!r} is an entry id, not a network id; use {entry!r}/<k> with k in "
                    f"[0, {K}), or load_entry({entry!r})."
                )
            if not (k.isdigit() and int(k) < K):
                raise UnknownNetworkError(
                    f"Unknown network id {i!r}: entry {entry!r} has networks 0..{K - 1}."
                )
            out.append((entry, int(k)))
        return wanted, out, entries

    def metadata(self, ids: str | Iterable[str]) -> list[dict]:
        """The :meth:`networks` rows (dicts) of ``ids``, in the given order."""
        _, resolved, entries = self._resolve(ids)
        cache: dict[str, list[dict]] = {}
        out = []
        for entry, k in resolved:
            if entry not in cache:
                cache[entry] = self._rows(entry, entries[entry])
            out.append(dict(cache[entry][k]))
        return out

    def entry_info(self, entry: str) -> dict:
        """The full JSON metadata of one entry (spec, task, outcome, tags, versions, ...).

        Raises:
            UnknownNetworkError: no such entry.
            ZooIntegrityError (a ValueError naming the file): the entry's JSON is damaged.
        """
        entries, bad = self._entry_headers([entry])
        if entry in bad:
            raise self._damaged(entry, bad)
        if entry not in entries:
            raise UnknownNetworkError(f"Unknown entry {entry!r} in {self}.")
        return entries[entry]

    def task(self, id_or_entry: str):
        """The task of a network or entry rebuilt with ``task_from_dict`` (None if none stored)."""
        from ..tasks import task_from_dict

        entry = id_or_entry.partition("/")[0]
        d = self.entry_info(entry).get("task")
        return None if d is None else task_from_dict(d)

    # ----------------------------------------------------------------- loading
    def load_entry(
        self,
        entry: str,
        *,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        verify: bool = True,
    ) -> RecurrentModel:
        """The model of one entry with all its K networks.

        Arguments:
            entry: an entry id (a network id ``"<entry>/<k>"`` is accepted and names its entry).
            dtype: cast floating tensors to this dtype; default the stored dtypes.
            device: device of the returned model (default CPU).
            verify: check the weights file against the sha256 recorded in the JSON (default;
                the file is read whole anyway, so this costs only the hashing).

        Returns:
            A :class:`~dynrnn.models.RecurrentModel` equal (bitwise) to the model added.

        Raises:
            UnknownNetworkError (KeyError and ValueError): no such entry.
            FileNotFoundError: the zoo or the entry's weights file does not exist.
            ZooIntegrityError (a ValueError naming the file): the entry JSON is damaged, the
                weights are not valid safetensors, disagree with the spec or (with ``verify``)
                do not match the recorded sha256.
        """
        entry = entry.partition("/")[0]
        header = self.entry_info(entry)
        return _io.read_full(self._stem(entry), header, dtype=dtype, device=device, verify=verify)

    def remove_stale_temporaries(self, older_than: float = 600.0) -> list[Path]:
        """Delete the hidden temporary files (``.<name>.<random>.tmp``) that a write killed
        before its ``os.replace`` left in ``entries/``, if not modified for ``older_than``
        seconds (a live write finishes its temporary file in seconds, so an old one is never in
        use). Readers ignore these files anyway; this only frees their space. Returns the
        removed paths; a missing ``entries/`` removes nothing."""
        older_than = check_float("Zoo.remove_stale_temporaries", "older_than", older_than, 0.0)
        self._require()
        removed: list[Path] = []
        cutoff = time.time() - older_than
        try:
            it = os.scandir(self._entries_dir)
        except FileNotFoundError:
            return removed
        with it:
            for de in it:
                if de.name.startswith(".") and de.name.endswith(_io.TMP_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        if de.stat().st_mtime < cutoff:
                            os.unlink(de.path)
                            removed.append(Path(de.path))
        return removed

    def verify_entry(self, entry: str) -> None:
        """Check one entry's weights file against the sha256 recorded in its JSON (one
        sequential read, constant memory), e.g. once per entry before workers load its networks
        with ``verify=False``.

        Raises:
            UnknownNetworkError: no such entry.
            FileNotFoundError: the zoo or the weights file does not exist.
            ZooIntegrityError (a ValueError naming the file): the JSON is damaged or the weights
                do not match.
        """
        entry = entry.partition("/")[0]
        _io.verify_weights(self._weights_path(entry), self.entry_info(entry))

    def load(
        self,
        ids: str | Iterable[str],
        *,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        verify: bool = True,
    ) -> RecurrentModel:
        """Stack the networks ``ids`` (from any entries) into one model, in the given order.

        Only the rows of the requested networks are read into memory from each weights file.
        With ``verify`` (the default) each weights file involved is first checked against the
        sha256 recorded in its entry JSON, so network ``j`` of the result is bitwise the
        stored network ``ids[j]`` or an error is raised. The check hashes the whole file in
        one sequential pass with constant memory (a file holds all K networks of its entry,
        so loading one network of a large entry reads the entry once); ``verify=False``
        skips it and reads only the requested rows.

        Arguments:
            ids: network ids ``"<entry>/<k>"`` (e.g. the result of :meth:`query`).
            dtype: cast floating tensors to this dtype; required when the entries were stored
                in different dtypes. Default: the stored dtype.
            device: device of the returned model (default CPU).
            verify: check every weights file read against its recorded sha256 (default True).

        Returns:
            A :class:`~dynrnn.models.RecurrentModel` with ``len(ids)`` networks.

        Raises:
            UnknownNetworkError (KeyError and ValueError): an id is not in the zoo.
            FileNotFoundError: the zoo or a weights file does not exist.
            ZooIntegrityError (a ValueError naming the file): an entry JSON is damaged; a
                weights file is not valid safetensors, disagrees with its spec or (with
                ``verify``) does not match its recorded sha256.
            ValueError: the networks are of different model types, disagree in a structural
                config field (named, with two ids that differ) or in dtype.
        """
        from safetensors import safe_open

        wanted, resolved, entries = self._resolve(ids)
        first_entry, first_k = resolved[0]
        name = entries[first_entry]["spec"]["model"]
        for (entry, _), i in zip(resolved, wanted):
            other = entries[entry]["spec"]["model"]
            if other != name:
                raise ValueError(
                    f"Cannot stack networks of different models: {wanted[0]!r} is {name!r} but "
                    f"{i!r} is {other!r}."
                )
        if name not in MODEL_REGISTRY:
            raise ValueError(
                f"Network {wanted[0]!r}: unknown model {name!r}; known models: "
                f"{sorted(MODEL_REGISTRY)}."
            )
        cls = MODEL_REGISTRY[name]
        first_cfg = entries[first_entry]["spec"]["configs"][first_k]
        for field in cls.structural_fields:
            for (entry, k), i in zip(resolved, wanted):
                value = entries[entry]["spec"]["configs"][k].get(field)
                if value != first_cfg.get(field):
                    raise ValueError(
                        f"Cannot stack networks that differ in the structural field {field!r}: "
                        f"{wanted[0]!r} has {first_cfg.get(field)!r} but {i!r} has {value!r}. "
                        "Load them as separate models."
                    )
        dtypes = {entries[e]["dtype"] for e, _ in resolved}
        if dtype is None and len(dtypes) > 1:
            raise ValueError(
                f"The networks were stored in different dtypes {sorted(dtypes)}; pass "
                "dtype=torch.float32 (or another) to load them into one model."
            )

        # per-network layout (without K) from a one-network model of the first config
        seed0 = entries[first_entry]["spec"]["seeds"][first_k]
        one = _io.build_model(
            {"model": name, "configs": [first_cfg], "seeds": [seed0]},
            str(self._json_path(first_entry)),
        )
        per_net = {n: (shape[1:], dt) for n, (shape, dt) in _io.model_layout(one).items()}

        # read the needed rows of each entry: only contiguous runs of requested indices
        order: dict[str, list[int]] = {}
        for entry, k in resolved:
            order.setdefault(entry, [])
            if k not in order[entry]:
                order[entry].append(k)
        blocks: dict[str, list[torch.Tensor]] = {n: [] for n in per_net}
        position: dict[tuple[str, int], int] = {}
        offset = 0
        for entry, ks in order.items():
            ks = sorted(ks)
            K = len(entries[entry]["spec"]["seeds"])
            path = self._weights_path(entry)
            if not path.exists():
                raise FileNotFoundError(f"Weights file {path} of entry {entry!r} does not exist.")
            expected = {n: ((K, *shape), dt) for n, (shape, dt) in per_net.items()}
            stored = _io.weights_layout(path)
            _io.check_layout(str(path), expected, stored, type(one).optional_state)
            if verify:
                _io.verify_weights(path, entries[entry])
            with safe_open(str(path), framework="pt") as fh:
                for n in per_net:
                    if n not in stored:  # an optional tensor this file predates
                        fresh = _io.build_model(entries[entry]["spec"], str(path)).state_dict()
                        blocks[n].extend(fresh[n][a:b] for a, b in _runs(ks))
                        continue
                    sl = fh.get_slice(n)
                    blocks[n].extend(sl[a:b] for a, b in _runs(ks))
            for j, k in enumerate(ks):
                position[(entry, k)] = offset + j
            offset += len(ks)
        perm = torch.tensor([position[r] for r in resolved], dtype=torch.long)
        tensors = {n: torch.cat(parts).index_select(0, perm) for n, parts in blocks.items()}

        spec = {
            "model": name,
            "configs": [entries[e]["spec"]["configs"][k] for e, k in resolved],
            "seeds": [entries[e]["spec"]["seeds"][k] for e, k in resolved],
        }
        model = _io.build_model(spec, f"networks {wanted}")
        _io.check_layout(
            f"networks {wanted}",
            _io.model_layout(model),
            {n: (tuple(t.shape), t.dtype) for n, t in tensors.items()},
        )
        return _io.assign_tensors(model, tensors, _io._resolve_dtype(dtype), device)

    # ----------------------------------------------------------------- results
    def _result_path(self, name: str) -> Path:
        if not isinstance(name, str) or not name:
            raise ValueError(f"The 'name' argument must be a non-empty string. Got {name!r}.")
        segments = name.split("/")
        for seg in segments:
            if not _SEGMENT_RE.match(seg) or seg in (".", ".."):
                raise ValueError(
                    f"The result name {name!r} is not allowed: use '/'-separated parts made of "
                    "letters, digits and _ . = + , @ - (not starting with '.')."
                )
        return self.path.joinpath(RESULTS_DIR, *segments[:-1], segments[-1] + RESULT_SUFFIX)

    def save_result(self, name: str, dataset) -> Path:
        """Store an analysis result as ``results/<name>.nc`` (netCDF-3, atomic; replaces).

        Creates the zoo directory if needed. A save that fails (e.g. a variable of a dtype that
        cannot be stored) leaves no file at the target and keeps an existing one unchanged.

        Arguments:
            name: e.g. ``"lyapunov"`` or ``"fixed_points/<entry>"`` ('/' makes subdirectories).
            dataset: an ``xarray.Dataset``; bool / int64 / float16 / complex64 / complex128
                variables and coordinates and non-netCDF attributes (bool, None, dicts, lists)
                are encoded so that :meth:`load_result` restores them exactly (see
                :func:`dynrnn.zoo.save_dataset`).

        Returns:
            The path of the file written.
        """
        return save_dataset(dataset, self._result_path(name))

    def load_result(self, name: str):
        """The ``xarray.Dataset`` stored by :meth:`save_result` (loaded into memory).

        Raises:
            FileNotFoundError: the zoo does not exist.
            ZooKeyError (KeyError and ValueError): no result ``name``.
            ValueError: the result file is damaged (the message names it).
        """
        path = self._result_path(name)
        self._require()
        if not path.exists():
            raise ZooKeyError(f"No result {name!r} in {self} (expected {path}).")
        return load_dataset(path)

    def has_result(self, name: str) -> bool:
        """Whether :meth:`save_result` completed for ``name`` (for resuming batch jobs).

        Raises FileNotFoundError when the zoo does not exist (a mistyped path would otherwise
        look like a zoo with nothing done yet).
        """
        path = self._result_path(name)
        self._require()
        return path.exists()

    def results(self) -> list[str]:
        """Names of all stored results, sorted (FileNotFoundError if the zoo does not exist)."""
        self._require()
        root = self.path / RESULTS_DIR
        if not root.exists():
            return []
        return sorted(
            p.relative_to(root).with_suffix("").as_posix()
            for p in root.rglob("*" + RESULT_SUFFIX)
            if not p.name.startswith(".")
        )

    # ----------------------------------------------------------------- integrity
    def check(self, *, verify: bool = True) -> list[ZooProblem]:
        """Every problem with the zoo's files, without raising or warning for them.

        Checks each entry JSON (readable, valid), its weights file (present, valid
        safetensors, names/shapes/dtypes equal to those recorded in the JSON and to what the
        model spec needs, sha256 equal to the recorded one), weights files without an entry
        JSON, and that every result file can be read. An entry of a model this dynrnn does not
        know is checked against its JSON only. Hidden temporary files of writes in progress
        are ignored; a weights file whose JSON is still being written by a concurrent
        :meth:`add` shows up as an orphan.

        Arguments:
            verify: also hash every weights file to compare with its recorded sha256 (default
                True: one sequential read of all weights; False reads only file headers).

        Returns:
            A list of :class:`ZooProblem` (entry id, file, kind, description), sorted by
            file; empty when everything is intact.

        Raises:
            FileNotFoundError: the zoo directory does not exist.
        """
        self._require()
        problems: list[ZooProblem] = []
        json_stems: set[str] = set()
        weight_stems: set[str] = set()
        if self._entries_dir.is_dir():
            for p in self._entries_dir.iterdir():
                if p.name.startswith(".") or not p.is_file():
                    continue
                if p.name.endswith(_io.META_SUFFIX):
                    json_stems.add(p.name[: -len(_io.META_SUFFIX)])
                elif p.name.endswith(_io.WEIGHTS_SUFFIX):
                    weight_stems.add(p.name[: -len(_io.WEIGHTS_SUFFIX)])
        for entry in sorted(json_stems):
            problems.extend(self._check_entry(entry, verify))
        for entry in sorted(weight_stems - json_stems):
            problems.append(ZooProblem(
                entry, self._weights_path(entry), "orphan",
                f"weights file without the entry JSON {self._json_path(entry).name} (an add "
                "that was interrupted, or one still writing)",
            ))
        root = self.path / RESULTS_DIR
        if root.is_dir():
            for p in sorted(root.rglob("*" + RESULT_SUFFIX)):
                if p.name.startswith(".") or not p.is_file():
                    continue
                try:
                    load_dataset(p)
                except Exception as err:  # noqa: BLE001 - every failure is a problem to report
                    problems.append(ZooProblem(None, p, "result", _strip_path(str(err), p)))
        return sorted(problems, key=lambda q: (str(q.path), q.kind, q.description))

    def _check_entry(self, entry: str, verify: bool) -> list[ZooProblem]:
        json_path, weights_path = self._json_path(entry), self._weights_path(entry)
        try:
            header = _read_entry_header(json_path)
        except FileNotFoundError:  # removed while checking
            return []
        except (OSError, ValueError) as err:
            return [ZooProblem(entry, json_path, "json", _strip_path(str(err), json_path))]

        def problem(description: str, path: Path = weights_path, kind: str = "weights"):
            return ZooProblem(entry, path, kind, _strip_path(description, path))

        if not weights_path.is_file():
            return [problem("weights file is missing")]
        try:
            stored = _io.weights_layout(weights_path)
            recorded = _io.stored_layout(header, str(json_path))
        except FileNotFoundError:
            return [problem("weights file is missing")]
        except ValueError as err:
            return [problem(str(err))]
        out = []
        if stored != recorded:
            out.append(problem(
                f"stored tensors disagree with the layout recorded in {json_path.name}: "
                + "; ".join(_layout_diff(stored, recorded))
            ))
        elif header["spec"]["model"] in MODEL_REGISTRY:
            try:
                model = _io.build_model(header["spec"], str(json_path))
            except ValueError as err:
                out.append(problem(str(err), json_path, "json"))
            else:
                try:
                    _io.check_layout(str(weights_path), _io.model_layout(model), stored,
                                     type(model).optional_state)
                except ValueError as err:
                    out.append(problem(str(err)))
        if verify:
            try:
                _io.verify_weights(weights_path, header)
            except OSError as err:
                out.append(problem(f"cannot be read ({err})"))
            except ValueError:
                out.append(problem(
                    f"content does not match the sha256 recorded in {json_path.name}"
                ))
        return out


def _layout_diff(stored: dict, recorded: dict) -> list[str]:
    """What differs between a weights file's layout and the one its JSON records."""
    def fmt(layout):
        shape, dtype = layout
        return f"{list(shape)} {_io._dtype_name(dtype)}"

    out = []
    for name in sorted(set(stored) | set(recorded)):
        if name not in stored:
            out.append(f"{name!r} is missing")
        elif name not in recorded:
            out.append(f"{name!r} is not recorded")
        elif stored[name] != recorded[name]:
            out.append(f"{name!r} is {fmt(stored[name])}, recorded {fmt(recorded[name])}")
    return out


def _caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside this package, for ``warnings.warn``
    called from the function that calls this one."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1  # the function calling warnings.warn
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        frame, level = frame.f_back, level + 1
    return level


def _strip_path(message: str, path: Path) -> str:
    """``message`` without a leading ``"<path>: "`` (ZooProblem carries the path itself)."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message
