"""Head scores from attention patterns, and the loss on repeated tokens.

Taught in Chapter 1, Beyond One Layer (the loss on repeated tokens, induction scores)
and Chapter 5, Virtual Attention Heads (previous-token, induction and duplicate-token
scores).
"""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int

from mechlib.models.info import is_causal
from mechlib.validate import check_tokens


def attention_patterns(
    model: Any, tokens: torch.Tensor, fwd_hooks: Any = None
) -> Float[torch.Tensor, "layer batch head dest src"]:
    """All attention patterns ``A[l, b, h, q, k]`` of ``model`` on ``tokens``, stacked over layers.

    ``fwd_hooks``: optional ``(hook name, hook)`` pairs applied during the run, e.g. from
    :func:`mechlib.path_ablation_hooks` or :func:`mechlib.ablation_hooks`, to see the patterns
    of an intervened run (reads no logits, so it works on any model).
    Activations: on the model's device, like ``model(tokens)``."""
    tokens = check_tokens(model, tokens)
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.cfg.n_layers)]
    store: dict[str, torch.Tensor] = {}
    hooks = [] if fwd_hooks is None else list(fwd_hooks)
    if not all(isinstance(h, tuple) and len(h) == 2 and callable(h[1]) for h in hooks):
        raise TypeError("fwd_hooks must be a list of (hook name, hook function) pairs")
    hooks += [(n, partial(_keep, store=store)) for n in names]
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=hooks)
    return torch.stack([store[n] for n in names])


def _keep(act: torch.Tensor, hook: Any, store: dict) -> None:
    store[hook.name] = act.detach()


def _match_matrix(tokens: torch.Tensor, causal: bool = True) -> Bool[torch.Tensor, "batch dest src"]:
    """``M[b, q, p]`` is True when ``tokens[b, p] == tokens[b, q]`` and ``p < q`` (``causal``),
    or ``p != q`` (a bidirectional model, which can also look at the later copy)."""
    same = tokens[:, :, None] == tokens[:, None, :]
    seq = tokens.shape[1]
    ones = torch.ones(seq, seq, dtype=torch.bool, device=tokens.device)
    allowed = ones.tril(-1) if causal else ones ^ torch.eye(seq, dtype=torch.bool, device=tokens.device)
    return same & allowed


def prev_token_scores(model: Any, tokens: torch.Tensor) -> Float[torch.Tensor, "layer head"]:
    """Previous-token score of every head.

    ``score[l, h] = mean_{b, q >= 1} A^{l.h}[b, q, q - 1]``: the average attention
    each position pays to the position just before it. Returned on the CPU.
    """
    tokens = check_tokens(model, tokens)
    if tokens.shape[1] < 2:
        raise ValueError("tokens needs at least 2 positions to score previous-token attention")
    A = attention_patterns(model, tokens)
    return A.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(1, -1)).cpu()


def next_token_scores(model: Any, tokens: torch.Tensor, fwd_hooks: Any = None) -> Float[torch.Tensor, "layer head"]:
    """Next-token score of every head: ``score[l, h] = mean_{b, q <= n - 2} A^{l.h}[b, q, q + 1]``,
    the average attention each position pays to the position just after it. Zero in a
    causal model (the future is masked); a bidirectional encoder such as MiniLM has heads
    that do this (appendix, Composition in a Real Transformer). ``fwd_hooks``: as in
    :func:`attention_patterns`, to score an intervened run. Returned on the CPU."""
    tokens = check_tokens(model, tokens)
    if tokens.shape[1] < 2:
        raise ValueError("tokens needs at least 2 positions to score next-token attention")
    A = attention_patterns(model, tokens, fwd_hooks)
    return A.diagonal(offset=1, dim1=-2, dim2=-1).mean(dim=(1, -1)).cpu()


def induction_scores(model: Any, tokens: torch.Tensor, fwd_hooks: Any = None) -> Float[torch.Tensor, "layer head"]:
    """Induction score of every head.

    For a destination ``q`` whose token occurred before, at positions ``p < q``, the
    induction targets are the positions ``p + 1`` right after those occurrences.
    ``score[l, h] = mean_q sum_{p < q, t_p = t_q} A^{l.h}[q, p + 1]``, averaged over
    the destinations (and batch rows) that have at least one earlier occurrence.
    On :func:`mechlib.repeated_tokens` this is the usual score: attention from each
    token of the second copy to the token after its first copy. Returned on the CPU.

    On a bidirectional model (:func:`mechlib.is_causal` is False) every other occurrence
    counts, earlier or later (``p != q``): a token of the first copy may look ahead to the
    token after its second copy; destinations whose only other occurrence is the last
    position (no token after it) are left out (appendix, Composition in a Real Transformer).
    ``fwd_hooks``: as in :func:`attention_patterns`, to score an intervened run.
    """
    tokens = check_tokens(model, tokens)
    A = attention_patterns(model, tokens, fwd_hooks)
    return induction_scores_from_patterns(A, tokens, is_causal(model)).cpu()


def induction_scores_from_patterns(
    patterns: Float[torch.Tensor, "layer batch head dest src"], tokens: Int[torch.Tensor, "batch seq"],
    causal: bool = True,
) -> Float[torch.Tensor, "layer head"]:
    """Induction score of every head from given attention patterns ``A[l, b, h, q, k]``.

    The formula of :func:`induction_scores`,
    ``score[l, h] = mean_q sum_{p < q, t_p = t_q} A^{l.h}[q, p + 1]``, applied to the
    patterns of any run (for example one with some heads ablated). Computed, and
    returned, on the device of ``patterns``. ``causal=False``: every other occurrence
    ``p != q`` counts (for a bidirectional model; see :func:`induction_scores`).
    """
    match = _match_matrix(tokens.to(patterns.device), causal)  # [b, q, p]
    # shift: target p + 1 for each matching p (a match at the last position has no target)
    target = torch.zeros_like(match)
    target[:, :, 1:] = match[:, :, :-1]
    return _mean_over_destinations(patterns, target)


def duplicate_token_scores(model: Any, tokens: torch.Tensor) -> Float[torch.Tensor, "layer head"]:
    """Duplicate-token score: ``mean_q sum_{p < q, t_p = t_q} A^{l.h}[q, p]``, over the
    destinations whose token occurred before. On a bidirectional model every other
    occurrence ``p != q`` counts (as in :func:`induction_scores`). Returned on the CPU."""
    tokens = check_tokens(model, tokens)
    A = attention_patterns(model, tokens)
    return _mean_over_destinations(A, _match_matrix(tokens, is_causal(model))).cpu()


def _mean_over_destinations(A: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    has = target.any(-1)  # [b, q]
    if not has.any():
        raise ValueError(
            "tokens has no repeated token, so the score is undefined; use mechlib.repeated_tokens"
        )
    mass = (A * target[None, :, None].to(A.dtype)).sum(-1)  # [l, b, h, q]
    w = has[None, :, None].to(A.dtype)
    return (mass * w).sum(dim=(1, 3)) / (w.sum(dim=(1, 3)))


def per_token_loss(
    logits: Float[torch.Tensor, "batch seq vocab"], tokens: Int[torch.Tensor, "batch seq"]
) -> Float[torch.Tensor, "batch seq_minus_1"]:
    """Next-token cross-entropy ``-log softmax(logits[b, i])[tokens[b, i + 1]]``, on the device of ``logits``."""
    if logits.shape[:2] != tokens.shape:
        raise ValueError(
            f"logits [batch, seq, vocab] and tokens [batch, seq] must agree; got "
            f"{tuple(logits.shape)} and {tuple(tokens.shape)}"
        )
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    return -logp.gather(-1, tokens[:, 1:, None].to(logp.device)).squeeze(-1)


def repeat_loss(
    logits: Float[torch.Tensor, "batch seq vocab"],
    tokens: Int[torch.Tensor, "batch seq"],
    half_len: int,
    prefix_len: int = 0,
) -> float:
    """Mean next-token loss on the predictable part of :func:`mechlib.repeated_tokens`:
    the targets ``prefix_len + half_len + 1 .. end`` (the second copy, first token excluded)."""
    if tokens.shape[1] != prefix_len + 2 * half_len:
        raise ValueError(
            f"tokens has {tokens.shape[1]} positions but prefix_len + 2 * half_len = "
            f"{prefix_len + 2 * half_len}"
        )
    return per_token_loss(logits, tokens)[:, prefix_len + half_len :].mean().item()
