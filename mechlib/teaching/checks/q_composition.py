"""Checks of the exercises of Chapter 4, Q-Composition (``04_q_composition.ipynb``)."""
from __future__ import annotations

import functools
from typing import Any, Iterator

from mechlib.heads import head_label
from mechlib.teaching import reference as ref
from mechlib.teaching.checking import (
    Case,
    CheckResult,
    bundled,
    check_model,
    compare_tensor,
    head_pairs,
    model_desc,
    run_check,
)
from mechlib.teaching.checks.k_composition import cases_pair_score, cases_path_ablation


def check_q_composition_score(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 04.1: ``q_composition_score(model, sender, receiver)`` is ``C(W_OV^{s}, W_QK^{r})``."""
    return run_check("04.1", "q_composition_score", fn, lambda: cases_pair_score("Q"), verbose,
                     success="matches C(W_OV^sender, W_Q W_K^T of the receiver) (float64) for every pair")


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


def check_sender_qk(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 04.2: ``sender_qk(model, sender, receiver, side)``: the receiver's bilinear form with the
    sender's output on the query side (``W_OV^s W_QK^r``) or the key side (``W_QK^r W_OV^{s T}``)."""
    return run_check("04.2", "sender_qk", fn, _cases_sender_qk, verbose,
                     success="both sides of the bilinear form match the float64 reference")


def check_remove_from_input(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 04.3: ``remove_from_input(model, tokens, senders, receivers, kind)`` is path ablation
    of lists of heads through any input."""
    return run_check("04.3", "remove_from_input", fn, lambda: cases_path_ablation(("Q", "K", "V"), True), verbose,
                     success="logits match mechlib.path_ablation for Q, K and V, single heads and lists")
