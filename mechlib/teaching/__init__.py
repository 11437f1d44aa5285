"""The teaching floor: exercise checks, the exercise registry, and grading.

Imports the core (:mod:`mechlib`) and nothing from :mod:`mechlib.views`:

* :mod:`~mechlib.teaching.checking` -- the check framework (cases, comparisons, results);
* :mod:`~mechlib.teaching.reference` -- independent float64 reference computations;
* :mod:`~mechlib.teaching.checks` -- one module of checks per exercise notebook;
* :mod:`~mechlib.teaching.registry` -- every exercise, its ratings and its check;
* :mod:`~mechlib.teaching.grading` -- ``mechlib-grade``, which grades a folder of
  submitted notebooks (and :mod:`~mechlib.teaching.kernel_side`, its part that runs
  inside the student's kernel).
"""
