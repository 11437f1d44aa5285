"""QK and OV circuits of single heads, and composed (virtual) OV circuits.

Row-vector convention, as in TransformerLens: a residual vector ``x`` (a row)
becomes a query ``x W_Q`` and a key ``x W_K``, so the bilinear attention score is
``x_q W_Q W_K^T x_k^T`` and a head writes ``x W_V W_O`` to the residual stream.
Every circuit is returned as a :class:`transformer_lens.FactoredMatrix`, a product
kept as its two low-rank factors.

Taught in Chapter 2, V-Composition (OV and the composed OV circuit) and Chapter 5,
Virtual Attention Heads (the QK circuit and the full circuits through the embedding).
"""
from __future__ import annotations

from typing import Any

from transformer_lens import FactoredMatrix

from mechlib.heads import Head
from mechlib.validate import check_head, check_kind, check_sender_receiver


def qk_circuit(model: Any, head: Head) -> FactoredMatrix:
    """``W_QK^{l.h} = W_Q^{l.h} W_K^{l.h T}``, shape ``[d_model, d_model]`` (rank <= d_head)."""
    l, h = check_head(model, head)
    return FactoredMatrix(model.W_Q[l, h], model.W_K[l, h].T)


def ov_circuit(model: Any, head: Head) -> FactoredMatrix:
    """``W_OV^{l.h} = W_V^{l.h} W_O^{l.h}``, shape ``[d_model, d_model]`` (rank <= d_head)."""
    l, h = check_head(model, head)
    return FactoredMatrix(model.W_V[l, h], model.W_O[l, h])


def receiver_circuit(model: Any, head: Head, kind: str) -> FactoredMatrix:
    """The matrix through which head ``l.h`` reads a sender's output, ``[d_model, d_model]``.

    ``kind="Q"``: ``W_QK = W_Q W_K^T`` (the output enters the query side);
    ``"K"``: ``W_QK^T = W_K W_Q^T`` (the key side); ``"V"``: ``W_OV = W_V W_O``.
    A sender ``s`` composes with the receiver through ``W_OV^{s} @ receiver_circuit(...)``.
    """
    kind = check_kind(kind)
    if kind == "V":
        return ov_circuit(model, head)
    qk = qk_circuit(model, head)
    return qk if kind == "Q" else qk.T


def full_qk_circuit(model: Any, head: Head) -> FactoredMatrix:
    """Token-to-token QK circuit ``W_E W_QK^{l.h} W_E^T``, shape ``[d_vocab, d_vocab]``.

    Entry ``[i, j]`` is the attention score a query token ``i`` gives a key token
    ``j`` through the token embeddings alone (positional embeddings left out).
    """
    l, h = check_head(model, head)
    return FactoredMatrix(model.W_E @ model.W_Q[l, h], model.W_K[l, h].T @ model.W_E.T)


def full_ov_circuit(model: Any, head: Head) -> FactoredMatrix:
    """Token-to-logit OV circuit ``W_E W_OV^{l.h} W_U``, shape ``[d_vocab, d_vocab]``.

    Entry ``[i, j]`` is how much attending to token ``i`` raises the logit of token ``j``.
    """
    l, h = check_head(model, head)
    return FactoredMatrix(model.W_E @ model.W_V[l, h], model.W_O[l, h] @ model.W_U)


def virtual_ov(model: Any, sender: Head, receiver: Head) -> FactoredMatrix:
    """Composed OV circuit of a virtual head, ``W_OV^{sender} W_OV^{receiver}``, ``[d_model, d_model]``.

    In row-vector convention the sender acts first: a residual row ``x`` read by the
    sender is written as ``x W_OV^{s}``, which the receiver moves on as
    ``x W_OV^{s} W_OV^{r}``. (In the column-vector notation of Elhage et al. 2021 the
    same map is written ``W_OV^{h2} W_OV^{h1}``.) Its rank is at most ``d_head``.
    """
    s, r = check_sender_receiver(model, sender, receiver)
    return ov_circuit(model, s) @ ov_circuit(model, r)
