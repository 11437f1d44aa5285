"""What each head does, measured once: attention by offset and induction, and a role.

Every chapter, widget and the glossary names heads by the role computed here, so "the
previous-token heads" means the same heads on every page -- and a retrained model
relabels them everywhere at once.

For each head, on the book's evaluation batch (:func:`mechlib.repeated_batch`):

* ``by_offset[k]`` is the mean attention from each position ``q >= k`` to ``q - k``
  (``k = 0``: the position itself; ``1``: the previous token; ``2``: two back ...);
* ``induction`` is its induction score (:func:`mechlib.induction_scores`).

Its role is the largest of these, if that share of attention is at least ``threshold``:
``"induction"``, ``"self"`` (offset 0), ``"previous-token"`` (1), ``"two-back"`` (2) or
``"k-back"``; otherwise ``"other"``.

Taught in Chapter 5, Virtual Attention Heads, and used by every chapter after it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float

from mechlib.heads import Head, all_heads, head_label
from mechlib.models.info import is_causal
from mechlib.scores import attention_patterns, induction_scores_from_patterns
from mechlib.validate import check_nonnegative_int, check_tokens

OFFSET_NAMES = {0: "self", 1: "previous-token", 2: "two-back"}


def offset_role(k: int) -> str:
    """The role name of a head that mostly attends ``k`` positions back."""
    return OFFSET_NAMES.get(k, f"{k}-back")


def attention_by_offset(
    model: Any, tokens: torch.Tensor, max_offset: int = 4
) -> Float[torch.Tensor, "layer head offset"]:
    """``[layer, head, k]``: mean attention from position ``q`` to ``q - k``, over the batch and every
    ``q >= k``, for ``k = 0 .. max_offset``. Returned on the CPU."""
    check_nonnegative_int(max_offset, "max_offset")
    tokens = check_tokens(model, tokens)
    if max_offset >= tokens.shape[1]:
        raise ValueError(f"max_offset must be < the number of positions ({tokens.shape[1]}); got {max_offset}")
    A = attention_patterns(model, tokens)  # [layer, batch, head, dest, src]
    return torch.stack([A.diagonal(offset=-k, dim1=-2, dim2=-1).mean(dim=(1, -1))
                        for k in range(max_offset + 1)], dim=-1).cpu()


@dataclass(frozen=True)
class HeadRole:
    """One head's role, the score that decided it, and the measurements behind it."""

    head: Head
    role: str
    score: float
    by_offset: tuple[float, ...]
    induction: float

    @property
    def label(self) -> str:
        return head_label(self.head)

    def __str__(self) -> str:
        offsets = ", ".join(f"{a:.2f}" for a in self.by_offset)
        return (f"{self.label}: {self.role} ({self.score:.2f}); attention by offset 0..{len(self.by_offset) - 1}: "
                f"{offsets}; induction {self.induction:.2f}")


def head_roles(model: Any, batch: Any = None, max_offset: int = 4, threshold: float = 0.3) -> dict[Head, HeadRole]:
    """The role of every head, in head order (see the module docstring).

    ``batch`` is a :class:`mechlib.RepeatedBatch` (default: ``repeated_batch(model)``, the
    book's evaluation batch) or a token tensor with repeats in it.
    """
    from mechlib.data import RepeatedBatch, repeated_batch

    if batch is None:
        batch = repeated_batch(model)
    tokens = batch.tokens if isinstance(batch, RepeatedBatch) else batch
    if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a number in [0, 1]; got {threshold!r}")
    tokens = check_tokens(model, tokens, "batch")
    offsets = attention_by_offset(model, tokens, max_offset)
    induction = induction_scores_from_patterns(attention_patterns(model, tokens), tokens, is_causal(model)).cpu()
    roles = {}
    for l, h in all_heads(model):
        by_offset = tuple(float(x) for x in offsets[l, h])
        candidates = [(by_offset[k], offset_role(k)) for k in range(len(by_offset))]
        candidates.append((float(induction[l, h]), "induction"))
        score, role = max(candidates, key=lambda c: c[0])
        roles[(l, h)] = HeadRole((l, h), role if score >= threshold else "other", score, by_offset,
                                 float(induction[l, h]))
    return roles


def heads_with_role(roles: dict[Head, HeadRole], role: str, layer: int | None = None) -> list[Head]:
    """The heads of ``roles`` (from :func:`head_roles`) whose role is ``role``, in head order."""
    known = {r.role for r in roles.values()}
    if not isinstance(role, str):
        raise TypeError(f"role must be a string such as 'previous-token'; got {role!r}")
    if role not in known and role not in {*OFFSET_NAMES.values(), "induction", "other"} and not role.endswith("-back"):
        raise ValueError(f"unknown role {role!r}; this model's roles are {sorted(known)}")
    return [hd for hd, r in roles.items() if r.role == role and (layer is None or hd[0] == layer)]
