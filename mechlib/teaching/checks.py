"""The self-checks the notebooks call: ``checks.check_<function>(<function>)``.

Derived from the exercises' declarations (:mod:`mechlib.teaching.registry`): one
``check_<function>(fn, verbose=True)`` per exercise, which runs
:meth:`~mechlib.teaching.exercise.Exercise.check`, prints one line that says what is wrong
(or that it passed) and returns a :class:`~mechlib.teaching.results.CheckResult`.
"""
from __future__ import annotations

from typing import Any, Callable

from mechlib.teaching.exercise import Exercise
from mechlib.teaching.registry import ALL_EXERCISES
from mechlib.teaching.results import CheckResult


def _self_check(ex: Exercise) -> Callable[..., CheckResult]:
    def check(fn: Any, verbose: bool = True, model: Any = None) -> CheckResult:
        return ex.check(fn, verbose, model=model)

    check.__name__ = check.__qualname__ = f"check_{ex.function}"
    check.__doc__ = (f"Exercise {ex.id}, {ex.title}: {ex.statement}\n\n"
                     f"Prints what is wrong with ``{ex.function}`` (or that it passed) and returns a CheckResult."
                     + ("\n\n``model``: also check it on this model (the one you loaded), against a computation on it."
                        if ex.on_model is not None else ""))
    return check


__all__ = [f"check_{ex.function}" for ex in ALL_EXERCISES]
globals().update({f"check_{ex.function}": _self_check(ex) for ex in ALL_EXERCISES})
