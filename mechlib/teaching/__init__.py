"""The teaching floor: exercises as data, their self-checks, and grading.

Imports the core (:mod:`mechlib`) and nothing from :mod:`mechlib.views`:

* :mod:`~mechlib.teaching.exercise` -- an :class:`~mechlib.teaching.exercise.Exercise`: its id,
  ratings and cases (inputs, reference, comparison, hints), the self-check and the verdict;
* :mod:`~mechlib.teaching.exercises` -- one module per exercise notebook, declaring its exercises;
* :mod:`~mechlib.teaching.registry` -- what those modules declare, in book order;
* :mod:`~mechlib.teaching.checks` -- ``checks.check_<function>``, derived from the registry;
* :mod:`~mechlib.teaching.comparisons`, :mod:`~mechlib.teaching.inputs`,
  :mod:`~mechlib.teaching.results` -- comparing with messages, the cases' inputs (hidden ones
  for grading), and the result of a check;
* :mod:`~mechlib.teaching.reference` -- independent float64 reference computations;
* :mod:`~mechlib.teaching.grading` -- ``mechlib-grade``, which grades a folder of
  submitted notebooks in rooms: the command line, the runner in the sandbox, the
  judge, the report, the sandbox, the transport and the kernel side.
"""
