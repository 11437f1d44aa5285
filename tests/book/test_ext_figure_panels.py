"""Side-by-side panels that stack on a phone (book/_ext/figure_panels.py, used by figure_captions).

The cut is checked against where matplotlib itself put each panel; a real two-cell notebook is
built with Sphinx and myst-nb, and its page, with the book's _static/mechlib.css, is opened in
headless Chromium at a phone's width and at a desktop's, without building the book.
"""
import base64
import io
import os
from pathlib import Path

import numpy as np
import pytest

import figure_panels  # book/_ext, on the path by tests/book/conftest.py
from figure_panels import panel_columns

STATIC = Path(__file__).resolve().parents[2] / "_static"


def _row_of_plots(n_panels, colorbar_on=(), figsize=(10.5, 3.2), dpi=200):
    """A row of plots drawn as the chapters draw them; its pixels, and each panel's column span
    [x0, x1) as matplotlib laid it out (the plot, its labels and its colour bar)."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n_panels, figsize=figsize, dpi=dpi, layout="constrained")
    axes = np.atleast_1d(axes)
    groups = []
    for i, ax in enumerate(axes):
        if i in colorbar_on:
            im = ax.imshow(np.arange(64.0).reshape(8, 8), cmap="RdBu_r")
            cbar = fig.colorbar(im, ax=ax, shrink=0.8, label="attention score")
            groups.append([ax, cbar.ax])
        else:
            ax.plot(np.arange(10), np.arange(10) ** 1.5, label="curve")
            ax.legend(fontsize=8)
            groups.append([ax])
        ax.set_title(f"panel {i}")
        ax.set_xlabel("training step")
        ax.set_ylabel("loss (nats)")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    spans = []
    for group in groups:
        boxes = [a.get_tightbbox(renderer) for a in group]
        spans.append((min(b.x0 for b in boxes), max(b.x1 for b in boxes)))
    plt.close(fig)
    return rgb, spans


@pytest.mark.parametrize("n_panels, colorbar_on", [(2, ()), (3, ()), (2, (0, 1)), (3, (1,))])
def test_each_cut_falls_between_two_panels_as_matplotlib_laid_them_out(n_panels, colorbar_on):
    rgb, spans = _row_of_plots(n_panels, colorbar_on)
    columns = panel_columns(rgb)
    assert len(columns) == n_panels
    assert columns[0][0] == 0 and columns[-1][1] == rgb.shape[1]
    assert all(a[1] == b[0] for a, b in zip(columns, columns[1:]))  # they tile the row
    for (x0, x1), (left, right) in zip(columns, spans):
        # each panel, its labels and its colour bar inside its own columns (a pixel of rounding)
        assert x0 <= left + 1 and right - 1 <= x1, (columns, spans)


def test_a_single_plot_is_not_cut():
    rgb, _ = _row_of_plots(1, figsize=(8, 3.4))
    assert panel_columns(rgb) == [(0, rgb.shape[1])]


def test_a_blank_image_is_not_cut():
    assert panel_columns(np.full((10, 40, 3), 255, np.uint8)) == [(0, 40)]


def test_it_refuses_what_is_not_an_image():
    with pytest.raises(ValueError, match=r"rgb must be an \[height, width, 3\] array"):
        panel_columns(np.zeros((10, 40)))


def test_split_png_writes_each_panel_beside_the_image(tmp_path):
    from PIL import Image

    rgb, spans = _row_of_plots(2)
    path = tmp_path / "row.png"
    Image.fromarray(rgb).save(path)
    panels = figure_panels.split_png(path)
    assert [p.name for p in panels] == ["row-panel1.png", "row-panel2.png"]
    widths = [Image.open(p).size for p in panels]
    assert sum(w for w, _ in widths) == rgb.shape[1] and all(h == rgb.shape[0] for _, h in widths)
    # the panels, side by side again, are the image
    joined = np.concatenate([np.asarray(Image.open(p).convert("RGB")) for p in panels], axis=1)
    assert np.array_equal(joined, rgb)


# --------------------------------------------------------------------------- a real build, in a browser


def _png_of_row(n_panels):
    from PIL import Image

    rgb, _ = _row_of_plots(n_panels, dpi=150)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue(), rgb.shape[1]


@pytest.fixture(scope="module")
def built_page(tmp_path_factory):
    """A notebook with a side-by-side figure and a single plot, built with myst-nb, figure_captions
    and the book's _static/mechlib.css; the page's path."""
    pytest.importorskip("myst_nb")
    nbformat = pytest.importorskip("nbformat")
    from sphinx.application import Sphinx

    tmp_path = tmp_path_factory.mktemp("panels")
    row, row_px = _png_of_row(2)
    single, single_px = _png_of_row(1)

    def plot_cell(png, px):  # shown at half its pixels, as IPython's retina figures are
        data = {"image/png": base64.b64encode(png).decode(), "text/plain": "<Figure>"}
        return nbformat.v4.new_code_cell("plt.show()", outputs=[nbformat.v4.new_output(
            "display_data", data=data, metadata={"image/png": {"width": px // 2}})])

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter"),
                plot_cell(row, row_px), nbformat.v4.new_markdown_cell("*Two panels side by side.*"),
                plot_cell(single, single_px), nbformat.v4.new_markdown_cell("*One plot.*")]
    nbformat.write(nb, tmp_path / "page.ipynb")
    ext = os.path.dirname(figure_panels.__file__)
    (tmp_path / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {ext!r})\n"
        "extensions = ['myst_nb', 'figure_captions']\nnb_execution_mode = 'off'\nroot_doc = 'page'\n"
        f"numfig = True\nhtml_static_path = [{str(STATIC)!r}]\nhtml_css_files = ['mechlib.css']\n")
    Sphinx(tmp_path, tmp_path, tmp_path / "_build", tmp_path / "_doctrees", "html",
           status=None, warning=None, freshenv=True).build()
    return tmp_path / "_build" / "page.html"


def test_the_build_gives_a_wide_figure_its_panels(built_page):
    html = built_page.read_text()
    assert html.count("mechlib-panels") == 1, "only the side-by-side figure is cut"
    assert 'alt="Two panels side by side. (panel 1 of 2)"' in html
    assert 'alt="Two panels side by side. (panel 2 of 2)"' in html
    assert len(list((built_page.parent / "_images").glob("*-panel*.png"))) == 2


LAYOUT = """() => {
  const shown = el => !!el && getComputedStyle(el).display !== "none" && el.getBoundingClientRect().width > 0;
  const figures = Array.from(document.querySelectorAll("figure"));
  return {
    page_width: document.documentElement.scrollWidth,
    figures: figures.map(f => ({
      classes: f.className,
      caption_before: getComputedStyle(f.querySelector("figcaption"), "::before").content,
      whole: shown(f.querySelector(":scope > a.image-reference img, :scope > img")),
      panels: Array.from(f.querySelectorAll(".mechlib-panels img")).filter(shown).map(i => {
        const r = i.getBoundingClientRect();
        return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, natural: i.naturalWidth};
      }),
      scrolls: Array.from(f.querySelectorAll("*")).some(e => e.scrollWidth > e.clientWidth + 1
                                                       && getComputedStyle(e).overflowX === "auto"),
    })),
  };
}"""


def _layout(browser, page_file, width):
    tab = browser.new_page(viewport={"width": width, "height": 800}, device_scale_factor=2)
    tab.goto(page_file.as_uri())
    tab.wait_for_load_state("load")
    facts = tab.evaluate(LAYOUT)
    tab.close()
    return facts


def test_on_a_phone_the_panels_stand_one_under_the_other(browser, built_page):
    facts = _layout(browser, built_page, 390)
    row, single = facts["figures"]
    assert "mechlib-stacked" in row["classes"] and not row["whole"]
    assert len(row["panels"]) == 2
    first, second = row["panels"]
    assert second["top"] >= first["bottom"], "stacked, not side by side"
    assert all(0 <= p["left"] and p["right"] <= 390 for p in row["panels"]), "each fits the phone"
    assert all(p["natural"] >= 1.5 * (p["right"] - p["left"]) for p in row["panels"]), "and stays sharp"
    assert not row["scrolls"]
    assert row["caption_before"] == '"Panels one under the other, left first. "'
    # a single wide plot cannot be cut: it keeps its scrolling box, as before
    assert single["whole"] and not single["panels"]
    assert facts["page_width"] <= 390


def test_on_a_desktop_and_on_paper_the_row_stays_whole(browser, built_page):
    facts = _layout(browser, built_page, 1280)
    row, _ = facts["figures"]
    assert row["whole"] and row["panels"] == []
    tab = browser.new_page(viewport={"width": 390, "height": 800})
    tab.goto(built_page.as_uri())
    tab.emulate_media(media="print")
    printed = tab.evaluate(LAYOUT)["figures"][0]
    tab.close()
    assert printed["whole"] and printed["panels"] == []
