"""Weights on disk: one ``.safetensors`` + one ``.json`` per model, written atomically.

File pair for a model with K networks (``<stem>`` is chosen by the caller)::

    <stem>.safetensors   the model's state_dict: every tensor with its leading network dim K,
                         contiguous, in its own dtype (float32/float64/..., bool buffers as bool)
    <stem>.json          {"format": "dynrnn.weights", "format_version": 1,
                          "spec": model.spec(),            # {"model", "configs", "seeds"}
                          "n_networks": K, "dtype": "float32",
                          "tensors": {name: {"shape": [K, ...], "dtype": "float32"}, ...},
                          "weights_sha256": "<sha256 of the .safetensors file>",
                          "content_sha256": "<sha256 of the tensors' names/shapes/bytes>",
                          "created": "<UTC ISO time>", "dynrnn_version": ..., "torch_version": ...,
                          ...caller's extra keys ("metadata" for save_model; "entry", "task",
                          "outcome", "tags" for zoo entries)}

Loading reads only JSON (``json.load``) and safetensors (a flat header plus raw bytes); it never
unpickles and never calls ``torch.load``, so a file cannot execute code. The model is rebuilt with
:func:`dynrnn.models.model_from_spec` and the stored tensors are assigned after their names,
shapes and kinds (float / bool / int) were checked against the spec.

Writes go to a temporary file in the target directory followed by ``os.replace``: the weights
first, the JSON last. A reader treats the JSON as the commit marker, so an interrupted save never
leaves a half-written pair visible; an overwritten pair whose JSON was not replaced is detected by
the sha256 check.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch

from .._validation import ParameterTypeError, check_bool
from ..models.base import MODEL_REGISTRY, RecurrentModel, model_from_spec

__all__ = ["save_model", "load_model", "ZooIntegrityError"]

FORMAT = "dynrnn.weights"
FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
META_SUFFIX = ".json"
TMP_SUFFIX = ".tmp"

# safetensors dtype codes -> torch dtypes
_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


class ZooIntegrityError(ValueError):
    """A stored file is damaged: unreadable or invalid JSON, a weights file that is not valid
    safetensors, disagrees with its spec, or does not match the sha256 recorded in its JSON.
    A ValueError; the message names the file."""


# --------------------------------------------------------------------------- small helpers
def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype_from_name(name: str, where: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"{where}: unknown dtype {name!r}.")
    return dtype


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    return "float" if dtype.is_floating_point else ("complex" if dtype.is_complex else "int")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


def _version() -> str:
    from .._version import __version__

    return __version__


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, no spaces), used for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def to_jsonable(value: Any, where: str) -> Any:
    """Convert numpy/torch scalars and arrays, tuples and mappings to plain JSON types.

    Raises ValueError naming ``where`` if something cannot be represented in JSON.
    """
    import numpy as np

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if torch.is_tensor(value):
        value = value.detach().cpu()
        return value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} must have string keys. Got key {k!r}.")
            out[k] = to_jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ValueError(
        f"{where} must be JSON-serialisable (None, bool, int, float, str, lists and dicts of "
        f"them, numpy/torch scalars or arrays). Got {type(value).__name__}: {value!r}."
    )


def stem_of(path: str | os.PathLike) -> Path:
    """``a/b``, ``a/b.safetensors`` and ``a/b.json`` all name the pair with stem ``a/b``."""
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterTypeError(
            f"The 'path' argument must be a str or os.PathLike. Got {type(path).__name__}."
        )
    p = Path(path)
    if p.suffix in (WEIGHTS_SUFFIX, META_SUFFIX):
        p = p.with_suffix("")
    if not p.name:
        raise ValueError(f"The 'path' argument must name a file. Got {str(path)!r}.")
    return p


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``.

    The temporary file is named ``.<name>.<random>.tmp`` (hidden, ignored by readers) and removed
    if anything fails before the replace.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":  # pragma: no cover - directories cannot be opened on Windows
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- serialisation
def serialize_model(model: RecurrentModel) -> tuple[bytes, dict]:
    """The safetensors bytes of ``model``'s state_dict and the JSON header describing them.

    Arguments:
        model: a :class:`RecurrentModel` with K networks; every tensor of its state_dict must
            have the leading dim K.

    Returns:
        ``(data, header)``: ``data`` is the ``.safetensors`` file content; ``header`` holds
        ``format``, ``format_version``, ``spec``, ``n_networks``, ``dtype``, ``tensors``,
        ``weights_sha256``, ``content_sha256``, ``created``, ``dynrnn_version``, ``torch_version``.
    """
    from safetensors.torch import save

    if not isinstance(model, RecurrentModel):
        raise ValueError(
            f"The 'model' argument must be a dynrnn RecurrentModel. Got {type(model).__name__}."
        )
    K = model.n_networks
    tensors: dict[str, torch.Tensor] = {}
    seen_storage: set[int] = set()
    for name, t in model.state_dict().items():
        if not torch.is_tensor(t):
            raise ValueError(
                f"state_dict entry {name!r} of {type(model).__name__} is not a tensor."
            )
        if t.ndim == 0 or t.shape[0] != K:
            raise ValueError(
                f"Tensor {name!r} of {type(model).__name__} must have the leading network dim "
                f"K={K}. Got shape {tuple(t.shape)}."
            )
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen_storage:  # safetensors refuses tensors that share memory
            t = t.clone()
        seen_storage.add(t.untyped_storage().data_ptr())
        tensors[name] = t
    data = save(tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    float_dtypes = [t.dtype for t in tensors.values() if t.is_floating_point()]
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": to_jsonable(model.spec(), "model.spec()"),
        "n_networks": K,
        "dtype": _dtype_name(float_dtypes[0] if float_dtypes else torch.get_default_dtype()),
        "tensors": {
            n: {"shape": list(t.shape), "dtype": _dtype_name(t.dtype)} for n, t in tensors.items()
        },
        "weights_sha256": hashlib.sha256(data).hexdigest(),
        "content_sha256": _tensor_digest(tensors),
        "created": _now(),
        "dynrnn_version": _version(),
        "torch_version": torch.__version__,
    }
    return data, header


def _tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes of ``tensors`` (independent of the file
    serialisation, whose header order may vary)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        digest.update(canonical_json([name, _dtype_name(t.dtype), list(t.shape)]).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_pair(stem: Path, data: bytes, header: dict) -> None:
    """Atomically write ``<stem>.safetensors`` (first) and ``<stem>.json`` (last, the commit)."""
    text = json.dumps(header, indent=1, allow_nan=True)
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(stem.with_name(stem.name + WEIGHTS_SUFFIX), data)
    atomic_write_bytes(stem.with_name(stem.name + META_SUFFIX), text.encode("utf-8"))


# --------------------------------------------------------------------------- reading
def read_header(json_path: Path) -> dict:
    """Parse and validate a pair's JSON (plain ``json.load``; nothing is executed).

    Raises:
        FileNotFoundError: the file does not exist.
        ZooIntegrityError (a ValueError): not valid JSON, not a dynrnn weights header, or a
            malformed ``spec`` / ``tensors`` / ``dtype`` (the message names the file).
        ValueError: a newer format version.
    """
    json_path = Path(json_path)
    try:
        with open(json_path, encoding="utf-8") as fh:
            header = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ZooIntegrityError(f"{json_path}: not valid JSON ({err}).") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ZooIntegrityError(
            f"{json_path}: not a dynrnn weights file (missing 'format': {FORMAT!r})."
        )
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{json_path}: format_version {version!r} is not supported by this dynrnn "
            f"(supports <= {FORMAT_VERSION}); upgrade dynrnn."
        )
    try:
        check_spec(header.get("spec"), str(json_path), require_known=False)
    except ValueError as err:
        raise ZooIntegrityError(str(err)) from None
    tensors = header.get("tensors")
    if not isinstance(tensors, dict):
        raise ZooIntegrityError(f"{json_path}: 'tensors' must be a dict of name -> shape/dtype.")
    if not isinstance(header.get("dtype"), str):
        raise ZooIntegrityError(f"{json_path}: 'dtype' must be a string such as 'float32'.")
    sha = header.get("weights_sha256")
    if sha is not None and not isinstance(sha, str):
        raise ZooIntegrityError(f"{json_path}: 'weights_sha256' must be a hex string.")
    return header


def check_spec(spec: Any, where: str, require_known: bool = True) -> None:
    """Raise ValueError unless ``spec`` has the structure of :meth:`RecurrentModel.spec`.

    With ``require_known`` the model name must also be registered (needed to build the model;
    listing a zoo does not need it).
    """
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: 'spec' must be a dict {{model, configs, seeds}}. Got {spec!r}.")
    name = spec.get("model")
    if not isinstance(name, str):
        raise ValueError(f"{where}: spec 'model' must be a model name. Got {name!r}.")
    if require_known and name not in MODEL_REGISTRY:
        raise ValueError(
            f"{where}: unknown model {name!r}; known models: {sorted(MODEL_REGISTRY)}."
        )
    configs, seeds = spec.get("configs"), spec.get("seeds")
    if not (isinstance(configs, list) and configs and all(isinstance(c, dict) for c in configs)):
        raise ValueError(f"{where}: spec 'configs' must be a non-empty list of dicts.")
    if (
        not isinstance(seeds, list)
        or len(seeds) != len(configs)
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ValueError(
            f"{where}: spec 'seeds' must be a list of {len(configs)} ints (one per config)."
        )


def build_model(spec: dict, where: str) -> RecurrentModel:
    """``model_from_spec`` with every failure turned into a ValueError naming ``where``."""
    check_spec(spec, where)
    try:
        return model_from_spec(spec)
    except ValueError as err:
        raise ValueError(f"{where}: invalid model spec: {err}") from None
    except TypeError as err:  # e.g. a required config field is missing
        raise ValueError(f"{where}: invalid model config: {err}") from None


def weights_layout(weights_path: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Names, shapes and dtypes stored in a safetensors file (reads only its header)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights_path), framework="pt") as fh:
            out = {}
            for name in fh.keys():  # noqa: SIM118 - safe_open has no __iter__
                sl = fh.get_slice(name)
                code = sl.get_dtype()
                if code not in _ST_DTYPES:
                    raise ZooIntegrityError(
                        f"{weights_path}: tensor {name!r} has unsupported dtype {code}."
                    )
                out[name] = (tuple(sl.get_shape()), _ST_DTYPES[code])
            return out
    except FileNotFoundError:
        raise
    except ValueError:
        raise
    except Exception as err:  # safetensors' own error type for a corrupt header
        if not weights_path.exists():
            raise FileNotFoundError(f"Weights file {weights_path} does not exist.") from None
        raise ZooIntegrityError(
            f"{weights_path}: not a valid safetensors file ({err})."
        ) from None


def stored_layout(
    header: Mapping[str, Any], where: str
) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The layout recorded in a pair's JSON (``header["tensors"]``), for comparing with the file."""
    out = {}
    for name, info in header["tensors"].items():
        if not (isinstance(info, dict) and isinstance(info.get("shape"), list)):
            raise ZooIntegrityError(f"{where}: tensor {name!r} has no 'shape' list in the JSON.")
        try:
            dtype = _dtype_from_name(info.get("dtype"), f"{where}: tensor {name!r}")
        except ValueError as err:
            raise ZooIntegrityError(str(err)) from None
        out[name] = (tuple(info["shape"]), dtype)
    return out


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """sha256 of a file, read sequentially in chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(
    weights_path: Path, header: Mapping[str, Any], data: bytes | None = None
) -> None:
    """Raise ZooIntegrityError unless the weights file (or its already-read ``data``) has the
    sha256 recorded in the JSON ``header`` (a header without one is accepted)."""
    expected = header.get("weights_sha256")
    if expected is None:
        return
    actual = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(weights_path)
    if actual != expected:
        raise ZooIntegrityError(
            f"{weights_path}: content does not match the sha256 recorded in its JSON (the file "
            "was modified or damaged, or a save was interrupted while overwriting it); pass "
            "verify=False to load it anyway."
        )


def check_layout(
    where: str,
    expected: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
    actual: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
    optional: Collection[str] = (),
) -> None:
    """Raise ValueError unless ``actual`` has exactly the tensors, shapes and kinds ``expected``
    (names in ``optional`` may be absent: tensors added to the model class after the file was
    written)."""
    missing = sorted(set(expected) - set(actual) - set(optional))
    extra = sorted(set(actual) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing tensors {missing}")
    if extra:
        problems.append(f"unexpected tensors {extra}")
    for name in sorted(set(expected) & set(actual)):
        (eshape, edtype), (ashape, adtype) = expected[name], actual[name]
        if tuple(eshape) != tuple(ashape):
            problems.append(f"{name!r} has shape {list(ashape)} but the spec needs {list(eshape)}")
        if _kind(edtype) != _kind(adtype):
            problems.append(
                f"{name!r} has dtype {_dtype_name(adtype)} but the model needs a "
                f"{_kind(edtype)} tensor"
            )
    if problems:
        raise ZooIntegrityError(
            f"{where}: stored tensors disagree with the spec: " + "; ".join(problems)
        )


def model_layout(model: RecurrentModel) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    return {n: (tuple(t.shape), t.dtype) for n, t in model.state_dict().items()}


def assign_tensors(
    model: RecurrentModel,
    tensors: dict[str, torch.Tensor],
    dtype: torch.dtype | None,
    device: torch.device | str | None,
) -> RecurrentModel:
    """Put ``tensors`` into ``model``, keeping their stored dtypes (or casting floats); the
    model's ``optional_state`` tensors that were not stored keep their initial values."""
    tensors = dict(tensors)
    fresh = model.state_dict()
    for name in type(model).optional_state:
        if name not in tensors and name in fresh:
            tensors[name] = fresh[name].detach().clone()
    out = {}
    for name, t in tensors.items():
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[name] = t.to(device) if device is not None else t
    model.load_state_dict(out, strict=True, assign=True)
    return model


def read_full(
    stem: Path, header: dict, *, dtype, device, verify: bool
) -> RecurrentModel:
    """Rebuild the whole model of a pair whose JSON ``header`` was already read."""
    from safetensors.torch import load

    weights_path = stem.with_name(stem.name + WEIGHTS_SUFFIX)
    model = build_model(header["spec"], str(stem.with_name(stem.name + META_SUFFIX)))
    if not weights_path.exists():
        raise FileNotFoundError(f"Weights file {weights_path} does not exist.")
    check_layout(str(weights_path), model_layout(model), weights_layout(weights_path),
                 type(model).optional_state)
    data = weights_path.read_bytes()
    if verify:
        verify_weights(weights_path, header, data)
    try:
        tensors = load(data)
    except Exception as err:  # pragma: no cover - the layout check above parsed the header
        raise ZooIntegrityError(
            f"{weights_path}: not a valid safetensors file ({err})."
        ) from None
    return assign_tensors(model, tensors, _resolve_dtype(dtype), device)


def _resolve_dtype(dtype) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        if isinstance(dtype, torch.dtype) and not dtype.is_floating_point:
            raise ValueError(f"The 'dtype' argument must be a floating dtype. Got {dtype}.")
        return dtype
    resolved = _dtype_from_name(dtype, "The 'dtype' argument")
    return _resolve_dtype(resolved)


# --------------------------------------------------------------------------- public API
def save_model(
    model: RecurrentModel, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Save ``model`` (K networks) as ``<path>.safetensors`` + ``<path>.json``, atomically.

    Arguments:
        model: any :class:`~dynrnn.models.RecurrentModel`; every tensor ``[K, ...]`` is stored in
            its own dtype.
        path: the pair's stem; a trailing ``.safetensors`` or ``.json`` is stripped. Parent
            directories are created. An existing pair is replaced.
        metadata: optional JSON-serialisable dict stored under ``"metadata"`` in the JSON
            (numpy/torch scalars and arrays are converted to plain numbers and lists).

    Returns:
        The stem ``Path`` (so ``stem.with_suffix(".json")`` is the metadata file).
    """
    if not isinstance(model, RecurrentModel):
        raise ParameterTypeError(
            f"The 'model' argument of save_model must be a dynrnn model. Got "
            f"{type(model).__name__}."
        )
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ParameterTypeError(
            f"The 'metadata' argument of save_model must be a dict or None. Got "
            f"{type(metadata).__name__}."
        )
    stem = stem_of(path)
    meta = {} if metadata is None else to_jsonable(dict(metadata), "The 'metadata' argument")
    data, header = serialize_model(model)
    header["metadata"] = meta
    write_pair(stem, data, header)
    return stem


def load_model(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    verify: bool = True,
) -> tuple[RecurrentModel, dict]:
    """Load a pair written by :func:`save_model` (JSON + safetensors only; no code is executed).

    Arguments:
        path: the stem (``.safetensors`` / ``.json`` suffixes are accepted).
        dtype: cast floating tensors to this dtype; default: keep the stored dtypes.
        device: device of the returned model (default CPU).
        verify: check the weights file against the sha256 recorded in the JSON (default; the
            file is read whole anyway). ``verify=False`` loads a file whose sha256 differs
            (names, shapes and kinds are still checked).

    Returns:
        ``(model, metadata)``: the model with the stored K networks (``run`` gives bitwise the
        outputs of the saved model) and the ``metadata`` dict given to :func:`save_model`.

    Raises:
        FileNotFoundError: a file of the pair is missing.
        ZooIntegrityError (a ValueError naming the file): the JSON is invalid; tensors
            disagree in name, shape or kind with the spec; the weights do not match the
            recorded sha256.
        ValueError: the JSON names an unknown model.
    """
    check_bool("load_model", "verify", verify)
    if device is not None:
        try:
            device = torch.device(device)
        except (TypeError, RuntimeError):
            raise ValueError(
                f"The 'device' parameter of load_model must name a torch device (e.g. 'cpu'). "
                f"Got {device!r} instead."
            ) from None
    _resolve_dtype(dtype)
    stem = stem_of(path)
    header = read_header(stem.with_name(stem.name + META_SUFFIX))
    model = read_full(stem, header, dtype=dtype, device=device, verify=verify)
    meta = header.get("metadata", {})
    return model, (meta if isinstance(meta, dict) else {"metadata": meta})
