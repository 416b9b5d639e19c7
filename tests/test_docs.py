"""The documentation site (``docs/``, Sphinx + myst-nb): its reference covers every public name.

The reference pages are generated from each package's ``__all__`` by ``docs/_ext/dynrnn_docs.py``
at every build; the tests here check those generated sources (fast, no Sphinx build) and that
the configuration loads. The full build (``sphinx-build -W --keep-going -b html docs OUT``:
the gallery rendered and six notebooks executed, about 2 minutes of CPU time on 2 cores) is
too slow for the default test run; CI builds it in its own step (``.ci/run``) and then runs
this file again with ``DYNRNN_DOCS_BUILD=OUT``, which adds the check of the built site: every
public name is a target of its inventory (``objects.inv``), every notebook page shows a figure,
the gallery page shows every figure.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import os
import re
import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import dynrnn_docs  # noqa: E402


def _packages_on_disk() -> set[str]:
    """Every public package of dynrnn whose ``__init__.py`` assigns ``__all__``, found by reading
    the files (independently of the generator's discovery)."""
    found = set()
    for init in (REPO / "dynrnn").rglob("__init__.py"):
        rel = init.parent.relative_to(REPO)
        if any(part.startswith("_") for part in rel.parts):
            continue
        tree = ast.parse(init.read_text())
        if any(isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign)
               and "__all__" in ast.dump(node) for node in tree.body):
            found.add(".".join(rel.parts))
    return found


def _documented(pages: dict[str, str]) -> dict[str, str]:
    """``{documented target: page}`` from the generated sources' directives."""
    targets = {}
    for page, text in pages.items():
        package = page.removesuffix(".rst")
        for m in re.finditer(r"^\.\. auto(?:class|function|exception):: (\S+)$", text, re.M):
            assert m.group(1) not in targets, f"{m.group(1)} documented twice"
            targets[m.group(1)] = page
        for m in re.finditer(r"^\.\. py:data:: (\S+)\n   :module: (\S+)$", text, re.M):
            assert m.group(2) == package, (page, m.group(0))
            targets[f"{package}.{m.group(1)}"] = page
    return targets


@pytest.fixture(scope="module")
def pages():
    return dynrnn_docs.api_pages()


def test_every_package_with_all_has_a_reference_page(pages):
    packages = set(dynrnn_docs.public_packages())
    assert packages == _packages_on_disk()
    assert {"dynrnn", "dynrnn.tasks", "dynrnn.models", "dynrnn.training", "dynrnn.analyses",
            "dynrnn.zoo", "dynrnn.batch", "dynrnn.plot"} <= packages
    assert set(pages) == {f"{p}.rst" for p in packages} | {"index.rst"}
    for p in packages:
        assert f"   {p}\n" in pages["index.rst"], p
        assert f".. automodule:: {p}\n" in pages[f"{p}.rst"], p


def test_every_public_name_appears_in_the_reference(pages):
    """Each name of each ``__all__`` is documented on its package's page, or (a re-export of an
    object documented elsewhere) linked from it to the page that documents that same object."""
    documented = _documented(pages)
    n_names = 0
    for package, names in dynrnn_docs.public_names().items():
        text = pages[f"{package}.rst"]
        module = importlib.import_module(package)
        for name in names:
            n_names += 1
            obj = getattr(module, name)
            own = f"{package}.{name}"
            if own in documented:
                assert documented[own] == f"{package}.rst"
                continue
            link = re.search(rf"^\* ``{re.escape(name)}``: :py:\w+:`(\S+)`$", text, re.M)
            assert link, f"{own} neither documented nor linked on {package}.rst"
            target = link.group(1)
            assert target in documented, f"{own} links to {target}, which no page documents"
            home, _, attr = target.rpartition(".")
            assert getattr(importlib.import_module(home), attr) is obj, (own, target)
    assert n_names > 200  # the reference is not empty by accident


def test_reexports_are_documented_where_they_are_defined(pages):
    documented = _documented(pages)
    # dynrnn.Ensemble and dynrnn.run are dynrnn.models' own
    assert "dynrnn.models.Ensemble" in documented and "dynrnn.Ensemble" not in documented
    assert "dynrnn.models.run" in documented and "dynrnn.run" not in documented
    # ... and a cross-reference to the re-export, or to the defining module's path, finds it
    assert dynrnn_docs.ALIASES["dynrnn.run"] == "dynrnn.models.run"
    assert dynrnn_docs.ALIASES["dynrnn.models.base.run"] == "dynrnn.models.run"
    assert dynrnn_docs.ALIASES["dynrnn.analyses.dsa"] == "dynrnn.analyses.similarity.dsa"
    assert all(target in documented for target in dynrnn_docs.ALIASES.values())
    # a package's own classes are documented there, with their members
    assert ".. autoclass:: dynrnn.zoo.Zoo\n   :members:" in pages["dynrnn.zoo.rst"]
    assert ".. autofunction:: dynrnn.analyses.find_fixed_points" in pages["dynrnn.analyses.rst"]


def test_constants_get_their_own_documentation_not_their_types(pages):
    """A constant is documented by its ``#:`` comment in the module that defines it (autodoc
    would show ``dict``'s docstring), or by a neutral line when it has none."""
    pytest.importorskip("sphinx")
    text = pages["dynrnn.plot.rst"]
    block = text[text.index(".. py:data:: PALETTE"):]
    block = block[:block.index("\n\n", block.index("\n\n") + 2)]
    assert "dict() ->" not in text and "tuple() ->" not in text
    assert "   :module: dynrnn.plot" in block


def test_analysis_pages_include_each_method_and_its_paper():
    pages = sorted((DOCS / "analyses").glob("*.rst"))
    names = {p.stem for p in pages}
    assert {"fixed_points", "lyapunov", "timescales", "similarity", "degeneracy", "dsr_metrics",
            "scyfi", "symbolic", "automata", "stability"} <= names
    index = (DOCS / "analyses" / "index.rst").read_text()
    for page in pages:
        if page.stem == "index":
            continue
        assert f"   {page.stem}\n" in index, page.name
        text = page.read_text()
        modules = re.findall(r"^\.\. automodule:: (\S+)$", text, re.M)
        assert modules, page.name
        for m in modules:
            doc = inspect.getdoc(importlib.import_module(m))
            assert doc and len(doc) > 200, m  # the method is stated in the module docstring
        summary = re.search(r"\.\. currentmodule:: (\S+)\n\n\.\. autosummary::\n   :nosignatures:"
                            r"\n\n((?:   \w+\n)+)", text)
        assert summary, f"{page.name} lists no functions"
        home = importlib.import_module(summary.group(1))
        for fn in summary.group(2).split():
            assert fn in home.__all__, (page.name, fn)  # a public name, so it is in the reference
        papers = text[text.index("\nPapers\n"):]
        assert re.search(r"\(\d{4}\)", papers), page.name  # full citations with the year
        for fig in re.findall(r"gallery/_render/(\w+)\.png", text):
            from dynrnn.plot import gallery

            assert fig in gallery.FIGURES, (page.name, fig)


def test_gallery_captions_name_existing_figures():
    from dynrnn.plot import gallery

    assert set(dynrnn_docs.CAPTIONS) <= set(gallery.FIGURES)


@pytest.fixture
def restore_environ():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_docs_configuration_is_valid(restore_environ):
    """``docs/conf.py`` loads in Sphinx, every extension it names is installed, and every
    document a hand-written toctree names exists (or is generated by the build)."""
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    user_size = os.environ.get("DYNRNN_NOTEBOOK_SIZE")
    config = runpy.run_path(str(DOCS / "conf.py"))
    for ext in config["extensions"]:
        assert importlib.util.find_spec(ext) is not None, ext
    assert {"sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_nb", "dynrnn_docs"} <= set(
        config["extensions"])
    # the notebooks run at the test suite's small size unless the builder chose a size
    assert os.environ["DYNRNN_NOTEBOOK_SIZE"] == (user_size or "small")
    assert "MPLBACKEND" not in os.environ  # the kernels' inline backend puts figures in pages
    assert config["nb_execution_raise_on_error"] is True
    assert config["nb_execution_mode"] in {"cache", "force", "auto", "off"}
    assert importlib.util.find_spec(config["html_theme"]) is not None
    assert config["release"] == importlib.import_module("dynrnn").__version__
    generated = {"api/index", "gallery/index"}
    for source in DOCS.rglob("*.rst"):
        rel = source.relative_to(DOCS)
        if rel.parts[0] in {"api", "gallery", "examples", "_build"}:
            continue
        for block in re.findall(r"\.\. toctree::\n((?:   .*\n|\n)+)", source.read_text()):
            for entry in re.findall(r"^   ([^:\s]\S*)$", block, re.M):
                if "*" in entry:
                    continue
                doc = (source.parent / entry).relative_to(DOCS).as_posix()
                assert doc in generated or any(
                    (DOCS / f"{doc}{suffix}").exists() for suffix in (".rst", ".md")), doc


def test_notebooks_are_copied_into_the_site(tmp_path):
    """The build copies every notebook of ``examples/`` into the docs (Sphinx reads only its
    source folder), drops copies whose notebook is gone, and leaves unchanged copies alone (so
    that Sphinx does not re-read them)."""
    (tmp_path / "99_gone.ipynb").write_text("{}")
    stems = dynrnn_docs.copy_notebooks(tmp_path)
    expected = sorted(p.stem for p in (REPO / "examples").glob("*.ipynb"))
    assert stems == expected and len(expected) >= 6
    assert sorted(p.stem for p in tmp_path.glob("*.ipynb")) == expected
    first = tmp_path / f"{expected[0]}.ipynb"
    copy, source = (json.loads(p.read_text()) for p in (first, REPO / "examples" / first.name))
    title = copy["cells"][0]
    assert title["cell_type"] == "markdown" and title["source"].startswith("# ")
    assert "DYNRNN_NOTEBOOK_SIZE" in title["source"]
    assert copy["cells"][1:] == source["cells"]  # the notebook itself is unchanged
    assert set(dynrnn_docs.NOTEBOOK_TITLES) <= set(expected)
    mtime = first.stat().st_mtime_ns
    os.utime(first, ns=(mtime - 10**9, mtime - 10**9))
    dynrnn_docs.copy_notebooks(tmp_path)
    assert first.stat().st_mtime_ns == mtime - 10**9
    assert "examples/*" in (DOCS / "examples.rst").read_text()


@pytest.mark.skipif(not os.environ.get("DYNRNN_DOCS_BUILD"),
                    reason="needs a built site: DYNRNN_DOCS_BUILD=<sphinx-build output folder>")
def test_built_inventory_has_every_public_name(pages):
    inventory = pytest.importorskip("sphinx.util.inventory")
    out = Path(os.environ["DYNRNN_DOCS_BUILD"])
    with open(out / "objects.inv", "rb") as f:
        inv = inventory.InventoryFile.load(f, "", lambda base, uri: uri)
    data = inv.data if hasattr(inv, "data") else inv
    py_objects = set()
    for role, entries in data.items():
        if role.startswith("py:"):
            py_objects |= set(entries)
    missing = sorted(t for t in _documented(pages) if t not in py_objects)
    assert not missing, missing
    for package in dynrnn_docs.public_packages():
        assert package in py_objects, package
    for nb in sorted((REPO / "examples").glob("*.ipynb")):
        html = out / "examples" / f"{nb.stem}.html"
        assert html.exists(), html
        assert "<img" in html.read_text(), f"{html} shows no figure"
    gallery_html = (out / "gallery" / "index.html").read_text()
    from dynrnn.plot import gallery

    for name in gallery.FIGURES:
        assert f"{name}.png" in gallery_html, name
