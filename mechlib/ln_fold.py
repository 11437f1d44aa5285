"""Composition scores with the LayerNorm gains folded in: the direct path as a model with LayerNorm applies it.

In a model with LayerNorm a sender's output reaches a later receiver only through the norms in
between. Each norm maps a row vector ``x`` to ``(x - mean(x)) / sigma(x) * w + b``: centring
(``P = I - 1 1^T / d_model``), division by a scale ``sigma(x)`` that depends on the whole
residual stream, a gain ``w`` per coordinate and a bias. Along the direct (residual) path the
linear part, up to the positive scalar ``1 / sigma``, is

    N = P diag(w),        and the path from sender to receiver is  M = N_1 N_2 ... N_k

over the norms it passes: for a post-LN model (BERT, MiniLM) ``ln1`` and ``ln2`` of the sender's
layer and of every layer before the receiver's; for a pre-LN model (GPT-2) the receiver's own
``ln1``. The folded score is

    C_fold(s, r) = ||W_OV^{s} M W^{r}||_F / (||W_OV^{s} M||_F ||W^{r}||_F),

the composition score of :mod:`mechlib.composition` with ``W_OV^{s} M`` for the sender. A
scalar cancels in the score, so ``sigma`` does not matter; what the fold cannot capture is
everything that is not the direct path (the MLPs, and how ``sigma`` depends on the input).
Appendix, Composition in a Real Transformer.
"""
from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float

from mechlib.composition import _gram_root, _right_factors
from mechlib.validate import check_kind

NORM_POSITIONS = ("post", "pre")


def _gain(norm: Any) -> torch.Tensor:
    for owner in (norm, getattr(norm, "_original_component", None)):
        for name in ("w", "weight"):
            value = getattr(owner, name, None) if owner is not None else None
            if isinstance(value, torch.Tensor):
                return value.detach()
    raise ValueError(f"model: found no LayerNorm gain (w or weight) on {type(norm).__name__}")


def norm_linear_map(norm: Any) -> Float[torch.Tensor, "d_model d_model"]:
    """``P diag(w)`` in float64: a LayerNorm's linear part for row vectors, without its ``1 / sigma``."""
    w = _gain(norm).double().cpu()
    d = w.shape[0]
    return (torch.eye(d, dtype=torch.float64) - 1.0 / d) * w[None, :]


def ln_path_map(model: Any, sender_layer: int, receiver_layer: int, norm_position: str) -> Float[torch.Tensor, "d_model d_model"]:
    """``M``: the product of :func:`norm_linear_map` over the norms between the two layers (module docstring)."""
    if norm_position == "pre":
        return norm_linear_map(model.blocks[receiver_layer].ln1)
    M = torch.eye(model.cfg.d_model, dtype=torch.float64)
    for layer in range(sender_layer, receiver_layer):
        M = M @ norm_linear_map(model.blocks[layer].ln1) @ norm_linear_map(model.blocks[layer].ln2)
    return M


def folded_composition_scores(
    model: Any, kind: str, norm_position: str
) -> Float[torch.Tensor, "sender_layer sender_head receiver_layer receiver_head"]:
    """:func:`mechlib.composition_scores` with the LayerNorm gains and centring on the path folded into each sender.

    ``norm_position``: ``"post"`` for a model that normalises after each sublayer (BERT,
    MiniLM), ``"pre"`` for one that normalises each sublayer's input (GPT-2). Same ``[L, H, L,
    H]`` layout (0 unless the sender's layer comes first), computed in float64 on the CPU with
    the Gram-root factorisation of :func:`mechlib.composition_scores`.
    """
    kind = check_kind(kind)
    if norm_position not in NORM_POSITIONS:
        raise ValueError(f"norm_position must be 'post' (BERT, MiniLM) or 'pre' (GPT-2); got {norm_position!r}")
    if getattr(model.cfg, "normalization_type", None) not in ("LN", "LNPre"):
        raise ValueError(
            f"model: folding needs LayerNorm gains; this model has normalization_type="
            f"{getattr(model.cfg, 'normalization_type', None)!r} (use mechlib.composition_scores)"
        )
    L, H = model.cfg.n_layers, model.cfg.n_heads
    with torch.no_grad():
        W_V, W_O = (w.detach().double().cpu() for w in (model.W_V, model.W_O))
        X, Y = (t.detach().double().cpu() for t in _right_factors(model, kind))
        R_s, R_r = _gram_root(W_V), _gram_root(Y.transpose(-2, -1))  # [L, H, dh, dh]
        right = X @ R_r.transpose(-2, -1)  # [L, H, d_model, dh]
        right_norm = right.norm(dim=(-2, -1))  # [L, H]
        out = torch.zeros(L, H, L, H, dtype=torch.float64)
        for l1 in range(L - 1):
            for l2 in range(l1 + 1, L):
                left = R_s[l1] @ W_O[l1] @ ln_path_map(model, l1, l2, norm_position)  # [H, dh, d_model]
                num = torch.einsum("sad,rdb->srab", left, right[l2]).square().sum(dim=(-2, -1)).sqrt()
                out[l1, :, l2] = num / (left.norm(dim=(-2, -1))[:, None] * right_norm[l2][None, :])
    return out
