"""The exercises of The Circuit Forms, in chapter 5 (``05b_circuit_forms.ipynb``).

The learner chooses the criterion, so the checks do not compare with one right step. They
run the learner's function on synthetic training curves whose transition is known (a
logistic step of known centre and width, rising or falling, at any scale, with a little
noise, on evenly or unevenly spaced steps) and accept any answer inside the transition:
between the steps where the noiseless curve has gone 10% and 90% of its way, widened by
one checkpoint spacing on each side. A fixed threshold ("the first step above 0.5"), a
criterion that only works for rising curves, or one that answers outside the change
fails; half-way, the steepest change, or a threshold at 20%-80% of the way pass.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Iterator

import torch

from mechlib.teaching.results import single_number
from mechlib.teaching.comparisons import Mismatch
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.inputs import _case_seed, generator, hidden_seed

#: evenly spaced steps, and the bundled model's uneven checkpoint steps
_EVEN = list(range(0, 2001, 25))
_UNEVEN = ([0, 50, 100, 150, 200, 250] + list(range(300, 801, 20))
           + [900, 1000, 1250, 1500, 2000, 2500, 3000, 3500, 4000])


@functools.lru_cache(maxsize=None)
def _curve(steps: tuple[int, ...], centre: float, width: float, start: float, end: float, noise: float,
           seed: int) -> torch.Tensor:
    """``start + (end - start) * sigmoid((step - centre) / width)`` plus Gaussian noise of
    ``noise * |end - start|``; the first and last values are exact (no noise there)."""
    t = torch.tensor(steps, dtype=torch.float64)
    v = start + (end - start) * torch.sigmoid((t - centre) / width)
    eps = torch.randn(len(steps), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    v = v + noise * abs(end - start) * eps
    return v.float()


def _window(steps: list[int], centre: float, width: float) -> tuple[float, float]:
    """Steps where the noiseless logistic is 10% and 90% of its way, widened by one local spacing."""
    lo, hi = centre - width * math.log(9), centre + width * math.log(9)
    def gap_at(x: float) -> int:  # the spacing of the checkpoints around step x
        return next((b - a for a, b in zip(steps, steps[1:]) if a <= x < b), steps[-1] - steps[-2])

    return lo - gap_at(lo), hi + gap_at(hi)


def _compare_formation_step(got: Any, steps: list[int], centre: float, width: float) -> None:
    got = single_number(got)  # numpy scalars, one-element arrays and tensors: the Python number they hold
    if isinstance(got, bool) or not isinstance(got, int):
        raise Mismatch(f"the result has the wrong type: expected an int (one of steps), got {type(got).__name__} {got!r}")
    if got not in steps:
        raise Mismatch(f"the result {got} is not one of the steps given")
    lo, hi = _window(steps, centre, width)
    if not lo <= got <= hi:
        side = "before the curve has started to change" if got < lo else "after the change is over"
        raise Mismatch(f"step {got} is {side}: this curve changes between steps {math.ceil(lo)} and "
                       f"{math.floor(hi)} (where it has gone 10% and 90% of its way, give or take one "
                       "checkpoint)")


def _synthetic(seed: int) -> list[tuple[str, list[int], float, float, float, float, float]]:
    """(description, steps, centre, width, start, end, noise) of the curves the checks use."""
    fixed = [
        ("a rising score from 0.1 to 0.9, even steps", _EVEN, 700.0, 60.0, 0.1, 0.9, 0.01),
        ("a falling loss from 3.5 to 0.05, even steps", _EVEN, 450.0, 40.0, 3.5, 0.05, 0.01),
        ("a score rising from 0.12 to 0.21 (a composition score's scale), the bundled model's steps",
         _UNEVEN, 420.0, 25.0, 0.12, 0.21, 0.01),
        ("a falling loss, the bundled model's steps", _UNEVEN, 520.0, 30.0, 3.4, 0.3, 0.01),
        ("a score rising from -2 to 40, late in training, even steps", _EVEN, 1500.0, 100.0, -2.0, 40.0, 0.0),
        ("a curve that changes early, the bundled model's steps", _UNEVEN, 260.0, 20.0, 1.0, 2.0, 0.0),
    ]
    if hidden_seed() is None:
        return fixed
    g = generator(seed)
    out = []
    for i in range(4):
        steps = _EVEN if i % 2 == 0 else _UNEVEN
        centre = float(300 + 500 * torch.rand(1, generator=g)) if steps is _UNEVEN else float(
            250 + 1500 * torch.rand(1, generator=g))
        width = float(20 + 40 * torch.rand(1, generator=g))
        start = float(4 * torch.randn(1, generator=g))
        end = start + float((0.1 + 5 * torch.rand(1, generator=g)) * (1 if i < 2 else -1))
        out.append((f"hidden curve {i + 1}", steps, centre, width, start, end, 0.01))
    return out


def _cases_formation_step() -> Iterator[Case]:
    for k, (desc, steps, centre, width, start, end, noise) in enumerate(_synthetic(101)):
        values = _curve(tuple(steps), centre, width, start, end, noise, seed=_case_seed(1000 * k))
        yield Case(f"{desc}", (list(steps), values.clone()),
                   functools.partial(_compare_formation_step, steps=list(steps), centre=centre, width=width))


_ANSWERS = ("before", "with", "after")


def _compare_order(got: Any, expected: str) -> None:
    if not isinstance(got, str):
        raise Mismatch(f"the result has the wrong type: expected one of {_ANSWERS} (a str), got {type(got).__name__}")
    if got not in _ANSWERS:
        raise Mismatch(f"the result must be one of {_ANSWERS}; got {got!r}")
    if got != expected:
        raise Mismatch(f"expected {expected!r}, got {got!r}")


def _cases_onset_order() -> Iterator[Case]:
    g = generator(202)
    jitter = 0.0 if hidden_seed() is None else float(200 * torch.rand(1, generator=g))
    steps = _EVEN
    base = 600.0 + jitter
    # (what, centre of first, centre of second, tolerance, expected); widths 30: windows are +-90 steps
    plans = [
        ("the first curve changes 600 steps earlier", base, base + 600, 50, "before"),
        ("the first curve changes 600 steps later", base + 600, base, 50, "after"),
        ("both change at the same step (one rises, the other falls)", base, base, 250, "with"),
        ("400 steps apart, but the tolerance is 1000 steps", base, base + 400, 1000, "with"),
        ("400 steps apart, tolerance 100", base + 400, base, 100, "after"),
    ]
    for k, (what, c1, c2, tol, expected) in enumerate(plans):
        a = _curve(tuple(steps), c1, 30.0, 0.1, 0.8, 0.01, seed=_case_seed(7 * k))
        b = _curve(tuple(steps), c2, 30.0, 3.5, 0.2, 0.01, seed=_case_seed(7 * k + 3))
        yield Case(f"{what} (tolerance={tol})", (list(steps), a.clone(), b.clone(), tol),
                   functools.partial(_compare_order, expected=expected))


NOTEBOOK = '05b_circuit_forms'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='05b.1', function='formation_step', title='When does a curve change? Your criterion',
             difficulty=2, importance=5, minutes=15,
             draw=_cases_formation_step,
             statement="``formation_step(steps, values)`` is a step inside the curve's transition.",
             success="your criterion finds the change in rising and falling curves, at any scale and spacing"),
    exercise(id='05b.2', function='onset_order', title='Before, with or after?',
             difficulty=2, importance=4, minutes=15,
             draw=_cases_onset_order,
             statement='``onset_order(steps, first, second, tolerance)`` says "before", "with" or "after".',
             success="before, with and after told apart, rising and falling curves alike"),
)
