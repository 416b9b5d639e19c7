"""The package's layer order, checked on the source.

Every module of ``dynrnn`` is parsed with :mod:`ast`; every import in it counts — module level,
inside functions and methods, under ``if TYPE_CHECKING:`` (not exempt: a type-only import still
says that the lower layer knows the higher one, and it becomes a real import the day someone
needs the name at run time), inside ``try`` blocks — and so do ``importlib.import_module`` /
``__import__`` calls with a constant name. Relative imports are resolved against the importing
module's package, and ``from pkg import name`` counts as importing ``pkg.name`` where that is a
module of the package, else ``pkg`` itself.

The layers, bottom to top (DESIGN.md, "Layers"). A module may import its own unit and any unit of
a lower layer; never a higher layer, and never another unit of its own layer:

=====  ==========================================================================================
0      utilities: ``dynrnn._validation``, ``dynrnn._progress``, ``dynrnn._version``,
       ``dynrnn._repr`` (independent of each other)
1      ``dynrnn.functional`` — pure tensor maths, one source of each equation
2      ``dynrnn.kernels`` — fast paths whose ``reference`` backends call ``functional``
3      ``dynrnn.models``, ``dynrnn.tasks`` — independent of each other
4      ``dynrnn.training``
5      ``dynrnn.analyses``
6      ``dynrnn.zoo``
7      ``dynrnn.batch``, ``dynrnn.plot`` — independent of each other
8      the command line and the package's entry points: ``dynrnn.cli``, ``dynrnn._reconstruct_cli``,
       ``dynrnn._zoo_cli``, ``dynrnn`` (``__init__``), ``dynrnn.__main__`` — one unit
=====  ==========================================================================================

A second check keeps the optional dependencies optional: no module of the package imports triton,
dask or a benchmark peer (brian2, reservoirpy, dsa-metric) at module level; triton is imported at
module level only by ``dynrnn/kernels/*_triton.py``, and those modules are imported only lazily
(inside a function) by the rest of the package. A subprocess imports every other module and checks
that none of these packages was loaded.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dynrnn

PACKAGE_DIR = Path(dynrnn.__file__).resolve().parent

#: (layer, units of the layer). A unit is a module or subpackage name; a module belongs to the
#: unit that is the longest dotted prefix of its name.
LAYERS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (0, ("dynrnn._validation", "dynrnn._progress", "dynrnn._version", "dynrnn._repr")),
    (1, ("dynrnn.functional",)),
    (2, ("dynrnn.kernels",)),
    (3, ("dynrnn.models", "dynrnn.tasks")),
    (4, ("dynrnn.training",)),
    (5, ("dynrnn.analyses",)),
    (6, ("dynrnn.zoo",)),
    (7, ("dynrnn.batch", "dynrnn.plot")),
    (8, ("dynrnn",)),
)
#: Units that share a layer with other modules but are one unit (the command line: ``cli``
#: dispatches to its two helpers, which use ``cli``'s argument checks).
UNIT_ALIASES = {
    "dynrnn.cli": "dynrnn",
    "dynrnn._reconstruct_cli": "dynrnn",
    "dynrnn._zoo_cli": "dynrnn",
    "dynrnn._analyze_cli": "dynrnn",
    "dynrnn._sweep_cli": "dynrnn",
    "dynrnn.__main__": "dynrnn",
}

#: Imports that break the order and are being removed right now by other changes; each entry is
#: (importing module, imported module). This list may only shrink: an entry that no longer
#: matches a violation fails ``test_allow_list_has_no_stale_entries``.
ALLOWED: frozenset[tuple[str, str]] = frozenset()

#: Packages that are never imported at module level by the package.
OPTIONAL = ("triton", "dask", "brian2", "reservoirpy", "DSA")
#: Benchmark peers: never imported by the package at all (a peer is never a runtime dependency).
PEERS = ("brian2", "reservoirpy", "DSA")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (absolute)
    line: int
    lazy: bool  # inside a function body (not run at import time)

    def where(self) -> str:
        return f"{self.module}:{self.line}"


def _modules() -> dict[str, Path]:
    """Every module of the package, by dotted name (``__init__`` is its package's name)."""
    out = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _package_of(module: str) -> str:
    """The package a module's relative imports are resolved against."""
    is_package = MODULES[module].name == "__init__.py"
    return module if is_package else module.rpartition(".")[0]


def _resolve_relative(module: str, level: int, name: str | None) -> str:
    base = _package_of(module).split(".")
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _targets(module: str, node: ast.AST) -> list[str]:
    """Absolute names of the modules one import node imports."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = _resolve_relative(module, node.level, node.module)
        else:
            base = node.module or ""
        out = []
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            out.append(sub if sub in MODULES else base)
        return out
    if isinstance(node, ast.Call):  # importlib.import_module("x") / __import__("x")
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in ("import_module", "__import__") or not node.args:
            return []
        arg = node.args[0]
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            return []
        text = arg.value
        if text.startswith("."):
            level = len(text) - len(text.lstrip("."))
            return [_resolve_relative(module, level, text[level:] or None)]
        return [text]
    return []


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str):
        self.module = module
        self.depth = 0  # function nesting
        self.imports: list[Import] = []

    def _add(self, node: ast.AST) -> None:
        for target in _targets(self.module, node):
            self.imports.append(Import(self.module, target, node.lineno, self.depth > 0))

    def visit_Import(self, node: ast.Import) -> None:
        self._add(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._add(node)

    def visit_Call(self, node: ast.Call) -> None:
        self._add(node)
        self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> None:
        inside = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        self.depth += inside
        super().generic_visit(node)
        self.depth -= inside


def _imports_of(module: str, source: str) -> list[Import]:
    collector = _Collector(module)
    collector.visit(ast.parse(source))
    return collector.imports


def _all_imports() -> list[Import]:
    out = []
    for module, path in MODULES.items():
        out.extend(_imports_of(module, path.read_text(encoding="utf-8")))
    return out


IMPORTS = _all_imports()

_LEVEL = {unit: level for level, units in LAYERS for unit in units}


def _unit(module: str) -> str | None:
    """The unit a module of the package belongs to (None: in no layer)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in UNIT_ALIASES:
            return UNIT_ALIASES[prefix]
        if prefix in _LEVEL and (n > 1 or len(parts) == 1):
            return prefix
    return None


def _violations(imports: list[Import] = IMPORTS) -> dict[tuple[str, str], list[Import]]:
    found: dict[tuple[str, str], list[Import]] = {}
    for imp in imports:
        if imp.target != "dynrnn" and not imp.target.startswith("dynrnn."):
            continue
        src, dst = _unit(imp.module), _unit(imp.target)
        if src == dst:
            continue
        if _LEVEL[dst] < _LEVEL[src]:
            continue
        found.setdefault((imp.module, imp.target), []).append(imp)
    return found


def _describe(imp: Import) -> str:
    src, dst = _unit(imp.module), _unit(imp.target)
    kind = "sideways" if _LEVEL[src] == _LEVEL[dst] else "upward"
    lazy = " (inside a function)" if imp.lazy else ""
    return (
        f"{imp.where()}: {imp.module} (layer {_LEVEL[src]}, {src}) imports {imp.target} "
        f"(layer {_LEVEL[dst]}, {dst}){lazy}: {kind}"
    )


def test_every_module_is_in_a_layer():
    missing = sorted(m for m in MODULES if _unit(m) is None)
    assert not missing, f"modules in no layer (add them to LAYERS and DESIGN.md): {missing}"
    # the resolver sees the package's own imports (a sanity check of the parser)
    assert any(i.target == "dynrnn._validation" for i in IMPORTS)
    assert any(i.lazy for i in IMPORTS)


def test_the_checker_resolves_and_flags_imports():
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from .base import run\n"  # own unit
        "from ..kernels import rate_rnn\n"  # downward
        "from .. import tasks\n"  # sideways: models and tasks share a layer
        "if TYPE_CHECKING:\n"
        "    from ..training import train\n"  # upward, type-only: still counted
        "def f():\n"
        "    import importlib\n"
        "    from dynrnn.zoo import Zoo\n"  # upward, inside a function
        "    return importlib.import_module('..analyses', __package__)\n"  # upward
    )
    imports = _imports_of("dynrnn.models.rate", source)
    targets = {(i.target, i.lazy) for i in imports}
    assert {
        ("dynrnn.models.base", False),
        ("dynrnn.kernels.rate_rnn", False),
        ("dynrnn.tasks", False),
        ("dynrnn.training", False),
        ("dynrnn.zoo", True),
        ("dynrnn.analyses", True),
    } <= targets
    flagged = {target for _, target in _violations(imports)}
    assert flagged == {"dynrnn.tasks", "dynrnn.training", "dynrnn.zoo", "dynrnn.analyses"}
    # the command line is one unit; the package root is the top layer
    assert not _violations(_imports_of("dynrnn.cli", "from ._zoo_cli import add_parser\n"))
    assert _violations(_imports_of("dynrnn.zoo._io", "import dynrnn\n"))


def test_imports_follow_the_layer_order():
    bad = [
        _describe(imp)
        for key, imps in sorted(_violations().items())
        if key not in ALLOWED
        for imp in imps
    ]
    assert not bad, "imports against the layer order (DESIGN.md, 'Layers'):\n" + "\n".join(bad)


def test_allow_list_has_no_stale_entries():
    stale = sorted(ALLOWED - set(_violations()))
    assert not stale, f"ALLOWED entries that are no longer violations (remove them): {stale}"


def _top(name: str) -> str:
    return name.split(".")[0]


def _is_triton_module(module: str) -> bool:
    return module.startswith("dynrnn.kernels.") and module.endswith("_triton")


def test_optional_dependencies_are_imported_lazily():
    bad = []
    for imp in IMPORTS:
        top = _top(imp.target)
        if top in PEERS:
            bad.append(f"{imp.where()}: imports the benchmark peer {imp.target}")
        elif top in OPTIONAL and not imp.lazy:
            if not (top == "triton" and _is_triton_module(imp.module)):
                bad.append(f"{imp.where()}: imports {imp.target} at module level")
        elif _is_triton_module(imp.target) and not imp.lazy and not _is_triton_module(imp.module):
            bad.append(f"{imp.where()}: imports the Triton module {imp.target} at module level")
        if top == "triton" and not imp.module.startswith("dynrnn.kernels"):
            bad.append(f"{imp.where()}: imports triton outside dynrnn.kernels")
    assert not bad, "optional dependencies imported eagerly:\n" + "\n".join(bad)


def test_importing_the_package_loads_no_optional_dependency():
    modules = [m for m in MODULES if not _is_triton_module(m) and m != "dynrnn.__main__"]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({OPTIONAL!r})))\n"
    )
    env = dict(os.environ, DYNRNN_DISABLE_C="1")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing dynrnn loaded {out.stdout.strip()}"
