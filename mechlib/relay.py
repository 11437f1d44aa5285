"""The relay task of ``relay-2l``: recall the token that stood before the marker.

A sequence of random content tokens holds a marker token ``M`` at a random place and, later,
a recall token ``R``; the token after ``R`` is the token that stood just before ``M``. No
head in a single layer can find it: the position of that token does not know that ``M``
follows it. Two heads can: a layer-0 head at ``M`` copies the token before it into ``M``'s
residual stream, and a layer-1 head at ``R`` attends to ``M`` and reads that copy through
its values -- V-composition, a virtual attention head ``W_OV^{1.0} W_OV^{0.0}`` moving the
token along ``A^{1.0} A^{0.0}`` (Chapter 2, V-Composition; Chapter 5, Virtual Attention Heads).
The task does not force that road: a layer-0 head at ``R`` could fetch ``M``'s position
instead, and a layer-1 query search one position before it (Q-composition; the fixed
sinusoidal positions make that shift linear). ``relay-2l`` took the relay: cut from its
queries, the sender costs nothing (Chapter 2).

Why the training sequences hold one to three markers (the answer being the token before the
*last* one) while the book's evaluation batch holds one: trained on one marker only, a
2-layer model finds a K-composition shortcut instead (a layer-0 head tells every position
whether an ``M`` came before it, and a layer-1 head at ``R`` attends to the latest position
that has seen none, which is the token before ``M``). With several markers that position
stands before the *first* ``M``, the wrong one, so the shortcut does not pay and the model
learns the relay through the values. Picking the last of several markers is a second job,
which ``relay-2l`` does partly with its keys; the evaluation batch leaves it out, so that it
measures the relay alone.

The marker is token ``d_vocab - 2``, the recall token ``d_vocab - 1``; content tokens are
``0 .. d_vocab - 3``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int

from mechlib.validate import check_positive_int

#: how many markers a training sequence of ``relay-2l`` holds at most
MAX_MARKERS = 3


def relay_symbols(d_vocab: int) -> tuple[int, int]:
    """``(marker, recall)``: the token ids of ``M`` and ``R`` in a vocabulary of ``d_vocab`` tokens."""
    return d_vocab - 2, d_vocab - 1


def _check_layout(n_ctx: int, d_vocab: int, max_markers: int) -> None:
    check_positive_int(n_ctx, "n_ctx")
    check_positive_int(d_vocab, "d_vocab")
    check_positive_int(max_markers, "max_markers")
    if d_vocab < 3:
        raise ValueError(f"d_vocab must be at least 3 (a content token, the marker and the recall token); got {d_vocab}")
    if n_ctx < 2 * max_markers + 2:
        raise ValueError(f"n_ctx must be at least 2 * max_markers + 2 = {2 * max_markers + 2} (each marker after "
                         f"a content token, then the recall token and its answer); got n_ctx={n_ctx}")


def relay_sequences(
    batch: int, n_ctx: int, d_vocab: int, generator: torch.Generator, max_markers: int = MAX_MARKERS
) -> tuple[Int[torch.Tensor, "batch n_ctx"], Int[torch.Tensor, "batch"], Int[torch.Tensor, "batch"]]:
    """``(tokens, last_marker, recall)``: ``batch`` sequences of the relay task, on the CPU.

    Row ``b``: content tokens uniform in ``[0, d_vocab - 2)``; ``k`` markers (``k`` uniform
    in ``1..max_markers``) at positions ``p_1 < ... < p_k`` of ``1 .. q - 1``, at least two
    apart (so a content token stands before each); the recall token at ``q`` (uniform in
    ``2k .. n_ctx - 2``); and ``tokens[q + 1] = tokens[p_k - 1]``, the answer.
    ``last_marker[b] = p_k`` and ``recall[b] = q``. Everything is drawn from ``generator``.
    """
    check_positive_int(batch, "batch")
    _check_layout(n_ctx, d_vocab, max_markers)
    marker, recall_token = relay_symbols(d_vocab)
    tokens = torch.randint(0, d_vocab - 2, (batch, n_ctx), generator=generator, device="cpu")
    last = torch.zeros(batch, dtype=torch.long, device="cpu")
    recall = torch.zeros(batch, dtype=torch.long, device="cpu")
    for b in range(batch):
        k = int(torch.randint(1, max_markers + 1, (1,), generator=generator, device="cpu"))
        q = int(torch.randint(2 * k, n_ctx - 1, (1,), generator=generator, device="cpu"))
        while True:  # k positions in 1..q-1, pairwise at least 2 apart
            ps = sorted(int(x) for x in torch.randperm(q - 1, generator=generator, device="cpu")[:k] + 1)
            if all(b2 - a >= 2 for a, b2 in zip(ps, ps[1:])):
                break
        tokens[b, ps] = marker
        tokens[b, q] = recall_token
        tokens[b, q + 1] = tokens[b, ps[-1] - 1]
        last[b], recall[b] = ps[-1], q
    return tokens, last, recall


def relay_training_batch(
    batch: int, n_ctx: int, d_vocab: int, generator: torch.Generator, max_markers: int
) -> tuple[Int[torch.Tensor, "batch n_ctx"], Bool[torch.Tensor, "batch n_ctx_minus_1"]]:
    """One training batch of ``relay-2l``: :func:`relay_sequences` and the mask of the scored
    predictions (entry ``[b, i]``: predicting token ``i + 1`` from position ``i``; True only at ``i = q``)."""
    tokens, _, recall = relay_sequences(batch, n_ctx, d_vocab, generator, max_markers)
    return tokens, relay_mask(recall, n_ctx)


def relay_mask(recall: Int[torch.Tensor, "batch"], n_ctx: int) -> Bool[torch.Tensor, "batch seq_minus_1"]:
    """True at ``[b, recall[b]]`` only: the prediction made at the recall token."""
    mask = torch.zeros(recall.shape[0], n_ctx - 1, dtype=torch.bool, device=recall.device)
    mask[torch.arange(recall.shape[0], device=recall.device), recall] = True
    return mask


@dataclass(frozen=True)
class RelayBatch:
    """The evaluation batch of the relay task, with the interface of :class:`mechlib.RepeatedBatch`.

    ``tokens`` ``[batch, seq]``; ``last_marker[b]`` the position of the last ``M`` and
    ``recall[b]`` that of ``R`` in row ``b``. ``mask`` marks the scored next-token
    predictions (the one at ``R``), ``loss(logits)`` is the mean cross-entropy there, so
    :func:`mechlib.path_ablation_losses`, :func:`mechlib.run_with_ablation` and the rest take
    it as they take the induction batch. Chapter 2, V-Composition.
    """

    tokens: Int[torch.Tensor, "batch seq"]
    last_marker: Int[torch.Tensor, "batch"]
    recall: Int[torch.Tensor, "batch"]

    @property
    def answer_source(self) -> Int[torch.Tensor, "batch"]:
        """Position of the token to recall: the one before the last marker, ``last_marker - 1``."""
        return self.last_marker - 1

    @property
    def mask(self) -> Bool[torch.Tensor, "batch seq_minus_1"]:
        """Which next-token predictions are scored: ``[b, recall[b]]`` only."""
        return relay_mask(self.recall, self.tokens.shape[1]).to(self.tokens.device)

    def loss(self, logits: Float[torch.Tensor, "batch seq vocab"]) -> float:
        """Mean of ``-log softmax(logits[b, q_b])[tokens[b, q_b + 1]]`` over the rows, ``q_b = recall[b]``."""
        if logits.ndim != 3 or tuple(logits.shape[:2]) != tuple(self.tokens.shape):
            raise ValueError(f"logits must have shape [batch, seq, vocab] with [batch, seq] = "
                             f"{list(self.tokens.shape)}; got {list(logits.shape)}")
        rows = torch.arange(self.tokens.shape[0], device=logits.device)
        q = self.recall.to(logits.device)
        target = self.tokens.to(logits.device)[rows, q + 1]
        return float(F.cross_entropy(logits[rows, q].double(), target))

    def __getitem__(self, index: Any) -> "RelayBatch":
        """Some of the sequences: ``batch[:1]`` is the first sequence as a batch."""
        tokens = self.tokens[index]
        if tokens.ndim != 2:
            raise IndexError("index a RelayBatch with a slice or a list, so that it stays a batch")
        return RelayBatch(tokens, self.last_marker[index], self.recall[index])


def relay_batch(model: Any, batch: int = 64, seed: int = 0, max_markers: int = 1) -> RelayBatch:
    """The book's evaluation batch of the relay task for ``model`` (its vocabulary and context).

    ``batch`` sequences of :func:`relay_sequences` filling the model's context, drawn from a
    CPU generator seeded with ``seed`` (the training used other seeds, so every sequence is
    new to ``relay-2l``). The marker is token ``d_vocab - 2``, the recall token
    ``d_vocab - 1``. By default each sequence holds one marker (the relay alone);
    ``max_markers=3`` draws one to three, as in training. Raises ``ValueError`` when the model's vocabulary or context cannot hold
    the task. Chapter 2, V-Composition; Chapter 5, Virtual Attention Heads.
    """
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        raise TypeError(f"model must be a TransformerLens model (with .cfg); got {type(model).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {seed!r}")
    _check_layout(int(cfg.n_ctx), int(cfg.d_vocab), max_markers)
    check_positive_int(batch, "batch")
    g = torch.Generator(device="cpu").manual_seed(seed)
    tokens, last, recall = relay_sequences(batch, int(cfg.n_ctx), int(cfg.d_vocab), g, max_markers)
    return RelayBatch(tokens, last, recall)
