"""The capstone, Find the Induction Circuit (``C1_find_the_induction_circuit.ipynb``).

The learner finds the induction circuit of a causal model on their own: previous-token heads
and induction heads by their attention, the senders of an induction head by K-composition,
the key path confirmed by a path ablation, and the circuit written up as data. Every answer
is a finding about a model, so every case compares it with a computation on that model: the
bundled ``induction-2l``, untrained models of other shapes, a model with a previous-token
head planted by its weights (:func:`mechlib.teaching.inputs.planted_model`) and, in the
hidden cases, ``induction-2l`` at a training step drawn by the grader. ``check_...(fn,
model=model)`` also runs the learner's function on the model they loaded (GPT-2 small in
Colab), compared with the same computation on it.

Head lists are compared by the scores of the heads in them, so that two heads whose scores
tie within float rounding may come in either order; every threshold a case passes lies in a
clear gap between two scores.
"""
from __future__ import annotations

import functools
import random
from typing import Any, Iterator

import torch

import mechlib
from mechlib.heads import head_label
from mechlib.teaching.comparisons import Mismatch, compare_scalar
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.inputs import (bundled, check_model, derive, generator, hidden_seed, model_desc, planted_model,
                                     snapshot_model, unseen)

#: two scores closer than this count as a tie (float32 rounding of a mean of patterns is ~1e-7)
_TIE = 1e-5
#: the smallest gap a case's threshold sits in (float32 rounding moves a score by about 1e-7)
_GAP = 2e-4

# --------------------------------------------------------------------------- the measurements


def previous_token_table(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``score[l, h] = mean_{b, q >= 1} A^{l.h}[b, q, q - 1]`` in float64 (exercise C1.1)."""
    A = mechlib.attention_patterns(model, tokens).double()
    return A.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(1, -1)).cpu()


def induction_table(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``score[l, h] = mean_{b, n <= q < 2n} A^{l.h}[b, q, q - n + 1]`` on ``tokens`` = a segment of
    ``n`` tokens twice, in float64 (exercise C1.2)."""
    n = tokens.shape[1] // 2
    A = mechlib.attention_patterns(model, tokens).double()
    q = torch.arange(n, 2 * n)
    return A[..., q, q - n + 1].mean(dim=(1, -1)).cpu()


def _offset_table(model: Any, tokens: torch.Tensor, offset: int, batch: slice = slice(None)) -> torch.Tensor:
    A = mechlib.attention_patterns(model, tokens)[:, batch].double()
    return A.diagonal(offset=offset, dim1=-2, dim2=-1).mean(dim=(1, -1)).cpu()


def _induction_like(model: Any, tokens: torch.Tensor, shift: int, first_half: bool = False,
                    batch: slice = slice(None)) -> torch.Tensor:
    n = tokens.shape[1] // 2
    A = mechlib.attention_patterns(model, tokens)[:, batch].double()
    q = torch.arange(0 if first_half else n, 2 * n)
    k = (q - n + shift).clamp(min=0)
    return A[..., q, k].mean(dim=(1, -1)).cpu()


def k_scores_into(model: Any, receiver: tuple[int, int], kind: str = "K") -> torch.Tensor:
    """The ``[layer, head]`` table of composition scores from every head into ``receiver``."""
    l, h = receiver
    return mechlib.composition_scores(model, kind)[:, :, l, h].double()


def loss_rise(model: Any, tokens: torch.Tensor, sender: Any, receiver: Any, kind: str = "K",
              start: int | None = None) -> float:
    """Repeat loss with ``sender`` cut from ``receiver``'s ``kind`` input (LayerNorm frozen), minus the clean
    repeat loss, on ``tokens`` = a segment of ``n`` tokens twice (exercise C1.4)."""
    n = tokens.shape[1] // 2
    batch = mechlib.RepeatedBatch(tokens, n, 0)
    cut = mechlib.path_ablation_losses(model, batch, sender, receiver, kind, freeze_ln=True)[kind]
    if start is not None:  # another range of targets: a mistake's result
        logits = mechlib.path_ablation(model, tokens, sender, receiver, kind, freeze_ln=True)
        clean = mechlib.per_token_loss(model(tokens), tokens)[:, start:].double().mean().item()
        return mechlib.per_token_loss(logits, tokens)[:, start:].double().mean().item() - clean
    with torch.no_grad():
        return cut - batch.loss(model(tokens))


def circuit_of(model: Any, tokens: torch.Tensor, repeated: torch.Tensor, prev_threshold: float,
               induction_threshold: float, kind: str = "K") -> dict:
    """The circuit as exercise C1.5 defines it, from the tables above."""
    prev = mechlib.heads_above(previous_token_table(model, tokens), prev_threshold)
    ind = mechlib.heads_above(induction_table(model, repeated), induction_threshold)
    return {"previous_token": prev, "induction": ind,
            "k_composition": _pairs(prev, ind, mechlib.composition_scores(model, kind))}


def _pairs(prev: list, ind: list, scores: torch.Tensor) -> list:
    """For each receiver of ``ind``, the head of ``prev`` in an earlier layer with the highest ``scores`` into it."""
    pairs = []
    for r in ind:
        earlier = [s for s in prev if s[0] < r[0]]
        if earlier:
            pairs.append((max(earlier, key=lambda s: float(scores[s][r])), r))
    return pairs


# --------------------------------------------------------------------------- the model the learner loaded


def check_capstone_model(model: Any) -> Any:
    """``model``, or a ``ValueError`` naming it when the capstone's measurements do not apply:
    a bidirectional model (no induction: the next token is in plain view), or attention
    whose positions are not added to the residual stream or to the query and key inputs
    (rotary, ALiBi: the weight-based K-composition score leaves the rotation out)."""
    if not (hasattr(model, "cfg") and hasattr(model, "run_with_hooks")):
        raise ValueError(f"model must be a model from mechlib.load_model; got {type(model).__name__}")
    if model.cfg.n_layers < 2:
        raise ValueError(f"model: it has {model.cfg.n_layers} layer; a circuit of two heads that compose needs at "
                         "least 2 layers. Allowed: a causal model with 2 or more layers")
    if not mechlib.is_causal(model):
        raise ValueError(
            "model: this model is bidirectional (cfg.attention_dir='bidirectional'), so every position sees the "
            "next token and there is no induction to find. Allowed: a causal model such as 'gpt2-small', "
            "'attn-only-2l' or 'induction-2l'")
    kind = getattr(model.cfg, "positional_embedding_type", "standard")
    if kind not in ("standard", "shortformer"):
        raise ValueError(
            f"model: its positions enter attention as {kind!r}, which the K-composition score (a product of "
            "weight matrices) leaves out. Allowed: learned positions ('standard', as GPT-2, or 'shortformer', as "
            "attn-only-2l)")
    if not mechlib.lm_head_trained(model):
        raise ValueError("model: its unembedding is not trained, so the loss of exercise C1.4 means nothing. "
                         "Allowed: a causal language model such as 'gpt2-small' or 'attn-only-2l'")
    return model


def _tokens_for(model: Any, batch: int, seq: int, seed: int) -> torch.Tensor:
    return torch.randint(0, model.cfg.d_vocab, (batch, seq), generator=generator(seed))


def repeated_for(model: Any, batch: int, half: int, seed: int) -> torch.Tensor:
    """``batch`` segments of ``half`` distinct random tokens, each twice: with no token twice in a segment,
    the positional induction score and :func:`mechlib.induction_scores` agree."""
    g = generator(seed)
    half = min(half, model.cfg.n_ctx // 2, model.cfg.d_vocab)
    seg = torch.stack([torch.randperm(model.cfg.d_vocab, generator=g)[:half] for _ in range(batch)])
    return torch.cat([seg, seg], dim=1)


def _gap_thresholds(scores: torch.Tensor, most: int = 4) -> list[float]:
    """Thresholds in the gaps below the 1st .. ``most``-th highest score that are at least ``_GAP`` wide:
    first those with two or more heads above them (an answer that keeps only the best head must fail),
    each group the widest gap first."""
    v = scores.flatten().double().sort(descending=True).values.tolist()
    gaps = sorted(((k >= 2, v[k - 1] - v[k], k) for k in range(1, min(most, len(v) - 1) + 1)), reverse=True)
    return [(v[k - 1] + v[k]) / 2 for _, gap, k in gaps if gap >= _GAP]


def _gap_threshold(scores: torch.Tensor, most: int = 4) -> float | None:
    """The first of :func:`_gap_thresholds`, or None when no gap is wide enough."""
    found = _gap_thresholds(scores, most)
    return found[0] if found else None


def _telling(model: Any, rows: list[torch.Tensor], rest: torch.Tensor, table) -> tuple[torch.Tensor, float] | None:
    """A batch ``[row] + rest`` and a threshold (in a clear gap of ``table(batch)``) at which the heads above it
    differ from those of the batch's first sequence alone, so that an answer that reads only ``tokens[0]``
    fails; with two or more heads above it where some row allows; None when no candidate row tells them apart."""
    found = []
    for row in rows:
        batch = torch.cat([row[None], rest])
        full, first = table(model, batch), table(model, batch[:1])
        for t in _gap_thresholds(full, most=6):
            above = mechlib.heads_above(full, t)
            if set(above) != set(mechlib.heads_above(first, t)):
                if len(above) >= 2:
                    return batch, t
                found.append((batch, t))
    return found[0] if found else None


# --------------------------------------------------------------------------- comparisons


def _as_head(got: Any, what: str) -> tuple[int, int]:
    if isinstance(got, str):
        raise Mismatch(f"{what} is the string {got!r}; a head is a (layer, head) pair of ints, such as (0, 2)")
    try:
        layer, head = got
        if float(layer) != int(layer) or float(head) != int(head):
            raise ValueError
        return int(layer), int(head)
    except (TypeError, ValueError):
        raise Mismatch(f"{what} must be a (layer, head) pair such as (0, 2); got {got!r}") from None


def _as_heads(got: Any, what: str = "the result") -> list[tuple[int, int]]:
    if isinstance(got, (str, dict)) or not isinstance(got, (list, tuple)):
        raise Mismatch(f"{what} must be a list of (layer, head) pairs; got {type(got).__name__}")
    return [_as_head(h, f"{what}[{i}]") for i, h in enumerate(got)]


def _labels(heads) -> str:
    return "[" + ", ".join(head_label(h) for h in heads) + "]"


def compare_heads(got: Any, expected: list[tuple[int, int]], scores: torch.Tensor, what: str = "the result",
                  alternatives: tuple = ()) -> None:
    """``got`` must hold the heads of ``expected``, highest ``scores`` first (ties within rounding either way)."""
    heads = _as_heads(got, what)
    if len(set(heads)) != len(heads):
        raise Mismatch(f"{what} names a head twice: {_labels(heads)}")
    if set(heads) != set(expected):
        msg = f"{what}: expected {_labels(expected)}, got {_labels(heads)}"
        hints = list(dict.fromkeys(hint for alt, hint in alternatives
                                   if set(heads) == set(alt) and set(alt) != set(expected)))
        raise Mismatch(msg + (f". Hint: {hints[0]}" if len(hints) == 1 else ""))
    values = [float(scores[h]) for h in heads]
    if any(b > a + _TIE for a, b in zip(values, values[1:])):
        raise Mismatch(f"{what}: the right heads in the wrong order, {_labels(heads)}; list them highest score first")


def compare_top(got: Any, n: int, scores: torch.Tensor, allowed: set, what: str = "the result",
                alternatives: tuple = ()) -> None:
    """``got`` must be ``n`` heads of ``allowed`` whose ``scores`` are the ``n`` highest, highest first."""
    heads = _as_heads(got, what)
    best = sorted(allowed, key=lambda h: -float(scores[h]))[:n]
    msg = f"{what}: expected {_labels(best)} (or heads tied with them), got {_labels(heads)}"
    hints = list(dict.fromkeys(hint for alt, hint in alternatives if heads == list(alt) and list(alt) != best))
    hint = f". Hint: {hints[0]}" if len(hints) == 1 else ""
    if len(heads) != n:
        raise Mismatch(f"{what}: expected {n} heads, got {len(heads)}{hint}")
    if len(set(heads)) != n:
        raise Mismatch(f"{what} names a head twice: {_labels(heads)}")
    outside = [h for h in heads if h not in allowed]
    if outside:
        raise Mismatch(msg + (hint or f". {_labels(outside)} cannot send to the receiver: a sender sits in an "
                                      "earlier layer"))
    got_values = sorted((float(scores[h]) for h in heads), reverse=True)
    best_values = [float(scores[h]) for h in best]
    if any(abs(a - b) > _TIE for a, b in zip(got_values, best_values)):
        raise Mismatch(msg + hint)
    values = [float(scores[h]) for h in heads]
    if any(b > a + _TIE for a, b in zip(values, values[1:])):
        raise Mismatch(f"{what}: the right heads in the wrong order, {_labels(heads)}; list them highest score first")


# --------------------------------------------------------------------------- the cases' models


def _models() -> list[Any]:
    """The self-check's models, or the grader's: trained models the learner has not seen (``induction-3h``,
    and ``induction-2l`` renumbered or at a drawn training step), other random shapes, another planted head."""
    seed = hidden_seed()
    if seed is None:
        return [bundled(), check_model(3), planted_model(n_heads=3, n_ctx=20, seed=11, head=1)]
    rng = random.Random(derive(seed, "capstone models"))
    late = [s for s in mechlib.checkpoint_steps() if 600 <= s < mechlib.checkpoint_steps()[-1]]
    # induction-2l renumbered (same circuit, other head ids) or at a drawn training step
    other = unseen("induction-perm") if rng.random() < 0.5 else snapshot_model(rng.choice(late))
    n_heads = rng.choice((2, 3, 5))
    planted = planted_model(n_layers=3, n_heads=n_heads, d_head=rng.choice((4, 8)), d_model=32,
                            d_vocab=rng.randint(17, 29), n_ctx=rng.randint(16, 24),
                            seed=1000 + derive(seed, "planted") % 1_000_000, head=rng.randrange(n_heads))
    return [unseen("induction-3h"), other, check_model(3), planted]


def _desc(model: Any) -> str:
    from mechlib.teaching.inputs import model_spec

    spec = model_spec(model)
    if "snapshot" in spec:
        return f"induction-2l after {spec['snapshot']} training steps"
    if "planted" in spec:
        c = model.cfg
        return (f"a random {c.n_layers}-layer model with a planted previous-token head ({c.n_heads} heads "
                f"of d_head {c.d_head})")
    return model_desc(model)


# --------------------------------------------------------------------------- C1.1 previous-token heads


def _prev_case(model: Any, tokens: torch.Tensor, desc: str, threshold: float | None = None) -> Case | None:
    scores = previous_token_table(model, tokens)
    threshold = _gap_threshold(scores) if threshold is None else threshold
    if threshold is None:
        return None
    expected = mechlib.heads_above(scores, threshold)
    alts = ((mechlib.heads_above(_offset_table(model, tokens, 0), threshold),
             "these heads attend to their own position (offset 0); the previous token is at q - 1"),
            (mechlib.heads_above(_offset_table(model, tokens, -2), threshold),
             "these heads attend two tokens back; the previous token is one back"),
            (mechlib.heads_above(_offset_table(model, tokens, -1, slice(0, 1)), threshold),
             "these are the heads of the first sequence alone; average over every sequence of the batch"),
            (expected[:1], "keep every head above the threshold, not only the best"))
    return Case(f"{desc}, threshold {threshold:.3f}", (model, tokens, threshold),
                functools.partial(compare_heads, expected=expected, scores=scores, alternatives=alts))


def _cases_previous_token_heads() -> Iterator[Case]:
    for i, model in enumerate(_models()):
        n, V = min(model.cfg.n_ctx, 16), model.cfg.d_vocab
        tokens = _tokens_for(model, 8, n, 300 + i)
        rows = [torch.full((n,), v) for v in range(min(V, 6))] + [torch.arange(n) % p for p in (2, 3, 5)]
        told = _telling(model, rows + list(tokens), tokens[1:], previous_token_table)
        tokens, threshold = told if told is not None else (tokens, None)
        case = _prev_case(model, tokens, f"{_desc(model)} on {tokens.shape[0]} token sequences", threshold)
        if case is not None:
            yield case


def _loaded_previous_token_heads(model: Any) -> Iterator[Case]:
    check_capstone_model(model)
    tokens = _tokens_for(model, 8, min(model.cfg.n_ctx, 24), 390)
    case = _prev_case(model, tokens, "your model on 8 random sequences")
    return iter([case] if case is not None else [])


# --------------------------------------------------------------------------- C1.2 induction heads


def _induction_case(model: Any, tokens: torch.Tensor, desc: str, threshold: float | None = None) -> Case | None:
    scores = induction_table(model, tokens)
    threshold = _gap_threshold(scores) if threshold is None else threshold
    if threshold is None:
        return None
    expected = mechlib.heads_above(scores, threshold)
    alts = ((mechlib.heads_above(_induction_like(model, tokens, 0), threshold),
             "these heads attend to the earlier copy of the current token (duplicate-token heads); an induction "
             "head attends to the token just after it, q - n + 1"),
            (mechlib.heads_above(_induction_like(model, tokens, 2), threshold),
             "these heads attend two past the earlier copy; the induction target is one past it, q - n + 1"),
            (mechlib.heads_above(_induction_like(model, tokens, 1, first_half=True), threshold),
             "average over the second copy only: in the first copy there is nothing to look back to"),
            (mechlib.heads_above(_induction_like(model, tokens, 1, batch=slice(0, 1)), threshold),
             "these are the heads of the first sequence alone; average over every sequence of the batch"),
            (expected[:1], "keep every head above the threshold, not only the best"))
    return Case(f"{desc}, threshold {threshold:.3f}", (model, tokens, threshold),
                functools.partial(compare_heads, expected=expected, scores=scores, alternatives=alts))


def _cases_induction_heads() -> Iterator[Case]:
    for i, model in enumerate(_models()):
        tokens = repeated_for(model, 24, 8, 400 + i)
        told = _telling(model, list(tokens[7:]), tokens[1:7], induction_table)
        tokens, threshold = told if told is not None else (tokens[:8], None)
        case = _induction_case(model, tokens, f"{_desc(model)} on {tokens.shape[0]} repeated segments", threshold)
        if case is not None:
            yield case


def _loaded_induction_heads(model: Any) -> Iterator[Case]:
    check_capstone_model(model)
    tokens = repeated_for(model, 8, 12, 490)
    case = _induction_case(model, tokens, "your model on 8 repeated segments")
    return iter([case] if case is not None else [])


# --------------------------------------------------------------------------- C1.3 K-composition senders


def _senders_case(model: Any, receiver: tuple[int, int], n: int, desc: str) -> Case:
    scores = k_scores_into(model, receiver)
    allowed = {(l, h) for l in range(receiver[0]) for h in range(model.cfg.n_heads)}

    def top(kind):
        s = k_scores_into(model, receiver, kind)
        return sorted(allowed, key=lambda h: -float(s[h]))[:n]
    out_of = mechlib.composition_scores(model, "K")[receiver].double()
    alts = ((top("Q"), "these are the strongest Q-composition senders; the keys read the sender through "
                       "W_QK^T (composition_scores(model, 'K'))"),
            (top("V"), "these are the strongest V-composition senders; the keys are K"),
            (sorted(allowed, key=lambda h: float(scores[h]))[:n], "this is the weakest first; highest score first"),
            (mechlib.ranked_heads(out_of)[:n], "these are the heads the receiver sends to (scores[receiver]); "
                                               "a receiver's senders are scores[:, :, layer, head]"))
    return Case(f"receiver {head_label(receiver)}, n={n} on {desc}", (model, receiver, n),
                functools.partial(compare_top, n=n, scores=scores, allowed=allowed, alternatives=alts))


def _cases_k_composition_senders() -> Iterator[Case]:
    for model in _models():
        L, H = model.cfg.n_layers, model.cfg.n_heads
        for receiver, n in [((L - 1, H - 1), 3), ((1, 0), 2)]:
            yield _senders_case(model, receiver, min(n, H * receiver[0]), _desc(model))


def _loaded_k_composition_senders(model: Any) -> Iterator[Case]:
    check_capstone_model(model)
    repeated = repeated_for(model, 8, 12, 590)
    best = mechlib.top_head(induction_table(model, repeated))
    if best[0] == 0:  # the top induction head cannot have senders: take the best of a later layer
        best = mechlib.top_head(induction_table(model, repeated)[1:])
        best = (best[0] + 1, best[1])
    return iter([_senders_case(model, best, min(3, model.cfg.n_heads * best[0]), "your model")])


# --------------------------------------------------------------------------- C1.4 the key path, cut


def _rise_case(model: Any, tokens: torch.Tensor, sender: Any, receiver: Any, desc: str) -> Case:
    expected = loss_rise(model, tokens, sender, receiver)
    n = tokens.shape[1] // 2
    with torch.no_grad():
        cut = expected + mechlib.RepeatedBatch(tokens, n, 0).loss(model(tokens))
        ablated = mechlib.repeat_loss(mechlib.run_with_ablation(model, tokens, [sender]), tokens, n) \
            - mechlib.RepeatedBatch(tokens, n, 0).loss(model(tokens))
    alts = ((loss_rise(model, tokens, sender, receiver, "Q"), "this is the rise with the sender cut from the "
                                                              "receiver's queries; cut it from its keys"),
            (loss_rise(model, tokens, sender, receiver, "V"), "this is the rise with the sender cut from the "
                                                              "receiver's values; cut it from its keys"),
            (ablated, "this is a head ablation (the sender removed for every later head); cut it from the "
                      "receiver's keys only"),
            (cut, "this is the loss of the cut run itself; subtract the clean loss"),
            (-expected, "this is clean minus cut; the rise is cut minus clean"),
            (loss_rise(model, tokens, sender, receiver, start=0), "this averages over every target; average over "
                                                                  "the second copy's, after its first token"),
            (loss_rise(model, tokens, sender, receiver, start=n - 1), "this counts the second copy's first token, "
                                                                      "which nothing can predict; start one later"))
    return Case(f"sender {head_label(sender)}, receiver {head_label(receiver)} on {desc}",
                (model, tokens, sender, receiver),
                functools.partial(compare_scalar, expected=expected, rtol=1e-4, atol=1e-5, alternatives=alts))


def _cases_key_cut_loss_rise() -> Iterator[Case]:
    models = _models() + [check_model(3, layernorm=True)]
    for i, model in enumerate(models):
        H = model.cfg.n_heads
        tokens = repeated_for(model, 6, 7, 500 + i)
        # receivers in two layers where the model has three
        pairs = [((0, 0), (1, H - 1))] if model.cfg.n_layers == 2 else [((0, H - 1), (2, 0)), ((1, 1), (2, H - 1))]
        for sender, receiver in pairs[: 1 if i == len(models) - 1 else 2]:
            yield _rise_case(model, tokens, sender, receiver, _desc(model))


def _loaded_key_cut_loss_rise(model: Any) -> Iterator[Case]:
    check_capstone_model(model)
    repeated = repeated_for(model, 8, 12, 690)
    receiver = mechlib.top_head(induction_table(model, repeated)[1:])
    receiver = (receiver[0] + 1, receiver[1])
    sender = mechlib.top_head(k_scores_into(model, receiver)[: receiver[0]])
    return iter([_rise_case(model, repeated, sender, receiver, "your model")])


# --------------------------------------------------------------------------- C1.5 the circuit, as data


def compare_circuit(got: Any, expected: dict, prev_scores: torch.Tensor, ind_scores: torch.Tensor,
                    alternatives: tuple = ()) -> None:
    """``got`` must be ``{"previous_token": [...], "induction": [...], "k_composition": [(s, r), ...]}`` as
    measured: each list as in C1.1 and C1.2, and one pair for each induction head with an earlier
    previous-token head, in the order of the induction heads."""
    if not isinstance(got, dict):
        raise Mismatch(f"the result must be a dict with keys 'previous_token', 'induction', 'k_composition'; "
                       f"got {type(got).__name__}")
    keys = {"previous_token", "induction", "k_composition"}
    if set(got) != keys:
        raise Mismatch(f"the result's keys must be {sorted(keys)}; got {sorted(map(str, got))}")
    compare_heads(got["previous_token"], expected["previous_token"], prev_scores, "result['previous_token']")
    compare_heads(got["induction"], expected["induction"], ind_scores, "result['induction']")
    pairs = got["k_composition"]
    if isinstance(pairs, (str, dict)) or not isinstance(pairs, (list, tuple)):
        raise Mismatch(f"result['k_composition'] must be a list of (sender, receiver) pairs; got {type(pairs).__name__}")
    try:
        pairs = [(_as_head(p[0], f"result['k_composition'][{i}][0]"), _as_head(p[1], f"result['k_composition'][{i}][1]"))
                 for i, p in enumerate(pairs)]
    except (TypeError, IndexError, KeyError):
        raise Mismatch("result['k_composition'] must be a list of (sender, receiver) pairs of heads") from None
    got_ind = [r for _, r in pairs]
    want = dict((r, s) for s, r in expected["k_composition"])
    if sorted(pairs) == sorted(expected["k_composition"]):
        return
    text = "[" + ", ".join(f"({head_label(s)}, {head_label(r)})" for s, r in pairs) + "]"
    msg = (f"result['k_composition']: expected "
           + "[" + ", ".join(f"({head_label(s)}, {head_label(r)})" for s, r in expected["k_composition"]) + "]"
           + f", got {text}")
    hints = list(dict.fromkeys(hint for alt, hint in alternatives if sorted(pairs) == sorted(alt)
                               and sorted(alt) != sorted(expected["k_composition"])))
    if len(hints) == 1:
        raise Mismatch(msg + f". Hint: {hints[0]}")
    if set(got_ind) == set(want) and all(pairs.count(p) == 1 for p in pairs):
        raise Mismatch(msg + ". Hint: for each induction head, pair it with the previous-token head (in an earlier "
                             "layer) whose K-composition score into it is highest")
    raise Mismatch(msg)


def _circuit_case(model: Any, tokens: torch.Tensor, repeated: torch.Tensor, desc: str) -> Case | None:
    prev_scores, ind_scores = previous_token_table(model, tokens), induction_table(model, repeated)
    K, Q = mechlib.composition_scores(model, "K"), mechlib.composition_scores(model, "Q")
    everyone = [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]

    def alternatives(prev, ind, expected):
        overall = _pairs(everyone, [r for r in ind if r[0] > 0], K)
        every = [(s, r) for r in ind for s in prev if s[0] < r[0]]
        return (([(r, s) for s, r in expected], "write each pair as (sender, receiver): the previous-token head first"),
                (_pairs(prev, ind, Q), "these pairs are the strongest by Q-composition; the circuit runs through "
                                       "the keys (K)"),
                (overall, "these are the strongest senders among all earlier heads; the circuit pairs each induction "
                          "head with a previous-token head"),
                (every, "keep one pair per induction head: the previous-token head that K-composes most with it"))

    # thresholds in clear gaps that give a circuit with at least one pair, best where every mistake above differs
    found = []
    for a in _gap_thresholds(prev_scores):
        for b in _gap_thresholds(ind_scores):
            prev, ind = mechlib.heads_above(prev_scores, a), mechlib.heads_above(ind_scores, b)
            expected = {"previous_token": prev, "induction": ind, "k_composition": _pairs(prev, ind, K)}
            if expected["k_composition"]:
                alts = alternatives(prev, ind, expected["k_composition"])
                telling = sum(sorted(alt) != sorted(expected["k_composition"]) for alt, _ in alts)
                found.append((telling, -len(found), a, b, expected, alts))
    if not found:
        return None
    _, _, t_prev, t_ind, expected, alts = max(found, key=lambda f: f[:2])
    return Case(f"{desc}, thresholds {t_prev:.3f} (previous-token) and {t_ind:.3f} (induction)",
                (model, tokens, repeated, t_prev, t_ind),
                functools.partial(compare_circuit, expected=expected, prev_scores=prev_scores, ind_scores=ind_scores,
                                  alternatives=alts))


def _cases_induction_circuit() -> Iterator[Case]:
    for i, model in enumerate(_models()):
        tokens = _tokens_for(model, 8, min(model.cfg.n_ctx, 16), 700 + i)
        repeated = repeated_for(model, 8, 8, 750 + i)
        case = _circuit_case(model, tokens, repeated, _desc(model))
        if case is not None:
            yield case


def _loaded_induction_circuit(model: Any) -> Iterator[Case]:
    check_capstone_model(model)
    tokens = _tokens_for(model, 8, min(model.cfg.n_ctx, 24), 790)
    case = _circuit_case(model, tokens, repeated_for(model, 8, 12, 791), "your model")
    return iter([case] if case is not None else [])


NOTEBOOK = 'C1_find_the_induction_circuit'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='C1.1', function='previous_token_heads', title='Previous-token heads, by their attention',
             difficulty=2, importance=4, minutes=10,
             draw=_cases_previous_token_heads, on_model=_loaded_previous_token_heads,
             statement='``previous_token_heads(model, tokens, threshold)``: every head whose mean attention from '
                       'position q to q - 1 (over the batch and q >= 1) is above ``threshold``, highest first.',
             success="finds the previous-token heads above the threshold, on every model"),
    exercise(id='C1.2', function='induction_heads', title='Induction heads, on a repeated random sequence',
             difficulty=2, importance=5, minutes=15,
             draw=_cases_induction_heads, on_model=_loaded_induction_heads,
             statement='``induction_heads(model, tokens, threshold)``: on ``tokens`` = a segment of n tokens twice, '
                       'every head whose mean attention from q (n <= q < 2n) to q - n + 1 is above ``threshold``, '
                       'highest first.',
             success="finds the induction heads above the threshold, on every model"),
    exercise(id='C1.3', function='k_composition_senders', title='Rank the senders by K-composition',
             difficulty=3, importance=4, minutes=15,
             draw=_cases_k_composition_senders, on_model=_loaded_k_composition_senders,
             statement='``k_composition_senders(model, receiver, n)``: the ``n`` heads of earlier layers with the '
                       'highest K-composition score into ``receiver``, highest first.',
             success="ranks the receiver's senders by K-composition, on every model"),
    exercise(id='C1.4', function='key_cut_loss_rise', title='Confirm it: cut the key path',
             difficulty=3, importance=5, minutes=20,
             draw=_cases_key_cut_loss_rise, on_model=_loaded_key_cut_loss_rise,
             statement='``key_cut_loss_rise(model, tokens, sender, receiver)``: the loss on the second copy with '
                       "the sender cut from the receiver's keys (LayerNorm frozen) minus the clean loss, a float.",
             success="measures the key path's share of the loss, on every model"),
    exercise(id='C1.5', function='induction_circuit', title='Write it up, as data',
             difficulty=3, importance=4, minutes=25,
             draw=_cases_induction_circuit, on_model=_loaded_induction_circuit,
             statement='``induction_circuit(model, tokens, repeated, prev_threshold, induction_threshold)``: '
                       '``{"previous_token": [...], "induction": [...], "k_composition": [(sender, receiver), ...]}``.',
             success="the circuit agrees with the measurements, on every model"),
)
