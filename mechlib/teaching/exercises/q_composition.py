"""The exercises of Chapter 4, Q-Composition (``04_q_composition.ipynb``)."""
from __future__ import annotations

import functools
from typing import Iterator

from mechlib.heads import head_label
from mechlib.teaching import reference as ref
from mechlib.teaching.comparisons import compare_tensor
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.inputs import bundled, check_model, head_pairs, model_desc
from mechlib.teaching.exercises.k_composition import cases_pair_score, cases_path_ablation


def _cases_sender_qk() -> Iterator[Case]:
    for model in (bundled(), check_model()):
        for s, r in head_pairs(model)[:: max(1, len(head_pairs(model)) // 6)]:
            ov, qk = ref.ov64(model, s), ref.qk64(model, r)
            forms = {"Q": ov @ qk, "K": qk @ ov.T}
            for side in "QK":
                other = "K" if side == "Q" else "Q"
                mistake = ("the sender's output x W_OV is a row vector that then meets W_QK: W_OV^s @ W_QK^r"
                           if side == "Q" else
                           "the sender's output x W_OV enters the key as k = x W_OV W_K, so the form is "
                           "W_QK^r @ (W_OV^s)^T: transpose the OV circuit")
                alts = ((forms[other], f"this is the {other} side"), (qk @ ov, mistake))
                yield Case(f"side {side!r}, sender {head_label(s)}, receiver {head_label(r)} of {model_desc(model)}",
                           (model, s, r, side),
                           functools.partial(compare_tensor, expected=forms[side], rtol=1e-4, atol=1e-5,
                                             alternatives=alts))


NOTEBOOK = '04_q_composition'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='04.1', function='q_composition_score', title='Q-composition score of one pair',
             difficulty=1, importance=4, minutes=5,
             draw=lambda: cases_pair_score("Q"),
             statement='``q_composition_score(model, sender, receiver)`` is ``C(W_OV^{s}, W_QK^{r})``.',
             success="matches C(W_OV^sender, W_Q W_K^T of the receiver) (float64) for every pair"),
    exercise(id='04.2', function='sender_qk', title='Which side of the bilinear form?',
             difficulty=2, importance=3, minutes=10,
             draw=_cases_sender_qk,
             statement="``sender_qk(model, sender, receiver, side)``: the receiver's bilinear form with the sender's output on the query side (``W_OV^s W_QK^r``) or the key side (``W_QK^r W_OV^{s T}``).",
             success="both sides of the bilinear form match the float64 reference"),
    exercise(id='04.3', function='remove_from_input', title='Path ablation through Q, K or V',
             difficulty=3, importance=4, minutes=20,
             draw=lambda: cases_path_ablation(("Q", "K", "V"), True),
             statement='``remove_from_input(model, tokens, senders, receivers, kind)`` is path ablation of lists of heads through any input.',
             success="logits match mechlib.path_ablation for Q, K and V, single heads and lists"),
)
