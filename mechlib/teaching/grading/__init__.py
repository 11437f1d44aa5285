"""Grade a folder of submitted exercise notebooks: ``mechlib-grade SUBMISSIONS --out OUT``.

``SUBMISSIONS`` holds one folder per student, each with any of the exercise notebooks
under their original names (``02_v_composition.ipynb`` ...). A short pipeline of rooms,
each a module testable alone:

1. :mod:`~.judge`, **in the grader's own process**: each exercise of the notebook gives
   its **hidden cases** for a seed picked now (other random models, tokens and sizes than
   the notebook's self-checks), reference values included.
2. :mod:`~.transport`: only the cases' *inputs* go into the sandbox, as plain data -- JSON
   and ``.npz``, never pickle, never code; the seed and the expected values stay here.
3. :mod:`~.notebook` starts :mod:`~.runner` (``python -P -m mechlib.teaching.grading.runner``)
   **in a sandbox** (:mod:`~.sandbox`: bubblewrap, a read-only system, no network, its own
   PID namespace, limits on memory, processes, file size and CPU; :mod:`~.processes` ends
   every process it started). The runner executes a copy of the notebook top to bottom in a
   fresh kernel, with a time limit per cell and per notebook and a cap on the output it
   keeps, and appends one cell in which :mod:`~.kernel_side` calls every exercise's
   function on those inputs and writes back what they returned, again as plain data.
4. :mod:`~.judge`, **in the grader's process**: those outputs are compared with the
   reference values. Nothing the verdict depends on ever exists inside the sandbox, so
   printing, patching or rewriting anything there changes at most the outputs it reports,
   which earn points only if they are right. :mod:`~.flags` marks code that reaches for the
   grading machinery for a human look.
5. :mod:`~.report`: ``OUT/records/<student>/<notebook>.json`` as soon as each notebook is
   graded (a rerun with the same ``--out`` skips notebooks whose file is unchanged, unless
   ``--regrade``); ``OUT/grades.csv``, ``OUT/feedback/<student>.md`` and ``OUT/summary.md``,
   rewritten after every notebook so they always agree.

:mod:`~.folder` runs this for a whole class (:func:`grade`), :mod:`~.cli` is the command
line (:func:`main`).
"""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # lazy, so that the runner and the kernel side import no more than they need
    if name == "grade":
        from mechlib.teaching.grading.folder import grade

        return grade
    if name == "main":
        from mechlib.teaching.grading.cli import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
