"""Save a full-page screenshot of every page of a built book, for people to look at.

    .venv/bin/python scripts/screenshots.py                    # _build/html -> _build/screenshots
    .venv/bin/python scripts/screenshots.py --site DIR --out DIR --width 1280 --page chapters/01

Serves the built HTML on 127.0.0.1, opens each page in headless Chromium (Debian's
package: `make browser`), waits for MathJax and the widgets, and writes one PNG per page
(`chapters/01_x.html` -> `chapters__01_x.png`). Requests to other hosts are blocked.
Prints what the browser complained about on each page; tests/book/test_book.py is the check.
"""

import argparse
import functools
import http.server
import os
import shutil
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
]
WIDGETS_RENDERED = """() => Array.from(document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]')).every(v => {
      const area = v.previousElementSibling;
      return area && area.classList.contains("widget-subarea") && area.childElementCount > 0;
    })"""


def book_pages(site):
    """Every HTML page of the built book, excluding assets and the index redirect."""
    pages = []
    for path in sorted(site.rglob("*.html")):
        rel = path.relative_to(site)
        if rel.parts[0] in ("_static", "_sources", "_images") or rel.as_posix() == "index.html":
            continue
        pages.append(rel.as_posix())
    return pages


def serve(directory):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def screenshot(browser, base, page, out, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.route(lambda url: not url.startswith(base), lambda route: route.abort())
    tab = context.new_page()
    problems = []
    tab.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    tab.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    tab.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    tab.goto(base + page, wait_until="load")
    tab.evaluate("""async () => {
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
    }""")
    try:
        tab.wait_for_function(WIDGETS_RENDERED, timeout=20_000)
    except Exception:
        problems.append("widgets did not render within 20 s")
    tab.wait_for_load_state("networkidle")
    # A window as tall as the page, rather than Playwright's stitched full-page shot: the
    # theme's sticky sidebars are sized to the window and would otherwise look cut off.
    height = tab.evaluate("document.documentElement.scrollHeight")
    tab.set_viewport_size({"width": width, "height": height})
    tab.wait_for_timeout(300)  # let the layout settle at the new size
    target = out / (page[: -len(".html")].replace("/", "__") + ".png")
    tab.screenshot(path=str(target))
    context.close()
    return target, problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=REPO / "_build" / "html", help="built HTML")
    parser.add_argument("--out", type=Path, default=REPO / "_build" / "screenshots")
    parser.add_argument("--width", type=int, default=1280, help="browser width in CSS pixels")
    parser.add_argument("--page", action="append", default=[],
                        help="only pages whose path starts with this (repeatable)")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM") or shutil.which("chromium")
                        or "/usr/bin/chromium", help="browser binary (default: $CHROMIUM, chromium)")
    args = parser.parse_args(argv)

    if not (args.site / "index.html").exists():
        sys.exit(f"no built book in {args.site}: run `make book` first")
    if not Path(args.chromium).exists():
        sys.exit("Chromium is not installed: run `make browser`")
    from playwright.sync_api import sync_playwright

    pages = [p for p in book_pages(args.site) if not args.page or any(p.startswith(s) for s in args.page)]
    args.out.mkdir(parents=True, exist_ok=True)
    server = serve(args.site)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            for page in pages:
                target, problems = screenshot(browser, base, page, args.out, args.width)
                print(f"{page} -> {target.relative_to(args.out)}")
                for problem in problems:
                    print(f"    {problem}")
            browser.close()
    finally:
        server.shutdown()
    print(f"{len(pages)} screenshots in {args.out}")


if __name__ == "__main__":
    main()
