"""Investigation exercises (chapters 1 to 4): their inputs, references and comparisons.

An investigation's answer is a finding about a model -- a head, a number, a kind of input --
not a formula. The learner's function takes a model and its tokens (and the ``mask`` of the
scored next-token predictions, ``[batch, seq - 1]``, True where the prediction of token
``i + 1`` from position ``i`` counts) and returns the finding. The checks run it on the
bundled models and on ``induction-perm`` (the bundled model with its heads renumbered, so an
answer that hard-codes the chapters' head ids fails already in the notebook); the grader's
hidden cases run it on models the learner has not seen (:mod:`mechlib.teaching.unseen`).

A head is accepted when it is the best by the reference measurement or within ``slack`` of
it (two heads may do the job about equally well); the number that comes with it is compared
with the reference value *of the head returned*.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Iterator

import torch

import mechlib
from mechlib.heads import Head, head_label
from mechlib.teaching.comparisons import Mismatch, _one_hint, compare_scalar, fmt_number
from mechlib.teaching.exercise import Case
from mechlib.teaching.inputs import _case_seed, bundled, hidden_seed, model_desc, relay, unseen
from mechlib.teaching.results import single_number

HALF, PREFIX, BATCH = 10, 4, 32


def induction_models() -> list:
    """The induction models of a check: the bundled one and its renumbered copy in the notebook;
    a smaller model trained with another seed and the renumbered copy in the hidden cases."""
    if hidden_seed() is None:
        return [bundled(), unseen("induction-perm")]
    return [unseen("induction-3h"), unseen("induction-perm")]


def shape_models() -> list:
    """Models of another shape, in the self-check only: ``relay-2l``, one head per layer, so that an
    answer which hard-codes the chapters' four heads fails in the notebook as it does in grading
    (where ``induction-3h`` has three)."""
    return [relay()] if hidden_seed() is None else []


def relay_models() -> list:
    """``relay-2l`` in the notebook; ``relay-s2`` (same recipe, another seed) in the hidden cases."""
    return [relay()] if hidden_seed() is None else [unseen("relay-s2")]


def repeated_inputs(model, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens, mask)``: 32 sequences of 4 random tokens, a segment of 10, the segment again;
    the mask marks the predictions of the second copy."""
    tokens = mechlib.repeated_tokens(model.cfg.d_vocab, BATCH, HALF, seed=_case_seed(seed), prefix_len=PREFIX)
    return tokens, mechlib.repeat_mask(BATCH, HALF, PREFIX)


def relay_inputs(model, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens, mask)`` of :func:`mechlib.relay_batch` (one marker; the mask marks the token after ``R``)."""
    rb = mechlib.relay_batch(model, batch=BATCH, seed=_case_seed(seed) % 2**31)
    return rb.tokens, rb.mask


def scored_loss(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean next-token cross-entropy over the scored predictions, in float64."""
    logp = logits[:, :-1].double().log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
    return -logp[mask].mean().item()


def layer(model, l: int) -> list[Head]:
    return [(l, h) for h in range(model.cfg.n_heads)]


def cut_rise(model, tokens, mask, senders, receivers, kind: str) -> float:
    """Rise of the scored loss when ``senders`` are cut from the ``kind`` input of ``receivers``."""
    with torch.no_grad():
        clean = scored_loss(model(tokens), tokens, mask)
        return scored_loss(mechlib.path_ablation(model, tokens, senders, receivers, kind), tokens, mask) - clean


# ------------------------------------------------------------------ reading a finding


def read_head(got: Any, model, what: str = "the head") -> Head:
    """``got`` as a ``(layer, head)`` pair of ints (numpy and tensor integers read), or Mismatch."""
    if isinstance(got, torch.Tensor) and got.numel() == 2 and not got.is_floating_point():
        got = got.flatten().tolist()
    if type(got).__module__ == "numpy" and getattr(got, "size", 0) == 2 and got.dtype.kind in "iu":
        got = got.flatten().tolist()  # np.array([0, 3]), as np.argwhere or np.unravel_index + np.array give it
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Mismatch(f"{what} has the wrong type: expected a tuple (layer, head) of two ints, got "
                       f"{type(got).__name__} {str(got)[:60]}")
    parts = [single_number(x) for x in got]
    if any(isinstance(x, bool) or not isinstance(x, int) for x in parts):
        raise Mismatch(f"{what} has the wrong type: expected a tuple (layer, head) of two ints, got "
                       f"({', '.join(type(x).__name__ for x in parts)})")
    l, h = parts
    if not (0 <= l < model.cfg.n_layers and 0 <= h < model.cfg.n_heads):
        raise Mismatch(f"{what}: ({l}, {h}) is not a head of this model ({model.cfg.n_layers} layers of "
                       f"{model.cfg.n_heads} heads); did you hard-code the head count?")
    return (l, h)


def read_pair(got: Any, what: str) -> tuple[Any, Any]:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Mismatch(f"the result has the wrong type: expected a tuple ({what}), got {type(got).__name__} "
                       f"{str(got)[:60]}")
    return got[0], got[1]


def compare_best_head(got: Any, model, values: dict[Head, float], slack: float, rtol: float, atol: float,
                      number: str, head_hints: dict[Head, str] = {},
                      number_hints: Callable[[Head], tuple] = lambda head: ()) -> None:
    """``got`` is ``(head, value)``: ``head`` within ``slack`` of the best of ``values``, ``value``
    close to ``values[head]``. ``head_hints``: a hint for a head some mistake finds;
    ``number_hints(head)``: ``(number, hint)`` pairs of mistakes for the number."""
    head, value = read_pair(got, f"(layer, head), {number}")
    head = read_head(head, model)
    best = max(values.values())
    if values.get(head, -math.inf) < best - slack:
        ok = " or ".join(head_label(h) for h, v in sorted(values.items()) if v >= best - slack)
        found = (f"{head_label(head)} ({number} {fmt_number(values[head])})" if head in values
                 else f"{head_label(head)}, which is not one of the heads asked about")
        hint = f". Hint: {head_hints[head]}" if head in head_hints else ""
        raise Mismatch(f"the head: expected {ok} (largest {number} {fmt_number(best)}), got {found}{hint}")
    compare_scalar(value, values[head], rtol=rtol, atol=atol, what=f"the {number} of {head_label(head)}",
                   alternatives=number_hints(head))


def compare_numbers(got: Any, expected: tuple[float, ...], names: tuple[str, ...], rtol: float, atol: float,
                    alternatives: tuple[tuple[tuple[float, ...], str], ...] = ()) -> None:
    """``got`` is a tuple of ``len(expected)`` numbers, each close to its reference; a mistake's
    tuple in ``alternatives`` (matched as a whole) adds its hint."""
    if not isinstance(got, (tuple, list)) or len(got) != len(expected):
        raise Mismatch(f"the result has the wrong type: expected a tuple ({', '.join(names)}) of "
                       f"{len(expected)} numbers, got {type(got).__name__} {str(got)[:60]}")
    hints = [hint for alt, hint in alternatives if _all_close(got, alt, rtol, atol)
             and not _all_close(expected, alt, rtol, atol)]
    for g, e, name in zip(got, expected, names):
        try:
            compare_scalar(g, e, rtol=rtol, atol=atol, what=name)
        except Mismatch as exc:
            raise Mismatch(str(exc) + _one_hint(hints)) from None


def _all_close(a, b, rtol, atol) -> bool:
    try:
        return all(math.isclose(float(single_number(x)), y, rel_tol=rtol, abs_tol=atol) for x, y in zip(a, b))
    except (TypeError, ValueError):
        return False


def case(desc: str, args: tuple, compare: Callable, **kwargs) -> Case:
    return Case(desc, args, functools.partial(compare, **kwargs))


def model_cases(models: list, inputs: Callable, seed: int) -> Iterator[tuple[Any, torch.Tensor, torch.Tensor, str]]:
    for i, model in enumerate(models):
        tokens, mask = inputs(model, seed + i)
        yield model, tokens, mask, model_desc(model)
