"""Analysis results (``xarray.Dataset``) as netCDF files, written atomically.

netCDF-3 (xarray's ``"scipy"`` engine, no extra dependencies) knows only int8/16/32, float32/64
and strings, and attributes that are numbers, strings or 1-d numeric arrays. To round-trip what
analyses produce, :func:`save_dataset` encodes and :func:`load_dataset` decodes:

* variables and coordinates of dtype bool (stored as int8), int64/uint* (stored as int32 when the
  values fit, else ValueError naming the variable) and float16 (stored as float32) carry the attr
  ``_dynrnn_dtype`` with the original dtype, which is restored on load;
* attributes that netCDF-3 cannot hold (bool, None, dicts, lists, ints beyond int32, ...) are
  stored as JSON strings, their names listed in the attr ``_dynrnn_json_attrs``, and decoded on
  load.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ._io import TMP_SUFFIX, _fsync_dir, to_jsonable

__all__ = ["save_dataset", "load_dataset"]

_DTYPE_ATTR = "_dynrnn_dtype"
_JSON_ATTRS = "_dynrnn_json_attrs"
_NATIVE = {np.dtype(t) for t in ("int8", "int16", "int32", "float32", "float64")}
_I32 = np.iinfo(np.int32)


def _native_attr(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, str):
        return True
    if isinstance(value, (int, np.integer)):
        return _I32.min <= int(value) <= _I32.max
    return isinstance(value, (float, np.floating))


def _encode_attrs(attrs: dict, where: str) -> dict:
    out, as_json = {}, []
    for key, value in attrs.items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: attribute names must be strings. Got {key!r}.")
        if key in (_DTYPE_ATTR, _JSON_ATTRS):
            raise ValueError(f"{where}: the attribute name {key!r} is reserved by dynrnn.zoo.")
        if _native_attr(value):
            out[key] = value.item() if isinstance(value, np.generic) else value
        else:
            out[key] = json.dumps(to_jsonable(value, f"{where} attribute {key!r}"))
            as_json.append(key)
    if as_json:
        out[_JSON_ATTRS] = json.dumps(as_json)
    return out


def _decode_attrs(attrs: dict) -> dict:
    attrs = dict(attrs)
    names = json.loads(attrs.pop(_JSON_ATTRS, "[]"))
    for key in names:
        if key in attrs:
            attrs[key] = json.loads(attrs[key])
    return attrs


def _encode_variable(var, name: str):
    """Return ``var`` with netCDF-3-safe dtype and attrs (a new object; input untouched)."""
    import xarray as xr

    where = f"variable {name!r}"
    attrs = _encode_attrs(dict(var.attrs), where)
    data = var.values
    dtype = data.dtype
    if dtype.kind in "OUS" or dtype in _NATIVE or dtype.kind in "mM":
        new = data
    elif dtype == np.bool_:
        new = data.astype(np.int8)
    elif dtype.kind in "iu":
        if data.size and (data.min() < _I32.min or data.max() > _I32.max):
            raise ValueError(
                f"{where} has {dtype} values outside the int32 range, which netCDF-3 cannot "
                "store; convert it to float64 (or split it) before saving."
            )
        new = data.astype(np.int32)
    elif dtype == np.float16:
        new = data.astype(np.float32)
    else:
        raise ValueError(f"{where} has dtype {dtype}, which netCDF-3 cannot store.")
    if new is not data:
        attrs[_DTYPE_ATTR] = str(dtype)
    return xr.Variable(var.dims, new, attrs)


def _encode(ds):
    import xarray as xr

    coords = {n: _encode_variable(c.variable, n) for n, c in ds.coords.items()}
    data_vars = {n: _encode_variable(v.variable, n) for n, v in ds.data_vars.items()}
    return xr.Dataset(data_vars, coords=coords, attrs=_encode_attrs(dict(ds.attrs), "dataset"))


def _decode_variable(var):
    import xarray as xr

    attrs = _decode_attrs(var.attrs)
    original = attrs.pop(_DTYPE_ATTR, None)
    data = var.values
    if original is not None:
        data = data.astype(np.dtype(original))
    return xr.Variable(var.dims, data, attrs)


def _decode(ds):
    import xarray as xr

    coords = {n: _decode_variable(c.variable) for n, c in ds.coords.items()}
    data_vars = {n: _decode_variable(v.variable) for n, v in ds.data_vars.items()}
    return xr.Dataset(data_vars, coords=coords, attrs=_decode_attrs(ds.attrs))


def save_dataset(dataset, path: str | os.PathLike) -> Path:
    """Write ``dataset`` to the netCDF-3 file ``path`` atomically (temp file + ``os.replace``).

    Arguments:
        dataset: an ``xarray.Dataset`` (or a named ``xarray.DataArray``); see the module
            docstring for the dtype and attribute encodings applied.
        path: the target file (parent directories are created).

    Returns:
        The path written.
    """
    import xarray as xr

    if isinstance(dataset, xr.DataArray):
        dataset = dataset.to_dataset(name=dataset.name if dataset.name is not None else "data")
    if not isinstance(dataset, xr.Dataset):
        raise ValueError(
            f"The 'dataset' argument must be an xarray.Dataset. Got {type(dataset).__name__}."
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = _encode(dataset)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")
    try:
        encoded.to_netcdf(tmp, engine="scipy")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def load_dataset(path: str | os.PathLike):
    """Read a file written by :func:`save_dataset` fully into memory (the file is closed).

    Returns:
        The ``xarray.Dataset`` with original dtypes (bool, int64, ...) and attributes restored.
    """
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Result file {path} does not exist.")
    with xr.open_dataset(path, engine="scipy") as ds:
        ds = ds.load()
    return _decode(ds)
