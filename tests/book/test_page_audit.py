"""tests/book/page_audit.py on small pages written here, whose faults are known: what the
built book's browser test (test_book.py) relies on finds them, and passes what is fine."""
import pytest

import page_audit

PIXEL = "data:image/gif;base64,R0lGODlhAQABAAAAACw="


@pytest.fixture(scope="module")
def tab(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(**chromium)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        yield page
        browser.close()


def _open(tab, body):
    tab.set_content(f'<!doctype html><html lang="en"><head><title>t</title></head><body>'
                    f'<main><article class="bd-article" style="width: 360px">{body}</article></main></body></html>')


WIDE = '<div class="wide" style="width: 600px">wide</div>'


@pytest.mark.browser
@pytest.mark.parametrize("body, cut_off, page_scrolls", [
    (WIDE, True, True),                                                         # past the column
    (f'<div style="overflow-x: hidden">{WIDE}</div>', True, False),             # clipped: no way to see it
    (f'<div style="overflow-x: auto">{WIDE}</div>', False, False),              # scrolls in its own box
    (f'<div style="overflow-x: auto; width: 500px">{WIDE}</div>', True, True),  # the scrolling box sticks out
    ('<div class="wide" style="width: 300px">narrow</div>', False, False),
])
def test_overflow_finds_what_sticks_out_of_the_column(tab, body, cut_off, page_scrolls):
    _open(tab, body)
    found = page_audit.overflow(tab)
    assert any(o["element"].endswith("div.wide") for o in found["sticking_out"]) is cut_off, found
    assert found["page_scrolls"] is page_scrolls, found


@pytest.mark.browser
@pytest.mark.parametrize("style, cue", [
    ("", False),
    ("background: linear-gradient(to right, white, transparent)", True),
])
def test_overflow_finds_a_scrolling_table_without_a_cue(tab, style, cue):
    _open(tab, f'<div class="box" style="overflow-x: auto; {style}"><table><tr><td><div style="width: 900px">x</div>'
               f"</td></tr></table></div>")
    found = page_audit.overflow(tab)
    assert not found["sticking_out"]
    assert (found["no_cue"] == []) is cue, found


@pytest.mark.browser
def test_axe_reports_serious_violations_and_where_they_are(tab):
    _open(tab, f'<details><summary></summary>x</details>'
               f'<div class="mll-widget"><img src="{PIXEL}"></div><img src="{PIXEL}" alt="a dot">')
    found = page_audit.axe_violations(tab, page_audit.axe_source())
    rules = sorted((v["rule"], v["in_live_panel"]) for v in found)
    assert rules == [("image-alt", True), ("summary-name", False)], found
    assert all(v["impact"] in ("serious", "critical") for v in found)


@pytest.mark.browser
def test_axe_passes_a_page_without_faults(tab):
    _open(tab, f'<details><summary>More</summary>x</details><img src="{PIXEL}" alt="a dot">')
    assert page_audit.axe_violations(tab, page_audit.axe_source()) == []


@pytest.mark.browser
def test_axe_checks_contrast_inside_a_box_with_scroll_cues(tab):
    """Grey on white inside a scrolling box painted with the book's cue gradients (as every
    notebook output is): axe alone cannot tell the colour behind the text and skips it."""
    cue = ("overflow-x: auto; background: linear-gradient(to right, #fff 30%, transparent) left / 2.5em 100% "
           "no-repeat local, radial-gradient(farthest-side at 0 50%, rgba(0,0,0,.3), transparent) left / 1em 100% no-repeat scroll")
    _open(tab, f'<div class="box" style="{cue}"><p style="color: #bbb">faint text</p></div>')
    found = page_audit.axe_violations(tab, page_audit.axe_source())
    assert [v["rule"] for v in found] == ["color-contrast"], found
    assert tab.evaluate("() => getComputedStyle(document.querySelector('.box')).backgroundImage") != "none", \
        "the audit did not give the box its cues back"
