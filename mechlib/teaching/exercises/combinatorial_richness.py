"""The exercises of Chapter 7, Combinatorial Richness (``07_combinatorial_richness.ipynb``)."""
from __future__ import annotations

import functools
import math
from collections import Counter
from typing import Any, Iterator

import mechlib
from mechlib.teaching import scored as fd
from mechlib.teaching import reference as ref
from mechlib.teaching.comparisons import Mismatch, compare_int
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.inputs import bundled, hidden_sizes, repeat_tokens_for


def _cases_count_pairs() -> Iterator[Case]:
    for L, H in [(12, 12), (2, 4), (1, 8), (3, 1), (5, 3), (48, 25)] + hidden_sizes(3, (1, 40), (1, 40)):
        # small models: every pair listed; large ones: the closed form H^2 C(L, 2)
        exp = ref.count_chains_brute_force(L, H, 2) if L * H <= 200 else H * H * math.comb(L, 2)
        yield Case(f"n_layers={L}, n_heads={H}", (L, H), functools.partial(compare_int, expected=exp))


def _compare_pairs(got: Any, L: int, H: int) -> None:
    expected = list(mechlib.enumerate_virtual_heads(L, H, 2))
    if not isinstance(got, (list, tuple)):
        try:
            got = list(got)
        except TypeError:
            raise Mismatch(f"the result has the wrong type: expected a list of pairs, got {type(got).__name__}") from None
    got = list(got)
    norm = []
    for i, p in enumerate(got):
        try:
            (l1, h1), (l2, h2) = p
            norm.append(((int(l1), int(h1)), (int(l2), int(h2))))
        except (TypeError, ValueError):
            raise Mismatch(f"item [{i}] is {p!r}; each item must be a pair of heads ((l1, h1), (l2, h2))") from None
    if len(set(norm)) != len(norm):
        dup = next(p for p, n in Counter(norm).items() if n > 1)
        raise Mismatch(f"the pair {dup} appears more than once")
    expected_set, got_set = set(expected), set(norm)
    wrong = [p for p in norm if p not in expected_set]
    if wrong:
        p = wrong[0]
        why = "the sender must be in an earlier layer than the receiver" if p[0][0] >= p[1][0] else "no such head"
        raise Mismatch(f"{p} is not a virtual head of this model ({why})")
    missing = [p for p in expected if p not in got_set]
    if missing:
        raise Mismatch(f"expected {len(expected)} pairs, got {len(norm)}; missing e.g. {missing[0]}")


def _cases_enumerate_pairs() -> Iterator[Case]:
    for L, H in [(2, 4), (3, 2), (1, 3), (4, 3)] + hidden_sizes(2, (1, 6), (1, 5)):
        yield Case(f"n_layers={L}, n_heads={H}", (L, H), functools.partial(_compare_pairs, L=L, H=H))


def _cases_count_chains() -> Iterator[Case]:
    for L, H, k in [(3, 2, 2), (4, 2, 3), (3, 3, 3), (5, 2, 1), (2, 3, 3)] + hidden_sizes(3, (1, 6), (1, 4), (1, 4)):
        yield Case(f"n_layers={L}, n_heads={H}, length={k} (checked by brute force)", (L, H, k),
                   functools.partial(compare_int, expected=ref.count_chains_brute_force(L, H, k)))
    for L, H, k in [(12, 12, 2), (12, 12, 3), (12, 12, 12), (32, 32, 4)]:
        yield Case(f"n_layers={L}, n_heads={H}, length={k}", (L, H, k),
                   functools.partial(compare_int, expected=mechlib.count_virtual_heads(L, H, k)))


def _cases_count_paths() -> Iterator[Case]:
    model = bundled()
    pe = mechlib.path_expansion(model, repeat_tokens_for(model, 1, seed=0)[0])
    n_terms = sum(1 for k in pe.kinds.values() if k != "bias")
    yield Case(f"the bundled model ({model.cfg.n_layers} layers of {model.cfg.n_heads} heads; its path expansion "
               f"has {n_terms} non-bias terms)", (model.cfg.n_layers, model.cfg.n_heads),
               functools.partial(compare_int, expected=n_terms))
    for L, H in [(3, 2), (1, 5), (4, 3)] + hidden_sizes(2, (1, 5), (1, 4)):
        brute = sum(ref.count_chains_brute_force(L, H, k) for k in range(1, L + 1)) + 1
        yield Case(f"n_layers={L}, n_heads={H} (checked by brute force)", (L, H),
                   functools.partial(compare_int, expected=brute, ))
    yield Case("n_layers=12, n_heads=12", (12, 12), functools.partial(compare_int, expected=13**12))


# --- investigation 05-08: the pair that matters, by search (07.5)


def _pair_costs(model, tokens, mask, kind: str) -> dict[tuple, float]:
    """Rise of the scored loss when one sender is cut from input ``kind`` of one receiver, for every pair."""
    clean = fd.masked_loss(model(tokens), tokens, mask)
    return {(s, r): fd.masked_loss(mechlib.path_ablation(model, tokens, [s], [r], kind), tokens, mask) - clean
            for s, r in mechlib.enumerate_virtual_heads(model.cfg.n_layers, model.cfg.n_heads)}


#: a pair is accepted when its cut costs at least this share of the costliest cut's (ties within noise)
_NEAR_BEST = 0.9


def _compare_pair(got, costs: dict, screen: tuple, kind: str) -> None:
    sender, receiver = fd.as_pair(got, 2, "the result (sender, receiver)")
    pair = (fd.as_head(sender, "the sender"), fd.as_head(receiver, "the receiver"))
    best = max(costs, key=costs.get)
    if pair in costs and costs[pair] >= _NEAR_BEST * costs[best]:
        return
    label = lambda p: f"{mechlib.head_label(p[0])} -> {mechlib.head_label(p[1])}"  # noqa: E731
    if pair not in costs:
        hint = (" Hint: the sender comes first, the receiver (in a later layer) second" if pair[::-1] in costs
                else "")
        raise Mismatch(f"{pair} is not a (sender, receiver) pair of this model: the sender must be in an earlier "
                       "layer than the receiver." + hint)
    msg = (f"cutting {label(pair)} from the {kind} input raises the scored loss by {fd.fmt_number(costs[pair])} nats; "
           f"the costliest pair, {label(best)}, by {fd.fmt_number(costs[best])}")
    if pair == screen:
        msg += (". Hint: that pair has the highest composition score, a screen of the weights alone; the question "
                "is which cut costs most, a causal test")
    elif pair == min(costs, key=costs.get):
        msg += ". Hint: that is the pair whose cut costs least"
    raise Mismatch(msg)


def _cases_pair() -> Iterator[Case]:
    for k, (name, model) in enumerate(fd.induction_models() + fd.shape_models()):
        tokens, mask, _ = fd.scored_batch(name, model, seed=75 + k, size=16)  # 16 path cuts per case: keep it small
        for kind in ("K", "Q"):
            scores = mechlib.composition_scores(model, kind)
            screen = max(mechlib.enumerate_virtual_heads(model.cfg.n_layers, model.cfg.n_heads),
                         key=lambda p: float(scores[p[0] + p[1]]))
            yield Case(f"{fd.batch_desc(name, tokens)}, kind={kind!r}", (model, tokens, mask.clone()),
                       functools.partial(_compare_pair, costs=_pair_costs(model, tokens, mask, kind), screen=screen,
                                         kind=kind), kwargs={"kind": kind})


NOTEBOOK = '07_combinatorial_richness'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='07.1', function='count_pairs', title='Counting virtual heads',
             difficulty=1, importance=4, minutes=5,
             draw=_cases_count_pairs,
             statement='``count_pairs(n_layers, n_heads)`` is ``n_heads^2 C(n_layers, 2)``.',
             success="right counts, including 9504 for 12 layers of 12 heads and 0 for one layer"),
    exercise(id='07.2', function='enumerate_pairs', title='Listing virtual heads',
             difficulty=1, importance=3, minutes=5,
             draw=_cases_enumerate_pairs,
             statement='``enumerate_pairs(n_layers, n_heads)`` lists every (sender, receiver) pair once.',
             success="every pair with the sender in an earlier layer, each exactly once"),
    exercise(id='07.3', function='count_chains', title='Longer chains',
             difficulty=2, importance=3, minutes=10,
             draw=_cases_count_chains,
             statement='``count_chains(n_layers, n_heads, length)`` is ``n_heads^length C(n_layers, length)``.',
             success="matches brute-force enumeration on small models and the formula on large ones"),
    exercise(id='07.4', function='count_paths', title='Every path of the expansion',
             difficulty=2, importance=3, minutes=10,
             draw=_cases_count_paths,
             statement='``count_paths(n_layers, n_heads)``: all terms of the path expansion, direct path included.',
             success="counts the direct path plus every chain of every length, (1 + n_heads)^n_layers"),
    # --- investigation 05-08
    exercise(id='07.5', function='most_important_pair', title='Investigate: the pair that matters',
             difficulty=3, importance=4, minutes=25,
             draw=_cases_pair,
             statement="``most_important_pair(model, tokens, mask, kind)`` -> ``(sender, receiver)``: the pair whose "
                       "path cut through input ``kind`` raises the scored loss most.",
             success="found the costliest pair by a causal search, not by the weights' screen"),
)
