"""Scored batches and findings: what the investigation exercises of chapters 5 to 8 share: the trained models they run on,
their scored batches, and how a finding (a kind of input, a head, a pair of heads, a term's
name, a number) is read from what the learner returns.

An investigation exercise asks for a finding about a model, not a formula. Its self-check
runs on the bundled models (``induction-2l``, ``relay-2l``); the grader's hidden cases run on
models the learner has not seen (:mod:`mechlib.teaching.unseen`: ``induction-2l`` with its
heads renumbered, the recipes trained with another seed, one of another size), on batches
drawn from the hidden seed. Every reference is computed from the model in the grader's process, so a finding
memorised from the chapters (head ``1.1``, "K") fails where the unseen model differs.

A batch goes to the learner as ``(tokens, mask)``: ``tokens`` ``[batch, seq]`` and ``mask``
``[batch, seq - 1]``, True where the next-token prediction is scored (entry ``[b, i]``
predicts ``tokens[b, i + 1]``). The scored loss is :func:`masked_loss`.
"""
from __future__ import annotations

import math
from typing import Any

import torch

import mechlib
from mechlib.heads import head_label
from mechlib.teaching.comparisons import Mismatch, fmt_number
from mechlib.teaching.inputs import _case_seed, bundled, hidden_seed, relay, unseen
from mechlib.teaching.results import single_number

#: the unseen variants the hidden cases use, by task
UNSEEN_INDUCTION = ("induction-perm", "induction-3h")
UNSEEN_RELAY = ("relay-s2",)


def induction_models() -> list[tuple[str, Any]]:
    """``(name, model)`` of the induction models of the cases: ``induction-2l`` in the self-check,
    the unseen variants in the hidden cases."""
    if hidden_seed() is None:
        return [("induction-2l", bundled())]
    return [(name, unseen(name)) for name in UNSEEN_INDUCTION]


def shape_models() -> list[tuple[str, Any]]:
    """``(name, model)`` of another shape, in the self-check only: ``relay-2l`` (one head per layer), so
    that an answer which hard-codes four heads fails in the notebook too, not only on ``induction-3h``."""
    return [("relay-2l", relay())] if hidden_seed() is None else []


def relay_models() -> list[tuple[str, Any]]:
    """``(name, model)`` of the relay models: ``relay-2l`` in the self-check, the unseen variant hidden."""
    if hidden_seed() is None:
        return [("relay-2l", relay())]
    return [(name, unseen(name)) for name in UNSEEN_RELAY]


def scored_batch(name: str, model: Any, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """``(tokens, mask, batch)`` for model ``name``: the relay task's batch (scored at ``R``) for a
    relay model, else repeated tokens (scored on the predictable part of the second copy); drawn
    from another seed under :func:`~mechlib.teaching.inputs.hidden_cases`."""
    seed = _case_seed(seed) % 2**31
    if name.startswith("relay"):
        batch = mechlib.relay_batch(model, batch=size, seed=seed)
    else:
        batch = mechlib.repeated_batch(model, batch=size, seed=seed)
    return batch.tokens, batch.mask, batch


def masked_loss(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean next-token loss over the scored predictions: ``mean_{(b, i) in mask} -log p(tokens[b, i + 1])``."""
    return float(mechlib.per_token_loss(logits.double(), tokens)[mask].mean())


def batch_desc(name: str, tokens: torch.Tensor) -> str:
    what = "relay sequences" if name.startswith("relay") else "repeated sequences"
    return f"{name} on {tokens.shape[0]} {what}"


def as_float(got: Any, what: str) -> float:
    """``got`` as a Python float (numpy scalars and one-element tensors read), or ``Mismatch``."""
    got = single_number(got)
    if isinstance(got, bool) or not isinstance(got, (int, float)) or not math.isfinite(float(got)):
        raise Mismatch(f"{what} must be a finite number (a float); got {type(got).__name__} {got!r}")
    return float(got)


def as_head(got: Any, what: str) -> tuple[int, int]:
    """``got`` as a ``(layer, head)`` pair of ints (numpy and tensor integers read), or ``Mismatch``."""
    try:
        layer, head = (single_number(x) for x in got)
    except (TypeError, ValueError):
        raise Mismatch(f"{what} must be a (layer, head) pair of ints such as (1, 2); got {got!r}") from None
    if any(isinstance(x, bool) or not isinstance(x, int) for x in (layer, head)):
        raise Mismatch(f"{what} must be a (layer, head) pair of ints such as (1, 2); got {got!r}")
    return layer, head


def as_pair(got: Any, n: int, what: str) -> tuple:
    """``got`` as a tuple of ``n`` items (a tuple or a list), or ``Mismatch``."""
    if isinstance(got, (str, bytes)) or not isinstance(got, (tuple, list)) or len(got) != n:
        raise Mismatch(f"{what} must be a tuple of {n} items; got {type(got).__name__} {got!r}"[:300])
    return tuple(got)


def close(got: float, expected: float, rtol: float, atol: float) -> bool:
    return math.isclose(got, expected, rel_tol=rtol, abs_tol=atol)


def number_message(what: str, got: float, expected: float, rtol: float, atol: float) -> str:
    return (f"{what}: expected {fmt_number(expected)}, got {fmt_number(got)} "
            f"(tolerance {atol:g} + {rtol:g} * |expected|)")


def heads_text(heads: list) -> str:
    return ", ".join(head_label(h) for h in heads)
