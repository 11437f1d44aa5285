"""The print edition: every page of the built book, in reading order, as one PDF.

    .venv/bin/python scripts/book_pdf.py                    # _build/html -> _build/html/<PDF_NAME>
    .venv/bin/python scripts/book_pdf.py --site DIR --out FILE

Why Chromium and not LaTeX: the pages a reader sees are already typeset (MathJax), numbered
(figures "Figure 3.2", sections) and drawn (the live widgets at their starting state, the
ipywidgets from their saved state), and Chromium is already what the browser test needs
(Debian's package, `make browser`). Jupyter Book's LaTeX route would need a TeX installation
of about a gigabyte, cannot draw the JavaScript widgets at all, and would typeset every
page a second, different way.

How: serves the built HTML on 127.0.0.1 (requests to other hosts are blocked), opens each page
of _toc.yml in headless Chromium at the paper's width, waits for MathJax and the widgets, opens
every toggle, scales equations and live panels' tables wider than the paper down to fit,
writes each panel's token field out as text, and prints it to A4 with the
print stylesheets (the theme's: no sidebars; _static/mechlib.css: code wraps, live panels keep
their figure at the starting state but not their buttons). Then a cover and a table of contents
with page numbers go in front, every page after them is numbered, and pypdf merges it all into
one file with one bookmark per page.
"""
from __future__ import annotations

import argparse
import html
import io
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import CHROMIUM_ARGS, WIDGETS_RENDERED, serve  # noqa: E402

#: the file name, next to index.html in the built site (the front page links to it)
PDF_NAME = "composition-virtual-heads.pdf"
PAPER = {"format": "A4", "margin": {"top": "16mm", "bottom": "18mm", "left": "15mm", "right": "15mm"}}
#: the width between those margins in CSS pixels (180 mm at 96 px per inch): pages are laid out
#: at this width before printing, so that what is measured is what goes on paper
PAPER_WIDTH_PX = 680
# What scrolls or is typed on screen must be whole on paper, where nothing scrolls: a display
# equation wider than the paper is scaled down to fit; so is a live panel's scroll box (the
# next-token table of the model panels, 24 to 32 positions, about 900-1150 px wide), whose
# "scroll sideways" cue is dropped; a panel's token field shows its whole sequence as text.
FIT_TO_PAPER_JS = """() => {
  // zoom e so that its content fits `room` px; small text does not shrink in proportion (the
  // browser's minimum font size), so measure again and shrink on until it does
  const fit = (e, room) => {
    if (e.scrollWidth <= room + 1) return;
    e.style.zoom = (room / e.scrollWidth).toFixed(3);
    for (let i = 0; i < 5; i++) {
      const left = e.getBoundingClientRect().left, wide = Math.max(...[...e.children].map(c => c.getBoundingClientRect().right)) - left;
      if (wide <= room + 1) break;
      e.style.zoom = (e.style.zoom * room / wide).toFixed(3);
    }
  };
  for (const e of document.querySelectorAll('mjx-container[display="true"]')) fit(e, e.parentElement.clientWidth);
  for (const e of document.querySelectorAll('.mll-widget .mll-scroll')) {
    e.style.overflow = 'visible';
    fit(e, e.parentElement.clientWidth);
  }
  for (const e of document.querySelectorAll('.mll-widget .mll-cue')) e.style.display = 'none';
  for (const e of document.querySelectorAll('.mll-widget input[type="text"]')) {
    const shown = document.createElement('div');
    shown.className = 'mll-printed-value';
    shown.style.cssText = 'font-family: monospace; overflow-wrap: anywhere; border: 1px solid #888; padding: 1px 3px';
    shown.textContent = e.value;
    e.replaceWith(shown);
  }
}"""
TITLE_JS = """() => {
  const h1 = document.querySelector("article h1") || document.querySelector("h1");
  return h1 ? h1.textContent.replace(/[\\s\\u00b6#]+$/, "").replace(/\\s+/g, " ").trim() : document.title;
}"""


def toc_parts(repo: Path = REPO) -> list[tuple[str, list[str]]]:
    """_toc.yml's parts in reading order: ``[(caption, [built page, ...]), ...]``; the root page
    and chapters outside any part come under the caption ``""``."""
    toc = yaml.safe_load((repo / "_toc.yml").read_text())

    def walk(entries, files):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"] + ".html")
            walk(entry.get("sections"), files)
        return files

    parts = [("", [toc["root"] + ".html"])]
    for part in toc.get("parts", []):
        parts.append((part.get("caption", ""), walk(part.get("chapters"), [])))
    if toc.get("chapters"):
        parts.append(("", walk(toc.get("chapters"), [])))
    return parts


def toc_pages(repo: Path = REPO) -> list[str]:
    """The built pages of _toc.yml in reading order, root first (``chapters/01_x.html``)."""
    return [page for _, pages in toc_parts(repo) for page in pages]


def _settle(tab, url: str) -> None:
    tab.goto(url, wait_until="load")
    tab.evaluate("""async () => {
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
    }""")
    try:
        tab.wait_for_function(WIDGETS_RENDERED, timeout=20_000)
    except Exception:
        print(f"    widgets did not render within 20 s: {url}")
    tab.wait_for_load_state("networkidle")
    # open every toggle (hidden code, answers): on paper nothing can be clicked open
    tab.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
    tab.wait_for_timeout(300)


def _front_matter_html(title: str, entries: list[tuple[str, int]], first_page: int,
                       captions: list[str] | None = None) -> str:
    """The cover and the contents: each entry ``(title, first page index)``, under its part's
    caption ("Chapters", "Appendix", ...) where ``captions`` gives one per entry."""
    rows, last = [], ""
    for i, (t, n) in enumerate(entries):
        caption = captions[i] if captions else ""
        if caption and caption != last:
            rows.append(f'<li class="part">{html.escape(caption)}</li>')
        last = caption
        rows.append(f'<li><span class="t">{html.escape(t)}</span><span class="n">{n + first_page}</span></li>')
    rows = "\n".join(rows)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
  body {{ font-family: sans-serif; color: #222; }}
  .cover {{ height: 240mm; display: flex; flex-direction: column; justify-content: center; page-break-after: always; }}
  .cover h1 {{ font-size: 30pt; margin: 0 0 8mm; }} .cover p {{ font-size: 13pt; color: #555; }}
  h2 {{ font-size: 18pt; }}
  ol {{ list-style: none; padding: 0; font-size: 11pt; }}
  li {{ display: flex; gap: 4mm; padding: 1.2mm 0; border-bottom: 0.2mm dotted #aaa; }}
  li .t {{ flex: 1; }}
  li.part {{ font-weight: bold; border-bottom: none; padding-top: 4mm; }}
</style></head><body>
<section class="cover"><h1>{html.escape(title)}</h1>
<p>The print edition of the interactive book: every page as the HTML book shows it, the live
widgets at their starting state. Figures are numbered as in the HTML book.</p></section>
<h2>Contents</h2><ol>{rows}</ol></body></html>"""


def _numbers_html(count: int) -> str:
    pages = "".join(f'<div class="p"><span>{i}</span></div>' for i in range(1, count + 1))
    return f"""<!doctype html><html><head><style>
  @page {{ size: A4; margin: 0; }} html, body {{ margin: 0; }}
  .p {{ height: 297mm; position: relative; page-break-after: always; }}
  .p span {{ position: absolute; bottom: 8mm; width: 100%; text-align: center; font: 9pt sans-serif; color: #555; }}
</style></head><body>{pages}</body></html>"""


PRINTERS = 3  # browsers printing side by side


def _print_pages(chromium: str, base: str, pages: list[str], done: dict) -> None:
    """Print ``pages`` with a browser of this thread's own: ``done[page] = (title, pdf bytes)``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": PAPER_WIDTH_PX, "height": 1000})
            context.route(lambda url: not url.startswith(base), lambda route: route.abort())
            tab = context.new_page()
            for page in pages:
                _settle(tab, base + page)
                tab.emulate_media(media="print")
                tab.evaluate(FIT_TO_PAPER_JS)
                title = tab.evaluate(TITLE_JS)
                done[page] = (title, tab.pdf(print_background=True, **PAPER))
                tab.emulate_media(media="screen")
        finally:
            browser.close()


def build_pdf(site: Path, out: Path, chromium: str, pages: list[str] | None = None) -> dict:
    """Print ``pages`` (default: _toc.yml's) of the built ``site`` into one PDF at ``out``.

    Returns ``{"pages": total page count, "chapters": [(title, first page index), ...],
    "seconds": build time}``; page indexes count from 0 in the whole PDF.
    """
    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader, PdfWriter

    start = time.monotonic()
    pages = pages or toc_pages()
    server = serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    printed = []  # (title, PdfReader)
    try:
        # the pages printed by PRINTERS browsers side by side (each mostly waits on MathJax, the
        # widgets and the network going quiet), then put in order
        done: dict[str, tuple[str, bytes]] = {}
        with ThreadPoolExecutor(PRINTERS) as pool:
            for f in [pool.submit(_print_pages, chromium, base, pages[i::PRINTERS], done) for i in range(PRINTERS)]:
                f.result()
        for page in pages:
            title, data = done[page]
            printed.append((title, PdfReader(io.BytesIO(data))))
            print(f"{page}: {title} ({len(printed[-1][1].pages)} pages)")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": PAPER_WIDTH_PX, "height": 1000})
            tab = context.new_page()
            book_title = yaml.safe_load((REPO / "_config.yml").read_text()).get("title", "The book")
            starts, n = [], 0
            for title, reader in printed:
                starts.append((title, n))
                n += len(reader.pages)
            # the front matter's length does not depend on the page numbers in it: print it
            # once to count its pages, then again with the numbers shifted by that count
            part_of = {page: caption for caption, part in toc_parts() for page in part}
            captions = [part_of.get(page, "") for page in pages]
            tab.set_content(_front_matter_html(book_title, starts, 1, captions))
            front_len = len(PdfReader(io.BytesIO(tab.pdf(**PAPER))).pages)
            tab.set_content(_front_matter_html(book_title, starts, front_len + 1, captions))
            front = PdfReader(io.BytesIO(tab.pdf(**PAPER)))
            numbers = PdfReader(io.BytesIO(_print_html(tab, _numbers_html(front_len + n))))
            browser.close()
    finally:
        server.shutdown()

    writer = PdfWriter()
    for p in front.pages:
        writer.add_page(p)
    chapters = []
    for title, reader in printed:
        chapters.append((title, len(writer.pages)))
        for p in reader.pages:
            writer.add_page(p)
    for title, first in chapters:  # a bookmark needs its page in the writer already
        writer.add_outline_item(title=title, page_number=first)
    for i, page in enumerate(writer.pages):
        if i >= front_len:  # the cover and contents stay unnumbered
            page.merge_page(numbers.pages[i])
    writer.add_metadata({"/Title": book_title})
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        writer.write(f)
    return {"pages": len(writer.pages), "chapters": chapters, "seconds": time.monotonic() - start}


def _print_html(tab, content: str) -> bytes:
    tab.set_content(content)
    return tab.pdf(format="A4", margin={"top": "0", "bottom": "0", "left": "0", "right": "0"},
                   prefer_css_page_size=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=REPO / "_build" / "html", help="built HTML")
    parser.add_argument("--out", type=Path, default=None, help=f"default: SITE/{PDF_NAME}")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM") or shutil.which("chromium")
                        or "/usr/bin/chromium", help="browser binary (default: $CHROMIUM, chromium)")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").exists():
        sys.exit(f"no built book in {args.site}: run `make book` first")
    if not Path(args.chromium).exists():
        sys.exit("Chromium is not installed: run `make browser`")
    out = args.out or args.site / PDF_NAME
    result = build_pdf(args.site, out, args.chromium)
    print(f"{out}: {result['pages']} pages, {len(result['chapters'])} chapters, {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
