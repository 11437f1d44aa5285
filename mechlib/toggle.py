"""Switching heads off: the model's behaviour for any set of enabled heads.

The page's head toggle (:func:`mechlib.views.live.head_toggle`) does the same in the browser,
and asks :func:`ablated_run` when a kernel runs the model. For a set ``E`` of enabled heads,
every head outside ``E`` is zero-ablated (its output ``z^{l.h} W_O^{l.h}`` is removed,
as in :func:`mechlib.run_with_ablation`) and we read off

* the loss on the predictable half of repeated tokens (:func:`mechlib.repeat_loss`),
* every head's induction score (the formula of :func:`mechlib.induction_scores`) in
  the ablated run, and
* every head's attention pattern in the ablated run.

Core module: torch only.

Shown in Chapter 5, Virtual Attention Heads (the head toggle).
"""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
from jaxtyping import Float, Int

from mechlib._threads import single_thread
from mechlib.ablation import ablation_hooks
from mechlib.data import repeated_tokens
from mechlib.heads import all_heads
from mechlib.models.info import check_next_token_model
from mechlib.scores import induction_scores_from_patterns, repeat_loss
from mechlib.validate import check_heads, check_tokens

#: the default data of the head toggle: 32 random sequences of 5 random tokens and then
#: a 10-token segment twice (length 10 was held out in training, so this is a fresh repeat)
DEFAULT_BATCH, DEFAULT_HALF_LEN, DEFAULT_PREFIX_LEN, DEFAULT_SEED = 32, 10, 5, 0

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
    model: Any, tokens: torch.Tensor, heads_off: Any, extra_hooks: Any = ()
) -> tuple[Float[torch.Tensor, "batch seq vocab"], Float[torch.Tensor, "layer batch head dest src"]]:
    """Logits and all attention patterns of one forward pass with ``heads_off`` zero-ablated
    and ``extra_hooks`` (e.g. :func:`mechlib.path_ablation_hooks`) applied (activations: on
    the model's device)."""
    tokens = check_tokens(model, tokens)
    store: dict[int, torch.Tensor] = {}
    hooks = ablation_hooks(model, list(heads_off), "zero") + list(extra_hooks)
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
