"""The exercises of Chapter 3, K-Composition (``03_k_composition.ipynb``)."""
from __future__ import annotations

import functools
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
)
