"""How fast does the head toggle respond?

Measures, on the bundled model:

1. the live widget (mechlib.views.widgets.head_toggle): the time from flipping one checkbox
   (``checkbox.value = not checkbox.value``, exactly what a click does in the kernel) until
   the observer has recomputed the loss, induction scores and pattern and has set the new
   HTML of all three views -- over ``--toggles`` random toggles. Wall-clock time and the
   process's CPU time are both printed: on a shared machine the wall clock includes waiting
   for a core, the CPU time does not;
2. the state update alone (one ablated forward pass plus the scores, no HTML);
3. the static toggle for the HTML book: precompute time, payload size, and (with
   ``--browser``, needs Chromium at /usr/bin/chromium) the time from a click to the updated
   page in headless Chromium.

Run:  .venv/bin/python benchmarks/head_toggle.py [--toggles 50] [--browser]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import mechlib
from mechlib.views import static_toggle, widgets


def summarise(name: str, wall: list[float], cpu: list[float] | None = None) -> None:
    line = f"{name:<44} wall median {1e3 * statistics.median(wall):7.1f} ms   max {1e3 * max(wall):7.1f} ms"
    if cpu is not None:
        line += f"   | CPU median {1e3 * statistics.median(cpu):6.1f} ms   max {1e3 * max(cpu):6.1f} ms"
    print(line)


def bench_widget(model, n: int, seed: int) -> None:
    w = widgets.head_toggle(model)
    rng = random.Random(seed)
    heads = list(w.checkboxes)
    wall, cpu = [], []
    for _ in range(n):
        cb = w.checkboxes[rng.choice(heads)]
        t, c = time.perf_counter(), time.process_time()
        cb.value = not cb.value  # the observer recomputes and redraws synchronously
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    summarise(f"live widget: toggle -> views updated (n={n})", wall, cpu)
    wall, cpu = [], []
    for _ in range(n):
        on = [hd for hd in heads if rng.random() < 0.5]
        t, c = time.perf_counter(), time.process_time()
        w.state.update(on)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    summarise(f"state.update only (n={n})", wall, cpu)


def bench_static(model, browser: bool, n: int, seed: int) -> None:
    t, c = time.perf_counter(), time.process_time()
    out = static_toggle.static_head_toggle(model, prefix="bench")
    print(f"static toggle: precompute + render {time.perf_counter() - t:.2f} s wall, "
          f"{time.process_time() - c:.2f} s CPU; HTML incl. payload {len(out.data.encode()) / 1024:.1f} KiB")
    if not browser:
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as d:
        page_path = Path(d) / "toggle.html"
        page_path.write_text(f"<!doctype html><html><body>{out.data}</body></html>")
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = b.new_page()
            page.goto(page_path.as_uri())
            page.wait_for_selector("#bench-root[data-ready='1']")
            # click() dispatches 'change' and the handler redraws synchronously; reading
            # offsetHeight then forces layout, so this is the time to a laid-out updated page
            times = page.evaluate(
                """([n, seed]) => {
                  let s = seed, out = [];
                  const rand = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
                  for (let i = 0; i < n; i++) {
                    const cb = document.getElementById("bench-cb-" + Math.floor(rand() * 8));
                    const t = performance.now(); cb.click();
                    void document.body.offsetHeight;  // force style and layout of the new values
                    out.push(performance.now() - t);
                  }
                  return out;
                }""", [n, seed])
            b.close()
    summarise(f"static toggle in Chromium: click -> page updated (n={n})", [x / 1e3 for x in times])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--toggles", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--browser", action="store_true", help="also time the static toggle in headless Chromium")
    args = ap.parse_args()
    print(f"load average (1, 5, 15 min): {os.getloadavg()}; cores: {os.cpu_count()}")
    model = mechlib.load_model()
    bench_widget(model, args.toggles, args.seed)
    bench_static(model, args.browser, args.toggles, args.seed)


if __name__ == "__main__":
    main()
