"""Head ablation and path-specific ablation, written as TransformerLens hooks.

Each hook has the TransformerLens shape ``fn(activation, hook) -> activation``,
so it can be read, reused and passed to ``model.run_with_hooks`` directly.

Taught in Chapter 1 (switching a layer off), Chapter 3 (cutting a sender from the
keys only), Chapter 4 (from the queries) and Chapter 5 (breaking the induction circuit).
"""
from __future__ import annotations

import warnings
from functools import partial
from typing import Any, Callable

import torch
from jaxtyping import Float

from mechlib.heads import Head
from mechlib.models.info import check_next_token_model
from mechlib.validate import check_heads, check_kind, check_sender_receiver, check_tokens

ABLATION_MODES = ("zero", "mean")


def _check_mode(mode: Any) -> str:
    if mode not in ABLATION_MODES:
        raise ValueError(f"mode must be one of {ABLATION_MODES}; got {mode!r}")
    return mode


def _check_batch_for_mean(batch: int) -> None:
    if batch < 2:
        raise ValueError(
            'mode="mean" replaces a head\'s output by its mean over the batch, so it needs a batch of '
            'at least 2 sequences; with one the mean is the run itself and nothing changes. '
            'Pass more sequences, or use mode="zero"'
        )


def zero_ablation_hook(z: Float[torch.Tensor, "batch pos head d_head"], hook: Any, head: int):
    """Set head ``head``'s ``hook_z`` (its attention-weighted values) to 0, removing its output."""
    z[:, :, head] = 0.0
    return z


def mean_ablation_hook(z: Float[torch.Tensor, "batch pos head d_head"], hook: Any, head: int):
    """Replace head ``head``'s ``hook_z`` by its mean over the batch, position by position.

    Raises on a batch of one, where the mean is the run itself and nothing would change."""
    _check_batch_for_mean(z.shape[0])
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
    check_next_token_model(model, "run_with_ablation")
    tokens = check_tokens(model, tokens)
    hooks = ablation_hooks(model, heads, mode)
    if mode == "mean":
        _check_batch_for_mean(tokens.shape[0])
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
    freeze_ln: bool = False,
) -> list[tuple[str, Callable]]:
    """Hooks for :func:`path_ablation`; ``sender`` and ``receiver`` may each be one head or a list.

    They splice the receivers' edited ``hook_q``, ``hook_k`` or ``hook_v`` into a run, so they
    can be combined with other hooks, e.g. to read the receiver's attention pattern
    (``attention_patterns(model, tokens, fwd_hooks=path_ablation_hooks(...))``), which works
    on any model, also one whose logits mean nothing."""
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
    if not isinstance(freeze_ln, bool):
        raise TypeError(f"freeze_ln must be True or False; got {freeze_ln!r}")
    if mode == "mean":
        _check_batch_for_mean(tokens.shape[0])
    if freeze_ln:
        return _frozen_path_hooks(model, tokens, senders, receivers, kind, mode)
    if getattr(model.cfg, "normalization_type", None) is not None:
        raise ValueError(
            f"model: this model has LayerNorm (cfg.normalization_type={model.cfg.normalization_type!r}) and "
            "freeze_ln=False: a norm rescales the sender's output by a factor that depends on everything "
            "else in the residual stream, so it cannot be subtracted exactly. Allowed: a model without "
            "LayerNorm (cfg.normalization_type=None), or freeze_ln=True to freeze every LayerNorm's scale "
            "at its value on the clean run (the standard approximation; see path_ablation's docstring)"
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


def _is_frozen_name(name: str) -> bool:
    """The activations a frozen run pins to their clean values: LayerNorm scales, MLP outputs, head outputs."""
    return name.endswith("hook_scale") or name.endswith(".hook_mlp_out") or name.endswith(".attn.hook_z")


def _replace_hook(act: torch.Tensor, hook: Any, value: torch.Tensor):
    return value


def _capture_head(act: torch.Tensor, hook: Any, head: int, store: dict, key: Any):
    store[key] = act[:, :, head].clone()


def _frozen_path_hooks(model: Any, tokens: torch.Tensor, senders: list[Head], receivers: list[Head],
                       kind: str, mode: str) -> list[tuple[str, Callable]]:
    """Receivers' inputs with the senders removed, every LayerNorm scale frozen (see :func:`path_ablation`).

    Run 1 (clean) records every LayerNorm scale, MLP output and head output (``hook_z``).
    Run 2 (frozen) pins all of them to those values, except the senders' ``z``, set to 0
    (or to its batch mean). With nothing else free to react, the residual stream changes only
    by the senders' output carried linearly through the frozen norms, and each receiver's
    ``kind`` activation in run 2 is its clean one minus exactly that: the hooks splice it in.
    """
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=_is_frozen_name)
        hooks: list[tuple[str, Callable]] = []
        for name in cache.keys():
            value = cache[name]
            if name.endswith(".attn.hook_z"):
                layer = int(name.split(".")[1])
                value = value.clone()
                for l, h in senders:
                    if l == layer:
                        value[:, :, h] = 0.0 if mode == "zero" else value[:, :, h].mean(dim=0, keepdim=True)
            hooks.append((name, partial(_replace_hook, value=value)))
        store: dict[Head, torch.Tensor] = {}
        hooks += [(f"blocks.{l}.attn.hook_{kind.lower()}", partial(_capture_head, head=h, store=store, key=(l, h)))
                  for l, h in receivers]
        with warnings.catch_warnings():
            # TransformerLens notes that an edited LayerNorm scale leaves HF's fused kernel
            # (float-rounding differences): exactly what freezing means here
            warnings.filterwarnings("ignore", message=".*hook_scale.*")
            model.run_with_hooks(tokens, fwd_hooks=hooks)
    return [(f"blocks.{l}.attn.hook_{kind.lower()}", partial(_splice_head, head=h, value=store[(l, h)]))
            for l, h in receivers]


def path_ablation(
    model: Any,
    tokens: torch.Tensor,
    sender: Any,
    receiver: Any,
    kind: str,
    mode: str = "zero",
    freeze_ln: bool = False,
) -> Float[torch.Tensor, "batch pos vocab"]:
    """Logits with the sender's output removed from one input of the receiver only.

    The receiver's ``kind`` input (``"Q"``: the residual stream its queries read,
    ``"K"``: keys, ``"V"``: values) becomes ``x - o^{s}``, with ``o^{s} = z^{s} W_O^{s}``
    the sender's output in the clean run (``mode="zero"``), or ``x - o^{s} + mean_b o^{s}``
    (``mode="mean"``, which needs a batch of at least 2). Every other reader of the residual
    stream, including the receiver's other two inputs, still sees the sender. ``sender`` and
    ``receiver`` may also be lists of heads: then the senders' summed output is removed from
    each receiver's input, which is how a redundant circuit is switched off as a whole.
    In a model with MLPs only the direct path is cut: the MLPs between sender and receiver
    still read the sender, and what they write is left in place.

    ``freeze_ln=True`` (needed for a model with LayerNorm). Each norm divides its input by a
    scale ``sigma(x) = sqrt(mean_i (x_i - mean x)^2 + eps)`` that depends on the whole residual
    stream, so the sender's share of what a later head reads is not a fixed vector. Freezing
    every norm's scale at its value in the clean run makes each norm an affine map,
    ``LN(x) = (x - mean x) / sigma_clean * w + b``, and the sender's contribution to the
    receiver's input exact and linear: ``o^{s}`` carried through the frozen norms on the way
    (for a pre-LN model such as GPT-2, the receiver's own ``ln1``; for a post-LN model such as
    BERT, every norm between the two layers). Computed with three forward passes: a clean one,
    one with every norm scale, MLP output and head output pinned to its clean value and the
    sender's removed (which yields the receivers' edited inputs), and the spliced run.
    Caveat: in the intervened run the norms do not rescale, although the receiver's input no
    longer has the clean norm; a large sender (one that dominates the norm) is measured less
    faithfully than a small one. On a model without LayerNorm it gives the same result as
    ``freeze_ln=False`` (the direct path; tested).

    Taught in Chapter 3 (K-Composition); ``freeze_ln`` in the appendix, Composition in a Real
    Transformer. Returns logits, so it refuses a model whose unembedding is not trained; use
    :func:`path_ablation_hooks` with :func:`mechlib.attention_patterns` on such a model.
    """
    check_next_token_model(model, "path_ablation")
    hooks = path_ablation_hooks(model, tokens, sender, receiver, kind, mode, freeze_ln)
    with torch.no_grad():
        return model.run_with_hooks(check_tokens(model, tokens), fwd_hooks=hooks)


def _splice_head(act: torch.Tensor, hook: Any, head: int, value: torch.Tensor):
    """Replace head ``head``'s slice of a ``[batch, pos, head, d_head]`` activation by ``value``."""
    act[:, :, head] = value
    return act


def path_ablation_losses(
    model: Any, batch: Any, sender: Any, receiver: Any, kinds: str = "QKV", mode: str = "zero",
    freeze_ln: bool = False,
) -> dict[str, float]:
    """Repeat loss with the sender cut from one input of the receiver, one kind at a time.

    ``{kind: batch.loss(path_ablation(model, batch.tokens, sender, receiver, kind))}`` for
    each ``kind`` in ``kinds``, where ``batch`` is a :class:`mechlib.RepeatedBatch`. The
    comparison of the three numbers says through which input the circuit runs
    (Chapter 3, K-Composition; Chapter 4, Q-Composition). ``freeze_ln``: see :func:`path_ablation`.
    """
    check_next_token_model(model, "path_ablation_losses")
    if not isinstance(kinds, str) or not kinds or any(k not in "QKV" for k in kinds):
        raise ValueError(f"kinds must be a string of 'Q', 'K' and 'V' (e.g. 'QKV'); got {kinds!r}")
    return {
        kind: batch.loss(path_ablation(model, batch.tokens, sender, receiver, kind, mode, freeze_ln))
        for kind in kinds
    }
