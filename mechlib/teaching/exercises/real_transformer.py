"""The exercises of the appendix, Composition in a Real Transformer (``A1_real_transformer.ipynb``).

The learner's functions are general (any model); the checks run them on the bundled model and
on random models of other shapes (no download; A1.3 also on one with LayerNorm, as MiniLM
has), and the notebook then applies them to MiniLM-L6.
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
    # a hint only when one mistake alone gives this head (several would be a coincidence of this case)
    hints = list(dict.fromkeys(hint for alt, hint in alternatives if head == alt and alt != expected))
    raise Mismatch(msg + (f". Hint: {hints[0]}" if len(hints) == 1 else ""))


def _by_offset(model: Any, tokens: Any, offset: int, first_only: bool = False):
    A = mechlib.attention_patterns(model, tokens)
    if first_only:
        A = A[:, :1]
    return A.diagonal(offset=offset, dim1=-2, dim2=-1).mean(dim=(1, -1)).cpu()


def _margin(scores) -> float:
    top = scores.flatten().double().sort(descending=True).values
    return float(top[0] - top[1]) if top.numel() > 1 else 1.0


#: how far the top head's score must lead the runner-up's (float32 rounding moves scores by about 1e-7)
_MARGIN = 2e-4


def _telling_tokens(model: Any, seed: int):
    """A batch on which the top previous-token head of the whole batch differs from that of its
    first sequence, each ahead of its runner-up by a clear margin, so that an answer that reads
    only ``tokens[0]`` fails: a first sequence Y, then three copies of a sequence X whose top
    head differs from Y's, both picked from random, constant and periodic sequences. Random
    tokens when no such pair exists (the bundled model's previous-token head wins everywhere)."""
    import torch

    c = model.cfg
    n = min(c.n_ctx, 16)
    g = generator(seed)
    candidates = [torch.randint(0, c.d_vocab, (n,), generator=g) for _ in range(16)]
    candidates += [torch.full((n,), v) for v in range(min(c.d_vocab, 8))]
    candidates += [torch.arange(n) % p for p in (2, 3, 5)]
    batch = torch.stack(candidates)
    A = mechlib.attention_patterns(model, batch)  # [layer, cand, head, q, k]
    per = A.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=-1).double().permute(1, 0, 2)  # [cand, layer, head]
    tops = [mechlib.top_head(x) for x in per]
    for y in range(len(candidates)):
        if _margin(per[y]) < _MARGIN:
            continue
        for x in range(len(candidates)):
            if tops[x] == tops[y]:
                continue
            mean = (per[y] + 3 * per[x]) / 4
            if mechlib.top_head(mean) == tops[x] and _margin(mean) >= _MARGIN:
                return torch.stack([candidates[y]] + [candidates[x]] * 3)
    return _random_tokens(model, seed)


def _cases_prev_token_head() -> Iterator[Case]:
    # a third random model: on some models no batch tells a first-sequence-only answer apart
    for i, model in enumerate(_models() + [check_model(2)]):
        tokens = _telling_tokens(model, 40 + i)
        expected = mechlib.top_head(mechlib.prev_token_scores(model, tokens))
        alts = ((mechlib.top_head(_by_offset(model, tokens, 0)),
                 "this head attends most to its own position (offset 0); the previous token is at q - 1"),
                (mechlib.top_head(_by_offset(model, tokens, -2)),
                 "this head attends most two tokens back; the previous token is one back"),
                (mechlib.top_head(_by_offset(model, tokens, -1, first_only=True)),
                 "this is the top head of the first sequence alone; average over every sequence of the batch"))
        yield Case(f"{model_desc(model)} on a batch of {tokens.shape[0]} token sequences", (model, tokens),
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
    for i, model in enumerate(_models() + [check_model(3, layernorm=True)]):
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
