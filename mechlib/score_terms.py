"""One head's attention scores taken apart: a term per (query source, key source).

In an attention-only transformer without LayerNorm the residual stream that a head in
layer ``l`` reads is a sum of separate sources,

    x = e + p + sum_{heads g in layers < l} out_g + beta,

with ``e = W_E[t]`` the token embedding (source ``"embed"``), ``p = W_pos`` the positional
embedding (``"pos"``), ``out_g = A^g (x W_V^g + b_V^g) W_O^g`` what head ``g`` writes
(``"l.h"``, its value bias ``b_V^g W_O^g`` included: the head's ``hook_z @ W_O``), and
``beta = sum_{l' < l} b_O^{l'}`` the output biases of the earlier layers. The receiver's
query and key are linear in ``x``, ``q = x W_Q + b_Q`` and ``k = x W_K + b_K``, so they split
into one part per source; the query and key biases ``b_Q`` and ``b_K`` join ``beta`` in the
source ``"bias"``:

    q_s = x_s W_Q for a residual source s,   q_bias = beta W_Q + b_Q,
    k_s = x_s W_K,                           k_bias = beta W_K + b_K.

The pre-softmax score of query position ``i`` and key position ``j`` is bilinear:

    S[i, j] = q_i . k_j / scale = sum_{s, s'} q_{s, i} . k_{s', j} / scale,

one term per (query source ``s``, key source ``s'``), each ``[batch, query, key]``. The
scale (``sqrt(d_head)``, or ``cfg.attn_scale``) is applied inside every term, so the terms
add up to the scores themselves; the softmax of their sum over the causal keys
(``j <= i``) is the pattern the model records at ``hook_pattern``.

Everything is computed from the weights in float64 (float32 on MPS), the earlier layers'
patterns included, so the decomposition is exact. It applies only where the residual
stream is such a sum: attention-only models without LayerNorm whose positions are a
learned table added to the embeddings; any other model is refused before anything runs.

K-composition is seen directly in the terms ``("embed", "0.h")``: the query's token
against what the previous-token head wrote at the key (Chapter 3, K-Composition);
Q-composition in ``("0.h", ...)`` (Chapter 4, Q-Composition).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float

from mechlib.expansion import EXPANDABLE
from mechlib.heads import head_label
from mechlib.validate import check_head, check_tokens, model_device

#: the sources that are not heads, in the order they appear in :attr:`AttentionScoreTerms.sources`
BASE_SOURCES = ("embed", "pos", "bias")


@dataclass
class AttentionScoreTerms:
    """The terms of :func:`attention_score_terms`.

    ``terms`` maps ``(query_source, key_source)`` to a ``[batch, query, key]`` tensor (scale
    applied); ``sources`` lists the sources in order (``"embed"``, ``"pos"``, ``"bias"``, then
    each earlier head ``"l.h"``); ``receiver`` is the head; ``scale`` what every ``q . k`` was
    divided by; ``causal`` whether a query sees only keys at or before it.
    """

    terms: dict[tuple[str, str], torch.Tensor]
    sources: tuple[str, ...]
    receiver: tuple[int, int]
    scale: float
    causal: bool
    tokens: torch.Tensor = field(repr=False)

    def total(self, names: Any = None) -> Float[torch.Tensor, "batch query key"]:
        """Sum of the terms (all, or the ``(query_source, key_source)`` pairs in ``names``).

        With all terms: the receiver's pre-softmax scores, every key included (the causal
        mask is not applied; :meth:`pattern` applies it).
        """
        if names is None:
            names = list(self.terms)
        names = [tuple(n) if isinstance(n, list) else n for n in names]
        unknown = [n for n in names if n not in self.terms]
        if unknown:
            raise ValueError(f"names: unknown term(s) {unknown}; a term is a (query_source, key_source) pair "
                             f"of sources {list(self.sources)}")
        out = torch.zeros_like(next(iter(self.terms.values())))
        for n in names:
            out = out + self.terms[n]
        return out

    def pattern(self) -> Float[torch.Tensor, "batch query key"]:
        """The softmax of :meth:`total` over the keys a query sees (``j <= i`` in a causal model)."""
        scores = self.total()
        if self.causal:
            n = scores.shape[-1]
            mask = torch.ones(n, n, dtype=torch.bool, device=scores.device).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        return scores.softmax(-1)

    def margins(self, queries: Any, keys: Any) -> dict[tuple[str, str], float]:
        """Each term's share in how much query ``queries[n]`` prefers key ``keys[n]`` over the others.

        For a term ``T``: ``mean_{b, n} ( T[b, i_n, k_n] - mean_{j visible to i_n, j != k_n} T[b, i_n, j] )``,
        the visible keys being ``j <= i`` in a causal model. The margins add up (the map is
        linear) to the margin of :meth:`total`; divided by it they give each term's share
        (Chapter 3: the induction stripe, ``k_n = i_n - half_len + 1``). Python floats.
        """
        n_pos = self.tokens.shape[1]
        qs, ks = (torch.as_tensor(v, device="cpu").reshape(-1).long() for v in (queries, keys))
        if qs.numel() == 0 or qs.shape != ks.shape:
            raise ValueError(f"queries and keys must be non-empty and of one length (one key per query); got "
                             f"{qs.numel()} queries and {ks.numel()} keys")
        if qs.min() < 0 or ks.min() < 0 or qs.max() >= n_pos or ks.max() >= n_pos:
            raise ValueError(f"queries and keys must be positions in 0..{n_pos - 1}")
        if self.causal and ((ks > qs).any() or (qs < 1).any()):
            raise ValueError("keys: each key must be at or before its query (keys[n] <= queries[n]), and each query "
                             "must see another key (queries[n] >= 1): the model is causal")
        device = next(iter(self.terms.values())).device
        visible = torch.ones(n_pos, n_pos, dtype=torch.bool, device="cpu")
        if self.causal:
            visible = visible.tril()
        others = visible[qs].clone()
        others[torch.arange(len(qs), device="cpu"), ks] = False
        others = others.to(device=device, dtype=next(iter(self.terms.values())).dtype)
        qd, kd = qs.to(device), ks.to(device)

        def margin(T: torch.Tensor) -> float:
            rows = T[:, qd]  # [batch, n, key]
            on = rows[:, torch.arange(len(qd), device=device), kd]
            off = (rows * others).sum(-1) / others.sum(-1)
            return (on - off).mean().item()

        return {name: margin(T) for name, T in self.terms.items()}

    def __repr__(self) -> str:
        return (f"AttentionScoreTerms(receiver {head_label(self.receiver)}, {len(self.terms)} terms over sources "
                f"{list(self.sources)}, scale {self.scale:g}, tokens {tuple(self.tokens.shape)})")


def attention_scale(model: Any) -> float:
    """What TransformerLens divides ``q . k`` by: ``cfg.attn_scale`` if set, else ``sqrt(d_head)``; 1 without scaling."""
    cfg = model.cfg
    if getattr(cfg, "use_attn_scale", True) is False:
        return 1.0
    scale = getattr(cfg, "attn_scale", -1.0)
    return float(scale) if scale is not None and scale > 0 else math.sqrt(cfg.d_head)


def check_score_terms_model(model: Any) -> None:
    """Raise ``ValueError`` naming ``model`` unless its residual stream is a sum of separate sources.

    The rules are :func:`mechlib.check_expandable`'s (attention-only, no LayerNorm, learned
    positions added to the embeddings), plus plain attention: no soft-capped scores and no
    grouped key/value heads. The logits are never read, so an untrained unembedding is fine.
    """
    cfg = model.cfg
    problems = [f"cfg.{name}={getattr(cfg, name, None)!r} (allowed: {allowed!r}, {meaning})"
                for name, allowed, meaning in EXPANDABLE if getattr(cfg, name, None) != allowed]
    if (getattr(cfg, "attn_scores_soft_cap", -1.0) or -1.0) > 0:
        problems.append(f"cfg.attn_scores_soft_cap={cfg.attn_scores_soft_cap!r} (allowed: <= 0, no soft-capping: "
                        "tanh of a sum is not a sum of terms)")
    kv = getattr(cfg, "n_key_value_heads", None)
    if kv is not None and kv != cfg.n_heads:
        problems.append(f"cfg.n_key_value_heads={kv!r} (allowed: None or n_heads={cfg.n_heads}, no grouped-query "
                        "attention)")
    if problems:
        raise ValueError(
            "model: attention_score_terms takes the scores apart exactly, which applies only to attention-only "
            "models without LayerNorm whose positions are added to the embeddings; this model has "
            + "; ".join(problems)
        )


def attention_score_terms(model: Any, tokens: torch.Tensor, receiver: Any) -> AttentionScoreTerms:
    """The pre-softmax attention scores of head ``receiver`` on ``tokens``, one term per pair of sources.

    ``S = sum_{(s, s')} (q_s . k_{s'}) / scale`` with the sources ``"embed"``, ``"pos"``,
    ``"bias"`` (earlier layers' ``b_O``, plus ``b_Q`` on the query side and ``b_K`` on the key
    side) and each head ``"l.h"`` of an earlier layer (its output ``hook_z @ W_O``, value bias
    included): see the module docstring. Computed from the weights in float64 (float32 on
    MPS); ``.total()`` is the scores, ``.pattern()`` their softmax over the causal keys, equal
    to ``hook_pattern``. The terms are activations: they stay on the model's device.
    Chapter 3 (K-Composition), Chapter 4 (Q-Composition), Chapter 8 (the raw scores).
    """
    check_score_terms_model(model)
    receiver = check_head(model, receiver, "receiver")
    tokens = check_tokens(model, tokens)
    device = model_device(model)
    dtype = torch.float32 if device.type == "mps" else torch.float64
    layer, head = receiver
    n = tokens.shape[1]
    causal = getattr(model.cfg, "attention_dir", "causal") != "bidirectional"
    scale = attention_scale(model)
    mask = torch.ones(n, n, dtype=torch.bool, device=device).triu(1)
    W = lambda t: t.detach().to(device=device, dtype=dtype)  # noqa: E731
    W_Q, W_K, W_V, W_O = W(model.W_Q), W(model.W_K), W(model.W_V), W(model.W_O)
    b_Q, b_K, b_V, b_O = W(model.b_Q), W(model.b_K), W(model.b_V), W(model.b_O)
    with torch.no_grad():
        parts: dict[str, torch.Tensor] = {  # residual-stream sources, [batch, pos, d_model]
            "embed": W(model.W_E)[tokens],
            "pos": W(model.W_pos)[:n].expand(tokens.shape[0], n, -1),
            "bias": torch.zeros(tokens.shape[0], n, W_Q.shape[2], dtype=dtype, device=device),
        }
        for l in range(layer):
            x = sum(parts.values())
            q = torch.einsum("bpd,hde->bhpe", x, W_Q[l]) + b_Q[l][None, :, None]
            k = torch.einsum("bpd,hde->bhpe", x, W_K[l]) + b_K[l][None, :, None]
            s = torch.einsum("bhie,bhje->bhij", q, k) / scale
            if causal:
                s = s.masked_fill(mask, float("-inf"))
            v = torch.einsum("bpd,hde->bhpe", x, W_V[l]) + b_V[l][None, :, None]
            z = torch.einsum("bhij,bhje->bhie", s.softmax(-1), v)
            out = torch.einsum("bhie,hem->bhim", z, W_O[l])
            for h in range(W_Q.shape[1]):
                parts[head_label((l, h))] = out[:, h]
            parts["bias"] = parts["bias"] + b_O[l]
        qs = {name: r @ W_Q[layer, head] for name, r in parts.items()}
        ks = {name: r @ W_K[layer, head] for name, r in parts.items()}
        qs["bias"] = qs["bias"] + b_Q[layer, head]
        ks["bias"] = ks["bias"] + b_K[layer, head]
        terms = {(a, b): torch.einsum("bie,bje->bij", qs[a], ks[b]) / scale for a in parts for b in parts}
    return AttentionScoreTerms(terms=terms, sources=tuple(parts), receiver=receiver, scale=scale,
                               causal=causal, tokens=tokens)
