"""The live panels on paper (issue 24, the print edition): scripts/book_pdf.py lays each page
out at the paper's width with print styles and runs FIT_TO_PAPER_JS before printing. A model
panel's next-token table (one column per position, wider than A4) and its token field must
then be whole on the page: on paper nothing scrolls, so what a scroll box hides is lost.

Checked on a page laid out like the book (test_live_model.book_like_page), without building it.
"""
import importlib.util
from pathlib import Path

import pytest

from mechlib.views import live
from test_live_model import book_like_page, tokens_shown

pytestmark = pytest.mark.browser
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _book_pdf():
    spec = importlib.util.spec_from_file_location("book_pdf", SCRIPTS / "book_pdf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Boxes of the panel that hide part of their content (content wider than the box, overflow not
# visible), and elements that reach past the paper's right edge.
CUT_ON_PAPER_JS = """(paper) => {
  const cut = [];
  for (const e of document.querySelectorAll('#w-root *')) {
    if (e.closest('.mll-live')) continue;  // the screen reader's summary is 1 px on purpose
    const s = getComputedStyle(e), box = e.getBoundingClientRect();
    if (box.width === 0 || s.display === 'none') continue;
    if (s.overflowX !== 'visible' && e.scrollWidth > e.clientWidth + 1) cut.push('hides: ' + (e.id || e.className || e.tagName));
    if (box.right > paper + 1) cut.push('past the paper: ' + (e.id || e.className || e.tagName));
  }
  for (const e of document.querySelectorAll('#w-root input[type="text"]'))
    if (e.scrollWidth > e.clientWidth + 1) cut.push('field: ' + e.id);
  return cut;
}"""


@pytest.fixture(scope="module")
def printed(browser, tmp_path_factory, model):
    """A head toggle on a sequence of n_ctx = 32 tokens (the widest table a panel can show; the
    book's are 24 and 32), laid out at the paper's width, prepared as book_pdf prepares a page."""
    html = live.head_toggle(model, prefix="w", assets="site").data
    book_pdf = _book_pdf()
    with book_like_page(browser, tmp_path_factory.mktemp("print"), html) as page:
        typed = [(7 * i) % model.cfg.d_vocab for i in range(model.cfg.n_ctx)]
        page.fill("#w-tokens", " ".join(map(str, typed)))
        page.click("#w-apply")
        tokens = tokens_shown(page)
        assert tokens == typed and page.text_content("#w-msg") == ""
        page.set_viewport_size({"width": book_pdf.PAPER_WIDTH_PX, "height": 1000})
        page.emulate_media(media="print")
        before = page.evaluate(CUT_ON_PAPER_JS, book_pdf.PAPER_WIDTH_PX)
        page.evaluate(book_pdf.FIT_TO_PAPER_JS)
        page.before, page.tokens, page.paper = before, tokens, book_pdf.PAPER_WIDTH_PX
        yield page


def test_without_the_fit_the_table_is_cut_at_the_paper_edge(printed):
    """The premise: 32 positions do not fit 680 px, so the fit has something to do."""
    assert len(printed.tokens) == 32
    assert any(c.startswith("hides: ") for c in printed.before), printed.before


def test_nothing_of_the_panel_is_cut_on_paper(printed):
    assert printed.evaluate(CUT_ON_PAPER_JS, printed.paper) == []


def test_every_position_and_the_whole_sequence_are_printed(printed):
    text = printed.evaluate("() => document.querySelector('#w-root').innerText")
    assert " ".join(map(str, printed.tokens)) in text, "the token field's sequence is not printed whole"
    header = printed.evaluate("() => [...document.querySelectorAll('#w-preds tr:first-child > *')].map(c => c.textContent)")
    assert header[1:] == [str(i) for i in range(len(printed.tokens))]
    assert printed.evaluate("() => [...document.querySelectorAll('#w-root .mll-cue')].every(c => c.offsetParent === null)"), \
        "a 'scroll sideways' cue is printed"
