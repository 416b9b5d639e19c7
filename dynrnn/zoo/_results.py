"""Analysis results (``xarray.Dataset``) as netCDF files, written atomically.

netCDF-3 (xarray's ``"scipy"`` engine, no extra dependencies) knows only int8/16/32, float32/64
and strings, and attributes that are numbers, strings or 1-d numeric arrays. To round-trip what
analyses produce, :func:`save_dataset` encodes and :func:`load_dataset` decodes:

* variables and coordinates of dtype bool (stored as int8), int64/uint* (stored as int32 when the
  values fit, else ValueError naming the variable), float16 (stored as float32) and unicode
  strings (netCDF gives them back as objects) carry the attr ``_dynrnn_dtype`` with the original
  dtype, which is restored on load;
* complex variables and coordinates (complex64 / complex128) are stored as float32 / float64
  arrays with one extra trailing dimension ``_dynrnn_complex`` of size 2 (real part, imaginary
  part) and the attr ``_dynrnn_dtype``; load puts the parts back bitwise (NaN, inf and signed
  zeros included) and drops the extra dimension. A complex *index* coordinate (one named like
  its dimension, which netCDF cannot give a second dimension) is stored under the name
  ``_dynrnn_complex_index.<name>`` and renamed back on load;
* attributes that netCDF-3 cannot hold (bool, None, dicts, lists, ints beyond int32, ...) are
  stored as JSON strings, their names listed in the attr ``_dynrnn_json_attrs``, and decoded on
  load.

Anything else (e.g. complex256, object arrays of non-strings, attributes that are not JSON
data) raises ValueError (or xarray's own error) before anything is moved into place: a failed
save never leaves a file, complete or partial, at the target, and an existing file there is
kept unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import ParameterTypeError
from ._io import TMP_SUFFIX, _fsync_dir, to_jsonable


def _check_path(path: Any, owner: str) -> str | os.PathLike:
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterTypeError(
            f"The 'path' parameter of {owner} must be a str or os.PathLike. Got "
            f"{type(path).__name__} instead."
        )
    return path

__all__ = ["save_dataset", "load_dataset"]

_DTYPE_ATTR = "_dynrnn_dtype"
_JSON_ATTRS = "_dynrnn_json_attrs"
#: the trailing (real, imag) dimension of an encoded complex variable
COMPLEX_DIM = "_dynrnn_complex"
#: prefix of the stored name of a complex index coordinate
_COMPLEX_INDEX = "_dynrnn_complex_index."
_COMPLEX = {np.dtype(np.complex64): np.dtype(np.float32),
            np.dtype(np.complex128): np.dtype(np.float64)}
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
    if COMPLEX_DIM in var.dims:
        raise ValueError(
            f"{where} uses the dimension name {COMPLEX_DIM!r}, which is reserved by dynrnn.zoo."
        )
    attrs = _encode_attrs(dict(var.attrs), where)
    data = var.values
    dtype = data.dtype
    dims = var.dims
    if dtype.kind == "U":
        attrs[_DTYPE_ATTR] = str(dtype)  # netCDF returns strings as object arrays
        return xr.Variable(dims, data, attrs)
    if dtype.kind in "OS" or dtype in _NATIVE or dtype.kind in "mM":
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
    elif dtype in _COMPLEX:
        new = np.stack([data.real, data.imag], axis=-1).astype(_COMPLEX[dtype], copy=False)
        dims = (*dims, COMPLEX_DIM)
    else:
        raise ValueError(
            f"{where} has dtype {dtype}, which dynrnn.zoo cannot store in netCDF-3 (supported: "
            "bool, integers within int32, float16/32/64, complex64/128, strings, datetimes)."
        )
    if new is not data:
        attrs[_DTYPE_ATTR] = str(dtype)
    return xr.Variable(dims, new, attrs)


def _stored_name(name, var) -> str:
    """The name under which a coordinate is written (complex index coordinates are renamed)."""
    if var.dtype in _COMPLEX and name in var.dims:
        return _COMPLEX_INDEX + str(name)
    return name


def _encode(ds):
    import xarray as xr

    for name in (*ds.coords, *ds.data_vars):
        if isinstance(name, str) and name.startswith(_COMPLEX_INDEX):
            raise ValueError(
                f"variable {name!r}: names starting with {_COMPLEX_INDEX!r} are reserved by "
                "dynrnn.zoo."
            )
    coords = {_stored_name(n, c.variable): _encode_variable(c.variable, n)
              for n, c in ds.coords.items()}
    data_vars = {n: _encode_variable(v.variable, n) for n, v in ds.data_vars.items()}
    return xr.Dataset(data_vars, coords=coords, attrs=_encode_attrs(dict(ds.attrs), "dataset"))


def _decode_variable(var):
    import xarray as xr

    attrs = _decode_attrs(var.attrs)
    original = attrs.pop(_DTYPE_ATTR, None)
    data = var.values
    dims = var.dims
    if original is not None:
        dtype = np.dtype(original)
        if dtype.kind == "c":
            if not dims or dims[-1] != COMPLEX_DIM or data.shape[-1] != 2:
                raise ValueError(
                    f"a {dtype} variable must end with the dimension {COMPLEX_DIM!r} of size 2 "
                    f"(real, imag); got dims {dims}."
                )
            out = np.empty(data.shape[:-1], dtype=dtype)
            out.real = data[..., 0]  # assigned part by part: exact for NaN, inf and -0.0
            out.imag = data[..., 1]
            data, dims = out, dims[:-1]
        else:
            data = data.astype(dtype)
    return xr.Variable(dims, data, attrs)


def _decode(ds):
    import xarray as xr

    coords = {}
    for n, c in ds.coords.items():
        name = n[len(_COMPLEX_INDEX):] if str(n).startswith(_COMPLEX_INDEX) else n
        coords[name] = _decode_variable(c.variable)
    for n, v in ds.data_vars.items():  # a renamed index coordinate may come back as data
        if str(n).startswith(_COMPLEX_INDEX):
            coords[n[len(_COMPLEX_INDEX):]] = _decode_variable(v.variable)
    data_vars = {n: _decode_variable(v.variable) for n, v in ds.data_vars.items()
                 if not str(n).startswith(_COMPLEX_INDEX)}
    out = xr.Dataset(data_vars, coords=coords, attrs=_decode_attrs(ds.attrs))
    if COMPLEX_DIM in out.dims:  # only the encoded complex variables used it
        raise ValueError(f"the dimension {COMPLEX_DIM!r} is left over after decoding.")
    return out


def save_dataset(dataset, path: str | os.PathLike) -> Path:
    """Write ``dataset`` to the netCDF-3 file ``path`` atomically (temp file + ``os.replace``).

    Arguments:
        dataset: an ``xarray.Dataset`` (or a named ``xarray.DataArray``); see the module
            docstring for the dtype and attribute encodings applied.
        path: the target file (parent directories are created).

    Returns:
        The path written.

    Raises:
        ValueError: a variable, coordinate or attribute cannot be stored (named in the
            message); nothing is written then, and an existing file at ``path`` is unchanged.
    """
    import xarray as xr

    if isinstance(dataset, xr.DataArray):
        dataset = dataset.to_dataset(name=dataset.name if dataset.name is not None else "data")
    if not isinstance(dataset, xr.Dataset):
        raise ParameterTypeError(
            f"The 'dataset' argument must be an xarray.Dataset. Got {type(dataset).__name__}."
        )
    path = Path(_check_path(path, "save_dataset"))
    encoded = _encode(dataset)  # unstorable values raise here, before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
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
        The ``xarray.Dataset`` with original dtypes (bool, int64, complex, ...) and attributes
        restored.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable netCDF-3 file (e.g. truncated) or its dynrnn
            encodings are damaged; the message names the file.
    """
    import xarray as xr

    path = Path(_check_path(path, "load_dataset"))
    if not path.exists():
        raise FileNotFoundError(f"Result file {path} does not exist.")
    try:
        with xr.open_dataset(path, engine="scipy") as ds:
            ds = ds.load()
        return _decode(ds)
    except FileNotFoundError:
        raise
    except Exception as err:  # scipy's reader fails in many ways on a damaged file
        raise ValueError(f"{path}: not a readable dynrnn result file ({err}).") from None
