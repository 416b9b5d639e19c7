"""Compile-on-first-use C kernels, loaded with ctypes (no torch headers, ~1 s per variant).

A variant is compiled with the system C compiler (``$CC`` or ``cc``) for this machine
(``-O3 -march=native``) and cached under ``$DYNRNN_CACHE_DIR`` (default
``~/.cache/dynrnn/kernels``), keyed by a hash of the source, the defines, the flags and the
compiler's version. The object is compiled with ``-ffast-math`` (vectorised ``tanhf``/``expf``
from glibc's libmvec, reassociated sums) but linked *without* it, so loading the library never
switches the process to flush-to-zero.

Where no compiler works the caller falls back to its torch path: :func:`load` returns None and
says why once (a ``RuntimeWarning``). ``DYNRNN_DISABLE_C=1`` turns the C kernels off.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

_FLAGS_COMPILE = ["-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-fPIC", "-std=c11"]
if platform.machine().lower() in ("x86_64", "amd64"):
    # GCC lowers 64-byte vector types to two 256-bit halves unless told that 512-bit is fine;
    # the flag is ignored on machines without AVX-512
    _FLAGS_COMPILE.append("-mprefer-vector-width=512")
_FLAGS_LINK = ["-shared"]
_LIBS = ["-lmvec", "-lm"]
_warned: set[str] = set()


def cache_dir() -> Path:
    root = os.environ.get("DYNRNN_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "dynrnn" / "kernels"


def enabled() -> bool:
    return os.environ.get("DYNRNN_DISABLE_C", "") not in ("1", "true", "yes")


@functools.cache
def _compiler() -> tuple[str, str] | None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    try:
        version = subprocess.run(
            [cc, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return cc, version


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _build(cc: str, source: str, defines: dict, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="dynrnn-cc-") as tmp:
        src, obj = Path(tmp) / "k.c", Path(tmp) / "k.o"
        src.write_text(source)
        dflags = [f"-D{k}={v}" if v is not None else f"-D{k}" for k, v in defines.items()]
        subprocess.run(
            [cc, *_FLAGS_COMPILE, *dflags, "-c", str(src), "-o", str(obj)],
            capture_output=True, text=True, timeout=300, check=True,
        )
        so = Path(tmp) / "k.so"
        try:
            subprocess.run(
                [cc, *_FLAGS_LINK, str(obj), "-o", str(so), *_LIBS],
                capture_output=True, text=True, timeout=300, check=True,
            )
        except subprocess.CalledProcessError:  # no libmvec (non-glibc): scalar libm only
            subprocess.run(
                [cc, *_FLAGS_LINK, str(obj), "-o", str(so), "-lm"],
                capture_output=True, text=True, timeout=300, check=True,
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(so, partial)
        os.replace(partial, target)  # atomic: concurrent builders race harmlessly


@functools.cache
def _load_cached(source: str, defines_items: tuple) -> ctypes.CDLL | None:
    found = _compiler()
    if found is None:
        _warn_once("cc", "dynrnn: no C compiler found; the CPU kernels fall back to torch.")
        return None
    cc, version = found
    defines = dict(defines_items)
    key = hashlib.sha256(
        repr((source, sorted(defines.items()), _FLAGS_COMPILE, _LIBS, version)).encode()
    ).hexdigest()[:24]
    target = cache_dir() / f"k_{key}.so"
    try:
        if not target.exists():
            _build(cc, source, defines, target)
        return ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        _warn_once(
            "build", f"dynrnn: compiling a C kernel failed ({detail.strip()[:300]}); "
            "falling back to the torch path."
        )
        return None


def load(source: str, defines: dict) -> ctypes.CDLL | None:
    """The compiled library for ``source`` with ``defines``, or None (fall back to torch)."""
    if not enabled():
        return None
    return _load_cached(source, tuple(sorted(defines.items())))
