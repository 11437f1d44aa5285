"""The exercise registry: what the modules of :mod:`mechlib.teaching.exercises` declare, in book order.

``ALL_EXERCISES`` lists every exercise; ``EXERCISES`` groups them by notebook
(``"02_v_composition"`` ...), ``NOTEBOOKS`` names the notebooks, ``EXERCISE_BY_ID`` finds
one by id, ``MAX_POINTS`` is what a class can earn. Nothing is listed here by hand: a new
module in :mod:`mechlib.teaching.exercises` is found, and a test checks that ids are unique.
"""
from __future__ import annotations

import importlib
import pkgutil

from mechlib.teaching import exercises as _package
from mechlib.teaching.exercise import Exercise


def _declared() -> list[Exercise]:
    modules = [importlib.import_module(f"{_package.__name__}.{m.name}")
               for m in pkgutil.iter_modules(_package.__path__) if not m.name.startswith("_")]
    found: list[Exercise] = []
    # book order: the notebooks' names sort as the book runs (02 ... 05, 05b, ... 08, A1)
    for module in sorted(modules, key=lambda m: m.NOTEBOOK):
        for ex in module.EXERCISES:
            if ex.notebook != module.NOTEBOOK:
                raise ValueError(f"exercise {ex.id} of {module.__name__} names notebook {ex.notebook!r}")
            found.append(ex)
    ids = [ex.id for ex in found]
    if len(set(ids)) != len(ids):
        raise ValueError(f"exercise ids declared twice: {sorted({i for i in ids if ids.count(i) > 1})}")
    return found


ALL_EXERCISES: tuple[Exercise, ...] = tuple(_declared())
EXERCISES: dict[str, list[Exercise]] = {}
for _ex in ALL_EXERCISES:
    EXERCISES.setdefault(_ex.notebook, []).append(_ex)
NOTEBOOKS: tuple[str, ...] = tuple(EXERCISES)
EXERCISE_BY_ID: dict[str, Exercise] = {ex.id: ex for ex in ALL_EXERCISES}
MAX_POINTS: int = sum(ex.points for ex in ALL_EXERCISES)
