"""Sphinx extension of dynrnn's documentation: generates, at every build, the pages that must
follow the code.

* ``api/<package>.rst`` -- the API reference, one page per subpackage of :mod:`dynrnn` that
  declares ``__all__``, one autodoc directive per public name. A name re-exported by several
  packages (``dynrnn.Ensemble`` is ``dynrnn.models.Ensemble``) is documented once, in the
  package it is defined in (the longest package prefix of its ``__module__``), and the other
  packages link to it; so a new public name appears without editing the docs.
* ``examples/*.ipynb`` -- copies of the notebooks of the repository's ``examples/`` (Sphinx reads
  only files under its source folder); myst-nb executes them at the size set by
  ``DYNRNN_NOTEBOOK_SIZE`` (``small`` unless set otherwise).
* ``gallery/index.rst`` -- every figure of :mod:`dynrnn.plot.gallery`, rendered at build time
  (PNG shown, PDF linked) with a caption.

Everything generated lies in folders listed in ``docs/.gitignore``. :func:`api_pages` and
:func:`public_names` are also used by ``tests/test_docs.py``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import shutil
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent
REPO = DOCS.parent

#: captions of the gallery figures (``dynrnn.plot.gallery.FIGURES``); a figure added to the
#: gallery without a caption here is shown with its name and the note that it has no caption.
CAPTIONS = {
    "network_summary": (
        ":func:`~dynrnn.plot.plot_network_summary` -- what ``dynrnn demo`` draws: a 2-bit "
        "flip-flop network's outputs against the targets (targets drawn only where the task "
        "defines them), its trajectories in the plane of their first two principal components "
        "with its stable points and saddles, and the eigenvalues of its stable points against "
        "the unit circle."),
    "outputs": (
        ":func:`~dynrnn.plot.plot_outputs` -- one network's outputs against the task's targets "
        "on a test trial, one panel per channel on a shared y-range; masked steps have no "
        "target."),
    "fixed_points": (
        ":func:`~dynrnn.plot.plot_fixed_points` -- trajectories (grey) in the plane of their "
        "first two principal components with the fixed points found by "
        ":func:`~dynrnn.analyses.find_fixed_points`: stable points and saddles, saddles with "
        "their unstable directions."),
    "fixed_points_3d": (
        ":func:`~dynrnn.plot.plot_fixed_points` with ``n_components=3``: the same in the first "
        "three principal components."),
    "eigenvalues": (
        ":func:`~dynrnn.plot.plot_eigenvalues` -- the Jacobian eigenvalues of each fixed point "
        "of one network against the unit circle (a discrete map is stable inside it), stable "
        "points and saddles kept apart."),
    "lyapunov_spectrum": (
        ":func:`~dynrnn.plot.plot_lyapunov_spectrum` -- the Lyapunov spectra (QR method, "
        ":func:`~dynrnn.analyses.lyapunov_spectrum`) of the flip-flop ensemble, one line per "
        "network."),
    "timescales": (
        ":func:`~dynrnn.plot.plot_timescales` -- the network timescale tau_net "
        "(:func:`~dynrnn.analyses.network_timescale`) of rate RNNs of three sizes against their "
        "size, with the single-neuron time constants."),
    "degeneracy": (
        ":func:`~dynrnn.plot.plot_degeneracy` -- solution degeneracy "
        "(:func:`~dynrnn.analyses.degeneracy_report`) at the levels of behaviour, dynamics (DSA) "
        "and weights, against network size."),
    "symbolic_graph": (
        ":func:`~dynrnn.plot.plot_symbolic_graph` -- the transition graph between the linear "
        "subregions an AL-RNN (a tent map) visits (:func:`~dynrnn.analyses.symbolic_graph`), "
        "edges labelled with transition probabilities, dwell probabilities written at the "
        "nodes."),
    "attractor_subregions": (
        ":func:`~dynrnn.plot.plot_attractor_subregions` -- the same AL-RNN's trajectory "
        "coloured by the linear subregion (symbol) of each state."),
    "lyapunov_grouped": (
        ":func:`~dynrnn.plot.plot_lyapunov_spectrum` with ``group_by='init_gain'``: Lyapunov "
        "spectra of untrained rate RNNs at three gains, median and spread per group."),
    "distance_matrix": (
        ":func:`~dynrnn.plot.plot_distance_matrix` -- pairwise DSA distances "
        "(:func:`~dynrnn.analyses.dsa`) between the same networks, rows and columns in "
        "hierarchical-clustering order."),
    "training_history": (
        ":func:`~dynrnn.plot.plot_training_history` -- the training loss of the flip-flop "
        "ensemble: median and spread across networks."),
    "spike_raster": (
        ":func:`~dynrnn.plot.plot_spike_raster` -- spikes of the Izhikevich (2003) network of "
        "800 excitatory and 200 inhibitory neurons, with the population rate."),
    "reconstruction": (
        ":func:`~dynrnn.plot.plot_reconstruction` -- an attractor against the truth in 3-D and "
        "the per-dimension power spectra (here two Lorenz-63 trajectories from different initial "
        "states stand in for truth and reconstruction)."),
    "automaton": (
        ":func:`~dynrnn.plot.plot_automaton` -- the minimal DFA of Tomita grammar 4, accepting "
        "states marked."),
    "automaton_states": (
        ":func:`~dynrnn.plot.plot_automaton_states` -- a GRU's prefix states in their first two "
        "principal components, coloured by the DFA state each prefix reaches."),
    "certificate_bounds": (
        ":func:`~dynrnn.plot.plot_certificate_bounds` -- the contraction bounds of "
        ":func:`~dynrnn.analyses.certify_matrices` for random tanh maps across gains, against "
        "the spectral radius: the tighter a bound, the more networks it certifies."),
    "rate_vs_performance": (
        ":func:`~dynrnn.plot.plot_rate_vs_performance` -- certified contraction rate of "
        "contracting-by-construction RNNs against their final training loss on 2-parity."),
    "hmm_symbols": (
        ":func:`~dynrnn.plot.plot_symbol_statistics` -- symbol frequencies emitted by ReLU RNNs "
        "trained briefly to emulate a 2-state linear-chain HMM (dots, one per network) against "
        "the HMM's (bars)."),
    "hmm_transitions": (
        ":func:`~dynrnn.plot.plot_transition_matrices` -- the true HMM transition matrix, the "
        "one fitted to a network's emissions (states matched), and the network's empirical "
        "symbol-transition matrix."),
    "hmm_dwell_times": (
        ":func:`~dynrnn.plot.plot_dwell_times` -- dwell-time distributions of one symbol for "
        "every network, with the HMM's own (black), log y."),
    "hmm_autonomous": (
        ":func:`~dynrnn.plot.plot_autonomous_collapse` -- the state norm of the networks run "
        "without input: a few runs per network and each network's median; the title counts "
        "the networks that collapse to one stable fixed point."),
    "hmm_orbit": (
        ":func:`~dynrnn.plot.plot_noise_orbit` -- a noise-driven run of one network in its "
        "first two principal components, coloured by the symbol emitted."),
    "hmm_speed": (
        ":func:`~dynrnn.plot.plot_trajectory_speed` -- the deterministic drift "
        "``|F(h, 0) - h|`` along a noise-driven run, symbol switches marked, the emitted symbol "
        "as a strip at the bottom."),
    "hmm_clusters": (
        ":func:`~dynrnn.plot.plot_symbol_clusters` -- states coloured by the symbol they emit, "
        "in their first two principal components, with the symbol centroids."),
    "hmm_kick_neurons": (
        ":func:`~dynrnn.plot.plot_kick_neurons` -- switch-triggered averages of the units with "
        "the highest kick scores, one row per unit, lag 0 at the symbol switch."),
}


# --------------------------------------------------------------------------- the API reference

def public_packages() -> list[str]:
    """Every package of dynrnn (``dynrnn`` itself and each subpackage, recursively) that
    declares ``__all__``, sorted."""
    import dynrnn

    names = ["dynrnn"]
    for info in pkgutil.walk_packages(dynrnn.__path__, "dynrnn."):
        if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(n for n in names if hasattr(importlib.import_module(n), "__all__"))


def public_names() -> dict[str, list[str]]:
    """``{package: its __all__}`` for every package of :func:`public_packages`."""
    return {p: list(importlib.import_module(p).__all__) for p in public_packages()}


def _kind(obj) -> str:
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isroutine(obj):
        return "function"
    return "data"


_ROLE = {"class": "class", "exception": "exc", "function": "func", "data": "data"}


def _home(obj, packages: list[str]) -> str | None:
    """The package a class or function is documented in: the longest of ``packages`` that is
    a prefix of its ``__module__``."""
    module = getattr(obj, "__module__", None) or ""
    best = None
    for p in packages:
        if (module == p or module.startswith(p + ".")) and (best is None or len(p) > len(best)):
            best = p
    return best


#: ``{public path: documented path}`` of the re-exported names, filled by :func:`api_pages`
ALIASES: dict[str, str] = {}


def _attribute_doc(package: str, name: str) -> list[str]:
    """The ``#:`` comment (or string after the assignment) documenting the constant ``name``
    of ``package``, read from the module that defines it (autodoc reads only the module it is
    given, and would show the docstring of the value's type instead)."""
    try:
        from sphinx.pycode import ModuleAnalyzer
    except ImportError:  # generating the sources without Sphinx (tests/test_docs.py)
        return []

    pkg = importlib.import_module(package)
    obj = getattr(pkg, name)
    modules = [package]
    if hasattr(pkg, "__path__"):
        modules += [i.name for i in pkgutil.walk_packages(pkg.__path__, package + ".")]
    for m in modules:
        try:  # read the source first: a module is imported only where it documents the name
            docs = ModuleAnalyzer.for_module(m).find_attr_docs().get(("", name))
            if not docs or getattr(importlib.import_module(m), name, None) is not obj:
                continue
        except Exception:  # e.g. a Triton kernel module where triton is not installed
            continue
        return list(docs)
    return []


def _describe(value) -> str:
    """One line about an undocumented constant: its type and, for a mapping, its keys."""
    kind = type(value).__name__
    if isinstance(value, dict):
        keys = [repr(k) for k in list(value)[:12]]
        more = ", ..." if len(value) > 12 else ""
        return f"A ``{kind}`` of {len(value)} entries, keys ``{', '.join(keys)}{more}``."
    if isinstance(value, list | tuple | set | frozenset):
        return f"A ``{kind}`` of {len(value)} items."
    return f"A ``{kind}``."


def _data_directive(package: str, name: str) -> list[str]:
    value = repr(getattr(importlib.import_module(package), name))
    lines = [f".. py:data:: {name}", "   :module: " + package]
    if len(value) <= 120 and "\n" not in value:
        lines.append(f"   :value: {value}")
    lines.append("")
    doc = _attribute_doc(package, name) or [_describe(getattr(importlib.import_module(package),
                                                              name))]
    lines += [f"   {line}" if line.strip() else "" for line in doc]
    lines.append("")
    return lines


def api_pages() -> dict[str, str]:
    """The reST source of the reference: ``{file name: text}`` (``index.rst`` and one page per
    package)."""
    names = public_names()
    packages = list(names)
    # where each class / function is documented: its home package if it exports it, else the
    # first package (in sorted order) that does
    canonical: dict[int, str] = {}
    for p, members in names.items():
        module = importlib.import_module(p)
        for n in members:
            obj = getattr(module, n)
            if _kind(obj) == "data" or id(obj) in canonical:
                continue
            exporters = [q for q in packages if n in names[q]
                         and getattr(importlib.import_module(q), n) is obj]
            home = _home(obj, exporters)
            canonical[id(obj)] = f"{home or exporters[0]}.{n}"
    # every public path of an object documented elsewhere -> the documented one, so that a
    # cross-reference to ``dynrnn.run`` finds ``dynrnn.models.run`` (:func:`_resolve_alias`)
    ALIASES.clear()
    for p, members in names.items():
        module = importlib.import_module(p)
        for n in members:
            obj = getattr(module, n)
            target = canonical.get(id(obj))
            if target is None:
                continue
            if target != f"{p}.{n}":
                ALIASES[f"{p}.{n}"] = target
            defined = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', n)}"
            if defined != target:  # the defining module's path, as docstrings sometimes cite it
                ALIASES.setdefault(defined, target)
    pages = {}
    for p, members in names.items():
        module = importlib.import_module(p)
        title = f"``{p}``"
        lines = [title, "=" * len(title), "", f".. automodule:: {p}", "   :no-members:", ""]
        documented, linked = [], []
        for n in members:
            obj = getattr(module, n)
            kind = _kind(obj)
            target = canonical.get(id(obj)) if kind != "data" else f"{p}.{n}"
            (documented if target == f"{p}.{n}" else linked).append((n, kind, target))
        summarised = [n for n, kind, _ in documented if kind != "data"]
        if summarised:
            lines += [".. autosummary::", "   :nosignatures:", ""]
            lines += [f"   {n}" for n in summarised]
            lines.append("")
        if linked:
            lines += ["Also exported here (documented where they are defined):", ""]
            lines += [f"* ``{n}``: :py:{_ROLE[kind]}:`{target}`" for n, kind, target in linked]
            lines.append("")
        for n, kind, _ in documented:
            if kind == "data":
                lines += _data_directive(p, n)
                continue
            lines.append(f".. auto{kind}:: {p}.{n}")
            if kind == "class":
                lines.append("   :members:")
            lines.append("")
        pages[f"{p}.rst"] = "\n".join(lines).rstrip() + "\n"
    index = ["API reference", "=============", "",
             "Generated from each package's ``__all__`` and the docstrings, at every build.", "",
             ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {p}" for p in packages]
    pages["index.rst"] = "\n".join(index) + "\n"
    return pages


def _write_if_changed(path: Path, data: bytes) -> None:
    """Writes only when the content differs, so that Sphinx re-reads only what changed."""
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def write_api(out: Path) -> None:
    pages = api_pages()
    out.mkdir(parents=True, exist_ok=True)
    for stale in set(p.name for p in out.glob("*.rst")) - set(pages):
        (out / stale).unlink()
    for name, text in pages.items():
        _write_if_changed(out / name, text.encode())


# --------------------------------------------------------------------------- notebooks, gallery

#: the page titles of the notebooks (a notebook starts with its size-knob cell, so it has no
#: title of its own); a notebook missing here is titled by its file name
NOTEBOOK_TITLES = {
    "01_flipflop_fixed_points": "Flip-flop: training, fixed points, linearisation",
    "02_parity_timescales": "N-parity: curricula and trainable timescales",
    "03_lorenz_alrnn": "Lorenz-63 reconstructed by an AL-RNN",
    "04_degeneracy_zoo": "Degeneracy across a zoo of networks",
    "05_spiking_what_when": "A spiking reservoir on the what/when paradigm",
    "06_hlop_continual": "HLOP continual learning",
}

_SIZE_NOTE = (
    "This page is the notebook ``examples/{name}.ipynb``, executed when the documentation was "
    "built, at the size ``DYNRNN_NOTEBOOK_SIZE={size!r}`` (the test suite's small size unless "
    "the builder chose another). At the small size it shows the steps, not the papers' "
    "results; run it with the size knob ``\"paper\"`` (the default outside the tests) for "
    "those.")


def notebook_for_docs(source: Path) -> bytes:
    """The notebook ``source`` with a title cell put first (the page's title and a note on the
    size it was executed at); its own cells are unchanged."""
    import json

    nb = json.loads(source.read_text())
    title = NOTEBOOK_TITLES.get(source.stem, source.stem.replace("_", " "))
    size = os.environ.get("DYNRNN_NOTEBOOK_SIZE", "paper")
    text = f"# {title}\n\n" + _SIZE_NOTE.format(name=source.stem, size=size)
    nb["cells"].insert(0, {"cell_type": "markdown", "metadata": {}, "source": text})
    if nb.get("nbformat", 4) >= 4 and nb.get("nbformat_minor", 0) >= 5:
        nb["cells"][0]["id"] = "dynrnn-docs-title"
    return (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode()


def copy_notebooks(out: Path) -> list[str]:
    """Writes each notebook of ``examples/`` into ``out`` (the docs' ``examples/``) with its
    title cell (:func:`notebook_for_docs`); returns the stems."""
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted((REPO / "examples").glob("*.ipynb"))
    for stale in set(p.name for p in out.glob("*.ipynb")) - {p.name for p in sources}:
        (out / stale).unlink()
    for src in sources:
        _write_if_changed(out / src.name, notebook_for_docs(src))
    return [p.stem for p in sources]


def _display_width(stem: Path, dpi: int = 200, scale: float = 1.5) -> str:
    """The width to show a gallery PNG at: its printed size (written at ``dpi``) at 96 px per
    inch, times ``scale`` (the figures are sized for a printed column), at most the page."""
    import struct

    with open(stem.with_suffix(".png"), "rb") as f:
        header = f.read(24)
    width = struct.unpack(">I", header[16:20])[0] / dpi * 96 * scale
    return "100%" if width >= 740 else f"{int(width)}px"


def write_gallery(out: Path, render: bool = True) -> None:
    """Renders :mod:`dynrnn.plot.gallery` into ``out/_render`` (unless ``render`` is false and
    every figure is there already) and writes ``out/index.rst``."""
    import logging

    from dynrnn.plot import gallery

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting chatter
    figures = out / "_render"
    missing = [n for n in gallery.FIGURES if not (figures / f"{n}.png").exists()]
    if render or missing:
        if figures.exists():
            shutil.rmtree(figures)
        gallery.render(figures)
    lines = ["Gallery", "=======", "",
             "Every plot type of :mod:`dynrnn.plot`, rendered at this build by "
             ":func:`dynrnn.plot.gallery.render` from small, fast, seeded fixtures (the same "
             "figures as ``python -m dynrnn.plot.gallery out/``), in the publication style "
             ":func:`dynrnn.plot.style`. Each links to its PDF (vector, TrueType fonts).", ""]
    for n in gallery.FIGURES:
        caption = CAPTIONS.get(n, f"``{n}`` (no caption written yet).")
        heading = f"``{n}``"
        lines += [heading, "-" * len(heading), "",
                  f".. figure:: _render/{n}.png", f"   :width: {_display_width(figures / n)}",
                  f"   :alt: {n}", "",
                  f"   {caption} :download:`PDF <_render/{n}.pdf>`", ""]
    lines += ["Rendering the gallery yourself", "------------------------------", "",
              ".. automodule:: dynrnn.plot.gallery", "   :members: render", ""]
    _write_if_changed(out / "index.rst", ("\n".join(lines) + "\n").encode())


def _generate(app) -> None:
    src = Path(app.srcdir)
    write_api(src / "api")
    copy_notebooks(src / "examples")
    write_gallery(src / "gallery", render=os.environ.get("DYNRNN_DOCS_REUSE_GALLERY") != "1")


def _resolve_alias(app, env, node, contnode):
    """``missing-reference``: a Python cross-reference to a re-exported name (``dynrnn.run``,
    ``dynrnn.Ensemble``) resolves to the object's documented entry."""
    if node.get("refdomain") != "py":
        return None
    target = ALIASES.get(node.get("reftarget", ""))
    if target is None:
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(env, node.get("refdoc", ""), app.builder, node["reftype"], target,
                               node, contnode)


def setup(app):
    app.connect("builder-inited", _generate)
    app.connect("missing-reference", _resolve_alias)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
