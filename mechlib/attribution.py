"""Attribution: which path-expansion terms, and which senders, a behaviour relies on.

Two measurements on real activations, complementing the weight-only composition
scores of :mod:`mechlib.composition`:

* :func:`correct_token_attribution` -- how much each term of a :class:`PathExpansion`
  pushes up the logit of the token that actually comes next.
* :func:`composition_from_cache` -- how large one sender's piece of what a receiver reads
  through its ``W_Q``, ``W_K`` or ``W_V`` is, relative to the whole read, on a given batch.

Taught in Chapter 6, The Two-Layer Expansion (which terms carry the answer) and
Chapter 8, TransformerLens Vocabulary (composition read from a cache).
"""
from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Bool, Float

from mechlib.expansion import PathExpansion
from mechlib.validate import check_kind


def correct_token_attribution(
    expansion: PathExpansion, mask: Bool[torch.Tensor, "batch seq_minus_1"] | None = None
) -> dict[str, float]:
    """Mean contribution of every term to the correct next-token logit.

    For term ``T_n`` (logits ``[batch, pos, vocab]``) and next token ``t_{b,i+1}``:

        c_n = mean_{(b, i) in mask} ( T_n[b, i, t_{b,i+1}] - mean_v T_n[b, i, v] ).

    Subtracting the mean over the vocabulary removes the part of a term that raises
    every logit equally, which the softmax ignores. ``mask`` (``[batch, seq - 1]``, as
    from :func:`mechlib.repeat_mask`) selects the predictions to average over; ``None``
    means all of them. The values add up over terms: ``sum_n c_n`` is the same quantity
    for the model's logits.
    """
    tokens = expansion.tokens
    batch, seq = tokens.shape
    if mask is None:
        mask = torch.ones(batch, seq - 1, dtype=torch.bool, device=tokens.device)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError("mask must be a boolean tensor [batch, seq - 1], e.g. from mechlib.repeat_mask")
    if tuple(mask.shape) != (batch, seq - 1):
        raise ValueError(f"mask must have shape [batch, seq - 1] = {(batch, seq - 1)}; got {tuple(mask.shape)}")
    if not mask.any():
        raise ValueError("mask selects no prediction")
    mask = mask.to(tokens.device)
    target = tokens[:, 1:, None]
    out = {}
    for name, term in expansion.terms.items():
        t = term[:, :-1]
        centred = t.gather(-1, target).squeeze(-1) - t.mean(-1)
        out[name] = centred[mask].mean().item()
    return out


def composition_from_cache(
    model: Any, cache: Any, kind: str
) -> Float[torch.Tensor, "sender_layer sender_head receiver_layer receiver_head"]:
    """Norm ratio of each sender's piece of each receiver's ``kind`` input to the whole input, on cached activations.

    With ``o^{s} = z^{s} W_O^{s}`` the sender's output and ``x^{l}`` the residual stream
    entering the receiver's layer (``blocks.{l}.hook_resid_pre``), both from ``cache``:

        share[l1, h1, l2, h2] = ||o^{l1.h1} W_X^{l2.h2}||_F / ||x^{l2} W_X^{l2.h2}||_F,

    with ``W_X`` the receiver's ``W_Q``, ``W_K`` or ``W_V`` for ``kind`` Q, K or V and the
    norms taken over batch, positions and the ``d_head`` components; 0 unless ``l1 < l2``.
    It is the activation counterpart of a composition score: how much of what the
    receiver actually reads on this data was written by the sender. Computed where the
    cache is; the table is returned on the CPU.

    A norm ratio, not a share: the pieces of the residual stream can point against each
    other, so the ratios of the senders (with the embeddings' and biases') need not add up
    to 1. Every batch element and position weighs alike, whichever keys the receiver
    attends to.
    """
    kind = check_kind(kind)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    with torch.no_grad():
        device = cache["blocks.0.attn.hook_z"].device  # the cache may live elsewhere than the model
        W = getattr(model, f"W_{kind}").detach().to(device)
        W_O = model.W_O.detach().to(device)
        out = torch.zeros(L, H, L, H, device=device)
        # o^{l1.h1} = z^{l1.h1} W_O^{l1.h1}: [h1, batch, pos, d_model], once per sender layer
        outputs = [torch.einsum("bphe,hem->hbpm", cache[f"blocks.{l1}.attn.hook_z"], W_O[l1]) for l1 in range(L - 1)]
        for l2 in range(1, L):
            x = cache[f"blocks.{l2}.hook_resid_pre"]
            read = torch.einsum("bpd,hde->hbpe", x, W[l2])
            denom = read.flatten(1).norm(dim=1)  # [H]
            for l1 in range(l2):
                proj = torch.einsum("sbpm,rme->srbpe", outputs[l1], W[l2])
                out[l1, :, l2] = proj.flatten(2).norm(dim=2) / denom[None]
    return out.cpu()
