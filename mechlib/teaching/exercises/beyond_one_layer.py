"""The exercises of Chapter 1, Beyond One Layer (``01_beyond_one_layer.ipynb``): investigations.

Both ask for a finding about a model (:mod:`mechlib.teaching.findings`): checked on the bundled
model and on a renumbered copy of it, and in grading on models the learner has not seen.
"""
from __future__ import annotations

import functools
from typing import Iterator

from mechlib.heads import head_label
from mechlib.teaching import findings_refs as refs
from mechlib.teaching.comparisons import Mismatch, compare_scalar, fmt_number
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.findings import compare_best_head, induction_models, read_head, repeated_inputs, shape_models

WRITER_HINTS = {
    "norm of the mean": "you took the norm of the mean vector; the chapter averages the norm of every "
                        "position's vector, mean(||o||), which does not cancel directions that differ",
    "squared norms": "that is a ratio of mean squared norms; take the norm itself, ||o|| = sqrt(sum o^2)",
    "token and position": "the question compares with the token embedding W_E[t] alone, not with token plus "
                          "position",
    "with b_O": "the head writes z W_O; b_O is the layer's bias, one vector shared by all its heads",
    "mean of ratios": "that is the mean of each position's ratio ||o|| / ||W_E[t]||; the question divides the two "
                      "means: mean(||o||) / mean(||W_E[t]||)",
}


def _cases_writer() -> Iterator[Case]:
    for i, model in enumerate(induction_models() + shape_models()):
        tokens, _ = repeated_inputs(model, 41 + i)
        ratios = refs.writer_ratios(model, tokens)
        wrong = {m: refs.writer_ratios(model, tokens, m) for m in WRITER_HINTS}
        yield Case(f"{model.cfg.n_heads} layer-0 heads of {_desc(model)}", (model, tokens),
                   functools.partial(compare_best_head, model=model, values=ratios, slack=0.01, rtol=1e-4,
                                     atol=1e-5, number="ratio to the token embedding",
                                     number_hints=lambda h, wrong=wrong: tuple(
                                         (w[h], hint) for m, w in wrong.items() for hint in [WRITER_HINTS[m]])))


def _desc(model) -> str:
    from mechlib.teaching.inputs import model_desc

    return model_desc(model)


COLLAPSE_HINTS = {
    "mean ablation": "you mean-ablated layer 0 (each head's average output kept); the chapter zero-ablates: "
                     "mechlib.ablation_hooks(model, heads) or run_with_ablation's default",
    "layer 1 ablated": "the second number is the clean score again: zeroing layer 1's outputs does not change "
                       "layer 1's own attention. Switch off layer 0 and look at layer 1",
    "strongest previous-token head only": "you ablated one previous-token head; the question switches off every "
                                          "layer-0 head (the other ones still do part of the job)",
    "layer output zeroed": "you zeroed layer 0's whole output (hook_attn_out), its bias b_O included; zero-ablating "
                           "the heads sets what each head writes, z, to 0 (mechlib.ablation_hooks), and b_O, which "
                           "belongs to no head, stays",
}


def compare_collapse(got, model, values: dict, wrong: dict) -> None:
    """``got`` is ``(head, clean, ablated)``: the layer-1 head with the top induction score (within 0.01),
    and its two scores."""
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        raise Mismatch(f"the result has the wrong type: expected a tuple ((layer, head), clean, ablated), got "
                       f"{type(got).__name__} {str(got)[:60]}")
    head = read_head(got[0], model)
    best = max(v[0] for v in values.values())
    if head not in values or values[head][0] < best - 0.01:
        ok = [head_label(h) for h, v in values.items() if v[0] >= best - 0.01]
        got_text = (f" (induction score {fmt_number(values[head][0])})" if head in values
                    else ": not a head of the last layer, where induction happens in this model")
        raise Mismatch(f"the head: expected {' or '.join(ok)} (induction score {fmt_number(best)}), got "
                       f"{head_label(head)}{got_text}")
    compare_scalar(got[1], values[head][0], rtol=1e-3, atol=1e-4, what=f"the clean induction score of "
                   f"{head_label(head)}")
    compare_scalar(got[2], values[head][1], rtol=1e-3, atol=1e-4,
                   what=f"the induction score of {head_label(head)} with layer 0 ablated",
                   alternatives=tuple((w[head][1], COLLAPSE_HINTS[m]) for m, w in wrong.items()))


def _cases_collapse() -> Iterator[Case]:
    for i, model in enumerate(induction_models() + shape_models()):
        tokens, _ = repeated_inputs(model, 43 + i)
        values = refs.induction_collapse(model, tokens)
        wrong = {m: refs.induction_collapse(model, tokens, m) for m in COLLAPSE_HINTS}
        yield Case(f"the layer-1 heads of {_desc(model)}", (model, tokens),
                   functools.partial(compare_collapse, model=model, values=values, wrong=wrong))


NOTEBOOK = '01_beyond_one_layer'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='01.1', function='strongest_writer', title='Investigate: who writes most into layer 1?',
             difficulty=2, importance=3, minutes=15,
             draw=_cases_writer,
             statement='``strongest_writer(model, tokens)`` returns ``((layer, head), ratio)``: the layer-0 head '
                       'whose output ``z W_O`` has the largest mean norm over batch and positions, and that mean '
                       'norm over the mean norm of the token embedding ``W_E[t]``.',
             success="the head and its ratio agree with the measurement on every model"),
    exercise(id='01.2', function='induction_collapse', title='Investigate: does layer 1 need layer 0?',
             difficulty=2, importance=4, minutes=20,
             draw=_cases_collapse,
             statement='``induction_collapse(model, tokens)`` returns ``((layer, head), clean, ablated)``: the '
                       'last-layer head with the highest induction score, that score, and its score with every '
                       'layer-0 head zero-ablated.',
             success="the induction head and both of its scores agree with the measurement on every model"),
)
