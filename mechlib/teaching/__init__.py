"""The teaching floor: exercise checks, the exercise registry, and grading.

Imports the core (:mod:`mechlib`) and nothing from :mod:`mechlib.views`:

* :mod:`~mechlib.teaching.checking` -- the check framework (cases, comparisons, results);
* :mod:`~mechlib.teaching.reference` -- independent float64 reference computations;
* :mod:`~mechlib.teaching.checks` -- one module of checks per exercise notebook;
* :mod:`~mechlib.teaching.registry` -- every exercise, its ratings and its check;
* :mod:`~mechlib.teaching.grading` -- ``mechlib-grade``, which grades a folder of
  submitted notebooks, each run in :mod:`~mechlib.teaching.sandbox`;
  :mod:`~mechlib.teaching.kernel_side` is its part that runs inside the student's
  kernel and records outputs, which cross as plain data (:mod:`~mechlib.teaching.transport`)
  to be judged in the grader's process.
"""
