"""How fast does the head toggle respond?

Measures, on the bundled model:

1. the live widget (mechlib.views.widgets.head_toggle): the time from flipping one checkbox
   (``checkbox.value = not checkbox.value``, exactly what a click does in the kernel) until
   the observer has recomputed the loss, induction scores and pattern and has set the new
   HTML of all three views -- over ``--toggles`` random toggles. Wall-clock time and the
   process's CPU time are both printed: on a shared machine the wall clock includes waiting
   for a core, the CPU time does not;
2. the state update alone (one ablated forward pass plus the scores, no HTML).

The page's toggle (the model run in the browser) is measured by benchmarks/live_widget.py.

Run:  .venv/bin/python benchmarks/head_toggle.py [--toggles 50]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import mechlib
from mechlib.views import widgets


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--toggles", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"load average (1, 5, 15 min): {os.getloadavg()}; cores: {os.cpu_count()}")
    model = mechlib.load_model()
    bench_widget(model, args.toggles, args.seed)


if __name__ == "__main__":
    main()
