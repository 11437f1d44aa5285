"""Independent float64 reference computations: the yardstick for tests and exercise checks.

Written from the weights alone, with dense matrices in float64 and plain loops -- no
hooks, no TransformerLens forward pass, no :mod:`mechlib` core function -- so that a
test or a check that compares the core (or a learner's code) with these compares it
with a second, independent computation. The unit tests in ``tests/`` and the checks in
:mod:`mechlib.teaching.checks` both use this module; there is no other copy.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import torch

WEIGHT_NAMES = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O", "W_U", "b_U")


def weight64(model: Any, name: str) -> torch.Tensor:
    """The stacked weight ``model.<name>`` (e.g. ``W_Q``: ``[layer, head, d_model, d_head]``) in float64,
    on the CPU whatever the model's device (the yardstick is the same on every machine)."""
    return getattr(model, name).detach().cpu().double()


def weights64(model: Any) -> dict[str, torch.Tensor]:
    """Every weight an attention-only model has, by TransformerLens name, in float64."""
    return {n: weight64(model, n) for n in WEIGHT_NAMES}


def ov64(model: Any, head: tuple[int, int]) -> torch.Tensor:
    """``W_OV = W_V W_O`` of one head, ``[d_model, d_model]``, float64 (row-vector convention)."""
    l, h = head
    return weight64(model, "W_V")[l, h] @ weight64(model, "W_O")[l, h]


def qk64(model: Any, head: tuple[int, int]) -> torch.Tensor:
    """``W_QK = W_Q W_K^T`` of one head, ``[d_model, d_model]``, float64."""
    l, h = head
    return weight64(model, "W_Q")[l, h] @ weight64(model, "W_K")[l, h].T


def receiver64(model: Any, head: tuple[int, int], kind: str) -> torch.Tensor:
    """The matrix through which a receiver reads a sender, float64: ``W_QK`` (Q), ``W_QK^T`` (K), ``W_OV`` (V)."""
    return {"Q": lambda: qk64(model, head), "K": lambda: qk64(model, head).T, "V": lambda: ov64(model, head)}[kind]()


def composition_score64(A: torch.Tensor, B: torch.Tensor) -> float:
    """``||A B||_F / (||A||_F ||B||_F)`` of dense matrices."""
    return ((A @ B).norm() / (A.norm() * B.norm())).item()


def composition_scores64(model: Any, kind: str) -> torch.Tensor:
    """Every pair's ``kind``-composition score by brute force, ``[L, H, L, H]``, float64.

    ``C(W_OV^{s}, M^{r}) = ||W_OV^{s} M^{r}||_F / (||W_OV^{s}||_F ||M^{r}||_F)`` with ``M`` from
    :func:`receiver64`, for every sender in an earlier layer than its receiver; 0 elsewhere.
    """
    L, H = model.cfg.n_layers, model.cfg.n_heads
    out = torch.zeros(L, H, L, H, dtype=torch.float64)
    for l1, h1, l2, h2 in itertools.product(range(L), range(H), range(L), range(H)):
        if l1 < l2:
            out[l1, h1, l2, h2] = composition_score64(ov64(model, (l1, h1)), receiver64(model, (l2, h2), kind))
    return out


def prev_token_score64(A: torch.Tensor) -> torch.Tensor:
    """Per head, the mean of ``A[b, h, q, q - 1]`` over the batch and every query ``q >= 1``.

    ``A``: attention patterns ``[batch, head, query, key]``; returns ``[head]``.
    """
    seq = A.shape[-1]
    return torch.stack([A[:, :, q, q - 1] for q in range(1, seq)], dim=-1).double().cpu().mean(dim=(0, 2))


def induction_score64(A: torch.Tensor, half_len: int, prefix_len: int, offset: int = 1) -> torch.Tensor:
    """Per head, the mean attention from each query ``q`` of the second copy to ``q - half_len + offset``.

    ``offset=1`` is the token after the earlier occurrence (induction); ``offset=0`` the
    earlier occurrence itself (a duplicate-token score). Returns ``[head]``.
    """
    qs = range(prefix_len + half_len, prefix_len + 2 * half_len)
    return torch.stack([A[:, :, q, q - half_len + offset] for q in qs], dim=-1).double().cpu().mean(dim=(0, 2))


def induction_score_brute_force(patterns: torch.Tensor, tokens: torch.Tensor, offset: int = 1) -> torch.Tensor:
    """Induction score by loops, for any tokens: over every destination ``q`` whose token
    occurred earlier, the attention paid to the positions right after those earlier
    copies (``offset=1``; ``offset=0``: to the copies themselves, the duplicate-token
    score), averaged over such destinations. ``patterns``: ``[layer, batch, head, q, k]``;
    returns ``[layer, head]``.
    """
    L, B, H, S, _ = patterns.shape
    total, count = torch.zeros(L, H, dtype=torch.float64), 0
    for b in range(B):
        for q in range(S):
            earlier = [p for p in range(q) if tokens[b, p] == tokens[b, q]]
            if earlier:
                count += 1
                for p in earlier:
                    total += patterns[:, b, :, q, p + offset].double().cpu()
    return total / count


def prev_token_scores_brute_force(patterns: torch.Tensor) -> torch.Tensor:
    """Mean attention to the previous position, by loops: ``patterns`` ``[layer, batch, head, q, k]``
    -> ``[layer, head]``, averaged over the batch and every query ``q >= 1``."""
    L, B, H, S, _ = patterns.shape
    out = torch.zeros(L, H, dtype=torch.float64)
    for l, h in itertools.product(range(L), range(H)):
        out[l, h] = sum(patterns[l, b, h, q, q - 1].item() for b in range(B) for q in range(1, S)) / (B * (S - 1))
    return out


def count_chains_brute_force(n_layers: int, n_heads: int, length: int) -> int:
    """Chains of ``length`` heads in strictly increasing layers, counted by listing them all."""
    heads = [(l, h) for l in range(n_layers) for h in range(n_heads)]
    return sum(1 for chain in itertools.combinations(heads, length)
               if all(a[0] < b[0] for a, b in zip(chain, chain[1:])))


def forward(model: Any, tokens: torch.Tensor, zero_heads=(), remove=None, return_patterns: bool = False):
    """Logits ``[batch, pos, vocab]`` of an attention-only model without LayerNorm, in float64.

    ``zero_heads``: heads whose output is dropped. ``remove``: ``(senders, receivers, kind)``:
    the summed output of the senders is subtracted from the receivers' ``kind`` input only.
    With ``return_patterns`` also the attention patterns ``[layer, batch, head, query, key]``.
    """
    w = weights64(model)
    L, H, dh = model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head
    tokens = tokens.to(w["W_E"].device)
    seq = tokens.shape[1]
    x = w["W_E"][tokens] + w["W_pos"][:seq]
    mask = torch.ones(seq, seq, dtype=torch.bool, device=x.device).tril()
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


def repeat_loss_brute_force(model: Any, tokens: list[int], zero_heads=(), logits=None) -> float:
    """Mean next-token loss (nats, float64) on the repeated tokens of one sequence: the targets
    ``t[q + 1]`` whose current token ``t[q]`` occurred at an earlier ``p`` followed by the same
    token (``t[p + 1] == t[q + 1]``), heads ``zero_heads`` dropped (the live widgets' loss).
    ``logits`` (``[pos, vocab]`` or ``[1, pos, vocab]``): score these instead of the model's."""
    t = torch.tensor([list(tokens)])
    if logits is None:
        logits = forward(model, t, zero_heads=zero_heads)
    logp = torch.as_tensor(logits).double().reshape(len(tokens), -1).log_softmax(-1)
    qs = [q for q in range(1, len(tokens) - 1)
          if any(tokens[p] == tokens[q] and tokens[p + 1] == tokens[q + 1] for p in range(q))]
    return float(-torch.stack([logp[q, tokens[q + 1]] for q in qs]).mean())


def halfway_step_brute_force(steps: list[int], values: list[float]) -> int:
    """The first step from which every later value is at least half of the way from the first
    value to the last, by checking each candidate step against every later value."""
    v0, v1 = float(values[0]), float(values[-1])
    for i, step in enumerate(steps):
        if all((float(v) - v0) / (v1 - v0) >= 0.5 for v in values[i:]):
            return int(step)
    raise AssertionError("unreachable: the last value is always past half-way")


def _heads64(model: Any, tokens: torch.Tensor):
    """Every head's raw scores ``q k^T / sqrt(d_head)`` (unmasked, ``[batch, query, key]``) and output
    ``A (x W_V + b_V) W_O`` (``[batch, pos, d_model]``), by head, in float64: the loop of :func:`forward`."""
    w = weights64(model)
    dh = model.cfg.d_head
    tokens = tokens.to(w["W_E"].device)
    seq = tokens.shape[1]
    x = w["W_E"][tokens] + w["W_pos"][:seq]
    mask = torch.ones(seq, seq, dtype=torch.bool, device=x.device).tril()
    scores, outputs = {}, {}
    for l in range(model.cfg.n_layers):
        new = torch.zeros_like(x)
        for h in range(model.cfg.n_heads):
            q = x @ w["W_Q"][l, h] + w["b_Q"][l, h]
            k = x @ w["W_K"][l, h] + w["b_K"][l, h]
            scores[(l, h)] = q @ k.transpose(-1, -2) / math.sqrt(dh)
            A = scores[(l, h)].masked_fill(~mask, float("-inf")).softmax(-1)
            outputs[(l, h)] = A @ (x @ w["W_V"][l, h] + w["b_V"][l, h]) @ w["W_O"][l, h]
            new = new + outputs[(l, h)]
        x = x + new + w["b_O"][l]
    return scores, outputs


def head_outputs64(model: Any, tokens: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
    """What every head writes to the residual stream, ``A (x W_V + b_V) W_O`` ``[batch, pos, d_model]``, float64.

    A head's output includes its value bias ``b_V W_O`` (TransformerLens's ``hook_z @ W_O``).
    """
    return _heads64(model, tokens)[1]


def attention_scores64(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Every head's raw attention scores before the softmax, ``q_i . k_j / sqrt(d_head)`` with the query and
    key biases, every key (no mask): ``[layer, batch, head, query, key]``, float64."""
    scores = _heads64(model, tokens)[0]
    L, H = model.cfg.n_layers, model.cfg.n_heads
    return torch.stack([torch.stack([scores[(l, h)] for h in range(H)], 1) for l in range(L)])
