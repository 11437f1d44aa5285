"""How fast mechlib-grade grades a class, and what the sandbox adds per notebook.

    python benchmarks/grading_speed.py [--students 20] [--jobs 2] [--notebooks 07_combinatorial_richness]
        [--modes sandbox,no-sandbox] [--bundle 3]

Builds a class of ``--students`` students, each handing in the exercise notebooks (all, or
``--notebooks``), in rotation: the solutions, the untouched exercises (blanks), and broken
notebooks (a cell that raises, a cell that calls ``sys.exit``, a killed kernel). Grades it
with ``--jobs`` in each of ``--modes`` (the sandbox, ``--no-sandbox``), and prints notebooks
per minute for each and, with both, the sandbox's overhead per notebook (the difference of
the two wall times, times the jobs, divided by the number of notebooks).

``--bundle N``: the time the Gradescope autograder adds per submission: N submissions (the
first notebook, solved) each graded by the bundle's ``run_autograder`` in a scratch
``/autograder``, against the same notebook graded by ``mechlib-grade`` alone.
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


def make_class(folder: Path, students: int, notebooks: tuple[str, ...] = registry.NOTEBOOKS) -> None:
    for i in range(students):
        kind = KINDS[i % len(KINDS)]
        student = folder / f"s{i:02d}_{kind}"
        student.mkdir(parents=True)
        for name in notebooks:
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
    parser.add_argument("--notebooks", default=",".join(registry.NOTEBOOKS))
    parser.add_argument("--modes", default="sandbox,no-sandbox")
    parser.add_argument("--bundle", type=int, default=0)
    args = parser.parse_args()
    notebooks = tuple(args.notebooks.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="grading-bench-"))
    try:
        if args.bundle:
            return bundle_overhead(tmp, notebooks[0], args.bundle)
        make_class(tmp / "class", args.students, notebooks)
        n = args.students * len(notebooks)
        times = {}
        for mode in args.modes.split(","):
            start = time.perf_counter()
            grades = grade(tmp / "class", tmp / f"out-{mode}", jobs=args.jobs, progress=False,
                                   sandbox=(mode == "sandbox"))
            times[mode] = time.perf_counter() - start
            totals = sorted({g.total() for g in grades})
            print(f"{mode:>10}: {n} notebooks in {times[mode]:.0f} s = {60 * n / times[mode]:.1f} notebooks/min "
                  f"(jobs {args.jobs}; totals seen {totals})")
        if len(times) == 2:
            overhead = (times["sandbox"] - times["no-sandbox"]) * args.jobs / n
            print(f"sandbox overhead: {overhead:+.2f} s per notebook")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bundle_overhead(tmp: Path, name: str, n: int) -> None:
    """Seconds per submission: the bundle's run_autograder against mechlib-grade on the same notebook."""
    import json
    import os
    import subprocess
    import zipfile

    from mechlib.teaching.grading.gradescope import write_bundle

    bundle = write_bundle(tmp / "autograder.zip")
    src = ROOT / "solutions" / f"{name}.ipynb"
    direct, wrapped = [], []
    for i in range(n):
        (tmp / f"c{i}" / "ann").mkdir(parents=True)
        shutil.copy(src, tmp / f"c{i}" / "ann")
        start = time.perf_counter()
        grade(tmp / f"c{i}", tmp / f"o{i}", jobs=1, progress=False)
        direct.append(time.perf_counter() - start)
        root = tmp / f"autograder{i}"
        with zipfile.ZipFile(bundle) as z:
            z.extractall(root / "source")
        (root / "submission").mkdir(parents=True)
        shutil.copy(src, root / "submission")
        env = {"PATH": os.environ["PATH"], "AUTOGRADER_ROOT": str(root), "MECHLIB_PYTHON": sys.executable,
               "PYTHONPATH": str(root / "source" / "mechlib-src"), "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, check=True)
        wrapped.append(time.perf_counter() - start)
        score = json.loads((root / "results" / "results.json").read_text())["score"]
        print(f"submission {i}: mechlib-grade {direct[-1]:.1f} s, run_autograder {wrapped[-1]:.1f} s (score {score})")
    print(f"the bundle adds {(sum(wrapped) - sum(direct)) / n:+.1f} s per submission "
          f"({sum(direct) / n:.1f} s -> {sum(wrapped) / n:.1f} s, {n} submissions of {name})")


if __name__ == "__main__":
    sys.exit(main())
