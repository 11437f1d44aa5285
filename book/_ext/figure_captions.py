"""Numbered figures with captions and alt text: a Sphinx extension for the book's build.

In the notebooks a figure is a code cell whose output is one image, followed by its caption:
the italics a markdown paragraph starts with (``*Loss over training ...*``), which read as a
caption in Jupyter and Colab too; plain text after them in the same paragraph stays prose. In the book this extension turns each such pair into
one figure: the image and the caption (italics dropped, glued numbers kept) in a
``figure`` node, which Sphinx numbers ("Figure 3.2", with ``numfig: true``), and the caption's
plain text as the image's alt text (otherwise the image's file name, a hash). Figures on pages outside the
numbered chapters (the appendix, the exercises) count from 1 on each page. Hidden
``remove-cell`` cells between the two are not in the document, so they do not separate them.

An image without such a caption is a build warning (an error under ``-W``): every figure the
book shows says what it is. ``_config.yml`` loads the extension and sets ``numfig`` (and ``numfig_format``:
"Figure 3.2").
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.transforms import Transform

#: Sphinx's warning subtype for an image without a caption (``suppress_warnings``)
WARNING_TYPE = "mechlib"
WARNING_SUBTYPE = "figure_caption"


def _blank(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Text) and not node.astext().strip()


def caption_nodes(node: nodes.Node) -> list[nodes.emphasis]:
    """The emphasis a paragraph starts with (whitespace between aside): the caption of the figure above.

    Empty for anything else. What follows the italics in the same paragraph is prose, not caption.
    """
    if not isinstance(node, nodes.paragraph):
        return []
    found = []
    for child in node.children:
        if isinstance(child, nodes.emphasis):
            found.append(child)
        elif not _blank(child):
            break
    return found


def is_caption(node: nodes.Node) -> bool:
    """Whether ``node`` is a paragraph that starts in italics, i.e. begins with a figure's caption."""
    return bool(caption_nodes(node))


def plain_text(node: nodes.Node) -> str:
    """The text of ``node`` on one line: runs of whitespace collapsed to one space, math as its TeX."""
    return re.sub(r"\s+", " ", node.astext()).strip()


def _is_cell(node: nodes.Node, element: str) -> bool:
    return isinstance(node, nodes.container) and node.get("nb_element") == element


def _image_bundles(cell: nodes.Element) -> list[nodes.container]:
    """The outputs (myst-nb mime bundles) of a code cell that can be shown as an image."""
    found = []
    for output in cell.children:
        if not _is_cell(output, "cell_code_output"):
            continue
        for bundle in output.findall(lambda n: _is_cell(n, "mime_bundle")):
            if any(isinstance(m, nodes.container) and str(m.get("mime_type", "")).startswith("image/")
                   for m in bundle.children):
                found.append(bundle)
    return found


def _images(bundle: nodes.Element) -> list[nodes.image]:
    return list(bundle.findall(nodes.image))


#: a figure shown wider than this (CSS px) is side by side panels: on a phone (_static/mechlib.css)
#: it keeps a legible width and scrolls sideways in its own box rather than shrinking to fit
WIDE_FIGURE_PX = 750
WIDE_FIGURE_CLASS = "wide-figure"


def _css_px(width: object) -> float | None:
    """``"1009"`` or ``"1009px"`` as 1009.0; None for another unit (a percentage) or no width."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*(px)?\s*", str(width)) if width is not None else None
    return float(match[1]) if match else None


def make_figure(bundle: nodes.Element, paragraph: nodes.paragraph, figure_id: str) -> nodes.figure:
    """Wrap the output ``bundle`` and the caption ``paragraph`` starts with in a figure, in place of the bundle.

    The caption is the paragraph's leading italics, without the italics; they leave the
    paragraph (and an empty paragraph leaves the document). Each image in the bundle gets
    the caption's text as alt text and keeps its width but not its height (so it shrinks in
    proportion on a narrow screen). A figure wider than :data:`WIDE_FIGURE_PX` gets the class
    :data:`WIDE_FIGURE_CLASS`.
    """
    leading = caption_nodes(paragraph)
    content = [grandchild for child in leading for grandchild in child.children]
    caption = nodes.caption(" ".join(c.rawsource or c.astext() for c in leading), "", *content)
    caption.source, caption.line = paragraph.source, paragraph.line
    alt = plain_text(caption)
    for image in _images(bundle):
        image["alt"] = alt
        if "width" in image:
            image.attributes.pop("height", None)
    figure = nodes.figure(ids=[figure_id])
    if any((_css_px(image.get("width")) or 0) > WIDE_FIGURE_PX for image in _images(bundle)):
        figure["classes"].append(WIDE_FIGURE_CLASS)
    figure.source, figure.line = bundle.source, bundle.line
    bundle.replace_self(figure)
    figure += bundle
    figure += caption
    # the caption leaves the paragraph, and the blank space after it
    last = paragraph.index(leading[-1])
    del paragraph[: last + 1]
    while len(paragraph) and _blank(paragraph[0]):
        del paragraph[0]
    if len(paragraph) and isinstance(paragraph[0], nodes.Text):
        paragraph[0] = nodes.Text(paragraph[0].astext().lstrip())
    if not len(paragraph):
        paragraph.parent.remove(paragraph)
    return figure


def _next_sibling(node: nodes.Element) -> nodes.Node | None:
    parent = node.parent
    index = parent.index(node)
    return parent[index + 1] if index + 1 < len(parent) else None


def _unique_id(document: nodes.document, n: int) -> str:
    while f"figure-{n}" in document.ids:
        n += 1
    return f"figure-{n}"


def figures_from_cells(document: nodes.document, warn=None) -> list[nodes.figure]:
    """Make a numbered figure of every notebook cell whose one image output has a caption below it.

    ``warn(message, node)`` is called for an image without a caption (and for a cell with
    several images, which one caption cannot describe). Returns the figures made.
    """
    made = []
    cells = list(document.findall(lambda n: _is_cell(n, "cell_code")))
    for cell in cells:
        bundles = _image_bundles(cell)
        if not bundles:
            continue
        after = _next_sibling(cell)
        if len(bundles) > 1:
            if warn:
                warn(f"a cell shows {len(bundles)} images; one caption below it cannot describe them "
                     "(draw them in one figure)", cell)
            continue
        if after is None or not is_caption(after):
            if warn:
                warn("a figure without a caption: start the paragraph after the cell with italics "
                     "saying what the figure shows (its caption and alt text)", cell)
            continue
        figure = make_figure(bundles[0], after, _unique_id(document, len(made) + 1))
        document.ids[figure["ids"][0]] = figure
        made.append(figure)
    return made


class CellFigures(Transform):
    """Sphinx read-time transform: figures before Sphinx collects the figure numbers."""

    # after Sphinx's SmartQuotes (750), so the alt text has the caption's typographic quotes
    default_priority = 760

    def apply(self, **kwargs: Any) -> None:
        from sphinx.util import logging

        logger = logging.getLogger(__name__)

        def warn(message: str, node: nodes.Node) -> None:
            logger.warning(message, location=node, type=WARNING_TYPE, subtype=WARNING_SUBTYPE)

        figures = figures_from_cells(self.document, warn)
        env = getattr(self.document.settings, "env", None)
        if env is None:
            return
        from figure_panels import add_panels  # book/_ext: side-by-side panels stack on a phone

        for figure in figures:
            if WIDE_FIGURE_CLASS in figure["classes"]:
                images = _images(figure)
                if images:
                    add_panels(figure, images[0], Path(env.srcdir))


def number_figures_per_page(app: Any, env: Any) -> list[str]:
    """Figures of a page outside the numbered chapters (appendix, exercises) count from 1 on that page.

    Sphinx numbers such figures with one running count across all of them ("Figure 6" as
    the first figure of an exercise page); a chapter's figures stay "Figure 3.2". Connected
    to ``env-get-updated`` after Sphinx's own numbering; returns the pages to write again.
    """
    changed = []
    for docname, by_type in env.toc_fignumbers.items():
        figures = by_type.get("figure", {})
        if not figures or any(len(number) != 1 for number in figures.values()):
            continue
        in_order = sorted(figures, key=figures.get)
        renumbered = {figure_id: (i,) for i, figure_id in enumerate(in_order, start=1)}
        if renumbered != figures:
            by_type["figure"] = renumbered
            changed.append(docname)
    return changed


def setup(app: Any) -> dict:
    app.add_transform(CellFigures)
    app.connect("env-get-updated", number_figures_per_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
