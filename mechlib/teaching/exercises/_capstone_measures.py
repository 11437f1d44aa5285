"""The measurements and comparisons behind the capstone's checks (:mod:`mechlib.teaching.exercises.capstone`).

What each exercise measures, computed here in float64 from the attention patterns and the
weights (the learner's answer is compared with these on each case's model); the check of a
model the learner loaded; the cases' tokens and thresholds (each in a clear gap between two
scores, so that rounding never decides); and comparisons of head lists by the scores of the
heads in them, so that heads tied within rounding may come in either order.
"""
from __future__ import annotations

from typing import Any

import torch

import mechlib
from mechlib.heads import head_label
from mechlib.teaching.comparisons import Mismatch
from mechlib.teaching.inputs import generator

#: two scores closer than this count as a tie (float32 rounding of a mean of patterns is ~1e-7)
_TIE = 1e-5
#: the smallest gap a case's threshold sits in (float32 rounding moves a score by about 1e-7)
_GAP = 2e-4

# --------------------------------------------------------------------------- the measurements


def previous_token_table(model: Any, tokens: torch.Tensor, A: torch.Tensor | None = None) -> torch.Tensor:
    """``score[l, h] = mean_{b, q >= 1} A^{l.h}[b, q, q - 1]`` in float64 (exercise C1.1); ``A``: the
    patterns of ``model`` on ``tokens`` when already computed."""
    return _offset_table(model, tokens, -1, A=A)


def induction_table(model: Any, tokens: torch.Tensor, A: torch.Tensor | None = None) -> torch.Tensor:
    """``score[l, h] = mean_{b, n <= q < 2n} A^{l.h}[b, q, q - n + 1]`` on ``tokens`` = a segment of
    ``n`` tokens twice, in float64 (exercise C1.2)."""
    return _induction_like(model, tokens, 1, A=A)


def _offset_table(model: Any, tokens: torch.Tensor, offset: int, batch: slice = slice(None),
                  A: torch.Tensor | None = None) -> torch.Tensor:
    A = mechlib.attention_patterns(model, tokens) if A is None else A
    return A[:, batch].double().diagonal(offset=offset, dim1=-2, dim2=-1).mean(dim=(1, -1)).cpu()


def _induction_like(model: Any, tokens: torch.Tensor, shift: int, first_half: bool = False,
                    batch: slice = slice(None), A: torch.Tensor | None = None) -> torch.Tensor:
    n = tokens.shape[1] // 2
    A = mechlib.attention_patterns(model, tokens) if A is None else A
    q = torch.arange(0 if first_half else n, 2 * n, device=A.device)
    k = (q - n + shift).clamp(min=0)
    return A[:, batch].double()[..., q, k].mean(dim=(1, -1)).cpu()


def k_scores_into(model: Any, receiver: tuple[int, int], kind: str = "K") -> torch.Tensor:
    """The ``[layer, head]`` table of composition scores from every head into ``receiver``."""
    l, h = receiver
    return mechlib.composition_scores(model, kind)[:, :, l, h].double()


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
