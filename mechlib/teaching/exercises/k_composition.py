"""The exercises of Chapter 3, K-Composition (``03_k_composition.ipynb``)."""
from __future__ import annotations

import functools
import math
from typing import Iterator

import mechlib
from mechlib.heads import head_label
from mechlib.teaching import reference as ref
from mechlib.teaching.comparisons import compare_scalar, compare_tensor
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.inputs import bundled, check_model, head_pairs, model_desc, repeat_tokens_for


def cases_pair_score(kind: str) -> Iterator[Case]:
    for model in (bundled(), check_model()):
        for s, r in head_pairs(model):
            scores = {k: ref.composition_score64(ref.ov64(model, s), ref.receiver64(model, r, k)) for k in "QKV"}
            hints = {
                "Q": "this is the Q-composition score: the sender's output reaches the receiver's "
                     "queries through W_Q, so use W_QK = W_Q W_K^T",
                "K": "this is the K-composition score: the sender's output reaches the receiver's "
                     "keys through W_K, so use W_QK^T = W_K W_Q^T",
                "V": "this is the V-composition score (W_OV of the receiver)",
            }
            alts = tuple((scores[k], hints[k]) for k in "QKV" if k != kind)
            yield Case(f"sender {head_label(s)}, receiver {head_label(r)} of {model_desc(model)}", (model, s, r),
                       functools.partial(compare_scalar, expected=scores[kind], rtol=1e-4, atol=1e-6,
                                         alternatives=alts))


def _cases_all_scores() -> Iterator[Case]:
    for model in (bundled(), check_model()):
        for kind in "QKV":
            exp = mechlib.composition_scores(model, kind)
            yield Case(f"kind={kind!r} on {model_desc(model)}", (model, kind),
                       functools.partial(compare_tensor, expected=exp, rtol=1e-3, atol=1e-5))


def cases_path_ablation(kinds: tuple[str, ...], lists: bool) -> Iterator[Case]:
    for model in (bundled(), check_model()):
        tokens, _, _ = repeat_tokens_for(model, 6, seed=21)
        L, H = model.cfg.n_layers, model.cfg.n_heads
        if lists:
            combos = [([(0, h) for h in range(H)], [(L - 1, h) for h in range(H)]),
                      ([(0, 0)], [(1, 1)]),
                      ([(0, 1), (L - 2, H - 1)], [(L - 1, 0), (L - 1, H - 1)])]
            if L >= 3:  # receivers in two layers: one hook per receiver, each at its own layer
                combos.append(([(0, 0), (0, H - 1)], [(1, 1), (L - 1, 0)]))
        else:
            combos = [((0, 0), (1, 1)), ((0, H - 1), (L - 1, 0)), ((L - 2, 1), (L - 1, H - 1))]
        for kind in kinds:
            for s, r in combos:
                exp = mechlib.path_ablation(model, tokens, s, r, kind)
                args = (model, tokens, s, r, kind) if lists else (model, tokens, s, r)
                other = [k for k in "QKV" if k != kind]
                alts = tuple((mechlib.path_ablation(model, tokens, s, r, k),
                              f"this removes the sender from the receiver's {k} input, not its {kind} input")
                             for k in other)
                alts += ((mechlib.run_with_ablation(model, tokens, [s] if isinstance(s, tuple) else s),
                          "this removes the sender's output everywhere (a plain head ablation); remove it from "
                          "the receiver's input only"),)
                if lists and len(r) > 1:
                    alts += ((mechlib.path_ablation(model, tokens, s, [r[-1]], kind),
                              "only the last receiver was changed: a hook defined in a loop reads the loop's "
                              "variables when it runs, after the loop has ended (a late-binding closure); freeze "
                              "each receiver's values with default arguments, def hook(act, hook, h=h, new=new)"),)
                if lists and len(s) > 1:
                    alts += tuple((mechlib.path_ablation(model, tokens, [one], r, kind),
                                   f"only sender {head_label(one)} was removed: remove the sum of every sender's "
                                   "output, sum(z^s W_O^s for s in senders)") for one in (s[0], s[-1]))
                yield Case(f"kind {kind!r}, sender {s}, receiver {r} on {model_desc(model)}", args,
                           functools.partial(compare_tensor, expected=exp, rtol=1e-3, atol=1e-4,
                                             alternatives=alts))


def k_term64(model, tokens, sender, receiver, mistake: str | None = None):
    """The score term (token at the query, sender's output at the key) of ``receiver``, float64, or a mistake's."""
    (l1, h1), (l2, h2) = sender, receiver
    w = ref.weights64(model)
    tokens = tokens.cpu()
    out = ref.head_outputs64(model, tokens)[sender]
    if mistake == "no value bias":
        out = out - w["b_V"][l1, h1] @ w["W_O"][l1, h1]
    embed = w["W_E"][tokens]
    W_Q, W_K = w["W_Q"][l2, h2], w["W_K"][l2, h2]
    if mistake == "transposed":  # the sender at the query, the token at the key
        q, k = out @ W_Q, embed @ W_K
    elif mistake == "W_Q and W_K swapped":
        q, k = embed @ W_K, out @ W_Q
    else:
        q, k = embed @ W_Q, out @ W_K
    if mistake == "b_Q":
        q = q + w["b_Q"][l2, h2]
    scale = 1.0 if mistake == "no scale" else math.sqrt(model.cfg.d_head)
    return q @ k.transpose(-1, -2) / scale


K_TERM_HINTS = {
    "transposed": "this is the term with the sender's output at the query and the token at the key (a "
                  "Q-composition term); K-composition puts the token W_E[t_i] at the query and the sender's "
                  "output at the key",
    "W_Q and W_K swapped": "the query side reads the residual stream through W_Q and the key side through W_K; "
                           "you swapped them",
    "no scale": "TransformerLens divides q . k by sqrt(d_head) before the softmax; divide the term too",
    "no value bias": "the sender's output includes its value bias: o = A (x W_V + b_V) W_O, which is "
                     "cache['blocks.L.attn.hook_z'][:, :, h] @ W_O (hook_z already has b_V)",
    "b_Q": "b_Q belongs to the bias term of the query, not to the token's: use W_E[t] @ W_Q alone",
}


def cases_k_term() -> Iterator[Case]:
    for model in (bundled(), check_model()):
        tokens, _, _ = repeat_tokens_for(model, 4, seed=23)
        L, H = model.cfg.n_layers, model.cfg.n_heads
        pairs = ([((0, 3), (1, 3)), ((0, 0), (1, 1)), ((0, 1), (1, 2))] if model is bundled()
                 else [((0, 0), (1, 1)), ((0, H - 1), (L - 1, 0)), ((L - 2, 1), (L - 1, H - 1))])
        for s, r in pairs:
            alts = tuple((k_term64(model, tokens, s, r, mistake), hint) for mistake, hint in K_TERM_HINTS.items())
            yield Case(f"sender {head_label(s)}, receiver {head_label(r)} of {model_desc(model)}", (model, tokens, s, r),
                       functools.partial(compare_tensor, expected=k_term64(model, tokens, s, r), rtol=1e-3,
                                         atol=1e-4, alternatives=alts))


NOTEBOOK = '03_k_composition'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='03.1', function='k_composition_score', title='K-composition score of one pair',
             difficulty=2, importance=5, minutes=10,
             draw=lambda: cases_pair_score("K"),
             statement='``k_composition_score(model, sender, receiver)`` is ``C(W_OV^{s}, W_QK^{r T})``.',
             success="matches C(W_OV^sender, W_K W_Q^T of the receiver) (float64) for every pair"),
    exercise(id='03.2', function='all_composition_scores', title='All pairs at once, batched',
             difficulty=3, importance=3, minutes=20,
             draw=_cases_all_scores,
             statement='``all_composition_scores(model, kind)`` gives the ``[L, H, L, H]`` tensor of scores.',
             success="matches mechlib.composition_scores for Q, K and V on the bundled and a random model"),
    exercise(id='03.3', function='remove_sender_from_keys', title='Path ablation through the keys only',
             difficulty=4, importance=4, minutes=25,
             draw=lambda: cases_path_ablation(("K",), False),
             statement='``remove_sender_from_keys(model, tokens, sender, receiver)`` is path ablation through K.',
             success="logits match mechlib.path_ablation(..., kind='K') on the bundled and a random model"),
    exercise(id='03.4', function='k_composition_term', title='One term of the attention score',
             difficulty=3, importance=4, minutes=20,
             draw=cases_k_term,
             statement='``k_composition_term(model, tokens, sender, receiver)`` is the score term '
                       '``(W_E[t_i] W_Q^r) . (o^s_j W_K^r) / sqrt(d_head)``, ``[batch, query, key]``.',
             success="matches the float64 term (token at the query, sender's output at the key) on the bundled "
                     "and a random model"),
)
