"""The book's stylesheet (_static/mechlib.css) in the theme's dark mode (issue 24).

A box that scrolls sideways shows it with "scrolling shadows": two covers in the box's colour
hide the shadows at an edge with nothing more to see. In dark mode pydata-sphinx-theme paints
HTML outputs -- the live panels -- light; covers in the page's dark colour would lay dark bands
over a panel's left and right edges, over its text. Checked in headless Chromium on a page
with the installed theme's stylesheet and the book's, as the built book loads them.
"""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.browser


def _theme_css():
    import pydata_sphinx_theme

    return (Path(pydata_sphinx_theme.__file__).parent / "theme" / "pydata_sphinx_theme" / "static" / "styles"
            / "pydata-sphinx-theme.css").read_text(encoding="utf8")


# an output as myst-nb writes it, holding a live panel's first line of text
PAGE = """<!doctype html><html lang="en" data-theme="{mode}" data-mode="{mode}"><head><title>t</title>
<style>{theme}</style><style>{book}</style></head><body><div class="bd-content" style="width: 600px">
<div class="cell_output docutils container"><div class="output text_html"><div class="mll-widget">
<div id="line">K-composition score of 0.3 to 1.3</div><span id="cover" style="color: var(--mechlib-cover)">x</span>
</div></div></div></div></body></html>"""


@pytest.fixture(scope="module")
def tab(browser):
    page = browser.new_page(viewport={"width": 800, "height": 400})
    yield page
    page.close()


@pytest.mark.parametrize("mode", ["dark", "light"])
def test_scroll_covers_take_the_colour_of_the_box_they_cover(tab, mode):
    tab.set_content(PAGE.format(mode=mode, theme=_theme_css(), book=(REPO / "_static" / "mechlib.css").read_text()))
    output = ".cell_output > .output"
    box, cover = tab.evaluate("""(sel) => {
      let e = document.querySelector(sel), bg = getComputedStyle(e).backgroundColor;
      // a transparent box shows the page behind it
      for (let p = e; /rgba\\(0, 0, 0, 0\\)|transparent/.test(bg) && p.parentElement; p = p.parentElement) bg = getComputedStyle(p.parentElement).backgroundColor;
      return [bg, getComputedStyle(document.querySelector('#cover')).color];
    }""", output)
    assert cover == box, f"{mode} mode: the covers are {cover}, the box they lie on is {box}"


def test_in_dark_mode_the_first_letters_of_a_panel_are_not_darkened(tab):
    """The pixels at the box's left edge, where a cover lies, are the box's own light colour."""
    tab.set_content(PAGE.format(mode="dark", theme=_theme_css(), book=(REPO / "_static" / "mechlib.css").read_text()))
    from PIL import Image
    import io

    shot = Image.open(io.BytesIO(tab.locator(".cell_output > .output").screenshot())).convert("L")
    edge = [shot.getpixel((x, 2)) for x in range(2, 30)]  # above the text, inside the 2.5 em covers
    inside = shot.getpixel((shot.width // 2, 2))
    assert inside > 150, "the theme no longer paints HTML outputs light in dark mode: revisit mechlib.css"
    assert min(edge) > inside - 20, f"a dark band over the left edge: {edge} against {inside}"


def test_a_live_panel_s_captions_are_readable_in_dark_mode(tab):
    """The checkpoint slider names each head's pattern in a <figcaption>; the theme gives
    captions its muted colour, light grey in dark mode, which on the light panel was 1.7:1."""
    from test_live_access import contrast

    panel = ('<figure class="mll-head"><canvas width="20" height="20"></canvas><figcaption id="cap">1.3</figcaption></figure>'
             '<span class="mlt-axis" id="axis">loss at each position</span>')
    tab.set_content(PAGE.format(mode="dark", theme=_theme_css(), book=(REPO / "mechlib" / "views" / "live" / "live.css").read_text())
                    .replace('<div id="line">', panel + '<div id="line">'))
    bg = tab.evaluate("() => getComputedStyle(document.querySelector('.cell_output > .output')).backgroundColor")
    for element in ("#cap", "#axis", "#line"):
        fg = tab.evaluate("(s) => getComputedStyle(document.querySelector(s)).color", element)
        assert contrast(fg, bg) >= 4.5, f"{element}: {fg} on {bg}, contrast {contrast(fg, bg):.2f}"
