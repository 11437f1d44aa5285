"""How fast mechlib-grade grades a class, and what the sandbox adds per notebook.

    python benchmarks/grading_speed.py [--students 20] [--jobs 2]

Builds a class of ``--students`` students, each handing in all 7 exercise notebooks, in
rotation: the solutions, the untouched exercises (blanks), and broken notebooks (a
cell that raises, a cell that calls ``sys.exit``, a killed kernel). Grades it twice
with ``--jobs``, in the sandbox and with ``--no-sandbox``, and prints notebooks per
minute for each and the sandbox's overhead per notebook (the difference of the two
wall times, times the jobs, divided by the number of notebooks).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from mechlib.teaching import registry
from mechlib.teaching.grading.folder import grade

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("solutions", "blank", "raises", "sys_exit", "kernel_kill")


def make_class(folder: Path, students: int) -> None:
    for i in range(students):
        kind = KINDS[i % len(KINDS)]
        student = folder / f"s{i:02d}_{kind}"
        student.mkdir(parents=True)
        for name in registry.NOTEBOOKS:
            src = ROOT / ("exercises" if kind == "blank" else "solutions") / f"{name}.ipynb"
            nb = nbformat.read(src, as_version=4)
            extra = {"raises": 'raise RuntimeError("broken")', "sys_exit": "import sys\nsys.exit(1)",
                     "kernel_kill": "import os\nos._exit(1)"}.get(kind)
            if extra:
                nb.cells.insert(len(nb.cells) // 2, nbformat.v4.new_code_cell(extra))
            nbformat.write(nb, student / f"{name}.ipynb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="grading-bench-"))
    try:
        make_class(tmp / "class", args.students)
        n = args.students * len(registry.NOTEBOOKS)
        times = {}
        for mode in ("sandbox", "no-sandbox"):
            start = time.perf_counter()
            grades = grade(tmp / "class", tmp / f"out-{mode}", jobs=args.jobs, progress=False,
                                   sandbox=(mode == "sandbox"))
            times[mode] = time.perf_counter() - start
            totals = sorted({g.total() for g in grades})
            print(f"{mode:>10}: {n} notebooks in {times[mode]:.0f} s = {60 * n / times[mode]:.1f} notebooks/min "
                  f"(jobs {args.jobs}; totals seen {totals})")
        overhead = (times["sandbox"] - times["no-sandbox"]) * args.jobs / n
        print(f"sandbox overhead: {overhead:+.2f} s per notebook")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
