"""The exercises of the appendix, Composition in a Real Transformer (``A1_real_transformer.ipynb``).

The learner's functions are general (any model); the checks run them on the bundled model and
on random models of other shapes (no download, no LayerNorm), and the notebook then applies
them to MiniLM-L6.
"""
from __future__ import annotations

import functools
from typing import Any, Iterator

import mechlib
from mechlib.heads import head_label
from mechlib.teaching.comparisons import Mismatch, compare_tensor
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.inputs import bundled, check_model, generator, model_desc


def _as_head(got: Any, what: str) -> tuple[int, int]:
    try:
        layer, head = got
        return int(layer), int(head)
    except (TypeError, ValueError):
        raise Mismatch(f"{what} must be a (layer, head) pair such as (0, 2); got {got!r}") from None


def _models() -> list[Any]:
    return [bundled(), check_model(3), check_model(4)]


def _random_tokens(model: Any, seed: int):
    import torch

    c = model.cfg
    return torch.randint(0, c.d_vocab, (4, min(c.n_ctx, 16)), generator=generator(seed))


def _compare_head(got: Any, expected: tuple[int, int], alternatives: tuple[tuple[tuple[int, int], str], ...] = ()) -> None:
    head = _as_head(got, "the result")
    if head == expected:
        return
    msg = f"expected head {head_label(expected)} {expected}, got {head_label(head)} {head}"
    for alt, hint in alternatives:
        if head == alt and alt != expected:
            msg += f". Hint: {hint}"
            break
    raise Mismatch(msg)


def _by_offset(model: Any, tokens: Any, offset: int):
    A = mechlib.attention_patterns(model, tokens)
    return A.diagonal(offset=offset, dim1=-2, dim2=-1).mean(dim=(1, -1)).cpu()


def _cases_prev_token_head() -> Iterator[Case]:
    for i, model in enumerate(_models()):
        tokens = _random_tokens(model, 40 + i)
        expected = mechlib.top_head(mechlib.prev_token_scores(model, tokens))
        alts = ((mechlib.top_head(_by_offset(model, tokens, 0)),
                 "this head attends most to its own position (offset 0); the previous token is at q - 1"),
                (mechlib.top_head(_by_offset(model, tokens, -2)),
                 "this head attends most two tokens back; the previous token is one back"))
        yield Case(f"{model_desc(model)} on random tokens", (model, tokens),
                   functools.partial(_compare_head, expected=expected, alternatives=alts))


def _compare_heads(got: Any, expected: list[tuple[int, int]], alternatives=()) -> None:
    if not isinstance(got, (list, tuple)):
        raise Mismatch(f"the result must be a list of (layer, head) pairs; got {type(got).__name__}")
    heads = [_as_head(h, f"item [{i}]") for i, h in enumerate(got)]
    if heads == expected:
        return
    if len(heads) != len(expected):
        raise Mismatch(f"expected {len(expected)} heads, got {len(heads)}")
    msg = f"expected {[head_label(h) for h in expected]}, got {[head_label(h) for h in heads]}"
    if sorted(heads) == sorted(expected):
        msg += " (the right heads in the wrong order: highest score first)"
    for alt, hint in alternatives:
        if heads == alt:
            msg += f". Hint: {hint}"
            break
    raise Mismatch(msg)


def _top_receivers(model: Any, sender: tuple[int, int], kind: str, n: int) -> list[tuple[int, int]]:
    return mechlib.ranked_heads(mechlib.composition_scores(model, kind)[sender])[:n]


def _cases_strongest_receivers() -> Iterator[Case]:
    for model in _models():
        L, H = model.cfg.n_layers, model.cfg.n_heads
        for sender, n in [((0, 0), 2), ((0, H - 1), 3), ((L - 2, 1), 1)]:
            n = min(n, H * (L - 1 - sender[0]))
            expected = _top_receivers(model, sender, "K", n)
            alts = ((_top_receivers(model, sender, "Q", n),
                     "these are the strongest Q-receivers; the keys read the sender through W_K W_Q^T"),
                    (_top_receivers(model, sender, "V", n), "these are the strongest V-receivers"))
            yield Case(f"sender {head_label(sender)}, n={n} on {model_desc(model)}", (model, sender, n),
                       functools.partial(_compare_heads, expected=expected, alternatives=alts))


def _pattern(model: Any, tokens: Any, receiver: tuple[int, int], hooks=None):
    l, h = receiver
    return mechlib.attention_patterns(model, tokens, fwd_hooks=hooks)[l, :, h]


def _cases_pattern_without_sender() -> Iterator[Case]:
    for i, model in enumerate(_models()):
        L, H = model.cfg.n_layers, model.cfg.n_heads
        tokens = _random_tokens(model, 60 + i)
        for sender, receiver in [((0, 0), (1, H - 1)), ((0, H - 1), (L - 1, 0))]:
            def cut(kind):
                return _pattern(model, tokens, receiver, mechlib.path_ablation_hooks(
                    model, tokens, sender, receiver, kind, freeze_ln=True))

            expected = cut("K")
            alts = ((cut("Q"), "this removes the sender from the receiver's queries; remove it from its keys"),
                    (_pattern(model, tokens, receiver, mechlib.ablation_hooks(model, [sender])),
                     "this removes the sender everywhere (a head ablation), so every later head changes; "
                     "remove it from the receiver's keys only"),
                    (_pattern(model, tokens, receiver), "this is the clean pattern: nothing was removed"))
            yield Case(f"sender {head_label(sender)}, receiver {head_label(receiver)} on {model_desc(model)}",
                       (model, tokens, sender, receiver),
                       functools.partial(compare_tensor, expected=expected, rtol=1e-4, atol=1e-5,
                                         alternatives=alts))


NOTEBOOK = 'A1_real_transformer'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='A1.1', function='prev_token_head', title='A previous-token head, by its attention',
             difficulty=1, importance=4, minutes=5,
             draw=_cases_prev_token_head,
             statement='``prev_token_head(model, tokens)`` is the head with the highest previous-token score.',
             success="finds the head that attends most to the previous token, on every model"),
    exercise(id='A1.2', function='strongest_receivers', title='Its strongest K-receivers, by weights',
             difficulty=2, importance=4, minutes=10,
             draw=_cases_strongest_receivers,
             statement='``strongest_receivers(model, sender, n)``: the ``n`` later heads with the highest K-composition score from ``sender``, highest first.',
             success="the right K-receivers in the right order, on the bundled and random models"),
    exercise(id='A1.3', function='pattern_without_sender_in_keys', title='One receiver, checked causally',
             difficulty=3, importance=5, minutes=20,
             draw=_cases_pattern_without_sender,
             statement="``pattern_without_sender_in_keys(model, tokens, sender, receiver)`` is the receiver's ``[batch, dest, src]`` pattern with the sender cut from its keys (LayerNorm frozen).",
             success="the receiver's pattern with the sender cut from its keys matches, on every model"),
)
