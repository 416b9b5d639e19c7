"""The result store of batch analyses: one zarr store per analysis spanning a whole zoo along
``network``, written chunk by chunk, crash-safe, resumable and lazily readable.

Layout of ``<zoo>/results/<analysis>.zarr/`` (a directory; the data is a plain zarr v3 group
made by xarray, so ``xr.open_zarr(".../data.zarr")`` reads it without dynrnn)::

    data.zarr/                    zarr.json + <var>/zarr.json: the arrays' metadata, written
                                  once when the store is sized; <var>/c/<i>/0/...: the data of
                                  network chunk ``i`` (exactly one zarr chunk file per variable
                                  and analysis chunk; see "slots" below)
    dynrnn.json                   the manifest: format + version, analysis, options, chunk
                                  size, the network ids, the chunk table (entry, ids), the
                                  padded sizes of the other dimensions, the arrays
    networks.json                 the zoo's metadata of those networks, by column (the
                                  hyperparameter coordinates; read in milliseconds)
    markers/<key>.json            the done marker of a chunk: its ids, per-network status and
                                  errors, and the size and sha256 of every file it wrote
    errors/<key>.json             the last error of a chunk that raised (not done)

Slots: chunks group the networks of one zoo entry (one stacked model needs one structure), so
chunks have different lengths; zarr needs a regular chunk grid. Chunk ``i`` therefore owns the
slot rows ``[i * C, (i + 1) * C)`` of the stored ``network`` axis (``C`` = ``chunk_size``); its
``n_i <= C`` networks fill the first rows and the rest is padding. Every analysis chunk is then
exactly one zarr chunk of every variable, written whole as one region of the pre-sized store
(arrays created by xarray's ``to_zarr(compute=False)``, regions written with zarr-python: the
same bytes as ``to_zarr(region=...)`` for these dtypes, see :meth:`ResultStore.write_chunk`)
-- so chunks may finish in any order (parallel workers), a rewrite never
touches another chunk's file, and a damaged file names the chunk to recompute. Region writes
into a pre-sized store were chosen over ``append_dim="network"`` for exactly this: appends fix
the order of completion into the layout and cannot redo one chunk in place. :func:`open_result`
hides the padding (it selects the rows of finished chunks, lazily).

Pairwise stores (CKA) hold ``[network, network_b]`` matrices of the ``n`` networks rounded up
to whole blocks of ``B`` (``chunk_size``), zarr chunks ``(B, B)``; block ``"<bi>_<bj>"``
(``bi <= bj``, the upper triangle of blocks) writes its chunk and the mirrored one and has one
marker covering both files.

Other dimensions that vary per network are padded to a fixed size recorded in the manifest:
per-unit dimensions (``unit``, ``eigen``, ``exponent``) to the largest ``n_units`` of the
analysed networks, ``input`` to the largest ``n_inputs``, and data-dependent ones (the number of
fixed points) to a fixed maximum chosen by the analysis (``max_fixed_points``; the analysis's own
counts stay exact and a ``*_truncated`` flag says where points were dropped). Padding is NaN for
floats and complex numbers, -1 for integers and False for booleans, as in the analyses.

Crash-safety rule: a chunk is written in this order -- (1) its old marker is removed, (2) its
data is written into its region, (3) the data is read back and compared with what was written,
(4) the size and sha256 of each of its files are recorded in the marker, which is written to a
temporary file and moved into place with ``os.replace`` (atomic). A chunk is done if and only if
its marker exists, parses, names the same networks and its files still have the recorded size
(and, with ``verify="full"``, sha256). A crash at any point before (4) leaves no marker, so a
partial chunk is never mistaken for a finished one, and a resumed analysis recomputes exactly
the chunks that are not done (and those whose files were damaged since). The marker is
fsynced before it is moved into place; the data files are not (a killed process loses nothing
the page cache holds; after a power loss a marker may outlive its data, which the size check --
or ``verify="full"`` -- then finds, so that chunk is recomputed).

The main process is the only writer (workers compute and return); two analyses writing one
store at the same time are not supported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._version import __version__
from ..zoo import atomic_write_bytes, sha256_file

__all__ = [
    "STATUS",
    "ResultIntegrityError",
    "ResultIntegrityWarning",
    "ResultProblem",
    "ResultStore",
    "check_result",
    "network_table",
    "open_pairwise",
    "open_result",
    "result_path",
    "result_status",
]

STORE_FORMAT = "dynrnn.batch.store"
STORE_VERSION = 1
MANIFEST = "dynrnn.json"
NETWORKS = "networks.json"
MARKERS = "markers"
ERRORS = "errors"
SUFFIX = ".zarr"
DATA = "data.zarr"

#: per-network status codes of the ``analysis_status`` variable (0 = a padding row, never shown)
STATUS = {"padding": 0, "ok": 1, "ok_alone": 2, "failed": 3}
#: ``verify`` levels: "none" (marker only), "size" (file sizes: stat only), "full" (sha256)
VERIFY = ("none", "size", "full")


class ResultIntegrityError(ValueError):
    """A stored chunk's file is missing, truncated or changed (the message names the file)."""


class ResultIntegrityWarning(UserWarning):
    """A damaged chunk was left out of an opened result (the message names the file)."""


@dataclasses.dataclass(frozen=True)
class ResultProblem:
    """One damaged chunk of a result store: ``key`` (the chunk), ``path`` (the file) and what
    is wrong."""

    key: str
    path: Path
    description: str

    def __str__(self) -> str:
        return f"{self.path}: chunk {self.key}: {self.description}"


# --------------------------------------------------------------------------- small helpers
def result_path(zoo: Any, name: str) -> Path:
    """``<zoo>/results/<name>.zarr`` (``zoo`` a :class:`~dynrnn.zoo.Zoo` or a path)."""
    root = Path(getattr(zoo, "path", zoo))
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(f"The result name must be a plain non-empty name. Got {name!r}.")
    return root / "results" / (name + SUFFIX)


def _atomic_write_json(path: Path, payload: Any) -> None:
    """``payload`` as JSON at ``path`` through the zoo's atomic write (temporary file, fsync,
    ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(payload, allow_nan=True).encode("utf-8"))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _fill_value(dtype: np.dtype) -> Any:
    if dtype.kind == "b":
        return False
    if dtype.kind in "iu":
        return -1
    if dtype.kind == "c":
        return complex(np.nan, np.nan)
    return np.nan


def _scalar(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def network_table(rows: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """The zoo's metadata rows (:meth:`~dynrnn.zoo.Zoo.networks` dicts) as columns of JSON
    scalars (lists such as ``tags`` joined with ``,``; a value a network lacks is None)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    return {c: [_scalar(row.get(c)) for row in rows] for c in columns}


def _coordinate(values: list) -> np.ndarray:
    """One metadata column as a numpy coordinate: numbers stay numbers (None -> NaN), bools
    stay bools, anything mixed becomes strings."""
    present = [v for v in values if v is not None]
    kinds = {type(v) for v in present}
    if kinds and kinds <= {bool} and len(present) == len(values):
        return np.asarray(values, dtype=bool)
    if kinds and kinds <= {int} and len(present) == len(values):
        return np.asarray(values, dtype=np.int64)
    if kinds and kinds <= {int, float}:
        return np.asarray([np.nan if v is None else float(v) for v in values])
    return np.asarray(["None" if v is None else str(v) for v in values])


# --------------------------------------------------------------------------- the store
class ResultStore:
    """One zarr result store (see the module docstring for the layout and the crash-safety
    rule). Made by :meth:`create` (or re-opened by it for resuming) or :meth:`open`.

    Row stores (``kind="rows"``) hold per-network results ``[network, ...]`` in chunks of
    networks; pairwise stores (``kind="pairwise"``) hold ``[network, network_b]`` matrices in
    square blocks of ``chunk_size`` x ``chunk_size`` pairs.
    """

    def __init__(self, path: str | os.PathLike, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    # ---------------------------------------------------------------- making / opening
    @classmethod
    def open(cls, path: str | os.PathLike) -> ResultStore:
        """Open an existing store (its manifest).

        Raises:
            FileNotFoundError: no store at ``path``.
            ResultIntegrityError: the manifest is unreadable or was written by a newer dynrnn.
        """
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise FileNotFoundError(f"No result store at {path} (no {MANIFEST}).")
        try:
            manifest = _read_json(mpath)
        except (OSError, ValueError) as err:
            raise ResultIntegrityError(f"{mpath}: cannot be read ({err}).") from None
        if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
            raise ResultIntegrityError(f"{mpath}: not a dynrnn result store manifest.")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > STORE_VERSION:
            raise ResultIntegrityError(
                f"{mpath}: format_version {version!r} is not supported by this dynrnn "
                f"(supports <= {STORE_VERSION}); upgrade dynrnn."
            )
        return cls(path, manifest)

    @classmethod
    def create(cls, path: str | os.PathLike, settings: dict, table: dict[str, list],
               *, overwrite: bool = False) -> ResultStore:
        """The store at ``path`` for ``settings`` (a JSON-able dict with at least ``kind``,
        ``analysis``, ``ids``, ``chunks``, ``chunk_size``): re-opened when it exists with the
        same settings (resuming), else created empty (the arrays are sized when the first
        chunk arrives, see :meth:`ensure_arrays`).

        Raises:
            ValueError: a store exists there with other settings (and not ``overwrite``).
        """
        path = Path(path)
        settings = json.loads(json.dumps(settings, allow_nan=True))  # canonical JSON types
        if path.exists() and not overwrite:
            store = cls.open(path)
            old = {k: store.manifest.get(k) for k in settings}
            if old != settings and store._grows_to(settings):
                store._grow(settings, table)
                return store
            if old != settings:
                differ = sorted(k for k in settings if old[k] != settings[k])
                raise ValueError(
                    f"The result store {path} was made with other settings ({', '.join(differ)} "
                    "differ); pass overwrite=True (dynrnn analyze --overwrite) to start it "
                    "again, or use the same settings to resume it."
                )
            return store
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        _atomic_write_json(path / NETWORKS, table)
        manifest = {"format": STORE_FORMAT, "format_version": STORE_VERSION,
                    "dynrnn_version": __version__, **settings, "arrays": None, "attrs": {}}
        _atomic_write_json(path / MANIFEST, manifest)
        return cls(path, manifest)

    def _grows_to(self, settings: dict) -> bool:
        """True when ``settings`` only add networks after this store's, so that the store can be
        extended instead of redone:

        * per-network (``rows``): the same options and padded sizes, the old ids and chunks a
          prefix of the new ones (new chunks are appended);
        * pairwise: the same options and block size, the old ids a prefix of the new ones (the
          matrix grows to the new blocks). The padded unit count may differ: a pairwise value
          does not depend on it (linear CKA and the delay-embedding DMD of DSA see zero-padded
          units as zero columns, which change neither the centred Gram matrices nor the
          singular vectors that carry the data; weight distances need one ``n_units``
          anyway), and the stored matrix has no unit dim.
        """
        m = self.manifest
        kind = settings.get("kind")
        if m.get("kind") != kind or kind not in ("rows", "pairwise"):
            return False
        free = ("ids", "chunks") if kind == "rows" else ("ids", "sizes")
        if any(m.get(k) != v for k, v in settings.items() if k not in free):
            return False
        old_ids, new_ids = m.get("ids") or [], settings["ids"]
        if new_ids[: len(old_ids)] != old_ids:
            return False
        if kind == "pairwise":
            return len(new_ids) > len(old_ids)
        old_chunks = m.get("chunks") or []
        return (settings["chunks"][: len(old_chunks)] == old_chunks
                and len(settings["chunks"]) > len(old_chunks))

    def _grow(self, settings: dict, table: dict[str, list]) -> None:
        """Extend the ``network`` axis (rows) or both axes (pairwise) to the new networks
        (existing chunk files and markers are untouched; the new rows or blocks are unwritten,
        i.e. pending; a block whose ids changed -- the old partial last one -- no longer
        matches its marker and is computed again). Crash-safe in this order: arrays resized,
        metadata table, then the manifest; a crash in between leaves the old manifest, and
        the next run grows again (resizing to the same shape is a no-op)."""
        import zarr

        self.manifest.update(settings)
        n = self.n_slots
        pairwise = self.manifest["kind"] == "pairwise"
        arrays = dict(self.manifest.get("arrays") or {})
        for name, info in arrays.items():
            shape = [n, n] if pairwise else [n] + list(info["shape"][1:])
            zarr.open_array(self.data / name, mode="r+", zarr_format=3).resize(tuple(shape))
            arrays[name] = {**info, "shape": shape}
        if arrays:
            self.manifest["arrays"] = arrays
        _atomic_write_json(self.path / NETWORKS, table)
        self._save_manifest()

    def _save_manifest(self) -> None:
        _atomic_write_json(self.path / MANIFEST, self.manifest)

    @property
    def data(self) -> Path:
        """The zarr group of the arrays."""
        return self.path / DATA

    @property
    def n_slots(self) -> int:
        """Length of the stored ``network`` axis (rows: chunks x chunk_size; pairwise: the
        networks rounded up to whole blocks)."""
        C = int(self.manifest["chunk_size"])
        if self.manifest["kind"] == "pairwise":
            return int(math.ceil(len(self.manifest["ids"]) / C)) * C
        return len(self.manifest["chunks"]) * C

    # ---------------------------------------------------------------- arrays
    def ensure_arrays(self, ds: xr.Dataset, attrs: Mapping[str, Any] | None = None) -> None:
        """Create (metadata only, no data) every variable of ``ds`` the store lacks, with its
        full padded shape: ``ds`` is one chunk already padded to ``[chunk_size, ...]`` (rows)
        or ``[chunk_size, chunk_size]`` (pairwise)."""
        import dask.array as da

        arrays = dict(self.manifest.get("arrays") or {})
        new = {}
        C = int(self.manifest["chunk_size"])
        for name, var in ds.data_vars.items():
            if name in arrays:
                want = arrays[name]
                if list(var.dims) != want["dims"] or list(var.shape) != want["chunks"] \
                        or str(var.dtype) != want["dtype"]:
                    raise ValueError(
                        f"The variable {name!r} of this chunk has dims {var.dims}, shape "
                        f"{var.shape} and dtype {var.dtype}; the store {self.path} holds "
                        f"{want['dims']} in chunks of {want['chunks']}, {want['dtype']}."
                    )
                continue
            shape = (self.n_slots,) + tuple(var.shape[1:])
            if self.manifest["kind"] == "pairwise":
                shape = (self.n_slots, self.n_slots)
            chunks = (C,) + tuple(var.shape[1:])
            new[name] = xr.Variable(var.dims, da.full(shape, _fill_value(var.dtype),
                                                      dtype=var.dtype, chunks=chunks),
                                    attrs=var.attrs)
            arrays[name] = {"dims": list(var.dims), "shape": list(shape), "dtype": str(var.dtype),
                            "chunks": list(chunks)}
        if new:
            first = not (self.data / "zarr.json").exists()
            xr.Dataset(new).to_zarr(self.data, mode="w" if first else "a", compute=False,
                                    consolidated=False, zarr_format=3)
            self.manifest["arrays"] = arrays
            if attrs and not self.manifest.get("attrs"):
                self.manifest["attrs"] = json.loads(json.dumps(
                    {k: _scalar(v) for k, v in attrs.items()}, allow_nan=True))
            self._save_manifest()

    def _chunk_files(self, name: str, index: Sequence[int]) -> Path:
        info = self.manifest["arrays"][name]
        key = list(index) + [0] * (len(info["dims"]) - len(index))
        return self.data.joinpath(name, "c", *[str(i) for i in key])

    # ---------------------------------------------------------------- markers
    def marker_path(self, key: str) -> Path:
        return self.path / MARKERS / f"{key}.json"

    def error_path(self, key: str) -> Path:
        return self.path / ERRORS / f"{key}.json"

    def read_marker(self, key: str) -> dict | None:
        try:
            marker = _read_json(self.marker_path(key))
        except (OSError, ValueError):
            return None
        return marker if isinstance(marker, dict) else None

    def problems(self, key: str, marker: dict, verify: str = "size") -> list[ResultProblem]:
        """What is wrong with the files of a done chunk (empty: intact)."""
        out = []
        if verify == "none":
            return out
        for rel, (size, digest) in marker.get("files", {}).items():
            p = self.path / rel
            try:
                st = p.stat()
            except OSError:
                out.append(ResultProblem(key, p, "file is missing"))
                continue
            if st.st_size != size:
                out.append(ResultProblem(
                    key, p, f"file has {st.st_size} bytes, {size} were written (truncated or "
                    "changed)"))
            elif verify == "full" and sha256_file(p) != digest:
                out.append(ResultProblem(key, p, "content does not match its recorded sha256"))
        return out

    def done(self, key: str, ids: Sequence[str], verify: str = "size") -> bool:
        """Whether chunk ``key`` (of networks ``ids``) is done and its files intact."""
        marker = self.read_marker(key)
        if marker is None or marker.get("ids") != list(ids):
            return False
        return not self.problems(key, marker, verify)

    def record_error(self, key: str, error: str, trace: str | None) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.marker_path(key).unlink()
        _atomic_write_json(self.error_path(key), {"key": key, "error": error, "traceback": trace})

    def write_chunk(self, key: str, ids: Sequence[str], ds: xr.Dataset,
                    region: Mapping[str, slice] | Sequence[Mapping[str, slice]],
                    extra: Mapping[str, Any] | None = None) -> dict:
        """Write one chunk by the crash-safety rule: drop its marker, write ``ds`` into each
        region (``ds`` for a second region of a pairwise block is its transpose), read it back
        and compare, then write the marker with each file's size and sha256.

        The arrays were created by xarray (:meth:`ensure_arrays`); a region is written into
        them with zarr-python directly, one whole zarr chunk per variable. That is what
        ``Dataset.to_zarr(region=...)`` does for these dtypes (numbers and booleans are stored
        as they are; floats with NaN as the fill value), without its per-call validation of the
        whole store, which measured 90 ms per chunk of 25 variables (about 5 ms this way).

        Raises:
            ResultIntegrityError: what was read back differs from what was written.
        """
        import zarr

        with contextlib.suppress(FileNotFoundError):
            self.marker_path(key).unlink()
        regions = [region] if isinstance(region, Mapping) else list(region)
        files: dict[str, list] = {}
        C = int(self.manifest["chunk_size"])
        cache = self.__dict__.setdefault("_arrays", {})  # zarr handles, reused across chunks
        for r, part in zip(regions, _region_parts(ds, len(regions))):
            for name, var in part.data_vars.items():
                if var.dtype.kind not in "biufc":
                    raise ValueError(f"The variable {name!r} has dtype {var.dtype}; result "
                                     "stores hold numbers and booleans only.")
                if name not in cache:
                    cache[name] = zarr.open_array(self.data / name, mode="r+", zarr_format=3
                                                  ).with_config({"write_empty_chunks": True})
                arr = cache[name]
                sel = tuple(r.get(d, slice(None)) for d in var.dims)
                values = np.ascontiguousarray(var.values)
                arr[sel] = values
                back = arr[sel]
                if not np.array_equal(back, values, equal_nan=values.dtype.kind in "fc"):
                    raise ResultIntegrityError(
                        f"{self.data / name}: chunk {key} read back differs from what was "
                        "written (disk or filesystem problem)."
                    )
                index = [r[d].start // C for d in var.dims if d in r]
                p = self._chunk_files(name, index)
                files[str(p.relative_to(self.path))] = [p.stat().st_size, sha256_file(p)]
        marker = {"key": key, "ids": list(ids), "files": files, **(extra or {})}
        _atomic_write_json(self.marker_path(key), marker)
        with contextlib.suppress(FileNotFoundError):
            self.error_path(key).unlink()
        return marker

    def table(self) -> dict[str, list]:
        return _read_json(self.path / NETWORKS)


def _region_parts(ds: xr.Dataset, n: int):
    yield ds
    if n > 1:  # the mirrored block of a symmetric pairwise matrix
        yield xr.Dataset({k: (("network", "network_b"), v.transpose("network", "network_b")
                              .values.T) for k, v in ds.data_vars.items()})


# --------------------------------------------------------------------------- reading
def _open_store(zoo: Any, name: str) -> ResultStore:
    path = result_path(zoo, name)
    return ResultStore.open(path)


def check_result(zoo: Any, name: str, *, verify: str = "full") -> list[ResultProblem]:
    """Every damaged file of the done chunks of result ``name`` (empty: intact).

    Arguments:
        verify: ``"full"`` (default: sha256 of every file), ``"size"`` (sizes only).
    """
    store = _open_store(zoo, name)
    out = []
    for key, ids, _ in _units(store):
        marker = store.read_marker(key)
        if marker is not None and marker.get("ids") == list(ids):
            out.extend(store.problems(key, marker, verify))
    return out


def _units(store: ResultStore):
    """``(key, ids, slot start)`` of every chunk (rows) or block (pairwise)."""
    m = store.manifest
    if m["kind"] == "pairwise":
        for key, (bi, bj) in _blocks(len(m["ids"]), int(m["chunk_size"])):
            yield key, _block_ids(m["ids"], bi, bj, int(m["chunk_size"])), (bi, bj)
        return
    C = int(m["chunk_size"])
    for i, chunk in enumerate(m["chunks"]):
        yield str(i), chunk["ids"], i * C


def _blocks(n: int, C: int):
    nb = int(math.ceil(n / C))
    for bi in range(nb):
        for bj in range(bi, nb):
            yield f"{bi}_{bj}", (bi, bj)


def _block_ids(ids: list, bi: int, bj: int, C: int) -> list:
    return ids[bi * C:(bi + 1) * C] + ids[bj * C:(bj + 1) * C]


def result_status(zoo: Any, name: str, *, verify: str = "size") -> list[dict]:
    """One dict per analysed network: ``id``, ``chunk``, ``status`` (``"ok"``, ``"ok_alone"``,
    ``"failed"``, ``"pending"``, ``"error"`` (its chunk raised) or ``"damaged"``) and
    ``error`` (or None). Reads only the markers (and stats the files)."""
    store = _open_store(zoo, name)
    codes = {v: k for k, v in STATUS.items()}
    out = []
    for key, ids, _ in _units(store):
        marker = store.read_marker(key)
        err = None
        if marker is None or marker.get("ids") != list(ids):
            status = "pending"
            with contextlib.suppress(OSError, ValueError):
                err = _read_json(store.error_path(key)).get("error")
                status = "error"
            out.extend({"id": i, "chunk": key, "status": status, "error": err} for i in ids)
            continue
        bad = store.problems(key, marker, verify)
        for j, i in enumerate(ids):
            if bad:
                out.append({"id": i, "chunk": key, "status": "damaged", "error": str(bad[0])})
                continue
            code = marker.get("status", [STATUS["ok"]] * len(ids))[j]
            out.append({"id": i, "chunk": key, "status": codes.get(code, "ok"),
                        "error": (marker.get("failed") or {}).get(i)})
    return out


def open_result(zoo: Any, name: str, *, verify: str = "size", strict: bool = False,
                include_failed: bool = True) -> xr.Dataset:
    """The stored result ``name`` of :func:`dynrnn.batch.analyze`, lazily (dask arrays; nothing
    is read until computed).

    Only networks of done chunks are included (a partial or pending chunk is never read). The
    ``network`` dimension has the zoo's metadata as coordinates -- ``id``, ``entry``, ``k``,
    ``model``, ``seed``, every config field (``n_units``, ``nonlinearity``, ...), ``task`` and
    ``task.<field>``, outcome fields, ``tags`` (comma-joined) -- so ``ds.groupby("n_units")``
    works (a column named like a result variable becomes ``zoo.<column>``), and
    ``analysis_status`` (codes in :data:`STATUS`, names in its attrs) says which networks
    failed (their values are padding).

    Arguments:
        verify: how done chunks are checked before they are included: ``"size"`` (default:
            every file's size against its marker, stat only), ``"full"`` (sha256 of every
            file: reads the store once), ``"none"``.
        strict: raise :class:`ResultIntegrityError` naming the file for a damaged chunk
            instead of leaving it out with a :class:`ResultIntegrityWarning`.
        include_failed: keep networks whose analysis failed (``analysis_status == failed``).

    Raises:
        FileNotFoundError: no store of that name.
        ResultIntegrityError: with ``strict``, a damaged chunk.
    """
    store = _open_store(zoo, name)
    m = store.manifest
    if m["kind"] != "rows":
        raise ValueError(f"{store.path} is a pairwise result; use open_pairwise.")
    rows: list[int] = []
    positions: list[int] = []
    index = {i: j for j, i in enumerate(m["ids"])}
    status_codes: list[int] = []
    for key, ids, start in _units(store):
        marker = store.read_marker(key)
        if marker is None or marker.get("ids") != list(ids):
            continue
        bad = store.problems(key, marker, verify)
        if bad:
            text = "; ".join(str(b) for b in bad)
            if strict:
                raise ResultIntegrityError(text)
            warnings.warn(f"Leaving out chunk {key} ({len(ids)} networks) of {store.path}: "
                          f"{text} (rerun the analysis to repair it).", ResultIntegrityWarning,
                          stacklevel=2)
            continue
        codes = marker.get("status", [STATUS["ok"]] * len(ids))
        for j, i in enumerate(ids):
            if not include_failed and codes[j] == STATUS["failed"]:
                continue
            rows.append(start + j)
            positions.append(index[i])
            status_codes.append(codes[j])
    table = store.table()
    if m.get("arrays"):
        ds = xr.open_zarr(store.data, consolidated=False)
        ds = ds.isel(network=np.asarray(rows, dtype=np.int64))
    else:  # nothing finished yet
        ds = xr.Dataset(coords={"network": np.zeros(0, dtype=np.int64)})
    pos = np.asarray(positions, dtype=np.int64)
    coords = {"network": np.arange(len(rows))}
    for col, values in table.items():
        if col == "network":
            continue
        name = f"zoo.{col}" if col in ds.variables else col  # e.g. an outcome named like a var
        coords[name] = ("network", _coordinate([values[p] for p in pos]) if len(pos)
                        else np.zeros(0))
    ds = ds.assign_coords(coords)
    if "analysis_status" in ds:
        ds["analysis_status"].attrs.update(flag_values=list(STATUS.values()),
                                           flag_meanings=" ".join(STATUS))
    ds.attrs.update(m.get("attrs") or {})
    ds.attrs.update(analysis=m["analysis"], store=str(store.path),
                    n_networks_analysed=len(m["ids"]), n_networks_done=len(rows))
    return ds


def open_pairwise(zoo: Any, name: str, *, verify: str = "size", strict: bool = True
                  ) -> xr.Dataset:
    """The pairwise matrix result ``name`` (``[network, network_b]``), lazily, with the zoo's
    metadata as coordinates of both dimensions (``n_units`` and ``n_units_b``, ...).

    Blocks that are not done read as NaN (``attrs["complete"]`` says whether every block is
    done); a damaged block raises :class:`ResultIntegrityError` naming the file (``strict``) or
    reads as NaN with a warning.
    """
    store = _open_store(zoo, name)
    m = store.manifest
    if m["kind"] != "pairwise":
        raise ValueError(f"{store.path} is a per-network result; use open_result.")
    n, C = len(m["ids"]), int(m["chunk_size"])
    ds = xr.open_zarr(store.data, consolidated=False).isel(network=slice(0, n),
                                                           network_b=slice(0, n))
    missing = []
    for key, ids, (bi, bj) in _units(store):
        marker = store.read_marker(key)
        ok = marker is not None and marker.get("ids") == list(ids)
        if ok:
            bad = store.problems(key, marker, verify)
            if bad:
                text = "; ".join(str(b) for b in bad)
                if strict:
                    raise ResultIntegrityError(text)
                warnings.warn(text, ResultIntegrityWarning, stacklevel=2)
                ok = False
        if not ok:
            missing.append((bi, bj))
    if missing:
        mask = np.ones((n, n), dtype=bool)
        for bi, bj in missing:
            mask[bi * C:(bi + 1) * C, bj * C:(bj + 1) * C] = False
            mask[bj * C:(bj + 1) * C, bi * C:(bi + 1) * C] = False
        ds = ds.where(xr.DataArray(mask, dims=("network", "network_b")))
        warnings.warn(f"The pairwise result {store.path} is incomplete: {len(missing)} blocks "
                      "are not done and read as NaN (rerun the analysis to finish it).",
                      UserWarning, stacklevel=2)
    table = store.table()
    coords: dict[str, Any] = {"network": np.arange(n), "network_b": np.arange(n)}
    for col, values in table.items():
        c = _coordinate(values)
        coords[col] = ("network", c)
        coords[f"{col}_b"] = ("network_b", c)
    ds = ds.assign_coords(coords)
    ds.attrs.update(m.get("attrs") or {})
    ds.attrs.update(analysis=m["analysis"], store=str(store.path), complete=not missing)
    return ds
