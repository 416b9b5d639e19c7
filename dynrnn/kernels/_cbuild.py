"""Compile-on-first-use C kernels, loaded with ctypes (no torch headers, ~1 s per variant).

The sources ship with the package as ``dynrnn/kernels/csrc/<name>.c`` (:func:`source`). A
variant (a source plus ``-D`` defines) is compiled with the system C compiler (``$CC`` or
``cc``) for this machine (``-O3 -march=native``) and cached under ``$DYNRNN_CACHE_DIR``
(default ``~/.cache/dynrnn/kernels``), keyed by a hash of the source, the defines, the flags,
the compiler's version and the CPU's model and flags (a cache shared between machines never
hands a ``-march=native`` library to another CPU).

Floating point: by default every kernel is compiled with IEEE semantics (:data:`IEEE`:
``-ffp-contract=fast -fno-math-errno``; no reassociation, no flush-to-zero, NaN/inf kept,
fused multiply-adds allowed); :data:`EXACT` (``-ffp-contract=off``) also forbids contraction,
so a kernel that follows the reference's order of operations is bit-equal to it. A source may
``#include "vector_math.h"`` to get libmvec's vectorised ``tanh``/``exp``/``log1p`` without
fast-math (glibc >= 2.35 on x86-64; the rate RNN does: with scalar libm its forward was 7-14x
slower). A kernel may name value-changing flags it tolerates (:data:`FAST_MATH`, or its own
list); they are used only when the user opts in with ``DYNRNN_FAST_MATH=1`` (reassociated
sums; results then agree with the reference to rounding only). The object is linked
*without* ``-ffast-math``, so loading a library never switches the process to flush-to-zero.
:data:`EXACT` is never relaxed.

Cache safety: the cache directory is created with mode 0700, and a directory or library that
is not owned by the current user, or is writable by group or others, is never loaded from
(another local user could plant a library there); :func:`load` then warns once and builds
into a private ``mkdtemp`` directory instead.

Where no compiler works the caller falls back to its torch path: :func:`load` returns None and
says why once (a ``RuntimeWarning``). ``DYNRNN_DISABLE_C=1`` turns every C kernel off (the
one switch). The ctypes signatures are read from the C definitions (:func:`prototypes`), so
they are never counted by hand. :func:`check_build` compiles a source with
``-Wall -Wextra -Werror`` (``python -m dynrnn.kernels.check_build`` does so for every shipped
variant family).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import os
import platform
import re
import shutil
import stat
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_FLAGS_BASE = ["-O3", "-fPIC", "-std=c11"]
#: IEEE arithmetic: no reassociation, no flush-to-zero, NaN/inf kept; ``a * b + c`` may be
#: one fused multiply-add (an IEEE operation, rounded once); ``-fno-math-errno`` only lets
#: calls such as ``sqrt`` be inlined or vectorised (errno is never read)
IEEE = ["-ffp-contract=fast", "-fno-math-errno"]
#: IEEE arithmetic in source order, no contraction either: bit-equal to a reference computed
#: in the same order; never relaxed, whatever the user opts into
EXACT = ["-ffp-contract=off", "-fno-math-errno"]
#: the value-changing flags a kernel may tolerate; used only under ``DYNRNN_FAST_MATH=1``
FAST_MATH = ["-ffast-math", "-fopenmp-simd"]
#: the warning flags of :func:`check_build`
WERROR = ["-Wall", "-Wextra", "-Werror"]
_FLAGS_LINK = ["-shared", "-pthread"]
_LIBS = ["-lmvec", "-lm"]
_warned: set[str] = set()


#: the C sources shipped with the package (``dynrnn/kernels/csrc/<name>.c``)
SOURCE_DIR = Path(__file__).parent / "csrc"


_INCLUDE = re.compile(r'^#include "([\w.]+)"[ \t]*$', re.M)


def source(name: str) -> str:
    """The text of the shipped C source ``csrc/<name>.c`` (what :func:`load` compiles), with
    each ``#include "x.h"`` of a shipped header replaced by the header's text (so the cache key,
    a hash of this text, changes when a header does)."""
    text = (SOURCE_DIR / f"{name}.c").read_text()
    return _INCLUDE.sub(lambda m: (SOURCE_DIR / m.group(1)).read_text(), text)


def cache_dir() -> Path:
    root = os.environ.get("DYNRNN_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "dynrnn" / "kernels"


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() not in ("", "0", "false", "no", "off")


def enabled() -> bool:
    """False when ``DYNRNN_DISABLE_C`` is set (to anything but 0/false/no/off)."""
    return not _flag("DYNRNN_DISABLE_C")


def fast_math_enabled() -> bool:
    """True when the user opted in to value-changing floating point (``DYNRNN_FAST_MATH=1``)."""
    return _flag("DYNRNN_FAST_MATH")


def arch_flags(generic: bool = False) -> list[str]:
    """``-march=native`` (and a 512-bit vector preference on x86-64) unless ``generic``."""
    if generic:
        return []
    flags = ["-march=native"]
    if platform.machine().lower() in ("x86_64", "amd64"):
        # GCC lowers 64-byte vector types to two 256-bit halves unless told that 512-bit is
        # fine; the flag is ignored on machines without AVX-512
        flags.append("-mprefer-vector-width=512")
    return flags


def math_flags(math: list[str]) -> list[str]:
    """The floating-point flags a kernel asking for ``math`` is compiled with: ``math`` itself
    when it is IEEE/EXACT or the user opted in (``DYNRNN_FAST_MATH=1``), else :data:`EXACT`
    where ``math`` forbids contraction (``-ffp-contract=off``) and :data:`IEEE` otherwise."""
    if list(math) in (IEEE, EXACT) or fast_math_enabled():
        return list(math)
    return list(EXACT if "-ffp-contract=off" in math else IEEE)


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


def _define_flags(defines: dict) -> list[str]:
    return [f"-D{k}={v}" if v is not None else f"-D{k}" for k, v in defines.items()]


def _compile(cc: str, text: str, defines: dict, flags: list, obj: Path) -> str:
    """Compile ``text`` to the object ``obj``; returns the compiler's diagnostics (stderr)."""
    src = obj.with_suffix(".c")
    src.write_text(text)
    done = subprocess.run(
        [cc, *flags, *_define_flags(defines), "-c", str(src), "-o", str(obj)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    return done.stderr


def _build(cc: str, source: str, defines: dict, flags: list, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="dynrnn-cc-") as tmp:
        obj = Path(tmp) / "k.o"
        _compile(cc, source, defines, flags, obj)
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
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(so, partial)
        os.chmod(partial, 0o700)
        os.replace(partial, target)  # atomic: concurrent builders race harmlessly


# --- cache safety -------------------------------------------------------------------------


def _uid() -> int:
    """The current user's id (a function so that tests can simulate another owner)."""
    return os.getuid() if hasattr(os, "getuid") else -1


def trusted(path: Path) -> bool:
    """Whether ``path`` (a directory or a library) is safe to load from: owned by the current
    user and not writable by group or others (a symlink is judged by what it points to, and
    its own owner must match too)."""
    if not hasattr(os, "getuid"):  # no POSIX ownership (Windows): nothing to check
        return True
    try:
        st = os.stat(path)
        lst = os.lstat(path)
    except OSError:
        return False
    uid = _uid()
    return (
        st.st_uid == uid
        and lst.st_uid == uid
        and not (stat.S_IMODE(st.st_mode) & (stat.S_IWGRP | stat.S_IWOTH))
    )


def _make_private(path: Path) -> bool:
    """Create ``path`` (mode 0700, parents too) and say whether it is :func:`trusted`."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return False
    return trusted(path)


@functools.cache
def _private_dir() -> Path:
    """A fresh per-process directory (``mkdtemp`` makes it 0700, owned by us), removed at exit."""
    path = tempfile.mkdtemp(prefix="dynrnn-kernels-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return Path(path)


def _cache_root() -> Path:
    """The cache directory if it is safe, else a private temp directory (warned once)."""
    root = cache_dir()
    if _make_private(root):
        return root
    _warn_once(
        "cache", f"dynrnn: the kernel cache {root} is missing, not owned by you or writable by "
        "others; compiling into a private temporary directory instead."
    )
    return _private_dir()


# --- ctypes signatures from the C definitions ---------------------------------------------

_CTYPES = {
    "int64_t": ctypes.c_int64, "int32_t": ctypes.c_int32, "int": ctypes.c_int,
    "uint64_t": ctypes.c_uint64, "uint32_t": ctypes.c_uint32, "double": ctypes.c_double,
    "float": ctypes.c_float, "void": None,
}
# an exported (non-static) definition: at the start of a line, "type name(params) {"
_DEF = re.compile(r"^(?!static\b)([A-Za-z_]\w*)\s+([A-Za-z_]\w*)\s*\(([^)]*)\)\s*\{", re.M)


def _ctype(decl: str, defines: dict):
    if "*" in decl:
        return ctypes.c_void_p
    words = [w for w in re.findall(r"[A-Za-z_]\w*", decl) if w not in ("const", "restrict")]
    base = words[0] if words else decl
    base = str(defines.get(base, base))
    if base not in _CTYPES:
        raise ValueError(f"dynrnn: no ctypes type for the C type {decl!r}")
    return _CTYPES[base]


def prototypes(text: str, defines: dict | None = None) -> dict:
    """``{name: (restype, [argtypes])}`` of the exported functions defined in ``text``: every
    definition that starts a line with its return type and is not ``static``. A macro type
    (``REAL``) is resolved through ``defines``; every pointer is ``c_void_p``."""
    defines = defines or {}
    out = {}
    for ret, name, params in _DEF.findall(text):
        params = " ".join(params.split())
        args = [] if params in ("", "void") else [p.strip() for p in params.split(",")]
        # drop the parameter name: the type is what is left of the last word
        types = [_ctype(re.sub(r"[A-Za-z_]\w*\s*$", "", a) or a, defines) for a in args]
        out[name] = (_ctype(ret, defines), types)
    return out


def _bind(lib: ctypes.CDLL, text: str, defines: dict) -> ctypes.CDLL:
    for name, (restype, argtypes) in prototypes(text, defines).items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


# --- loading ------------------------------------------------------------------------------


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
        root = _cache_root()
        target = root / f"k_{key}.so"
        if target.exists() and not trusted(target):
            _warn_once(
                "so", f"dynrnn: {target} is not owned by you or is writable by others; "
                "compiling into a private temporary directory instead."
            )
            target = _private_dir() / target.name
        if not target.exists():
            _build(cc, source, defines, list(flags), target)
        return _bind(ctypes.CDLL(str(target)), source, defines)
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        _warn_once(
            "build", f"dynrnn: compiling a C kernel failed ({detail.strip()[:300]}); "
            "falling back to the torch path."
        )
        return None


def load(
    source: str, defines: dict, math: list[str] = IEEE, *, generic: bool = False
) -> ctypes.CDLL | None:
    """The compiled library for ``source`` with ``defines`` (``-DKEY=VALUE``, or ``-DKEY`` for
    a None value), or None (fall back to torch; the reason is warned once).

    ``math``: the floating-point flags the kernel tolerates (:data:`IEEE` / :data:`EXACT`, or
    value-changing ones such as :data:`FAST_MATH`, used only under ``DYNRNN_FAST_MATH=1``;
    see :func:`math_flags`). ``generic``: no ``-march=native`` (a portable build). The
    exported functions get their ctypes signatures from their C definitions."""
    if not enabled():
        return None
    flags = _FLAGS_BASE + arch_flags(generic) + math_flags(math)
    return _load_cached(source, tuple(sorted(defines.items())), tuple(flags))


def check_build(
    source: str, defines: dict, math: list[str] = IEEE, *, generic: bool = False
) -> str | None:
    """Compile ``source`` with ``defines`` and :data:`WERROR`; returns None when it compiles
    without a warning, else the compiler's diagnostics. Raises ``RuntimeError`` without a
    compiler."""
    found = _compiler()
    if found is None:
        raise RuntimeError("no C compiler found ($CC, cc or gcc)")
    flags = _FLAGS_BASE + arch_flags(generic) + list(math) + WERROR
    with tempfile.TemporaryDirectory(prefix="dynrnn-cc-") as tmp:
        try:
            _compile(found[0], source, defines, flags, Path(tmp) / "k.o")
        except subprocess.CalledProcessError as err:
            return err.stderr or str(err)
    return None


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
