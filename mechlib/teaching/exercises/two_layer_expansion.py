"""The exercises of Chapter 6, The Two-Layer Expansion (``06_two_layer_expansion.ipynb``)."""
from __future__ import annotations

import functools
from typing import Iterator

import mechlib
from mechlib.heads import chain_label, head_label
from mechlib.teaching.comparisons import compare_tensor
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.inputs import bundled, check_model, head_pairs, model_desc, repeat_tokens_for


def _expansion(model, tokens):
    return mechlib.path_expansion(model, tokens)


def _cases_direct() -> Iterator[Case]:
    for model in (bundled(), check_model(2)):
        tokens, _, _ = repeat_tokens_for(model, 4, seed=13)
        pe = _expansion(model, tokens)
        alts = ((pe.terms["direct"] + pe.terms["bias unembed"],
                 "you added b_U; in this expansion the unembedding bias is a separate bias term"),)
        yield Case(f"repeated tokens {tuple(tokens.shape)} on {model_desc(model)}", (model, tokens),
                   functools.partial(compare_tensor, expected=pe.terms["direct"], rtol=1e-4, atol=1e-4,
                                     alternatives=alts))


def _cases_single() -> Iterator[Case]:
    for model in (bundled(), check_model(2)):
        tokens, _, _ = repeat_tokens_for(model, 4, seed=14)
        pe = _expansion(model, tokens)
        L, H = model.cfg.n_layers, model.cfg.n_heads
        for head in [(l, h) for l in range(L) for h in range(H)]:
            yield Case(f"head {head_label(head)} of {model_desc(model)}", (model, tokens, head),
                       functools.partial(compare_tensor, expected=pe.terms[head_label(head)], rtol=1e-4, atol=1e-4))


def _cases_virtual() -> Iterator[Case]:
    for model in (bundled(), check_model(2)):
        tokens, _, _ = repeat_tokens_for(model, 4, seed=15)
        pe = _expansion(model, tokens)
        for s, r in head_pairs(model):
            yield Case(f"sender {head_label(s)}, receiver {head_label(r)} of {model_desc(model)}", (model, tokens, s, r),
                       functools.partial(compare_tensor, expected=pe.terms[chain_label((s, r), sep="->")],
                                         rtol=1e-4, atol=1e-4))


def _cases_expanded() -> Iterator[Case]:
    for model in (bundled(), check_model(2)):
        tokens, _, _ = repeat_tokens_for(model, 4, seed=16)
        logits = model(tokens).detach()
        pe = _expansion(model, tokens)
        kinds = pe.by_kind()
        alts = ((logits - kinds["virtual"], "the virtual-head (composition) terms are missing"),
                (logits - kinds["bias"], "the bias terms are missing"),
                (logits - kinds["single"], "the single-head terms are missing"))
        yield Case(f"repeated tokens {tuple(tokens.shape)} on {model_desc(model)} (compared with model(tokens))",
                   (model, tokens), functools.partial(compare_tensor, expected=logits, rtol=1e-4, atol=2e-4,
                                                      alternatives=alts))


NOTEBOOK = '06_two_layer_expansion'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='06.1', function='direct_path_logits', title='The direct path',
             difficulty=1, importance=4, minutes=5,
             draw=_cases_direct,
             statement='``direct_path_logits(model, tokens)`` is ``(W_E[tokens] + W_pos) W_U``.',
             success="matches the direct term of mechlib.path_expansion"),
    exercise(id='06.2', function='single_head_logits', title='Single-head terms',
             difficulty=2, importance=5, minutes=15,
             draw=_cases_single,
             statement='``single_head_logits(model, tokens, head)`` is ``A^{h} x0 W_OV^{h} W_U``.',
             success="matches every single-head term of mechlib.path_expansion"),
    exercise(id='06.3', function='virtual_head_logits', title='Virtual-head terms',
             difficulty=3, importance=5, minutes=15,
             draw=_cases_virtual,
             statement='``virtual_head_logits(model, tokens, sender, receiver)`` is ``A^{r} A^{s} x0 W_OV^{s} W_OV^{r} W_U``.',
             success="matches every virtual-head term of mechlib.path_expansion"),
    exercise(id='06.4', function='expanded_logits', title='The expansion adds up to the logits',
             difficulty=2, importance=4, minutes=10,
             draw=_cases_expanded,
             statement="``expanded_logits(model, tokens)``: the sum of all terms equals the model's logits.",
             success="the sum of your terms equals model(tokens) to float32 precision"),
)
