"""How fast does the live head toggle (mechlib.views.live, chapter 5) respond in a browser?

Builds a page with the widget and the assets it loads (as the built book serves them,
from _static/live/), opens it in headless Chromium (Debian's package) and measures:

1. click -> updated page: a click on a head's checkbox runs the model in the page and
   redraws loss, predictions and pattern synchronously; reading offsetHeight then forces
   style and layout, so this is the time until the new view is laid out (median of --clicks);
2. window.mechlibLive.run alone on a full-context sequence (32 tokens), with a head off;
3. the weight of the assets the widget adds to a page (weights, model.js, ui.js, live.css, its view's
   files and the widget's own HTML), in kB.

Prints the load average too: on a shared machine the times include waiting for a core.

Run:  .venv/bin/python benchmarks/live_widget.py [--clicks 200] [--screenshots DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

import mechlib
from mechlib.views import live

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def page_folder(folder: Path, widget_html: str) -> Path:
    """A minimal 'built book': <html data-content_root="../">, the page in chapters/, assets in _static/live/."""
    (folder / live.SITE_DIR).mkdir(parents=True)
    for f in live.asset_files():
        shutil.copy(f, folder / live.SITE_DIR / f.name)
    (folder / "chapters").mkdir()
    page = folder / "chapters" / "live.html"
    page.write_text('<!doctype html><html data-content_root="../"><head><meta charset="utf-8">'
                    '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"></head>'
                    f"<body style='margin:8px'>{widget_html}</body></html>")
    return page


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clicks", type=int, default=200)
    ap.add_argument("--screenshots", type=Path, help="also save screenshots (1280 and 390 px wide) here")
    ap.add_argument("--widget", choices=["head_toggle", "path_ablation"], default="head_toggle",
                    help="which widget (path_ablation: senders 0.0, 0.3 into every layer-1 head; clicks cut K)")
    args = ap.parse_args()
    print(f"load average (1, 5, 15 min): {os.getloadavg()}; cores: {os.cpu_count()}")
    model = mechlib.load_model()
    if args.widget == "head_toggle":
        html = live.head_toggle(model, prefix="bench", assets="site").data
        clicks = [f"bench-cb-{i}" for i in range(8)]
    else:
        html = live.path_ablation(model, senders=["0.0", "0.3"], receivers=mechlib.layer_heads(model, 1),
                                  prefix="bench", assets="site").data
        clicks = ["bench-kind-K", "bench-kind-Q", "bench-kind-V"]
    sizes = {a["file"]: (live.asset_dir() / a["file"]).stat().st_size for a in live.spec_of(html)["assets"]}
    sizes["widget HTML in the page"] = len(html.encode())
    for name, size in sizes.items():
        print(f"  {name:<28} {size / 1000:7.1f} kB")
    print(f"  {'assets added to the page':<28} {sum(sizes.values()) / 1000:7.1f} kB")

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as d, sync_playwright() as p:
        page_path = page_folder(Path(d), html)
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        for width in (1280, 390):
            tab = b.new_page(viewport={"width": width, "height": 900})
            errors = []
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.on("console", lambda m: m.type == "error" and errors.append(m.text))
            tab.goto(page_path.as_uri())
            tab.wait_for_selector("#bench-root[data-ready='1']")
            if errors:
                raise SystemExit(f"errors in the page: {errors}")
            if args.screenshots:
                args.screenshots.mkdir(parents=True, exist_ok=True)
                # head toggle: heads 0.0 and 0.3 off; path ablation: the keys cut
                for c in (["bench-cb-0", "bench-cb-3"] if args.widget == "head_toggle" else ["bench-kind-K"]):
                    tab.click("#" + c)
                tab.hover("#bench-attn tr:nth-child(20) td:nth-child(12)")
                tab.screenshot(path=str(args.screenshots / f"live_{args.widget}_{width}.png"), full_page=True)
                print(f"  screenshot {args.screenshots / f'live_{args.widget}_{width}.png'}")
            if width != 1280:
                wide = tab.evaluate("() => document.documentElement.scrollWidth")
                print(f"  at {width} px the page is {wide} px wide")
                continue
            times = tab.evaluate("""([n, ids]) => {
              const out = [];
              for (let i = 0; i < n; i++) {
                const cb = document.getElementById(ids[i % ids.length]);
                const t = performance.now(); cb.click();
                void document.body.offsetHeight;
                out.push(performance.now() - t);
              }
              return out;
            }""", [args.clicks, clicks])
            run = tab.evaluate("""(n) => {
              const t = Array.from({length: 32}, (_, i) => (7 * i) % 32), out = [];
              for (let i = 0; i < n; i++) {
                const s = performance.now(); window.mechlibLive.run(t, {heads_off: ["0." + (i % 4)]});
                out.push(performance.now() - s);
              }
              return out;
            }""", args.clicks)
            tab.close()
            q = statistics.quantiles(times, n=10)
            print(f"click -> page updated (n={args.clicks}, sequence of {len(live.head_toggle_config(model)['tokens'])} tokens): "
                  f"median {statistics.median(times):.2f} ms, p90 {q[-1]:.2f} ms, max {max(times):.2f} ms")
            print(f"mechlibLive.run, 32 tokens (n={args.clicks}): median {statistics.median(run):.2f} ms, max {max(run):.2f} ms")
        b.close()


if __name__ == "__main__":
    main()
