"""``mechlib-grade SUBMISSIONS --out OUT``: the command line (see :mod:`mechlib.teaching.grading`).

Exit status: 0 when every submitted notebook was graded, 1 when some could not be (the
grader's fault, not the student's; see the notes), 2 for bad arguments or a missing
sandbox, 130 when interrupted (what was graded is kept).
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from mechlib.teaching.grading.folder import grade
from mechlib.teaching.grading.sandbox import SandboxUnavailable
from mechlib.teaching.grading.settings import (
    DEFAULT_CELL_TIMEOUT,
    DEFAULT_MAX_OUTPUT,
    DEFAULT_MEMORY_GIB,
    DEFAULT_NOTEBOOK_TIMEOUT,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mechlib-grade",
        description="Grade a folder of submitted exercise notebooks (one folder per student), each in a sandbox, "
                    "into OUT/grades.csv, OUT/feedback/<student>.md and OUT/summary.md.")
    p.add_argument("submissions", nargs="?", help="folder with one sub-folder per student")
    p.add_argument("--out", help="output folder (also where a rerun resumes from)")
    p.add_argument("--canvas-csv", metavar="FILE",
                   help="also write FILE, a gradebook CSV that Canvas imports (Grades > Import): one column per "
                        "exercise notebook; name the student folders by their Canvas SIS login IDs")
    p.add_argument("--gradescope-bundle", metavar="FILE.zip",
                   help="write a Gradescope autograder (setup.sh, run_autograder) to FILE.zip and stop; "
                        "SUBMISSIONS and --out are then not needed")
    p.add_argument("--timeout", type=float, default=DEFAULT_CELL_TIMEOUT,
                   help=f"seconds allowed per cell, and per check (default {DEFAULT_CELL_TIMEOUT})")
    p.add_argument("--notebook-timeout", type=float, default=DEFAULT_NOTEBOOK_TIMEOUT,
                   help=f"seconds allowed per notebook (default {DEFAULT_NOTEBOOK_TIMEOUT})")
    p.add_argument("--jobs", type=int, default=2, help="notebooks graded in parallel (default 2)")
    p.add_argument("--max-output", type=int, default=DEFAULT_MAX_OUTPUT,
                   help=f"bytes of output kept per notebook (default {DEFAULT_MAX_OUTPUT})")
    p.add_argument("--memory", type=float, default=DEFAULT_MEMORY_GIB,
                   help=f"GiB of memory (address space) per process in the sandbox (default {DEFAULT_MEMORY_GIB:g})")
    p.add_argument("--regrade", action="store_true",
                   help="grade every notebook again, even those already graded in --out")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run the notebooks without the sandbox (where bubblewrap is missing); UNSAFE: the "
                        "feedback and the CSV say so")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = parser()
    args = p.parse_args(argv)
    if threading.current_thread() is not threading.main_thread():
        return _main(args, p)
    # Ctrl-C, and a polite kill, stop the run cleanly (what was graded is kept) -- even when the
    # grader was started from a shell that ignores SIGINT in background jobs
    old = {sig: signal.signal(sig, signal.default_int_handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _main(args, p)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _main(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    if args.gradescope_bundle:
        from mechlib.teaching.grading.gradescope import write_bundle

        try:
            path = write_bundle(args.gradescope_bundle)
        except ValueError as exc:
            p.error(str(exc))
        print(f"wrote {path}: upload it as the assignment's autograder (Gradescope: Configure Autograder > zip)")
        return 0
    if not args.submissions or not args.out:
        p.error("SUBMISSIONS and --out are required (unless --gradescope-bundle)")
    if args.no_sandbox:
        print("warning: --no-sandbox: the notebooks run with this user's rights and can read and change its files",
              file=sys.stderr)
    try:
        grades = grade(args.submissions, args.out, args.timeout, args.notebook_timeout, args.jobs, args.max_output,
                       sandbox=not args.no_sandbox, memory_gib=args.memory, regrade=args.regrade)
    except (ValueError, SandboxUnavailable) as exc:
        p.error(str(exc))
    except KeyboardInterrupt:
        print(f"interrupted: what was graded is in {args.out}; run the same command to finish", file=sys.stderr)
        return 130
    if args.canvas_csv:
        from mechlib.teaching.grading.gradebooks import write_canvas_csv

        print(f"Canvas gradebook: {write_canvas_csv(grades, args.canvas_csv)}")
    errors = sum(nb.grader_error for g in grades for nb in g.notebooks.values())
    print(f"graded {len(grades)} student(s): {Path(args.out) / 'grades.csv'}, summary in "
          f"{Path(args.out) / 'summary.md'}")
    if errors:
        print(f"{errors} notebook(s) could not be graded; see their feedback", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
