"""The figure gallery (``python -m dynrnn.plot.gallery``) renders every plot type to PNG and PDF
from its small fixtures without a single warning, with TrueType fonts in the PDFs."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

from dynrnn.plot import gallery  # noqa: E402


def test_gallery_renders_every_figure_without_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = gallery.render(tmp_path)
    names = {p.stem for p in written}
    assert names == set(gallery.FIGURES)
    for p in written:
        data = p.read_bytes()
        assert len(data) > 2000, p
        if p.suffix == ".pdf":
            assert b"/Type3" not in data, p  # TrueType (pdf.fonttype 42) from the style


def test_gallery_cli_and_bad_names(tmp_path, capsys):
    assert gallery.main([str(tmp_path), "--only", "symbolic_graph"]) == 0
    assert (tmp_path / "symbolic_graph.pdf").exists()
    import pytest

    with pytest.raises(ValueError, match="'names'"):
        gallery.render(tmp_path, ["no_such_plot"])
