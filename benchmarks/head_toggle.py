"""How fast does the kernel answer the head toggle?

For a model the page cannot run, the live head toggle asks the kernel for each forward pass
(mechlib.views.live.kernel.kernel_run: one zero-ablated run of the model and its float32
buffers). Measured on the bundled model, over ``--toggles`` random sets of heads switched
off: wall-clock and CPU time per answer (on a shared machine the wall clock includes
waiting for a core, the CPU time does not). The message's trip through Jupyter or Colab
comes on top.

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
from mechlib.views import live
from mechlib.views.live.kernel import kernel_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--toggles", type=int, default=50)
    args = ap.parse_args()
    print(f"load average (1, 5, 15 min): {os.getloadavg()}; cores: {os.cpu_count()}")
    model = mechlib.load_model()
    tokens = live.head_toggle_config(model)["tokens"]
    heads = [mechlib.head_label(h) for h in mechlib.all_heads(model)]
    rng = random.Random(0)
    wall, cpu = [], []
    for i in range(args.toggles):
        off = rng.sample(heads, rng.randint(0, len(heads)))
        w0, c0 = time.perf_counter(), time.process_time()
        kernel_run(model, {"type": "run", "id": i, "tokens": tokens, "heads_off": off})
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    print(f"kernel answer ({len(tokens)} tokens, n={args.toggles}): wall median {1e3 * statistics.median(wall):.1f} ms, "
          f"max {1e3 * max(wall):.1f} ms; CPU median {1e3 * statistics.median(cpu):.1f} ms")


if __name__ == "__main__":
    main()
