"""The investigations of Chapter 3, K-Composition (``03_k_composition.ipynb``): which sender the keys
need, and why cutting the keys costs more than chance (:mod:`mechlib.teaching.findings`)."""
from __future__ import annotations

import functools
from typing import Iterator

import mechlib
from mechlib.heads import head_label
from mechlib.teaching import findings_refs as refs
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.findings import (compare_best_head, compare_numbers, induction_models, model_cases, repeated_inputs,
                                       shape_models)


def sender_hints(model, tokens, mask, kind: str) -> tuple[dict, callable]:
    """The hints of the sender investigations: a head found by the weights, and numbers measured wrong."""
    other = "Q" if kind == "K" else "K"
    wrong = {
        f"this is the rise when the sender is cut from the {other} input; the question cuts it from the "
        f"{kind} input (kind={kind!r})": refs.sender_rises(model, tokens, mask, other),
        "this is the rise when the head is switched off everywhere (a head ablation); cut it from the "
        f"{kind} input of layer 1 only (mechlib.path_ablation)": refs.head_ablation_rises(model, tokens, mask),
        "you cut the sender from one induction head only; cut it from every layer-1 head":
            refs.sender_rises(model, tokens, mask, kind, receivers="top"),
    }
    scores = mechlib.composition_scores(model, kind)[0, :, 1].max(-1).values  # best receiver per sender
    by_weights = (0, int(scores.argmax()))
    by_attention = mechlib.top_head(mechlib.prev_token_scores(model, tokens), layer=0)
    # a hint names the reason a wrong head was chosen only when no other reason picks the same head
    head_hints = {by_weights: f"this is the strongest {kind}-composition sender by its weights; the question "
                              f"asks what the model uses: measure the cut",
                  by_attention: f"this is the strongest previous-token head by its attention; the question asks "
                                f"which sender the {kind} input needs: measure the cut"}
    if by_weights == by_attention:
        head_hints = {by_weights: f"this head is both the strongest {kind}-composition sender by its weights and "
                                  f"the strongest previous-token head by its attention, but neither says what the "
                                  f"model uses: measure the cut"}
    return head_hints, lambda h: tuple((v[h], hint) for hint, v in wrong.items())


def cases_sender(kind: str, seed: int) -> Iterator[Case]:
    for model, tokens, mask, desc in model_cases(induction_models() + shape_models(), repeated_inputs, seed):
        rises = refs.sender_rises(model, tokens, mask, kind)
        head_hints, number_hints = sender_hints(model, tokens, mask, kind)
        yield Case(f"every layer-0 head cut from the {kind} input of layer 1 on {desc}", (model, tokens, mask),
                   functools.partial(compare_best_head, model=model, values=rises, slack=0.005, rtol=2e-3,
                                     atol=5e-4, number=f"rise of the loss (nats) with the {kind} path cut",
                                     head_hints=head_hints, number_hints=number_hints))


TOP_GUESS_HINTS = {
    "probability of the right token": "that is the probability of the right token; the question asks how sure the "
                                      "model is of its own top guess, right or wrong: the largest probability",
    "all positions": "averaged over every position; only the predictions that mask marks count",
    "shifted by one": "logits[:, i] predicts token i + 1: the mask is aligned with logits[:, :-1]",
    "largest logit": "that is the largest logit; take the softmax first, then the largest probability",
}


def _cases_top_guess() -> Iterator[Case]:
    for model, tokens, mask, desc in model_cases(induction_models() + shape_models(), repeated_inputs, 71):
        expected = refs.top_guess(model, tokens, mask)
        alts = tuple((refs.top_guess(model, tokens, mask, m), hint) for m, hint in TOP_GUESS_HINTS.items())
        alts += (((expected[1], expected[0]), "the two numbers are swapped: keys cut first, layer 0 off second"),)
        yield Case(f"{desc}", (model, tokens, mask),
                   functools.partial(compare_numbers, expected=expected, names=("keys_cut (the top-guess probability with the keys cut)",
                                                                                 "layer0_off (the top-guess probability with layer 0 off)"),
                                     rtol=1e-3, atol=1e-4, alternatives=alts))


NOTEBOOK = '03_k_composition'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='03.5', function='key_sender', title='Investigate: which sender do the keys need?',
             difficulty=3, importance=4, minutes=20,
             draw=lambda: cases_sender("K", 81),
             statement='``key_sender(model, tokens, mask)`` returns ``((layer, head), rise)``: the layer-0 head '
                       'whose removal from the keys of every layer-1 head raises the loss on the predictions '
                       '``mask`` marks the most, and that rise in nats.',
             success="the sender and its cost agree with the measurement on every model"),
    exercise(id='03.6', function='top_guess_confidence', title='Explain it: worse than a uniform guess',
             difficulty=3, importance=3, minutes=20,
             draw=_cases_top_guess,
             statement='``top_guess_confidence(model, tokens, mask)`` returns ``(keys_cut, layer0_off)``: the mean '
                       'probability of the model\'s top guess over the predictions ``mask`` marks, with every '
                       'layer-0 head cut from every layer-1 key, and with layer 0 zero-ablated.',
             success="both confidences agree with the measurement on every model"),
)
