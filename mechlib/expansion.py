"""The exact path expansion of an attention-only transformer without LayerNorm.

Given the attention patterns of a forward pass, an attention-only model with no
LayerNorm is linear in its residual stream, so its logits split exactly into
terms, one per path from the embedding to the unembedding (Elhage et al. 2021).
For two layers:

    logits = x0 W_U                                   (direct path)
           + sum_h A^{h} x0 W_OV^{h} W_U              (single-head terms, both layers)
           + sum_{h1 in layer 0, h2 in layer 1} A^{h2} A^{h1} x0 W_OV^{h1} W_OV^{h2} W_U
                                                      (virtual-head terms)
           + bias terms,

with ``x0 = W_E[tokens] + W_pos`` and ``A^{h}`` the head's attention pattern. A head's
value bias passes through unchanged (each attention row sums to 1), so the bias
of layer ``l`` is ``beta_l = b_O^l + sum_h b_V^{l.h} W_O^{l.h}``; it reaches the logits
directly and through every later head.

Each head's value-bias term ``b_V^{l.h} W_O^{l.h}`` is filed under its layer's bias by
default, so a head's own term ``"0.1"`` holds only what it moves from the embeddings, and a
per-head attribution that counts the value bias as the head's (as ARENA's does) differs
from it by exactly that term. The default keeps one bias per layer because the book's term
picker (the in-page ``model.js``) and Chapter 6 list the terms that way. With
``split_value_bias=True`` every head's value-bias term gets its own name instead:
``"bias 0"`` is then ``b_O^0`` alone, ``"bias 0.1"`` is ``b_V^{0.1} W_O^{0.1}``, and each goes
on through later heads like any bias (``"bias 0.1->1.2"``); the sum is unchanged.

Taught in Chapter 6, The Two-Layer Expansion.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float

from mechlib.heads import head_label
from mechlib.models.info import check_next_token_model
from mechlib.validate import check_tokens, model_device

TERM_KINDS = ("direct", "single", "virtual", "bias")


@dataclass
class PathExpansion:
    """Logit terms of :func:`path_expansion`.

    ``terms`` maps a term's name to its logits ``[batch, pos, d_vocab]``:
    ``"direct"``; a head ``"0.1"``; a virtual head ``"0.1->1.2"`` (sender first);
    a bias ``"bias 0"`` (layer 0's output bias read by the unembedding),
    ``"bias 0->1.2"`` (read through a later head) and ``"bias unembed"`` (``b_U``); with
    ``split_value_bias=True`` also ``"bias 0.1"`` (head 0.1's value bias, ``b_V W_O``) and
    ``"bias 0.1->1.2"``.
    ``kinds`` maps each name to ``"direct"``, ``"single"``, ``"virtual"`` or ``"bias"``.
    """

    terms: dict[str, torch.Tensor]
    kinds: dict[str, str]
    tokens: torch.Tensor = field(repr=False)

    def total(self, names: Any = None) -> Float[torch.Tensor, "batch pos vocab"]:
        """Sum of the terms (all of them, or those in ``names``); with all terms, the model's logits."""
        if names is None:
            names = list(self.terms)
        unknown = [n for n in names if n not in self.terms]
        if unknown:
            raise ValueError(f"unknown term(s) {unknown}; terms are {list(self.terms)}")
        out = torch.zeros_like(next(iter(self.terms.values())))
        for n in names:
            out = out + self.terms[n]
        return out

    def by_kind(self) -> dict[str, torch.Tensor]:
        """Sum of the terms of each kind: ``{"direct": ..., "single": ..., "virtual": ..., "bias": ...}``."""
        return {k: self.total([n for n in self.terms if self.kinds[n] == k]) for k in TERM_KINDS}

    def sizes(self) -> dict[str, float]:
        """Root-mean-square of each term over batch, positions and vocabulary (how big its contribution is)."""
        return {n: t.pow(2).mean().sqrt().item() for n, t in self.terms.items()}

    def __repr__(self) -> str:
        counts = {k: sum(v == k for v in self.kinds.values()) for k in TERM_KINDS}
        return f"PathExpansion({len(self.terms)} terms: {counts}, tokens {tuple(self.tokens.shape)})"


#: what the exact expansion needs of a model's configuration: ``(cfg field, allowed value, what it means)``
EXPANDABLE = (
    ("attn_only", True, "attention-only: no MLP layers"),
    ("normalization_type", None, "no LayerNorm or RMSNorm: a norm divides by a statistic of the whole "
                                 "residual stream, so the stream is no longer a sum of separate paths"),
    ("positional_embedding_type", "standard", "positions as a learned table W_pos added to the token "
                                              "embeddings (rotary positions rotate queries and keys inside "
                                              "each head: there is no W_pos to expand)"),
)


def check_expandable(model: Any, what: str = "path_expansion") -> None:
    """Raise ``ValueError`` unless the exact path expansion applies to ``model``, before anything is computed.

    It applies to attention-only models without LayerNorm whose positions are a learned table
    ``W_pos`` added to the embeddings (:data:`EXPANDABLE`), with no soft-capping, whose logits
    are next-token predictions (a trained unembedding, causal attention). The message names
    the argument, what the model has and what is allowed. ``what`` names the caller in it.
    Chapter 6, The Two-Layer Expansion.
    """
    check_next_token_model(model, what)
    cfg = model.cfg
    problems = [f"cfg.{field}={getattr(cfg, field, None)!r} (allowed: {allowed!r}, {meaning})"
                for field, allowed, meaning in EXPANDABLE if getattr(cfg, field, None) != allowed]
    if getattr(cfg, "output_logits_soft_cap", -1.0) > 0 or getattr(cfg, "attn_scores_soft_cap", -1.0) > 0:
        problems.append("soft-capped logits or attention scores (allowed: none, cfg.output_logits_soft_cap "
                        "and cfg.attn_scores_soft_cap <= 0)")
    if problems:
        raise ValueError(
            f"model: {what} computes the exact path expansion, which applies only to attention-only "
            "models without LayerNorm whose positions are added to the embeddings; this model has "
            + "; ".join(problems)
        )


def path_expansion(model: Any, tokens: torch.Tensor, dtype: torch.dtype | None = None,
                   patterns: Float[torch.Tensor, "layer batch head dest src"] | None = None,
                   split_value_bias: bool = False) -> PathExpansion:
    """Exact path expansion of ``model``'s logits on ``tokens`` (see module docstring).

    Works for any number of layers: a path goes through heads in strictly increasing
    layers, so an ``L``-layer model has chains of up to ``L`` heads. The terms are
    computed in ``dtype`` from the model's own attention patterns; their sum matches
    ``model(tokens)`` to float32 precision. ``dtype=None`` means float64, or float32 on
    MPS, which has no float64. The terms are activations: they stay on the model's device.

    ``patterns`` (``[layer, batch, head, dest, src]``, e.g. from :func:`mechlib.attention_patterns`)
    replaces the model's own attention patterns: the expansion is linear *given* the
    patterns, so this freezes where every head looks while every OV path stays as it is
    (Chapter 6, The Two-Layer Expansion). The sum then equals a forward pass whose
    ``hook_pattern`` activations are replaced by ``patterns``.

    ``split_value_bias=True`` names each head's value-bias term ``b_V^{l.h} W_O^{l.h}``
    separately (``"bias l.h"``) instead of filing it under the layer's ``"bias l"``, which
    then holds ``b_O^l`` alone (module docstring: why the default lumps them).
    """
    check_expandable(model)
    tokens = check_tokens(model, tokens)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    if patterns is not None:
        shape = (L, tokens.shape[0], H, tokens.shape[1], tokens.shape[1])
        if not isinstance(patterns, torch.Tensor) or tuple(patterns.shape) != shape:
            raise ValueError(f"patterns must be a tensor of shape [layer, batch, head, dest, src] = {shape}; got "
                             f"{tuple(patterns.shape) if isinstance(patterns, torch.Tensor) else type(patterns).__name__}")
    if not isinstance(split_value_bias, bool):
        raise TypeError(f"split_value_bias must be True or False; got {split_value_bias!r}")
    if dtype is None:
        dtype = torch.float32 if model_device(model).type == "mps" else torch.float64
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype such as torch.float64; got {dtype!r}")
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(L)]
    with torch.no_grad():
        if patterns is None:
            _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
        else:
            cache = {n: patterns[l].to(model_device(model)) for l, n in enumerate(names)}
        W = lambda t: t.detach().to(dtype)  # noqa: E731
        W_V, W_O, b_V, b_O = W(model.W_V), W(model.W_O), W(model.b_V), W(model.b_O)
        x0 = W(model.W_E)[tokens] + W(model.W_pos)[: tokens.shape[1]]
        # residual-stream contributions of every path so far: name -> [batch, pos, d_model]
        paths: dict[str, torch.Tensor] = {"direct": x0}
        kinds: dict[str, str] = {"direct": "direct"}
        for l in range(L):
            A = cache[names[l]].to(dtype)  # [batch, head, dest, src]
            new: dict[str, torch.Tensor] = {}
            for name, r in paths.items():
                if kinds[name] == "bias":
                    # a constant vector at every position; attention rows sum to 1
                    for h in range(H):
                        new[f"{name}->{head_label((l, h))}"] = r @ W_V[l, h] @ W_O[l, h]
                    continue
                v = torch.einsum("bpd,hde,hem->bhpm", r, W_V[l], W_O[l])
                moved = torch.einsum("bhqp,bhpm->bhqm", A, v)
                for h in range(H):
                    new[head_label((l, h)) if name == "direct" else f"{name}->{head_label((l, h))}"] = moved[:, h]
            for name in new:
                kinds[name] = "bias" if name.startswith("bias") else ("single" if "->" not in name else "virtual")
            paths.update(new)
            if split_value_bias:
                paths[f"bias {l}"] = b_O[l].expand_as(x0)
                for h in range(H):  # head l.h's value bias b_V^{l.h} W_O^{l.h}, under its own name
                    paths[f"bias {head_label((l, h))}"] = (b_V[l, h] @ W_O[l, h]).expand_as(x0)
                    kinds[f"bias {head_label((l, h))}"] = "bias"
            else:
                beta = b_O[l] + torch.einsum("hd,hdm->m", b_V[l], W_O[l])
                paths[f"bias {l}"] = beta.expand_as(x0)
            kinds[f"bias {l}"] = "bias"
        W_U = W(model.W_U)
        terms = {n: r @ W_U for n, r in paths.items()}
        b_U = getattr(model, "b_U", None)
        if b_U is not None:
            terms["bias unembed"] = W(b_U).expand(*tokens.shape, -1).clone()
            kinds["bias unembed"] = "bias"
        for n in terms:
            if terms[n].shape != (*tokens.shape, W_U.shape[-1]):
                terms[n] = terms[n].expand(*tokens.shape, W_U.shape[-1]).clone()
    return PathExpansion(terms=terms, kinds=kinds, tokens=tokens)
