"""Argument checks shared by the core modules.

Every public function validates its input here, so a learner's mistake meets a
message that names the argument and what is allowed, instead of an IndexError
from deep inside torch.
"""
from __future__ import annotations

from typing import Any

import torch

from mechlib.heads import Head, head_label

KINDS = ("Q", "K", "V")


def check_head(model: Any, head: Any, name: str = "head") -> Head:
    """Return ``head`` as a ``(layer, head)`` tuple of ints, or raise."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if isinstance(head, torch.Tensor):
        head = tuple(head.tolist())
    if (
        not isinstance(head, (tuple, list))
        or len(head) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in head)
    ):
        raise TypeError(
            f"{name} must be a (layer, head) pair of ints, e.g. (0, 1) for head 0.1; got {head!r}"
        )
    layer, h = head
    if not 0 <= layer < n_layers:
        raise ValueError(
            f"{name}={tuple(head)!r}: layer {layer} does not exist; this model has layers 0..{n_layers - 1}"
        )
    if not 0 <= h < n_heads:
        raise ValueError(
            f"{name}={tuple(head)!r}: head {h} does not exist; each layer has heads 0..{n_heads - 1}"
        )
    return (layer, h)


def check_heads(model: Any, heads: Any, name: str = "heads") -> list[Head]:
    """Return a list of validated heads; accepts one head or an iterable of heads."""
    if isinstance(heads, tuple) and len(heads) == 2 and all(isinstance(x, int) for x in heads):
        heads = [heads]
    try:
        items = list(heads)
    except TypeError:
        raise TypeError(f"{name} must be a list of (layer, head) pairs; got {heads!r}") from None
    return [check_head(model, h, name=f"{name}[{i}]") for i, h in enumerate(items)]


def check_sender_receiver(model: Any, sender: Any, receiver: Any) -> tuple[Head, Head]:
    """Validate a (sender, receiver) pair: the sender must sit in an earlier layer."""
    s = check_head(model, sender, "sender")
    r = check_head(model, receiver, "receiver")
    if s[0] >= r[0]:
        raise ValueError(
            f"sender {head_label(s)} must be in an earlier layer than receiver {head_label(r)}: "
            "a head can only read what earlier layers wrote to the residual stream"
        )
    return s, r


def check_kind(kind: Any) -> str:
    if not isinstance(kind, str) or kind.upper() not in KINDS:
        raise ValueError(f"kind must be one of 'Q', 'K', 'V'; got {kind!r}")
    return kind.upper()


def check_positive_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0; got {value}")
    return value


def check_nonnegative_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0; got {value}")
    return value


def check_tokens(model: Any, tokens: Any, name: str = "tokens") -> torch.Tensor:
    """Return ``tokens`` as a 2-D LongTensor ``[batch, pos]`` valid for ``model``, or raise."""
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids; got {type(tokens).__name__}")
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers (token ids); got dtype {tokens.dtype}")
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2:
        raise ValueError(f"{name} must be 1-D [pos] or 2-D [batch, pos]; got shape {tuple(tokens.shape)}")
    if tokens.shape[-1] == 0 or tokens.shape[0] == 0:
        raise ValueError(f"{name} must not be empty; got shape {tuple(tokens.shape)}")
    n_ctx, d_vocab = model.cfg.n_ctx, model.cfg.d_vocab
    if tokens.shape[-1] > n_ctx:
        raise ValueError(f"{name} has {tokens.shape[-1]} positions; the model's context n_ctx is {n_ctx}")
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= d_vocab:
        raise ValueError(f"{name} must lie in [0, {d_vocab}) (the vocabulary); got values in [{lo}, {hi}]")
    return tokens.long()
