"""An independent, dense float64 re-implementation of an attention-only transformer.

Written from the weights alone (no hooks, no TransformerLens forward), it is the
yardstick the library's ablation and expansion code are compared against.
"""
from __future__ import annotations

import math

import torch


def weights64(model):
    names = ["W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O", "W_U", "b_U"]
    return {n: getattr(model, n).detach().double() for n in names}


def forward(model, tokens, zero_heads=(), remove=None, return_patterns=False):
    """Logits ``[batch, pos, vocab]`` in float64.

    ``zero_heads``: heads whose output is dropped. ``remove``: ``(senders, receivers, kind)``:
    the summed output of the senders is subtracted from the receivers' ``kind`` input only.
    """
    w = weights64(model)
    L, H, dh = model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head
    seq = tokens.shape[1]
    x = w["W_E"][tokens] + w["W_pos"][:seq]
    mask = torch.ones(seq, seq, dtype=torch.bool).tril()
    outputs = {}
    patterns = []
    for l in range(L):
        new = torch.zeros_like(x)
        layer_patterns = []
        for h in range(H):
            inputs = {"Q": x, "K": x, "V": x}
            if remove is not None and (l, h) in remove[1]:
                senders = remove[0]
                inputs[remove[2]] = x - sum(outputs[s] for s in senders)
            q = inputs["Q"] @ w["W_Q"][l, h] + w["b_Q"][l, h]
            k = inputs["K"] @ w["W_K"][l, h] + w["b_K"][l, h]
            v = inputs["V"] @ w["W_V"][l, h] + w["b_V"][l, h]
            scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
            scores = scores.masked_fill(~mask, float("-inf"))
            A = scores.softmax(-1)
            layer_patterns.append(A)
            out = A @ v @ w["W_O"][l, h]
            outputs[(l, h)] = out
            if (l, h) not in zero_heads:
                new = new + out
        patterns.append(torch.stack(layer_patterns, 1))
        x = x + new + w["b_O"][l]
    logits = x @ w["W_U"] + w["b_U"]
    if return_patterns:
        return logits, torch.stack(patterns)
    return logits
