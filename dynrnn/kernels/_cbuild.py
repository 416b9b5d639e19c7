"""Compile-on-first-use C kernels, loaded with ctypes (no torch headers, ~1 s per variant).

A variant is compiled with the system C compiler (``$CC`` or ``cc``) for this machine
(``-O3 -march=native``; ``DYNRNN_CPP_PORTABLE=1`` drops ``-march=native``) and cached under
``$DYNRNN_CACHE_DIR`` (default ``~/.cache/dynrnn/kernels``, else a temp dir), keyed by a hash
of the source, the defines, the flags, the compiler's version and the CPU's model and flags (a
cache shared between machines never hands a ``-march=native`` library to another CPU). With
``FAST_MATH`` the object is compiled with ``-ffast-math`` (vectorised ``tanhf``/``expf`` from
glibc's libmvec, reassociated sums) but linked *without* it, so loading the library never
switches the process to flush-to-zero; ``EXACT`` keeps IEEE arithmetic in source order.

Where no compiler works the caller falls back to its torch path: :func:`load` returns None and
says why once (a ``RuntimeWarning``). ``DYNRNN_DISABLE_C=1`` turns the C kernels off. All of
dynrnn's C kernels (rate RNN, spiking, echo-state, Hebbian) are built here.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_FLAGS_BASE = ["-O3", "-fPIC", "-std=c11"]
if os.environ.get("DYNRNN_CPP_PORTABLE", "0") in ("", "0"):
    _FLAGS_BASE.append("-march=native")
    if platform.machine().lower() in ("x86_64", "amd64"):
        # GCC lowers 64-byte vector types to two 256-bit halves unless told that 512-bit is
        # fine; the flag is ignored on machines without AVX-512
        _FLAGS_BASE.append("-mprefer-vector-width=512")
FAST_MATH = ["-ffast-math", "-fopenmp-simd"]
EXACT = ["-ffp-contract=off"]  # IEEE arithmetic in source order (bit-equal to the reference)
_FLAGS_LINK = ["-shared", "-pthread"]
_LIBS = ["-lmvec", "-lm"]
_warned: set[str] = set()


#: the C sources shipped with the package (``dynrnn/kernels/csrc/<name>.c``)
SOURCE_DIR = Path(__file__).parent / "csrc"


def source(name: str) -> str:
    """The text of the shipped C source ``csrc/<name>.c`` (what :func:`load` compiles)."""
    return (SOURCE_DIR / f"{name}.c").read_text()


def cache_dir() -> Path:
    root = os.environ.get("DYNRNN_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "dynrnn" / "kernels"


def enabled() -> bool:
    return os.environ.get("DYNRNN_DISABLE_C", "0").lower() in ("", "0", "false", "no")


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


def cpu_identity() -> str:
    """CPU model and feature flags (part of the cache key)."""
    try:
        with open("/proc/cpuinfo") as fh:
            lines = [ln for ln in fh if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.platform() + platform.processor()


def _build(cc: str, source: str, defines: dict, flags: list, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="dynrnn-cc-") as tmp:
        src, obj = Path(tmp) / "k.c", Path(tmp) / "k.o"
        src.write_text(source)
        dflags = [f"-D{k}={v}" if v is not None else f"-D{k}" for k, v in defines.items()]
        subprocess.run(
            [cc, *flags, *dflags, "-c", str(src), "-o", str(obj)],
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


def _writable_cache() -> Path:
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe.{os.getpid()}"
        probe.touch()
        probe.unlink()
        return root
    except OSError:
        return Path(tempfile.gettempdir()) / f"dynrnn-kernels-{os.getuid()}"


@functools.cache
def _load_cached(source: str, defines_items: tuple, flags: tuple) -> ctypes.CDLL | None:
    found = _compiler()
    if found is None:
        _warn_once("cc", "dynrnn: no C compiler found; the CPU kernels fall back to torch.")
        return None
    cc, version = found
    defines = dict(defines_items)
    key = hashlib.sha256(
        repr((source, sorted(defines.items()), flags, _LIBS, version, cpu_identity())).encode()
    ).hexdigest()[:24]
    try:
        target = _writable_cache() / f"k_{key}.so"
        if not target.exists():
            _build(cc, source, defines, list(flags), target)
        return ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        _warn_once(
            "build", f"dynrnn: compiling a C kernel failed ({detail.strip()[:300]}); "
            "falling back to the torch path."
        )
        return None


def load(source: str, defines: dict, math: list[str] = FAST_MATH) -> ctypes.CDLL | None:
    """The compiled library for ``source`` with ``defines`` (``-DKEY=VALUE``, or ``-DKEY`` for
    a None value) and floating-point mode ``math`` (``FAST_MATH`` or ``EXACT``), or None (fall
    back to torch; the reason is warned once)."""
    if not enabled():
        return None
    return _load_cached(source, tuple(sorted(defines.items())), tuple(_FLAGS_BASE + math))


_EXECUTOR: tuple[ThreadPoolExecutor, int] | None = None  # (pool, pid that made it)


def parallel_ranges(fn, n_items: int, chunk_args=lambda i: (), min_per_thread: int = 1) -> None:
    """Call ``fn(i0, i1, *chunk_args(i))`` on contiguous chunks ``i`` of ``range(n_items)``, one
    per torch thread (at most ``n_items // min_per_thread`` chunks), and wait for all.

    For the C kernels: ctypes releases the GIL, so the chunks run in parallel. The pool is
    shared by all kernels and persists (its threads only call C; a pool whose threads run torch
    ops would keep OpenMP teams alive and slow later torch ops). A process forked after the
    pool was used makes a new one: the parent's worker threads do not exist in the child.
    """
    global _EXECUTOR
    import torch

    n = max(1, min(torch.get_num_threads(), n_items // max(1, min_per_thread)))
    if n == 1:
        fn(0, n_items, *chunk_args(0))
        return
    if _EXECUTOR is None or _EXECUTOR[1] != os.getpid() or _EXECUTOR[0]._max_workers < n:
        _EXECUTOR = (
            ThreadPoolExecutor(max_workers=n, thread_name_prefix="dynrnn-kernel"),
            os.getpid(),
        )
    pool = _EXECUTOR[0]
    bounds = [round(n_items * i / n) for i in range(n + 1)]
    futures = [
        pool.submit(fn, bounds[i], bounds[i + 1], *chunk_args(i))
        for i in range(n)
        if bounds[i + 1] > bounds[i]
    ]
    for f in futures:
        f.result()
