"""Sphinx configuration of dynrnn's documentation.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

Why Sphinx: the package's docstrings are reStructuredText with Google-style sections
(``Arguments:``, ``Returns:``), which ``sphinx.ext.napoleon`` reads as they are;
``sphinx.ext.autodoc`` builds the reference from them; myst-nb (the Executable Books project's
maintained notebook reader) executes and renders the notebooks of ``examples/`` and reads the
Markdown pages; all are pure-Python wheels on PyPI (no pandoc binary, which nbsphinx needs).
The pages that must follow the code (the API reference from every ``__all__``, the notebook
copies, the gallery) are generated at every build by ``docs/_ext/dynrnn_docs.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

# The notebooks read their size knob from the environment in their first cell: the docs show
# them at the small size that the test suite runs, unless the builder asks for another.
os.environ.setdefault("DYNRNN_NOTEBOOK_SIZE", "small")
os.environ.setdefault("TQDM_DISABLE", "1")
# the notebooks' kernels inherit this environment: without MPLBACKEND they use the inline
# backend, which puts the figures into the pages; this process (the gallery) draws off-screen
os.environ.pop("MPLBACKEND", None)
import matplotlib  # noqa: E402

matplotlib.use("Agg")

import dynrnn  # noqa: E402

project = "dynrnn"
author = "the dynrnn developers"
copyright = "the dynrnn developers"
release = version = dynrnn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
    "dynrnn_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "README.md", "**/.ipynb_checkpoints", "gallery/_render"]
templates_path: list[str] = []

# autodoc: the reference pages are written by dynrnn_docs (one directive per public name), so
# autosummary only draws the summary tables at their top and generates no pages.
autosummary_generate = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" of a dataclass as fields, not duplicate attributes

# myst-nb: execute each notebook once per build (cached between local builds), fail the build on
# an error in any cell.
nb_execution_mode = os.environ.get("DYNRNN_DOCS_EXECUTE", "cache")
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_in_temp = True
nb_merge_streams = True
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"dynrnn {release}"
html_static_path: list[str] = []
suppress_warnings: list[str] = []
