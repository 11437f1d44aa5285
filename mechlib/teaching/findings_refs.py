"""References of the investigation exercises (chapters 1 to 4), in float64 where they sum.

Each function measures one finding on one model, the way the chapter measures it; the
exercises in :mod:`mechlib.teaching.exercises` compare the learner's finding with it, and
with the same measurement done wrong (a named mistake), for the hints.
"""
from __future__ import annotations

import torch

import mechlib
from mechlib.heads import Head
from mechlib.teaching.findings import cut_rise, layer, scored_loss


def writer_ratios(model, tokens, mistake: str | None = None) -> dict[Head, float]:
    """Chapter 1: mean norm (over batch and positions) of what each layer-0 head writes, ``z W_O``,
    over the mean norm of the token embedding ``W_E[t]``."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    tok = cache["hook_embed"].double()
    if mistake == "token and position":
        tok = tok + cache["hook_pos_embed"].double()
    out = {}
    for h in layer(model, 0):
        o = mechlib.head_output(model, cache, h).double()
        if mistake == "with b_O":
            o = o + model.b_O[0].double()
        if mistake == "mean of ratios":
            out[h] = (o.norm(dim=-1) / tok.norm(dim=-1)).mean().item()
        elif mistake == "norm of the mean":
            out[h] = (o.mean((0, 1)).norm() / tok.mean((0, 1)).norm()).item()
        elif mistake == "squared norms":
            out[h] = (o.pow(2).sum(-1).mean() / tok.pow(2).sum(-1).mean()).item()
        else:
            out[h] = (o.norm(dim=-1).mean() / tok.norm(dim=-1).mean()).item()
    return out


def induction_collapse(model, tokens, mistake: str | None = None) -> dict[Head, tuple[float, float]]:
    """Chapter 1: ``{layer-1 head: (induction score, induction score with every layer-0 head zero-ablated)}``."""
    last = model.cfg.n_layers - 1
    clean = mechlib.induction_scores(model, tokens)
    off = {"mean ablation": (layer(model, 0), "mean"), "layer 1 ablated": (layer(model, last), "zero")}
    heads, mode = off.get(mistake, (layer(model, 0), "zero"))
    if mistake == "strongest previous-token head only":
        heads = [mechlib.top_head(mechlib.prev_token_scores(model, tokens), layer=0)]
    hooks = mechlib.ablation_hooks(model, heads, mode)
    if mistake == "layer output zeroed":
        hooks = [("blocks.0.hook_attn_out", lambda x, hook: torch.zeros_like(x))]
    with torch.no_grad():
        hooked = mechlib.induction_scores(model, tokens, fwd_hooks=hooks)
    return {h: (clean[h].item(), hooked[h].item()) for h in layer(model, last)}


def input_rises(model, tokens, mask) -> dict[str, float]:
    """Chapter 2: rise of the scored loss when every layer-0 head is cut from the Q, K or V input of every layer-1 head."""
    return {k: cut_rise(model, tokens, mask, layer(model, 0), layer(model, 1), k) for k in "QKV"}


def sender_rises(model, tokens, mask, kind: str, receivers: str = "all") -> dict[Head, float]:
    """Chapters 3 and 4: rise of the scored loss when one layer-0 head is cut from the ``kind`` input of
    every layer-1 head (``receivers="top"``: of the strongest induction head only)."""
    rec = layer(model, 1)
    if receivers == "top":
        rec = [mechlib.top_head(mechlib.induction_scores(model, tokens), layer=1)]
    return {s: cut_rise(model, tokens, mask, [s], rec, kind) for s in layer(model, 0)}


def head_ablation_rises(model, tokens, mask) -> dict[Head, float]:
    """The rise when a layer-0 head is zero-ablated everywhere (a head ablation, not a path cut)."""
    with torch.no_grad():
        clean = scored_loss(model(tokens), tokens, mask)
        return {s: scored_loss(mechlib.run_with_ablation(model, tokens, [s]), tokens, mask) - clean
                for s in layer(model, 0)}


def top_guess(model, tokens, mask, mistake: str | None = None) -> tuple[float, float]:
    """Chapter 3: mean probability of the top guess over the scored predictions, with layer 0 cut from
    every layer-1 key, and with layer 0 zero-ablated."""
    L0, L1 = layer(model, 0), layer(model, 1)
    with torch.no_grad():
        runs = (mechlib.path_ablation(model, tokens, L0, L1, "K"), mechlib.run_with_ablation(model, tokens, L0))
    out = []
    for logits in runs:
        sel = mask
        if mistake == "all positions":
            sel = torch.ones_like(mask)
        if mistake == "shifted by one":
            logits = logits[:, 1:]
            probs = logits.double().softmax(-1)[mask]
        else:
            probs = logits[:, :-1].double().softmax(-1)[sel]
        if mistake == "probability of the right token":
            target = tokens[:, 1:][sel]
            out.append(probs.gather(-1, target[:, None]).mean().item())
        elif mistake == "largest logit":
            out.append(logits[:, :-1].double()[sel].max(-1).values.mean().item())
        else:
            out.append(probs.max(-1).values.mean().item())
    return tuple(out)
