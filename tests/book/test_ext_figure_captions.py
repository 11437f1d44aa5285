"""Numbered figures from notebook cells (book/_ext/figure_captions.py, a Sphinx extension).

The doctrees here are built by hand in the shape myst-nb gives a notebook: a code cell is a
container (nb_element "cell_code") whose output container holds one "mime bundle" per
display, with one container per MIME type; a markdown cell's paragraphs follow it directly.
The last test builds a real two-cell notebook with Sphinx and myst-nb.
"""
import base64
import os
import re
import struct
import zlib

import pytest
from docutils import nodes
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser
from docutils.utils import new_document

import figure_captions  # book/_ext, on the path by tests/book/conftest.py
from figure_captions import figures_from_cells, plain_text

PNG_URI = "_build/jupyter_execute/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.png"


def _document() -> nodes.document:
    return new_document("test", get_default_settings(Parser))


def _cell(*bundles: dict) -> nodes.container:
    """A code cell with one display output per ``{mime type: node}`` dict."""
    output = nodes.container(nb_element="cell_code_output", classes=["cell_output"])
    for bundle in bundles:
        node = nodes.container(nb_element="mime_bundle")
        for mime, child in bundle.items():
            node += nodes.container("", child, mime_type=mime)
        output += node
    source = nodes.container("", nodes.literal_block("plt.show()", "plt.show()"),
                             nb_element="cell_code_source")
    return nodes.container("", source, output, nb_element="cell_code", classes=["cell"])


def _plot(width="548", height="413") -> dict:
    image = nodes.image(uri=PNG_URI)
    if width:
        image["width"], image["height"] = width, height
    return {"image/png": image, "text/plain": nodes.literal_block("<Figure>", "<Figure>")}


def _text(text: str) -> dict:
    return {"text/plain": nodes.literal_block(text, text)}


def _paragraph(*children) -> nodes.paragraph:
    return nodes.paragraph("", "", *[nodes.Text(c) if isinstance(c, str) else c for c in children])


def _em(*children) -> nodes.emphasis:
    return nodes.emphasis("", "", *[nodes.Text(c) if isinstance(c, str) else c for c in children])


def _page(*children) -> nodes.document:
    document = _document()
    section = nodes.section(ids=["chapter"])
    section += nodes.title("", "Chapter")
    section.extend(children)
    document += section
    return document


def _run(document):
    warnings = []
    figures = figures_from_cells(document, lambda message, node: warnings.append(message))
    return figures, warnings


def test_an_image_and_the_italic_paragraph_below_it_become_one_figure_with_that_caption():
    glued = nodes.inline("0.25", "0.25", classes=["pasted-text"])
    document = _page(_cell(_plot()), _paragraph(_em("Scores; the best is ", glued, ".")),
                     _paragraph("Prose."))
    figures, warnings = _run(document)
    assert warnings == []
    [figure] = figures
    [image] = figure.findall(nodes.image)
    [caption] = figure.findall(nodes.caption)
    assert caption.astext() == "Scores; the best is 0.25."
    assert not list(caption.findall(nodes.emphasis)), "the caption is not set in italics"
    assert list(caption.findall(nodes.inline))[0] is glued, "a glued number stays the glued node"
    # the caption paragraph is gone; the next paragraph stays
    section = document[0]
    assert [c.astext() for c in section.findall(nodes.paragraph)] == ["Prose."]


def test_the_figure_takes_the_place_of_the_output_inside_the_cell():
    cell = _cell(_plot())
    _run(_page(cell, _paragraph(_em("A caption."))))
    output = cell[1]
    assert isinstance(output[0], nodes.figure)
    assert output[0][0]["nb_element"] == "mime_bundle"


def test_alt_text_is_the_caption_on_one_line_with_math_as_tex():
    math = nodes.math("H(L-k)", "H(L-k)")
    document = _page(_cell(_plot()), _paragraph(_em("Counts grow by\n", math, ",   a\tratio.")))
    [figure], _ = _run(document)
    [image] = figure.findall(nodes.image)
    assert image["alt"] == "Counts grow by H(L-k), a ratio."


def test_prose_after_the_italics_stays_a_paragraph_after_the_figure():
    document = _page(_cell(_plot()), _paragraph(_em("What the figure shows."), " What to make of it."))
    [figure], _ = _run(document)
    assert figure.findall(nodes.caption).__next__().astext() == "What the figure shows."
    assert [p.astext() for p in document.findall(nodes.paragraph)] == ["What to make of it."]


def test_an_image_keeps_its_width_but_not_its_height_so_it_scales_on_a_phone():
    document = _page(_cell(_plot(width="548", height="413")), _paragraph(_em("A caption.")))
    [figure], _ = _run(document)
    [image] = figure.findall(nodes.image)
    assert image["width"] == "548" and "height" not in image


@pytest.mark.parametrize("width, wide", [("548", False), ("750", False), ("751", True),
                                         ("1009px", True), ("100%", False), (None, False)])
def test_a_figure_wider_than_a_phone_can_shrink_it_is_marked_wide(width, wide):
    """Side-by-side panels wider than 750 CSS px scroll on a phone (mechlib.css) instead of shrinking."""
    document = _page(_cell(_plot(width=width)), _paragraph(_em("A caption.")))
    [figure], _ = _run(document)
    assert ("wide-figure" in figure["classes"]) is wide


@pytest.mark.parametrize("after", [
    _paragraph("Plain prose, not in italics."),
    _paragraph("Prose that ", _em("emphasises"), " a word."),
    nodes.section(ids=["next"]),
])
def test_an_image_without_a_caption_below_it_is_a_warning_and_no_figure(after):
    document = _page(_cell(_plot()), after)
    figures, warnings = _run(document)
    assert figures == [] and len(warnings) == 1 and "without a caption" in warnings[0]
    [image] = document.findall(nodes.image)
    assert "alt" not in image
    assert after.parent is not None, "the paragraph after the cell is left alone"


def test_an_image_in_the_last_cell_without_a_caption_is_a_warning():
    _, warnings = _run(_page(_cell(_plot())))
    assert len(warnings) == 1


def test_a_cell_with_two_images_is_a_warning():
    _, warnings = _run(_page(_cell(_plot(), _plot()), _paragraph(_em("A caption."))))
    assert len(warnings) == 1 and "2 images" in warnings[0]


def test_cells_without_images_are_left_alone():
    document = _page(_cell(_text("tensor([1.])")), _paragraph(_em("Italics after a printout.")))
    figures, warnings = _run(document)
    assert figures == [] and warnings == []
    assert len(list(document.findall(nodes.emphasis))) == 1


def test_every_figure_has_its_own_id_known_to_the_document():
    document = _page(_cell(_plot()), _paragraph(_em("First.")), _cell(_plot()), _paragraph(_em("Second.")))
    document.ids["figure-1"] = nodes.target()  # an id the page already uses
    figures, _ = _run(document)
    ids = [f["ids"][0] for f in figures]
    assert len(set(ids)) == 2 and "figure-1" not in ids
    assert all(document.ids[i] is f for i, f in zip(ids, figures))


def test_plain_text_collapses_whitespace():
    assert plain_text(_paragraph("a\n b\t\tc ")) == "a b c"


# --------------------------------------------------------------------------- a real build


def _png(width: int, height: int) -> bytes:
    """A white RGB PNG of the given size (no imaging library needed)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\xff" * 3 * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _plot_cell(nbformat, png, metadata=None):
    """A code cell whose stored output is one PNG, as a matplotlib cell leaves it."""
    data = {"image/png": base64.b64encode(png).decode(), "text/plain": "<Figure>"}
    return nbformat.v4.new_code_cell("plt.show()", outputs=[nbformat.v4.new_output(
        "display_data", data=data, metadata=metadata or {})])


def _build(tmp_path, conf=""):
    """Build the folder's pages with myst-nb (no execution) and the figures extension, numfig on."""
    from sphinx.application import Sphinx

    (tmp_path / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {os.path.dirname(figure_captions.__file__)!r})\n"
        "extensions = ['myst_nb', 'figure_captions']\nnb_execution_mode = 'off'\n"
        "numfig = True\nnumfig_format = {'figure': 'Figure %s'}\n" + conf)
    Sphinx(tmp_path, tmp_path, tmp_path / "_build", tmp_path / "_doctrees", "html",
           status=None, warning=None, freshenv=True).build()


def test_sphinx_numbers_the_figures_of_a_notebook_and_writes_the_alt_text(tmp_path):
    pytest.importorskip("myst_nb")
    nbformat = pytest.importorskip("nbformat")

    nb = nbformat.v4.new_notebook()
    plot = _plot_cell(nbformat, _png(40, 20), metadata={"image/png": {"width": 20, "height": 10}})
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter"), plot,
                nbformat.v4.new_markdown_cell("*Loss over 'training'.*\n\nMore prose.")]
    nbformat.write(nb, tmp_path / "page.ipynb")
    _build(tmp_path, "root_doc = 'page'\n")
    html = (tmp_path / "_build" / "page.html").read_text()
    assert '<span class="caption-number">Figure 1 </span>' in html
    assert 'alt="Loss over \u2018training\u2019."' in html, "alt text with the caption's typographic quotes"
    assert 'style="width: 20px;"' in html, "shown at the width IPython recorded, half its pixels"
    assert "<p>More prose.</p>" in html


def test_pages_outside_the_numbered_chapters_count_their_figures_from_1(tmp_path):
    pytest.importorskip("myst_nb")
    nbformat = pytest.importorskip("nbformat")

    def page(name, n_figures):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}")]
        for i in range(n_figures):
            nb.cells += [_plot_cell(nbformat, _png(4, 2)), nbformat.v4.new_markdown_cell(f"*{name}, figure {i + 1}.*")]
        nbformat.write(nb, tmp_path / f"{name}.ipynb")

    page("chapter", 2)
    page("exercise_a", 2)
    page("exercise_b", 1)
    (tmp_path / "index.md").write_text(
        "# Book\n\n```{toctree}\n:numbered:\nchapter\n```\n\n```{toctree}\nexercise_a\nexercise_b\n```\n")
    _build(tmp_path)

    def numbers(name):
        html = (tmp_path / "_build" / f"{name}.html").read_text()
        return re.findall(r'<span class="caption-number">Figure ([\d.]+) </span>', html)

    assert numbers("chapter") == ["1.1", "1.2"]
    assert numbers("exercise_a") == ["1", "2"]
    assert numbers("exercise_b") == ["1"]
