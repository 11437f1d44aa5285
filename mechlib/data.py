"""Token data: repeated random sequences, and the training distribution of ``induction-2l``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int

from mechlib.validate import check_nonnegative_int, check_positive_int


def repeated_tokens(
    d_vocab: int, batch: int, half_len: int, seed: int = 0, prefix_len: int = 0
) -> Int[torch.Tensor, "batch seq"]:
    """Random tokens, then a random segment, then the same segment again.

    ``tokens[b] = prefix (prefix_len) ++ seg (half_len) ++ seg (half_len)``, every token
    uniform in ``[0, d_vocab)`` and drawn from a generator seeded with ``seed``.
    On the second copy of ``seg`` the next token can be predicted only by looking
    back at the first copy: the task that induction heads solve.

    Returns a LongTensor of shape ``[batch, prefix_len + 2 * half_len]``, always on the
    CPU, so a seed gives the same tokens on every machine; every mechlib function that
    takes tokens moves them to the model's device.
    """
    check_positive_int(d_vocab, "d_vocab")
    check_positive_int(batch, "batch")
    check_positive_int(half_len, "half_len")
    check_nonnegative_int(prefix_len, "prefix_len")
    g = torch.Generator(device="cpu").manual_seed(seed)
    prefix = torch.randint(0, d_vocab, (batch, prefix_len), generator=g, device="cpu")
    seg = torch.randint(0, d_vocab, (batch, half_len), generator=g, device="cpu")
    return torch.cat([prefix, seg, seg], dim=1)


def repeat_mask(
    batch: int, half_len: int, prefix_len: int = 0
) -> Bool[torch.Tensor, "batch seq_minus_1"]:
    """Which next-token predictions of :func:`repeated_tokens` are predictable.

    Entry ``[b, i]`` refers to predicting token ``i + 1`` from position ``i``. It is True
    for the targets inside the second copy, except its first token (which cannot be
    known in advance): targets ``prefix_len + half_len + 1 .. prefix_len + 2 half_len - 1``.
    """
    seq = prefix_len + 2 * half_len
    mask = torch.zeros(batch, seq - 1, dtype=torch.bool, device="cpu")
    mask[:, prefix_len + half_len :] = True
    return mask


def induction_training_batch(
    batch: int,
    n_ctx: int,
    d_vocab: int,
    generator: torch.Generator,
    lengths: tuple[int, ...],
    max_gap: int,
) -> tuple[Int[torch.Tensor, "batch n_ctx"], Bool[torch.Tensor, "batch n_ctx_minus_1"]]:
    """One batch of the training distribution of ``induction-2l``.

    Each row is uniform random tokens into which a random segment of length
    ``n`` (drawn from ``lengths``) is written twice: first at a random start
    ``s``, then again at ``s + n + gap`` with ``gap`` uniform in ``[0, max_gap]``,
    with random tokens before, between and after. The mask marks the
    predictable targets: tokens 2..n of the second copy. Because the segment
    sits at a different place in every row, only a content-based circuit
    (find the earlier occurrence of the current token, copy what came next)
    can predict it.
    """
    tokens = torch.randint(0, d_vocab, (batch, n_ctx), generator=generator)
    mask = torch.zeros(batch, n_ctx - 1, dtype=torch.bool)
    lens = torch.tensor(lengths)[torch.randint(0, len(lengths), (batch,), generator=generator)]
    for b in range(batch):
        n = int(lens[b])
        gap = int(torch.randint(0, max_gap + 1, (1,), generator=generator))
        room = n_ctx - (2 * n + gap)
        if room < 0:
            gap, room = 0, n_ctx - 2 * n
        s = int(torch.randint(0, room + 1, (1,), generator=generator))
        s2 = s + n + gap
        tokens[b, s2 : s2 + n] = tokens[b, s : s + n]
        mask[b, s2 : s2 + n - 1] = True  # predicting tokens s2+1 .. s2+n-1
    return tokens, mask


@dataclass(frozen=True)
class RepeatedBatch:
    """A batch of :func:`repeated_tokens` together with its layout.

    ``tokens[b] = prefix (prefix_len) ++ seg (half_len) ++ seg (half_len)``. The layout
    travels with the tokens, so :meth:`loss` scores exactly the predictable targets
    (the second copy, first token excluded) without the caller repeating the lengths.
    Introduced in Chapter 1, Beyond One Layer.
    """

    tokens: Int[torch.Tensor, "batch seq"]
    half_len: int
    prefix_len: int

    @property
    def boundaries(self) -> list[int]:
        """Positions where the first and the second copy start: ``[prefix_len, prefix_len + half_len]``."""
        return [self.prefix_len, self.prefix_len + self.half_len]

    @property
    def mask(self) -> Bool[torch.Tensor, "batch seq_minus_1"]:
        """:func:`repeat_mask` of this batch: which next-token predictions are predictable."""
        return repeat_mask(self.tokens.shape[0], self.half_len, self.prefix_len).to(self.tokens.device)

    def loss(self, logits: Float[torch.Tensor, "batch seq vocab"]) -> float:
        """Mean next-token loss on the predictable targets (:func:`mechlib.repeat_loss`)."""
        from mechlib.scores import repeat_loss  # here, not at the top: scores -> models -> training -> data

        return repeat_loss(logits, self.tokens, self.half_len, self.prefix_len)

    def __getitem__(self, index: Any) -> "RepeatedBatch":
        """Some of the sequences, same layout: ``batch[:1]`` is the first sequence as a batch."""
        tokens = self.tokens[index]
        if tokens.ndim != 2:
            raise IndexError("index a RepeatedBatch with a slice or a list, so that it stays a batch")
        return RepeatedBatch(tokens, self.half_len, self.prefix_len)


def repeated_batch(
    model: Any, batch: int = 64, half_len: int = 10, prefix_len: int = 4, seed: int = 0
) -> RepeatedBatch:
    """:func:`repeated_tokens` for ``model`` (its vocabulary), with the layout attached.

    The book's standard data: 64 sequences of 4 random tokens, then a random segment of
    10 tokens twice (length 10 was held out in training, so every repeat is new to the
    bundled model). Raises ``ValueError`` if the sequence does not fit the context.
    """
    seq = prefix_len + 2 * half_len
    if seq > model.cfg.n_ctx:
        raise ValueError(
            f"prefix_len + 2 * half_len = {seq} tokens do not fit the model's context of {model.cfg.n_ctx}"
        )
    tokens = repeated_tokens(model.cfg.d_vocab, batch, half_len, seed=seed, prefix_len=prefix_len)
    return RepeatedBatch(tokens, half_len, prefix_len)
