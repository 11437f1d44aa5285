"""The built book, as a reader's browser sees it.

Builds the book once (the same command as `make book`, into a temporary folder), then
serves the HTML on 127.0.0.1 and opens every page in headless Chromium. Each check is
one test per page, so a failure names the page and what is wrong with it.

Chromium: Debian's package (`make browser`); Playwright cannot download its own here.
In CI (CI=true) a missing Chromium is a failure, elsewhere the browser tests skip.
"""

import functools
import html.parser
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

import page_audit

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())


# Console errors that a page may log. None: the stock Jupyter Book build logs
# "THEBE_JS_URL has already been declared" (sphinx-thebe injects its config twice) and
# pydata-sphinx-theme logs "Got invalid theme mode"; _config.yml fixes both at the source
# (sphinx_thebe is not loaded; html_context.default_mode is set). Add a regex here only
# with a comment saying why the error is harmless.
ALLOWED_CONSOLE_ERRORS: list[str] = []

WIDGET_VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]'
# The widget manager renders each view into a div.widget-subarea just before its <script>.
WIDGET_RENDERED = """(v => {
  const area = v.previousElementSibling;
  return !!area && area.classList.contains("widget-subarea") && area.childElementCount > 0;
})"""


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Pages the book has: its table of contents (in reading order, as the print edition reads it,
# scripts/book_pdf.py), plus the pages Sphinx adds. Known when the tests are collected;
# test_every_built_page_is_checked makes sure the build has no others.
TOC_FILES = [page[: -len(".html")] for page in _load_script("book_pdf").toc_pages(REPO)]
PAGES = [f + ".html" for f in TOC_FILES] + ["genindex.html", "search.html"]
# index.html only redirects to the first page (test_index_redirects_to_the_first_page).
ROOT_PAGE = TOC_FILES[0] + ".html"
# Chapters whose code computes on the model: each must show at least one figure.
COMPUTING_CHAPTERS = [f + ".html" for f in TOC_FILES if f.startswith("chapters/") and (REPO / (f + ".ipynb")).exists()]
# Pages whose source is a notebook: each must have Colab and Binder buttons for itself.
NOTEBOOK_PAGES = [f + ".html" for f in TOC_FILES if (REPO / (f + ".ipynb")).exists()]


# --------------------------------------------------------------------------- the build


@dataclass
class Build:
    returncode: int
    log: str
    html: Path

    def tail(self, n=60):
        return "\n".join(self.log.splitlines()[-n:])


# Folders and files of the repository that are not book sources (skipped when staging).
NOT_SOURCES = (".git", ".venv", ".venv-learner", "_build", "__pycache__", ".pytest_cache",
               "*.egg-info", ".ipynb_checkpoints", "tests", "benchmarks")


def stage_executed_sources(executed: Path, stage: Path) -> Path:
    """A copy of the book's sources whose notebooks carry the outputs nbval has just computed.

    `make test` runs nbval first, with ``MECHLIB_EXECUTED_DIR`` set: every notebook runs once,
    its outputs are compared with the stored ones, and the notebook as executed is written
    under that folder (the root conftest.py). The book is then built from those notebooks with
    execution off, so no notebook runs twice, and the pages show what the code computes today
    (nbval does not compare images). A notebook of the table of contents that nbval did not
    pass is missing there, and the build fails.
    """
    import shutil

    shutil.copytree(REPO, stage, ignore=shutil.ignore_patterns(*NOT_SOURCES), symlinks=True)
    missing = []
    for name in TOC_FILES:
        source = executed / (name + ".ipynb")
        if (REPO / (name + ".ipynb")).exists():
            if not source.exists():
                missing.append(name + ".ipynb")
            else:
                shutil.copyfile(source, stage / (name + ".ipynb"))
    if missing:
        pytest.fail(f"nbval did not execute (or did not pass) these notebooks, so the book cannot be "
                    f"built from its outputs: {missing} (folder {executed})")
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (stage / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return stage


@pytest.fixture(scope="session")
def book(tmp_path_factory):
    """`jupyter-book build . -W -n --keep-going` (as `make book`), output in a temp dir.

    With ``MECHLIB_EXECUTED_DIR`` set (`make test`), the notebooks are not executed again: the
    build takes the outputs nbval computed (:func:`stage_executed_sources`).
    """
    out = tmp_path_factory.mktemp("book")
    source = REPO
    executed = os.environ.get("MECHLIB_EXECUTED_DIR")
    if executed:
        source = stage_executed_sources(Path(executed).resolve(), out / "source")
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe if exe.exists() else "jupyter-book"), "build", str(source),
           "--path-output", str(out), "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, cwd=source, capture_output=True, text=True, timeout=3600)
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # Sphinx colours its output
    (out / "build.log").write_text(log)
    return Build(proc.returncode, log, out / "_build" / "html")


@pytest.fixture(scope="session")
def site(book):
    """The built HTML. Checked even when the build had warnings (--keep-going writes it)."""
    if not (book.html / "index.html").exists():
        pytest.fail(f"the book did not build (exit {book.returncode}):\n{book.tail(30)}")
    return book.html


@pytest.mark.slow
def test_build_has_no_warnings(book):
    # Sphinx's own warnings read "<where>: WARNING: <what>"; with -W each one also fails the
    # build. (A kernel's "[IPKernelApp] WARNING | ..." log line is not a Sphinx warning.)
    warnings = [line for line in book.log.splitlines()
                if re.search(r"\bWARNING:|\bERROR:|treated as error", line)]
    assert book.returncode == 0 and not warnings, (
        f"build exit code {book.returncode}; warnings:\n" + "\n".join(warnings)
        + f"\n--- end of the build log:\n{book.tail()}")


@pytest.mark.slow
def test_every_built_page_is_checked(site):
    built = {p.relative_to(site).as_posix() for p in site.rglob("*.html")
             if p.relative_to(site).parts[0] not in ("_static", "_sources", "_images")}
    checked = set(PAGES) | {"index.html"}
    assert built == checked, (
        f"pages built but not checked: {sorted(built - checked)}; "
        f"checked but not built: {sorted(checked - built)}")


class _RemoteResources(html.parser.HTMLParser):
    """Collects the URLs of things a page loads (not links it offers) that live on another host."""

    LOADS = {"script": "src", "img": "src", "iframe": "src", "source": "src", "link": "href"}

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        url = attrs.get(self.LOADS.get(tag, ""), "") or ""
        if tag == "link" and not re.search(r"stylesheet|preload|icon", attrs.get("rel") or ""):
            return  # e.g. rel="canonical": names a page, loads nothing
        if re.match(r"(?:https?:)?//", url):
            self.found.append(f"<{tag}> {url}")


@pytest.mark.slow
def test_no_page_loads_from_another_host(site):
    """No script, stylesheet, image or frame comes from a CDN, on any page (static check)."""
    found = {}
    for page in sorted(site.rglob("*.html")):
        parser = _RemoteResources()
        parser.feed(page.read_text(encoding="utf8"))
        if parser.found:
            found[page.relative_to(site).as_posix()] = parser.found
    assert not found, f"pages that load from other hosts: {found}"


class _Figures(html.parser.HTMLParser):
    """Each <figure>'s image alt text (None: no image) and caption text (inline math: its TeX, in \\( \\))."""

    def __init__(self):
        super().__init__()
        self.found = []          # [{"id", "alt", "caption"}]
        self._caption_depth = 0  # >0 inside span.caption-text (counting nested spans)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure":
            self.found.append({"id": attrs.get("id"), "alt": None, "caption": ""})
        elif tag == "img" and self.found and self.found[-1]["alt"] is None:
            self.found[-1]["alt"] = attrs.get("alt") or ""
        elif tag == "span" and self._caption_depth:
            self._caption_depth += 1
        elif tag == "span" and self.found and "caption-text" in (attrs.get("class") or "").split():
            self._caption_depth = 1

    def handle_endtag(self, tag):
        if tag == "span" and self._caption_depth:
            self._caption_depth -= 1

    def handle_data(self, data):
        if self._caption_depth:
            self.found[-1]["caption"] += data


def _one_line(text):
    return re.sub(r"\s+", " ", re.sub(r"\\\(|\\\)", "", text)).strip()


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_figure_alt_text_is_its_caption(site, page):
    """A figure's image reads, to a screen reader or where it fails to load, as its caption."""
    parser = _Figures()
    parser.feed((site / page).read_text(encoding="utf8"))
    wrong = [(f["id"], f["alt"], _one_line(f["caption"])) for f in parser.found
             if f["alt"] is not None and (not f["alt"] or _one_line(f["alt"]) != _one_line(f["caption"]))]
    assert not wrong, f"{page}: figures whose alt text is not their caption (id, alt, caption): {wrong}"


@pytest.mark.slow
def test_widget_javascript_is_vendored(site):
    """The files that _config.yml's nb_ipywidgets_js names are in the built site."""
    for path in CONFIG["sphinx"]["config"]["nb_ipywidgets_js"]:
        assert "://" not in path, f"nb_ipywidgets_js entry {path!r} is a remote URL"
        assert (site / "_static" / path).is_file(), f"_static/{path} missing from the built site"


# --------------------------------------------------------------------------- the browser


def _load_screenshots_script():
    """``scripts/screenshots.py``, whose ``serve`` the browser test shares."""
    spec = importlib.util.spec_from_file_location("screenshots", REPO / "scripts" / "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_serve = _load_screenshots_script().serve


@dataclass
class Visit:
    """What a reader's browser did on one page."""
    requests: list = field(default_factory=list)   # every URL the page asked for
    errors: list = field(default_factory=list)     # page errors, console errors, failed loads
    facts: dict = field(default_factory=dict)      # measured in the page once it settled


# Measured after the page has settled (MathJax done, widgets rendered, network idle).
PAGE_FACTS_JS = """() => {
  const article = document.querySelector("article") || document.body;
  const math = Array.from(article.querySelectorAll(".math"));
  const views = Array.from(document.querySelectorAll('%s'));
  return {
    title: document.title,
    math: math.length,
    math_unrendered: math.filter(e => !e.querySelector("mjx-container")).length,
    math_errors: article.querySelectorAll("mjx-merror").length,
    images: Array.from(article.querySelectorAll("img")).map(
      i => ({src: i.getAttribute("src"), alt: i.getAttribute("alt"), ok: i.complete && i.naturalWidth > 0,
             widget: !!i.closest(".jupyter-widgets, .widget-subarea")})),
    // the book's figures: those with an image (a widget's own <figure> panels hold canvases);
    // the width one is shown at: as laid out, or (in a closed toggle) as styled
    figures: Array.from(article.querySelectorAll("figure")).filter(f => f.querySelector("img")).map(f => {
      const img = f.querySelector("img"), number = f.querySelector("figcaption .caption-number");
      const laid = img.getBoundingClientRect().width;
      return {
        id: f.id, number: number ? number.textContent.trim() : "",
        src: img.getAttribute("src"), alt: img.getAttribute("alt"), natural: img.naturalWidth,
        shown: laid || parseFloat(getComputedStyle(img).width) || img.naturalWidth,
      };
    }),
    widget_views: views.length,
    widgets_rendered: views.filter(%s).length,
    widget_state: document.querySelectorAll(
      'script[type="application/vnd.jupyter.widget-state+json"]').length,
    links: Array.from(document.querySelectorAll("a[href]")).map(a => a.href),
  };
}""" % (WIDGET_VIEW, WIDGET_RENDERED)


@functools.cache
def _axe_source():
    return page_audit.axe_source()


def _visit(context, base, page):
    visit = Visit()
    tab = context.new_page()
    tab.on("request", lambda r: visit.requests.append(r.url))
    tab.on("pageerror", lambda e: visit.errors.append(f"uncaught: {e}"))
    tab.on("requestfailed", lambda r: visit.errors.append(f"failed to load {r.url}: {r.failure}"))
    tab.on("response", lambda r: r.status >= 400 and visit.errors.append(f"HTTP {r.status}: {r.url}"))

    def on_console(msg):
        if msg.type == "error" and not any(re.search(p, msg.text) for p in ALLOWED_CONSOLE_ERRORS):
            visit.errors.append(f"console error: {msg.text} ({msg.location.get('url')})")

    tab.on("console", on_console)
    response = tab.goto(base + page, wait_until="load")
    visit.facts["status"] = response.status if response else None
    # MathJax 3 resolves startup.promise once the first typesetting pass is done.
    tab.evaluate("""async () => {
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
    }""")
    try:
        tab.wait_for_function("() => Array.from(document.querySelectorAll('%s')).every(%s)"
                              % (WIDGET_VIEW, WIDGET_RENDERED), timeout=20_000)
    except Exception:
        pass  # reported by test_widgets_render
    tab.wait_for_load_state("networkidle")
    visit.facts.update(tab.evaluate(PAGE_FACTS_JS))
    visit.facts["axe"] = {"desktop": page_audit.axe_violations(tab, _axe_source())}
    # the same page on a phone: display equations that stick out past the screen's right edge
    tab.set_viewport_size({"width": 390, "height": 844})
    tab.wait_for_timeout(500)  # the theme marks scrolling boxes focusable 300 ms after a resize
    visit.facts["math_past_edge_at_390"] = tab.evaluate("""() => Array.from(
        document.querySelectorAll('mjx-container[display="true"]')).filter(
        e => e.getBoundingClientRect().right > window.innerWidth + 1).length""")
    visit.facts["axe"]["phone"] = page_audit.axe_violations(tab, _axe_source())
    visit.facts["overflow_at_390"] = page_audit.overflow(tab)
    visit.facts["stacked_at_390"] = tab.evaluate(STACKED_FIGURES_JS)
    tab.close()
    return visit


# side-by-side figures the build cut into panels (book/_ext/figure_panels.py): at 390 px the whole
# row is hidden and the panels stand one under the other, each inside the screen
STACKED_FIGURES_JS = """() => Array.from(document.querySelectorAll("figure.mechlib-stacked")).map(f => {
  const shown = el => getComputedStyle(el).display !== "none" && el.getBoundingClientRect().width > 0;
  const whole = f.querySelector(":scope > a.image-reference img, :scope > img");
  const panels = Array.from(f.querySelectorAll(".mechlib-panels img")).map(i => i.getBoundingClientRect());
  return {
    id: f.id, whole_shown: !!whole && shown(whole),
    panels: panels.length, all_shown: Array.from(f.querySelectorAll(".mechlib-panels img")).every(shown),
    stacked: panels.every((r, k) => k === 0 || r.top >= panels[k - 1].bottom - 1),
    inside: panels.every(r => r.left >= 0 && r.right <= window.innerWidth + 1),
  };
})"""


# pages visited side by side: each page mostly waits (MathJax, the widgets, 500 ms of network
# quiet), so three browsers keep two cores busy where one left them half idle
VISITORS = 3


def _visit_pages(chromium, base, pages, results):
    """Visit ``pages`` in order, each in a fresh browser profile, with a browser of this thread's own
    (Playwright's sync API belongs to the thread that started it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(**chromium)
        try:
            for page in pages:
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                # Never let a page's request reach another host; it is still recorded
                # (and fails test_no_request_leaves_localhost).
                context.route(lambda url: not url.startswith(base), lambda route: route.abort())
                results[page] = _visit(context, base, page)
                context.close()
        finally:
            browser.close()


@pytest.fixture(scope="session")
def visits(site, chromium):
    """Open every page once, each in a fresh browser profile, as a first-time reader
    (:data:`VISITORS` browsers side by side, each taking every third page)."""
    from concurrent.futures import ThreadPoolExecutor

    from playwright.sync_api import sync_playwright

    server = _serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    results: dict = {}
    try:
        with ThreadPoolExecutor(VISITORS) as pool:
            for f in [pool.submit(_visit_pages, chromium, base, PAGES[i::VISITORS], results)
                      for i in range(VISITORS)]:
                f.result()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(**chromium)
            tab = browser.new_page()
            tab.goto(base + "index.html")
            try:
                tab.wait_for_url(base + ROOT_PAGE, timeout=10_000)
            except Exception:
                pass  # reported by test_index_redirects_to_the_first_page
            results["index.html"] = Visit(facts={"url": tab.url})
            browser.close()
    finally:
        server.shutdown()
    for visit in results.values():
        visit.facts["base"] = base
    return {page: results[page] for page in [*PAGES, "index.html"]}


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_page_loads(visits, page):
    visit = visits[page]
    assert visit.facts["status"] == 200, f"{page}: HTTP {visit.facts['status']}"
    assert visit.facts["title"], f"{page} has no title"


@pytest.mark.slow
@pytest.mark.browser
def test_index_redirects_to_the_first_page(visits):
    assert visits["index.html"].facts["url"] == visits[ROOT_PAGE].facts["base"] + ROOT_PAGE


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_no_errors_in_the_browser(visits, page):
    errors = visits[page].errors
    if errors:
        pytest.fail(f"{page}:\n" + "\n".join(errors), pytrace=False)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_no_request_leaves_localhost(visits, page):
    def local(url):
        parts = urlsplit(url)
        return parts.scheme in ("data", "blob", "about") or parts.hostname == "127.0.0.1"

    outside = [url for url in visits[page].requests if not local(url)]
    if outside:
        pytest.fail(f"{page} requested:\n" + "\n".join(outside), pytrace=False)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_math_is_rendered(visits, page):
    facts = visits[page].facts
    assert facts["math_unrendered"] == 0, (
        f"{page}: {facts['math_unrendered']} of {facts['math']} formulas were not typeset by MathJax")
    assert facts["math_errors"] == 0, f"{page}: {facts['math_errors']} formulas have TeX errors"
    if facts["math"]:
        served = [u for u in visits[page].requests if "/_static/mathjax/" in u]
        assert served, f"{page} has math but did not load MathJax from _static/mathjax"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_display_math_fits_a_phone_screen(visits, page):
    """At 390 px a long equation scrolls inside its box (_static/mechlib.css) instead of leaving the page."""
    n = visits[page].facts["math_past_edge_at_390"]
    assert n == 0, f"{page}: {n} display equations run past the right edge of a 390 px screen"


def _listed(found):
    return "\n".join(f"  {v['rule']} ({v['impact']}): {v['target']}  {v['html']}" for v in found)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("width", ["desktop", "phone"])
@pytest.mark.parametrize("page", PAGES)
def test_no_serious_accessibility_violations(visits, page, width):
    """axe-core's WCAG 2.1 A/AA audit (tests/book/page_audit.py) at 1280 px and 390 px: no
    serious or critical violation outside the live widgets' panels (those: the next test)."""
    found = [v for v in visits[page].facts["axe"][width] if not v["in_live_panel"]]
    if found:
        pytest.fail(f"{page} at {width} width, axe-core's serious or critical violations:\n"
                    + _listed(found), pytrace=False)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("width", ["desktop", "phone"])
@pytest.mark.parametrize("page", PAGES)
def test_no_serious_accessibility_violations_in_live_panels(visits, page, width):
    """The same audit inside the live widgets' panels (.mll-widget, mechlib/views/live; their
    keyboard use is driven by tests/book/test_live_access.py)."""
    found = [v for v in visits[page].facts["axe"][width] if v["in_live_panel"]]
    if found:
        pytest.fail(f"{page} at {width} width, in live panels:\n" + _listed(found), pytrace=False)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_nothing_sticks_out_of_its_box_on_a_phone(visits, page):
    """At 390 px the page does not scroll sideways, and nothing runs past the text column
    unless it is inside a box that scrolls sideways and fits (tests/book/page_audit.py)."""
    found = visits[page].facts["overflow_at_390"]
    assert not found["page_scrolls"], f"{page}: at 390 px the page itself scrolls sideways"
    out = found["sticking_out"]
    assert not out, f"{page}: at 390 px, cut off or past the edge, not in a scrolling box:\n" + "\n".join(
        f"  {o['element']} (right edge {o['right']} px, column ends at {o['edge']} px)" for o in out[:20])


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_a_box_that_scrolls_on_a_phone_shows_it(visits, page):
    """A table, equation or figure that scrolls sideways at 390 px shows a cue (a shadow on
    the side with more, _static/mechlib.css; in live panels, live.css and ui.scrollBox)."""
    missing = [o["element"] for o in visits[page].facts["overflow_at_390"]["no_cue"] if not o["in_live_panel"]]
    assert not missing, f"{page}: boxes that scroll at 390 px without a cue: {missing}"
    in_panels = [o["element"] for o in visits[page].facts["overflow_at_390"]["no_cue"] if o["in_live_panel"]]
    assert not in_panels, f"{page}: live panels' boxes scroll at 390 px without a cue: {in_panels}"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_side_by_side_figures_stack_on_a_phone(visits, page):
    """At 390 px a figure of side-by-side panels shows them one under the other (_static/mechlib.css)."""
    bad = [f for f in visits[page].facts["stacked_at_390"]
           if f["whole_shown"] or f["panels"] < 2 or not (f["all_shown"] and f["stacked"] and f["inside"])]
    assert not bad, f"{page}: side-by-side figures not stacked at 390 px: {bad}"
    if page == "chapters/05_virtual_attention_heads.html":  # Figure 5.3, two heat maps
        assert visits[page].facts["stacked_at_390"], f"{page}: no figure was cut into its panels"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_images_load(visits, page):
    broken = [img["src"] for img in visits[page].facts["images"] if not img["ok"]]
    assert not broken, f"{page}: images that did not load: {broken}"


def _meaningless_alt(alt, src):
    """An image's alt text that tells a reader nothing: none, blank, or its file name (a hash)."""
    name = (src or "").rsplit("/", 1)[-1]
    return (not alt or not alt.strip() or alt.strip() in (src, name, name.rsplit(".", 1)[0])
            or re.fullmatch(r"\S*[0-9a-f]{16,}\S*", alt.strip()) is not None)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_images_have_alt_text(visits, page):
    """Every image says what it shows to a reader who cannot see it (a figure: its caption).

    Except an image a widget draws (ipywidgets' Image has no alt text); the widget's
    controls and text say what it shows."""
    bad = [img["src"] for img in visits[page].facts["images"]
           if not img["widget"] and _meaningless_alt(img["alt"], img["src"])]
    assert not bad, f"{page}: images without a meaningful alt text: {bad}"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_figures_are_numbered(visits, page):
    unnumbered = [f["id"] for f in visits[page].facts["figures"]
                  if not re.fullmatch(r"Figure \d+(\.\d+)*", f["number"])]
    assert not unnumbered, f"{page}: figures without a number: {unnumbered}"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_figures_are_sharp_on_a_high_density_screen(visits, page):
    """At least 1.5 image pixels per CSS pixel shown (150 dpi where a CSS pixel is 1/96 inch), or SVG."""
    blurry = [(f["src"], f["natural"], round(f["shown"])) for f in visits[page].facts["figures"]
              if not (f["src"] or "").lower().endswith(".svg") and f["natural"] < 1.5 * f["shown"]]
    assert not blurry, f"{page}: figures with fewer than 1.5 pixels per displayed pixel (src, pixels, shown): {blurry}"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", COMPUTING_CHAPTERS)
def test_computing_chapter_shows_a_figure(visits, page):
    figures = [img for img in visits[page].facts["images"]
               if img["ok"] and "_images/" in (img["src"] or "")]
    assert figures, f"{page} shows no figure computed by its code"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_widgets_render(visits, page):
    facts = visits[page].facts
    assert facts["widgets_rendered"] == facts["widget_views"], (
        f"{page}: {facts['widgets_rendered']} of {facts['widget_views']} widgets rendered")
    loaded_widget_js = any("/_static/widgets/" in u for u in visits[page].requests)
    # Widget JavaScript only where there is widget state: require.js on every page would
    # break the theme's own scripts (this is what a .js under _static/ would cause).
    assert loaded_widget_js == bool(facts["widget_state"]), (
        f"{page}: widget state {facts['widget_state']}, widget JS loaded: {loaded_widget_js}")


def _launch_links(visit, host):
    return sorted({u for u in visit.facts["links"] if urlsplit(u).hostname == host})


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_launch_buttons_open_this_page_notebook(visits, page):
    repo = urlsplit(CONFIG["repository"]["url"]).path.strip("/")  # org/name
    branch = CONFIG["repository"].get("branch", "main")
    notebook = page[: -len(".html")] + ".ipynb"
    colab_url = CONFIG["launch_buttons"]["colab_url"].rstrip("/")
    binder_url = CONFIG["launch_buttons"]["binderhub_url"].rstrip("/")
    colab = _launch_links(visits[page], urlsplit(colab_url).hostname)
    binder = _launch_links(visits[page], urlsplit(binder_url).hostname)
    if page not in NOTEBOOK_PAGES:
        assert not colab and not binder, f"{page} is not a notebook but has launch buttons"
        return
    assert colab == [f"{colab_url}/github/{repo}/blob/{branch}/{notebook}"], f"{page}: {colab}"
    assert binder == [f"{binder_url}/v2/gh/{repo}/{branch}?urlpath=tree/{notebook}"], f"{page}: {binder}"


# --------------------------------------------------------------------------- the print edition


@dataclass
class PrintEdition:
    path: Path
    reader: object                                # pypdf.PdfReader
    starts: list = field(default_factory=list)    # (bookmark title, first page index), in order
    seconds: float = 0.0


@pytest.fixture(scope="session")
def print_edition(site, chromium, tmp_path_factory):
    """`make pdf` (scripts/book_pdf.py) on the built book, into a temporary folder."""
    from pypdf import PdfReader

    book_pdf = _load_script("book_pdf")
    out = tmp_path_factory.mktemp("pdf") / book_pdf.PDF_NAME
    result = book_pdf.build_pdf(site, out, chromium["executable_path"])
    reader = PdfReader(out)
    starts = [(item.title, reader.get_destination_page_number(item)) for item in reader.outline]
    print(f"\nprint edition: {len(reader.pages)} pages in {result['seconds']:.0f} s")
    return PrintEdition(out, reader, starts, result["seconds"])


class _Heading(html.parser.HTMLParser):
    """The text of the first <h1> in a page's <article>, without its permalink (a.headerlink)."""

    def __init__(self):
        super().__init__()
        self.text, self._in, self._skip, self._done, self._article = "", False, 0, False, False

    def handle_starttag(self, tag, attrs):
        if tag == "article":
            self._article = True
        elif tag == "h1" and self._article and not self._done:
            self._in = True
        elif self._in and tag == "a" and "headerlink" in (dict(attrs).get("class") or ""):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag == "h1" and self._in:
            self._in, self._done = False, True
        elif tag == "a" and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if self._in and not self._skip:
            self.text += data


def _page_title(site, page):
    parser = _Heading()
    parser.feed((site / page).read_text(encoding="utf8"))
    return " ".join(parser.text.split())


def _squash(text):
    """Text compared without whitespace or case (PDF text extraction breaks lines anywhere)."""
    return re.sub(r"\s+", "", text).casefold()


def _pdf_text(reader, first, stop):
    return "".join(reader.pages[i].extract_text() or "" for i in range(first, stop))


def _image_count(page):
    """Images painted on a PDF page: image XObjects, also inside form XObjects, each object once."""
    seen = set()

    def walk(resources):
        xobjects = (resources or {}).get("/XObject") or {}
        for ref in xobjects.values():
            obj = ref.get_object()
            key = getattr(ref, "idnum", id(obj))
            if key in seen:
                continue
            seen.add(key)
            if obj.get("/Subtype") == "/Image":
                yield 1
            elif obj.get("/Subtype") == "/Form":
                yield from walk(obj.get("/Resources"))

    return sum(walk(page.get("/Resources")))


TOC_PAGES = [f + ".html" for f in TOC_FILES]


@pytest.mark.slow
@pytest.mark.browser
def test_print_edition_has_every_page_in_order_with_a_contents(site, print_edition):
    titles = [_page_title(site, page) for page in TOC_PAGES]
    assert [t for t, _ in print_edition.starts] == titles, "the PDF's bookmarks are not the book's pages in order"
    first_pages = [first for _, first in print_edition.starts]
    assert first_pages == sorted(first_pages) and first_pages[0] > 0, first_pages
    front = _squash(_pdf_text(print_edition.reader, 0, first_pages[0]))
    assert _squash("Contents") in front
    for title, first in print_edition.starts:
        # the contents gives each page's title and its page number (counting from 1)
        assert _squash(title) + str(first + 1) in front, f"contents: no entry '{title} ... {first + 1}'"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", TOC_PAGES)
def test_print_edition_has_the_chapter_and_its_figures(site, print_edition, page):
    """Its title in the PDF's text where its bookmark points, and every figure: as many images
    on its pages as the HTML page has figures, and each caption's number ("Figure 5.3")."""
    reader, starts = print_edition.reader, [first for _, first in print_edition.starts]
    index = TOC_PAGES.index(page)
    first, stop = starts[index], (starts[index + 1] if index + 1 < len(starts) else len(reader.pages))
    text = _squash(_pdf_text(reader, first, stop))
    title = _page_title(site, page)
    assert _squash(title) in text, f"{page}: its title '{title}' is not on PDF pages {first + 1}-{stop}"
    parser = _Figures()
    parser.feed((site / page).read_text(encoding="utf8"))
    figures = [f for f in parser.found if f["alt"] is not None]
    numbers = re.findall(r'caption-number">(Figure [0-9.]+)', (site / page).read_text(encoding="utf8"))
    images = sum(_image_count(reader.pages[i]) for i in range(first, stop))
    assert images >= len(figures), f"{page}: {len(figures)} figures, {images} images on PDF pages {first + 1}-{stop}"
    missing = [n for n in numbers if _squash(n) not in text]
    assert not missing, f"{page}: figure captions not in the PDF: {missing}"


@pytest.mark.slow
def test_front_page_links_to_the_print_edition(site):
    """The front page links to the PDF `make pdf` writes next to it (scripts/book_pdf.py)."""
    name = _load_script("book_pdf").PDF_NAME
    front = (site / ROOT_PAGE).read_text(encoding="utf8")
    assert f'href="{name}"' in front
    assert "make pdf" in re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", front)), "the front page does not say how to build it"


# --------------------------------------------------------------------------- nbval sanitizing


def _sanitize(text):
    from nbval.plugin import get_sanitize_patterns

    for regex, replace in get_sanitize_patterns((REPO / "tests" / "sanitize.cfg").read_text()):
        text = re.sub(regex, replace, text)
    return text


@pytest.mark.parametrize("first, second", [
    ("<function f at 0x7f3a2c1b9d30>", "<function f at 0x7f00deadbeef>"),
    ("train:  42%|████▏     | 21/50 [00:01<00:02, 14.2it/s]",
     "train: 100%|██████████| 50/50 [00:03<00:00, 15.9it/s]"),
    ("100%|██████████| 8/8 [00:00<00:00, 1234.56it/s]\nloss 0.09",
     "100%|██████████| 8/8 [00:00<00:00, 987.00it/s]\nloss 0.09"),
    ("CPU times: user 1.2 s, sys: 3 ms, total: 1.2 s\nWall time: 1.21 s",
     "CPU times: user 2 s, sys: 0 ns, total: 2 s\nWall time: 2.5 s"),
    ("1.23 ms ± 45.6 µs per loop (mean ± std. dev. of 7 runs, 1,000 loops each)",
     "980 µs ± 5 µs per loop (mean ± std. dev. of 7 runs, 1,000 loops each)"),
    ("trained in 12.3 s", "trained in 9 seconds"),
    ("took 0.52s", "took 1s"),
])
def test_sanitize_makes_volatile_output_equal(first, second):
    assert _sanitize(first) == _sanitize(second)


@pytest.mark.parametrize("text", [
    "<Figure size 640x480 with 1 Axes>",
    "head 0.3 composes with 1.2 in 3 steps",
    "repeat loss 0.09 nats; ablated 4.01 nats",
    "tensor([[0.1000, 0.2000]])",
    "K-composition score 0.45 (baseline 0.12 ± 0.03)",
])
def test_sanitize_leaves_results_alone(text):
    assert _sanitize(text) == text
