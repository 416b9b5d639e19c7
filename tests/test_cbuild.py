"""The C-kernel build machinery: cache safety, the -Werror build check, the ctypes signatures
read from the C definitions, the one backend vocabulary, and the fall-back without a compiler."""

import ctypes
import os
import stat
import warnings
from pathlib import Path

import pytest
import torch

from dynrnn.kernels import _backends, _cbuild, check_build, linalg

needs_cc = pytest.mark.skipif(_cbuild._compiler() is None, reason="no C compiler")

_TINY = "#include <stdint.h>\nint64_t twice(int64_t x) { return 2 * x; }\n"


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A private cache under tmp_path, with the once-only warnings and the caches reset."""
    monkeypatch.setenv("DYNRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DYNRNN_DISABLE_C", raising=False)
    monkeypatch.setattr(_cbuild, "_warned", set())
    _cbuild._load_cached.cache_clear()
    _cbuild._private_dir.cache_clear()
    yield tmp_path / "cache"
    _cbuild._load_cached.cache_clear()
    _cbuild._private_dir.cache_clear()
    _cbuild._compiler.cache_clear()


def test_cache_dir_created_private(fresh):
    root = _cbuild._cache_root()
    assert root == fresh
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert _cbuild.trusted(root)


def test_world_writable_cache_refused(fresh):
    fresh.mkdir(parents=True)
    os.chmod(fresh, 0o777)
    assert not _cbuild.trusted(fresh)
    with pytest.warns(RuntimeWarning, match="private temporary directory"):
        root = _cbuild._cache_root()
    assert root != fresh
    assert _cbuild.trusted(root)
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700


def test_cache_owned_by_someone_else_refused(fresh, monkeypatch):
    fresh.mkdir(parents=True, mode=0o700)
    assert _cbuild.trusted(fresh)
    me = os.getuid()
    monkeypatch.setattr(_cbuild, "_uid", lambda: me + 1)  # as if another user owned it
    assert not _cbuild.trusted(fresh)
    with pytest.warns(RuntimeWarning, match="not owned by you"):
        root = _cbuild._cache_root()
    assert root != fresh


@needs_cc
def test_planted_library_not_loaded(fresh):
    lib = _cbuild.load(_TINY, {})
    assert lib is not None and lib.twice(21) == 42
    (so,) = fresh.glob("k_*.so")
    assert stat.S_IMODE(os.stat(so).st_mode) & 0o077 == 0
    os.chmod(so, 0o666)  # writable by others: anyone could have replaced it
    _cbuild._load_cached.cache_clear()
    with pytest.warns(RuntimeWarning, match="writable by others"):
        lib = _cbuild.load(_TINY, {})
    assert lib is not None and lib.twice(4) == 8
    assert Path(lib._name).parent != fresh


@needs_cc
def test_build_check_catches_warnings():
    assert _cbuild.check_build(_TINY, {}) is None
    diag = _cbuild.check_build("int f(int x) { int y; return 0; }\n", {})
    assert diag is not None and "unused" in diag


@needs_cc
def test_shipped_kernels_compile_without_warnings():
    # one configuration per source and precision (the full matrix: python -m
    # dynrnn.kernels.check_build, run in CI)
    assert check_build.check_all(quick=True) == []


def test_sources_ship_with_package():
    for name in ("rate_rnn", "linalg", "hebbian", "esn", "izhikevich"):
        assert (_cbuild.SOURCE_DIR / f"{name}.c").is_file()


def test_prototypes_from_definitions():
    i64, ptr, dbl = ctypes.c_int64, ctypes.c_void_p, ctypes.c_double
    protos = _cbuild.prototypes(_cbuild.source("hebbian"), {"REAL": "float"})
    assert protos == {"three_factor": (None, [i64, i64, i64, i64, dbl, dbl, i64] + [ptr] * 6)}
    protos = _cbuild.prototypes(_cbuild.source("rate_rnn"), {"REAL": "double"})
    assert protos["rate_fwd"] == (None, [i64] * 7 + [ptr] * 13)
    assert protos["rate_bwd"] == (None, [i64] * 7 + [ptr] * 20)
    assert set(protos) == {"rate_fwd", "rate_bwd"}  # static helpers are not exported
    protos = _cbuild.prototypes("static int g(void) { return 1; }\nREAL h(REAL a, int n) {\n",
                                {"REAL": "double"})
    assert protos == {"h": (dbl, [dbl, ctypes.c_int])}


def test_default_flags_are_ieee(monkeypatch):
    monkeypatch.delenv("DYNRNN_FAST_MATH", raising=False)
    assert "-ffast-math" not in _cbuild.math_flags(_cbuild.FAST_MATH)
    assert _cbuild.math_flags(_cbuild.FAST_MATH) == _cbuild.IEEE
    monkeypatch.setenv("DYNRNN_FAST_MATH", "1")
    assert "-ffast-math" in _cbuild.math_flags(_cbuild.FAST_MATH)
    assert _cbuild.math_flags(_cbuild.EXACT) == _cbuild.EXACT
    assert "-ffp-contract=off" in _cbuild.EXACT and "-ffast-math" not in _cbuild.IEEE
    assert "-march=native" not in _cbuild.arch_flags(generic=True)


def test_one_backend_vocabulary():
    assert _backends.BACKENDS == ("auto", "reference", "cpu", "cpu-torch", "triton")
    for supported in (linalg.LU_BACKENDS,):
        assert set(supported) <= set(_backends.BACKENDS)
    with pytest.warns(DeprecationWarning, match="'cpu'"):
        assert _backends.check_backend("f", "c") == "cpu"
    with pytest.raises(ValueError, match="'backend' parameter of f"):
        _backends.check_backend("f", "gpu")
    with pytest.raises(ValueError, match="'backend'"):
        _backends.check_backend("f", "triton", linalg.LU_BACKENDS)
    A = torch.eye(3, dtype=torch.float64)[None] * 2
    with pytest.warns(DeprecationWarning):
        LU, piv, info = linalg.lu_factor(A, backend="c")
    x = linalg.lu_solve(LU, piv, torch.ones(1, 3, dtype=torch.float64), backend="cpu")
    torch.testing.assert_close(x, torch.full((1, 3), 0.5, dtype=torch.float64))


def test_no_compiler_falls_back(fresh, monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    _cbuild._compiler.cache_clear()
    with pytest.warns(RuntimeWarning, match="no C compiler"):
        assert _cbuild.load(_TINY, {}) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _cbuild.load(_TINY, {"X": 1}) is None  # said once


def test_disable_switch(fresh, monkeypatch):
    monkeypatch.setenv("DYNRNN_DISABLE_C", "1")
    assert not _cbuild.enabled()
    assert _cbuild.load(_TINY, {}) is None
