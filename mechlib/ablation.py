"""Head ablation and path-specific ablation, written as TransformerLens hooks.

Each hook has the TransformerLens shape ``fn(activation, hook) -> activation``,
so it can be read, reused and passed to ``model.run_with_hooks`` directly.

Taught in Chapter 1 (switching a layer off), Chapter 3 (cutting a sender from the
keys only), Chapter 4 (from the queries) and Chapter 5 (breaking the virtual head).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
from jaxtyping import Float

from mechlib._validate import (
    check_heads,
    check_kind,
    check_sender_receiver,
    check_tokens,
)
from mechlib.heads import Head

ABLATION_MODES = ("zero", "mean")


def _check_mode(mode: Any) -> str:
    if mode not in ABLATION_MODES:
        raise ValueError(f"mode must be one of {ABLATION_MODES}; got {mode!r}")
    return mode


def zero_ablation_hook(z: Float[torch.Tensor, "batch pos head d_head"], hook: Any, head: int):
    """Set head ``head``'s ``hook_z`` (its attention-weighted values) to 0, removing its output."""
    z[:, :, head] = 0.0
    return z


def mean_ablation_hook(z: Float[torch.Tensor, "batch pos head d_head"], hook: Any, head: int):
    """Replace head ``head``'s ``hook_z`` by its mean over the batch, position by position."""
    z[:, :, head] = z[:, :, head].mean(dim=0, keepdim=True)
    return z


def ablation_hooks(model: Any, heads: Any, mode: str = "zero") -> list[tuple[str, Callable]]:
    """``(hook name, hook)`` pairs that ablate ``heads`` at ``blocks.{l}.attn.hook_z``."""
    _check_mode(mode)
    fn = zero_ablation_hook if mode == "zero" else mean_ablation_hook
    return [(f"blocks.{l}.attn.hook_z", partial(fn, head=h)) for l, h in check_heads(model, heads)]


def run_with_ablation(
    model: Any, tokens: torch.Tensor, heads: Any, mode: str = "zero"
) -> Float[torch.Tensor, "batch pos vocab"]:
    """Logits with the outputs of ``heads`` removed.

    ``mode="zero"``: head ``l.h`` writes nothing (``z^{l.h} = 0``, so its term
    ``z^{l.h} W_O^{l.h}`` vanishes). ``mode="mean"``: it writes its batch-mean output at
    each position, which removes what depends on the particular sequence but keeps
    the average (a gentler intervention that keeps the residual stream in range).
    """
    tokens = check_tokens(model, tokens)
    hooks = ablation_hooks(model, heads, mode)
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=hooks)


def head_output(model: Any, cache: Any, head: Head) -> Float[torch.Tensor, "batch pos d_model"]:
    """What head ``l.h`` writes to the residual stream: ``z^{l.h} W_O^{l.h}`` (without ``b_O``),
    on the device of ``cache`` (which may differ from the model's)."""
    l, h = head
    z = cache[f"blocks.{l}.attn.hook_z"][:, :, h]
    return z @ model.W_O[l, h].to(z.device)


def _heads_arg(model: Any, value: Any, name: str) -> list[Head]:
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(x, int) for x in value):
        return check_heads(model, [value], name)
    return check_heads(model, value, name)


def path_ablation_hooks(
    model: Any,
    tokens: torch.Tensor,
    sender: Any,
    receiver: Any,
    kind: str,
    mode: str = "zero",
) -> list[tuple[str, Callable]]:
    """Hooks for :func:`path_ablation`; ``sender`` and ``receiver`` may each be one head or a list."""
    tokens = check_tokens(model, tokens)
    senders = _heads_arg(model, sender, "sender")
    receivers = _heads_arg(model, receiver, "receiver")
    if not senders or not receivers:
        raise ValueError("sender and receiver must each name at least one head")
    for s in senders:
        for r in receivers:
            check_sender_receiver(model, s, r)
    kind = check_kind(kind)
    _check_mode(mode)
    if getattr(model.cfg, "normalization_type", None) is not None:
        raise ValueError(
            "path_ablation needs a model without LayerNorm (normalization_type=None): "
            "with a norm in front of attention the sender's output cannot be subtracted exactly"
        )
    x_names = {f"blocks.{l}.hook_resid_pre" for l, _ in receivers}
    z_names = {f"blocks.{l}.attn.hook_z" for l, _ in senders}
    # each of these properties stacks every layer's weights when read: read each once
    W_all, b_all, W_O = getattr(model, f"W_{kind}"), getattr(model, f"b_{kind}"), model.W_O
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in x_names | z_names)
        delta = sum(cache[f"blocks.{l}.attn.hook_z"][:, :, h] @ W_O[l, h] for l, h in senders)
        if mode == "mean":
            delta = delta - delta.mean(dim=0, keepdim=True)
        hooks = []
        for l, h in receivers:
            # A layer's projections are shared by its heads, so compute the receiver's own
            # q/k/v from the edited input, (x - delta) W^{r} + b^{r}, and splice it in.
            edited = (cache[f"blocks.{l}.hook_resid_pre"] - delta) @ W_all[l, h] + b_all[l, h]
            hooks.append((f"blocks.{l}.attn.hook_{kind.lower()}", partial(_splice_head, head=h, value=edited)))
    return hooks


def path_ablation(
    model: Any,
    tokens: torch.Tensor,
    sender: Any,
    receiver: Any,
    kind: str,
    mode: str = "zero",
) -> Float[torch.Tensor, "batch pos vocab"]:
    """Logits with the sender's output removed from one input of the receiver only.

    The receiver's ``kind`` input (``"Q"``: the residual stream its queries read,
    ``"K"``: keys, ``"V"``: values) becomes ``x - o^{s}``, with ``o^{s} = z^{s} W_O^{s}``
    the sender's output in the clean run (``mode="zero"``), or ``x - o^{s} + mean_b o^{s}``
    (``mode="mean"``). Every other reader of the residual stream, including the
    receiver's other two inputs, still sees the sender. ``sender`` and ``receiver`` may
    also be lists of heads: then the senders' summed output is removed from each
    receiver's input, which is how a redundant circuit is switched off as a whole.
    """
    hooks = path_ablation_hooks(model, tokens, sender, receiver, kind, mode)
    with torch.no_grad():
        return model.run_with_hooks(check_tokens(model, tokens), fwd_hooks=hooks)


def _splice_head(act: torch.Tensor, hook: Any, head: int, value: torch.Tensor):
    """Replace head ``head``'s slice of a ``[batch, pos, head, d_head]`` activation by ``value``."""
    act[:, :, head] = value
    return act


def path_ablation_losses(
    model: Any, batch: Any, sender: Any, receiver: Any, kinds: str = "QKV", mode: str = "zero"
) -> dict[str, float]:
    """Repeat loss with the sender cut from one input of the receiver, one kind at a time.

    ``{kind: batch.loss(path_ablation(model, batch.tokens, sender, receiver, kind))}`` for
    each ``kind`` in ``kinds``, where ``batch`` is a :class:`mechlib.RepeatedBatch`. The
    comparison of the three numbers says through which input the circuit runs
    (Chapter 3, K-Composition; Chapter 4, Q-Composition).
    """
    if not isinstance(kinds, str) or not kinds or any(k not in "QKV" for k in kinds):
        raise ValueError(f"kinds must be a string of 'Q', 'K' and 'V' (e.g. 'QKV'); got {kinds!r}")
    return {
        kind: batch.loss(path_ablation(model, batch.tokens, sender, receiver, kind, mode))
        for kind in kinds
    }
