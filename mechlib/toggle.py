"""Switching heads off: the model's behaviour for any set of enabled heads.

This is the computation behind the ipywidgets head toggle (:mod:`mechlib.views.widgets`);
the page's toggle (:func:`mechlib.views.live.head_toggle`) does the same in the browser. For a set ``E`` of enabled heads,
every head outside ``E`` is zero-ablated (its output ``z^{l.h} W_O^{l.h}`` is removed,
as in :func:`mechlib.run_with_ablation`) and we read off

* the loss on the predictable half of repeated tokens (:func:`mechlib.repeat_loss`),
* every head's induction score (the formula of :func:`mechlib.induction_scores`) in
  the ablated run, and
* every head's attention pattern in the ablated run.

A head set is encoded as a bit mask: head ``l.h`` is bit ``l * n_heads + h``, set when
the head is on. Core module: torch only.

Shown in Chapter 5, Virtual Attention Heads (the head toggle).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from jaxtyping import Float, Int

from mechlib._threads import single_thread
from mechlib.ablation import ablation_hooks
from mechlib.data import repeated_tokens
from mechlib.heads import Head, all_heads
from mechlib.models.info import check_next_token_model
from mechlib.scores import induction_scores_from_patterns, per_token_loss, repeat_loss
from mechlib.validate import check_heads, check_tokens, float64_device

#: the default data of the head toggle: 32 random sequences of 5 random tokens and then
#: a 10-token segment twice (length 10 was held out in training, so this is a fresh repeat)
DEFAULT_BATCH, DEFAULT_HALF_LEN, DEFAULT_PREFIX_LEN, DEFAULT_SEED = 32, 10, 5, 0

#: the static toggle precomputes 2 ** n_heads runs; beyond this many heads that is too slow
MAX_STATIC_HEADS = 10


def heads_to_mask(model: Any, enabled: Any) -> int:
    """Bit mask of a set of enabled heads: ``sum_{l.h in enabled} 2 ** (l * n_heads + h)``."""
    H = model.cfg.n_heads
    return sum(1 << (l * H + h) for l, h in set(check_heads(model, list(enabled), "enabled")))


def mask_to_heads(model: Any, mask: int) -> list[Head]:
    """The enabled heads of a bit mask (inverse of :func:`heads_to_mask`)."""
    heads = all_heads(model)
    if not isinstance(mask, int) or not 0 <= mask < 2 ** len(heads):
        raise ValueError(f"mask must be an int in [0, {2 ** len(heads)}); got {mask!r}")
    return [hd for i, hd in enumerate(heads) if mask >> i & 1]


def default_tokens(model: Any, batch: int = DEFAULT_BATCH, half_len: int = DEFAULT_HALF_LEN,
                   prefix_len: int = DEFAULT_PREFIX_LEN, seed: int = DEFAULT_SEED) -> Int[torch.Tensor, "batch seq"]:
    """``repeated_tokens(d_vocab, batch, half_len, seed, prefix_len)`` for ``model``'s vocabulary."""
    return repeated_tokens(model.cfg.d_vocab, batch, half_len, seed=seed, prefix_len=prefix_len)


def toggle_tokens(model: Any, tokens: torch.Tensor | None, half_len: int, prefix_len: int,
                  example: int = 0) -> Int[torch.Tensor, "batch seq"]:
    """Validated repeated tokens for the head toggle (:func:`default_tokens` when ``tokens`` is None).

    Raises for a model whose logits are not next-token predictions (the toggle shows a loss)."""
    check_next_token_model(model, "the head toggle")
    tokens = check_tokens(model, default_tokens(model, half_len=half_len, prefix_len=prefix_len)
                          if tokens is None else tokens)
    if tokens.shape[1] != prefix_len + 2 * half_len:
        raise ValueError(
            f"tokens has {tokens.shape[1]} positions but prefix_len + 2 * half_len = "
            f"{prefix_len + 2 * half_len}; pass the half_len and prefix_len the tokens were made with"
        )
    if not 0 <= example < tokens.shape[0]:
        raise ValueError(f"example must be a batch row in [0, {tokens.shape[0]}); got {example}")
    return tokens


def _save_pattern(pattern: torch.Tensor, hook: Any, store: dict[int, torch.Tensor], layer: int) -> None:
    store[layer] = pattern.detach()


def ablated_run(
    model: Any, tokens: torch.Tensor, heads_off: Any
) -> tuple[Float[torch.Tensor, "batch seq vocab"], Float[torch.Tensor, "layer batch head dest src"]]:
    """Logits and all attention patterns of one forward pass with ``heads_off`` zero-ablated
    (activations: on the model's device)."""
    tokens = check_tokens(model, tokens)
    store: dict[int, torch.Tensor] = {}
    hooks = ablation_hooks(model, list(heads_off), "zero")
    hooks += [(f"blocks.{l}.attn.hook_pattern", partial(_save_pattern, store=store, layer=l))
              for l in range(model.cfg.n_layers)]
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return logits, torch.stack([store[l] for l in range(model.cfg.n_layers)])


class HeadToggleState:
    """Update logic of the head toggle, independent of any display.

    ``update(enabled_heads)`` runs the model once with every other head zero-ablated and
    returns ``{"loss", "induction", "patterns", "enabled"}``: the repeat loss (float),
    induction scores ``[layer, head]`` and the attention patterns ``[layer, head, dest, src]``
    of batch row ``example``, on the CPU whatever the model's device.
    """

    def __init__(self, model: Any, tokens: torch.Tensor | None = None, half_len: int = DEFAULT_HALF_LEN,
                 prefix_len: int = DEFAULT_PREFIX_LEN, example: int = 0):
        self.model = model
        self.tokens = toggle_tokens(model, tokens, half_len, prefix_len, example)
        self.half_len, self.prefix_len, self.example = half_len, prefix_len, example
        self.heads = all_heads(model)
        self.clean = self.update(self.heads)

    def update(self, enabled_heads: Any) -> dict[str, Any]:
        """Run with only ``enabled_heads`` on; see the class docstring for what is returned."""
        enabled = set(check_heads(self.model, list(enabled_heads), "enabled_heads"))
        off = [hd for hd in self.heads if hd not in enabled]
        with single_thread():
            logits, patterns = ablated_run(self.model, self.tokens, off)
            return {
                "enabled": sorted(enabled),
                "loss": repeat_loss(logits, self.tokens, self.half_len, self.prefix_len),
                "induction": induction_scores_from_patterns(patterns, self.tokens).cpu(),
                "patterns": patterns[:, self.example].cpu(),
            }


@dataclass
class HeadToggleTable:
    """Everything the head toggle can show, for every subset of heads (see :func:`precompute_head_toggle`).

    ``loss[m]`` and ``induction[m]`` (``[layer, head]``) belong to the head set with bit mask ``m``.
    The pattern of head ``l.h`` depends only on which heads of layers ``< l`` are on (zero-ablating
    a head changes only what later layers read), so ``patterns[(l, h)]`` has one
    ``[dest, src]`` pattern (batch row ``example``) per subset of the ``l * n_heads`` earlier heads:
    the one for mask ``m`` is ``patterns[(l, h)][m % 2 ** (l * n_heads)]``. Every tensor is
    on the CPU.
    """

    heads: list[Head]
    n_layers: int
    n_heads: int
    loss: Float[torch.Tensor, "subset"]
    induction: Float[torch.Tensor, "subset layer head"]
    patterns: dict[Head, torch.Tensor]
    tokens: Int[torch.Tensor, "seq"]
    half_len: int
    prefix_len: int
    batch: int

    def pattern(self, head: Head, mask: int) -> Float[torch.Tensor, "dest src"]:
        """Attention pattern of ``head`` when the heads in bit mask ``mask`` are on."""
        l, h = head
        return self.patterns[(l, h)][mask % (1 << (l * self.n_heads))]


def _scale_heads_hook(z: torch.Tensor, hook: Any, keep: torch.Tensor):
    """Multiply each row's head outputs by 0 or 1: ``z[b, :, h] *= keep[b, h]`` (zero ablation per row)."""
    return z * keep[:, None, :, None].to(z.dtype)


def _subset_runs(model: Any, tokens: torch.Tensor, masks: list[int], half_len: int, prefix_len: int):
    """Loss, induction scores and patterns for several head subsets in one batched forward pass.

    The batch is ``tokens`` repeated once per subset; a hook on each layer's ``hook_z`` zeroes
    the switched-off heads of each copy, which is :func:`ablated_run` for every subset at once.
    """
    L, H = model.cfg.n_layers, model.cfg.n_heads
    B, seq = tokens.shape
    k = len(masks)
    bits = torch.tensor([[m >> i & 1 for i in range(L * H)] for m in masks], dtype=torch.float32,
                        device=tokens.device)
    keep = bits.reshape(k, L, H).repeat_interleave(B, dim=0)  # [k * B, L, H]
    store: dict[int, torch.Tensor] = {}
    hooks = [(f"blocks.{l}.attn.hook_z", partial(_scale_heads_hook, keep=keep[:, l])) for l in range(L)]
    hooks += [(f"blocks.{l}.attn.hook_pattern", partial(_save_pattern, store=store, layer=l)) for l in range(L)]
    big = tokens.repeat(k, 1)
    with torch.no_grad(), single_thread():
        logits = model.run_with_hooks(big, fwd_hooks=hooks)
        # repeat_loss of each copy: mean next-token loss on targets prefix_len + half_len + 1 ..
        # float64 where the device has it (MPS has not): the same numbers as repeat_loss
        per_token = per_token_loss(logits, big)[:, prefix_len + half_len:].reshape(k, -1)
        loss = per_token.to(float64_device(per_token.device)).double().mean(-1)
        patterns = torch.stack([store[l] for l in range(L)]).reshape(L, k, B, H, seq, seq)
        induction = torch.stack([induction_scores_from_patterns(patterns[:, i], tokens) for i in range(k)])
    return loss, induction, patterns


def precompute_head_toggle(model: Any, tokens: torch.Tensor | None = None, half_len: int = DEFAULT_HALF_LEN,
                           prefix_len: int = DEFAULT_PREFIX_LEN, example: int = 0,
                           chunk: int = 16) -> HeadToggleTable:
    """The head toggle's numbers for every subset of heads (``2 ** (n_layers * n_heads)`` of them).

    Returns a :class:`HeadToggleTable`. The subsets are run ``chunk`` at a time in one batched
    forward pass each; for ``induction-2l`` (8 heads, 256 subsets) that takes about a
    second of CPU time.
    """
    tokens = toggle_tokens(model, tokens, half_len, prefix_len, example)
    heads, H = all_heads(model), model.cfg.n_heads
    if len(heads) > MAX_STATIC_HEADS:
        raise ValueError(
            f"the model has {len(heads)} heads, so a table over every subset needs 2 ** {len(heads)} runs; "
            f"precompute_head_toggle allows at most {MAX_STATIC_HEADS} heads (use the live widget instead)"
        )
    n = 1 << len(heads)
    loss = torch.empty(n, dtype=torch.float64, device="cpu")
    induction = torch.empty(n, model.cfg.n_layers, H, device="cpu")
    patterns = {hd: [None] * (1 << (hd[0] * H)) for hd in heads}
    for start in range(0, n, chunk):
        masks = list(range(start, min(n, start + chunk)))
        c_loss, c_ind, c_pat = _subset_runs(model, tokens, masks, half_len, prefix_len)
        c_pat = c_pat[:, :, example].cpu()  # [layer, subset, head, dest, src]
        loss[start:start + len(masks)] = c_loss.cpu()
        induction[start:start + len(masks)] = c_ind.cpu()
        for i, m in enumerate(masks):
            for l, h in heads:
                key = m % (1 << (l * H))
                if patterns[(l, h)][key] is None:
                    patterns[(l, h)][key] = c_pat[l, i, h]
    return HeadToggleTable(
        heads=heads, n_layers=model.cfg.n_layers, n_heads=H, loss=loss, induction=induction,
        patterns={hd: torch.stack(p) for hd, p in patterns.items()},
        tokens=tokens[example].cpu(), half_len=half_len, prefix_len=prefix_len, batch=tokens.shape[0],
    )
