"""The investigation of Chapter 2, V-Composition (``02_v_composition.ipynb``): which input carries a circuit.

Checked on induction models and on relay models (:mod:`mechlib.teaching.findings`), whose answers differ.
"""
from __future__ import annotations

import functools
from typing import Iterator

import mechlib
from mechlib.teaching import findings_refs as refs
from mechlib.teaching.comparisons import Mismatch, compare_scalar
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.findings import (induction_models, layer, model_cases, relay_inputs, relay_models,
                                       repeated_inputs, scored_loss)


def compare_decisive(got, rises: dict[str, float], loss_after: dict[str, float], all_positions: dict[str, float]):
    """``got`` is ``(kind, rise)``: the kind whose cut raises the scored loss most, and that rise."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Mismatch(f"the result has the wrong type: expected a tuple (kind, rise), got {type(got).__name__} "
                       f"{str(got)[:60]}")
    kind, rise = got
    if not isinstance(kind, str) or kind not in ("Q", "K", "V"):
        raise Mismatch(f"the kind has the wrong value: expected one of the strings 'Q', 'K', 'V', got {kind!r}")
    best = max(rises, key=rises.get)
    if kind != best:
        others = sorted(v for k, v in rises.items() if k != kind)
        # the hint only when this cut is clearly the cheapest (two cuts that cost nothing say nothing)
        hint = (". Hint: that is the cut that costs least; the question asks which input the circuit needs most"
                if rises[kind] < others[0] - 1e-3 else "")
        raise Mismatch(f"the kind: expected {best!r} (rise {rises[best]:.4g} nats), got {kind!r} (rise "
                       f"{rises[kind]:.4g} nats){hint}")
    compare_scalar(rise, rises[kind], rtol=1e-3, atol=2e-4, what=f"the rise of the loss when layer 0 is cut from {kind}",
                   alternatives=((loss_after[kind], "that is the loss after the cut; the rise is that loss minus the "
                                                    "clean model's loss"),
                                 (all_positions[kind], "that rise is averaged over every position; only the "
                                                       "predictions that mask marks count")))


def _cases_decisive() -> Iterator[Case]:
    groups = [(induction_models(), repeated_inputs, 51), (relay_models(), relay_inputs, 61)]
    for models, inputs, seed in groups:
        for model, tokens, mask, desc in model_cases(models, inputs, seed):
            rises = refs.input_rises(model, tokens, mask)
            clean = scored_loss(model(tokens), tokens, mask)
            everywhere = mask | True
            all_pos = {k: scored_loss(mechlib.path_ablation(model, tokens, layer(model, 0), layer(model, 1), k),
                                      tokens, everywhere) - scored_loss(model(tokens), tokens, everywhere)
                       for k in "QKV"}
            yield Case(f"layer 0 cut from layer 1 on {desc}", (model, tokens, mask),
                       functools.partial(compare_decisive, rises=rises,
                                         loss_after={k: v + clean for k, v in rises.items()}, all_positions=all_pos))


NOTEBOOK = '02_v_composition'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='02.6', function='decisive_input', title='Investigate: which input carries the circuit?',
             difficulty=3, importance=5, minutes=20,
             draw=_cases_decisive,
             statement='``decisive_input(model, tokens, mask)`` returns ``(kind, rise)``: the input of the '
                       "layer-1 heads (``'Q'``, ``'K'`` or ``'V'``) whose cut from every layer-0 head raises the "
                       'loss on the predictions ``mask`` marks the most, and that rise in nats.',
             success="the decisive input and its cost agree with the measurement on the induction and relay models"),
)
