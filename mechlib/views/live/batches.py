"""The evaluation batch a live model view scores: the induction batch (the default, whose
scored positions the page finds itself: the repeated tokens) or any batch with the interface of
:func:`mechlib.repeated_batch` (``.tokens``, ``.mask``), such as the relay batch of
``relay-2l`` (:func:`mechlib.relay_batch`), which the page scores on its mask.

Shown in Chapter 2, V-Composition, and Chapter 6, The Two-Layer Expansion (``relay-2l``).
"""
from __future__ import annotations

from typing import Any

from mechlib.views.live.weights import page_model_problem, page_weights


def batch_spec(model: Any, batch: Any) -> dict[str, Any] | None:
    """The evaluation batch a model view scores, as the page reads it (``None``: the induction
    batch, whose scored positions the page finds itself, the repeated tokens).

    ``batch``: anything with the interface of :func:`mechlib.repeated_batch` -- ``.tokens``
    ``[batch, seq]`` and ``.mask`` ``[batch, seq - 1]``, True where the prediction of token
    ``q + 1`` from position ``q`` is scored -- or ``None``: the relay batch
    (:func:`mechlib.relay_batch`) for ``relay-2l``, else the induction batch. The spec holds
    ``tokens`` (its rows), ``mask`` (each row's scored positions ``q``), ``after_token`` (for
    the relay task the recall token ``R``: a typed sequence is scored at every ``R``) and
    ``scored`` (the scored tokens in words). Chapter 2, V-Composition (the relay)."""
    import torch

    from mechlib.models.bundled import RELAY_MODEL
    from mechlib.relay import RelayBatch, relay_batch, relay_symbols

    if batch is None:
        if page_model_problem(model) is not None or page_weights(model)[0] != RELAY_MODEL:
            return None
        batch = relay_batch(model)
    tokens, mask = getattr(batch, "tokens", None), getattr(batch, "mask", None)
    if not isinstance(tokens, torch.Tensor) or not isinstance(mask, torch.Tensor):
        raise ValueError(f"batch must have .tokens [batch, seq] and .mask [batch, seq - 1] (as mechlib.repeated_batch "
                         f"or mechlib.relay_batch); got {type(batch).__name__}")
    n_ctx, d_vocab = model.cfg.n_ctx, model.cfg.d_vocab
    if (tokens.ndim != 2 or not 2 <= tokens.shape[1] <= n_ctx or tokens.dtype.is_floating_point
            or int(tokens.min()) < 0 or int(tokens.max()) >= d_vocab):
        raise ValueError(f"batch.tokens must be integers in [0, d_vocab = {d_vocab}) of shape [batch, seq] with "
                         f"2 <= seq <= n_ctx = {n_ctx}; got shape {tuple(tokens.shape)}")
    if mask.dtype != torch.bool or tuple(mask.shape) != (tokens.shape[0], tokens.shape[1] - 1):
        raise ValueError(f"batch.mask must be a bool tensor of shape [batch, seq - 1] = "
                         f"{[tokens.shape[0], tokens.shape[1] - 1]}; got {mask.dtype} {tuple(mask.shape)}")
    relay = isinstance(batch, RelayBatch)
    return {"tokens": tokens.cpu().tolist(), "mask": [torch.nonzero(m).flatten().tolist() for m in mask.cpu()],
            "after_token": relay_symbols(d_vocab)[1] if relay else None,
            "scored": "recalled tokens" if relay else "scored tokens"}


def batch_config(model: Any, spec: dict[str, Any], tokens: Any, pattern_head: Any, seed: int) -> dict[str, Any]:
    """What a model view starts with on the batch ``spec`` (:func:`batch_spec`): ``tokens``
    (default: the batch's first sequence), ``row`` (which of the batch's sequences that is, -1
    for none), the head whose pattern shows first (default: the last layer's head with the
    highest induction score on the batch), the batch and the colour tables.
    :func:`mechlib.views.live.head_toggle_config` for a batch other than the induction one."""
    import torch

    from mechlib.heads import head_label, parse_head, top_head
    from mechlib.scores import induction_scores
    from mechlib.validate import check_heads
    from mechlib.views.colours import colour_table
    from mechlib.views.plots import ATTENTION_CMAP, SCORE_CMAP

    rows = spec["tokens"]
    t = torch.as_tensor(rows[0] if tokens is None else tokens)
    if t.ndim != 1 or t.dtype.is_floating_point or not 1 <= t.shape[0] <= model.cfg.n_ctx:
        raise ValueError(f"tokens must be one sequence of 1 to n_ctx = {model.cfg.n_ctx} integers; got {tokens!r}")
    tokens = [int(x) for x in t]
    if pattern_head is None:
        head = top_head(induction_scores(model, torch.tensor(rows)), layer=model.cfg.n_layers - 1)
    else:
        (head,) = check_heads(model, [parse_head(pattern_head, "pattern_head") if isinstance(pattern_head, str)
                                      else pattern_head], "pattern_head")
    return {"tokens": tokens, "pattern_head": head_label(head), "half_len": 0, "prefix_len": 0, "seed": seed + 1,
            "batch": spec, "row": rows.index(tokens) if tokens in rows else -1,
            "attn_lut": colour_table(ATTENTION_CMAP), "prob_lut": colour_table(SCORE_CMAP)}
