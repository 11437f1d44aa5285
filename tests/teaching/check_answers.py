"""Answers as students write them, for the check-quality suite (``test_check_quality.py``).

``WRONG[exercise id]``: plausible wrong answers, each named by its mistake; every one must
fail both the notebook's self-check and the grader's hidden cases, for every seed.
``RIGHT[exercise id]``: correct answers written differently from the solution notebooks
(einsum, loops, numpy in float64, numpy scalars and arrays where the exercise allows them);
every one must pass both. Written from the exercises' texts, not from the checks.
"""
from __future__ import annotations

import functools
import itertools
import math
import re

import numpy as np
import torch

import mechlib

# --------------------------------------------------------------------------- helpers


def _np(t):
    return t.detach().cpu().numpy().astype(np.float64)


def _ov(m, head):
    l, h = head
    return m.W_V[l, h] @ m.W_O[l, h]


def _qk(m, head):
    l, h = head
    return m.W_Q[l, h] @ m.W_K[l, h].T


def _score(A, B):
    return ((A @ B).norm() / (A.norm() * B.norm())).item()


def _score_np(A, B):
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    return np.linalg.norm(A @ B) / (np.linalg.norm(A) * np.linalg.norm(B))


def _x0(m, tokens):
    return m.W_E[tokens] + m.W_pos[: tokens.shape[1]]


def _patterns(m, tokens):
    _, cache = m.run_with_cache(tokens)
    return cache


# --------------------------------------------------------------------------- 02 V-composition


def _rank_abs(M, rtol=1e-5):
    return int((torch.linalg.svdvals(M.double()) > rtol).sum())


def _rank_frobenius(M, rtol=1e-5):
    return int((torch.linalg.svdvals(M.double()) > rtol * M.double().norm()).sum())


def _rank_max_entry(M, rtol=1e-5):
    return int((torch.linalg.svdvals(M.double()) > rtol * M.double().abs().max()).sum())


def _rank_ignores_rtol(M, rtol=1e-5):
    return int(torch.linalg.matrix_rank(M.double()))


def _rank_in_place(M, rtol=1e-5):
    M /= M.abs().max().clamp_min(1e-300)  # scale first: changes the caller's matrix
    S = torch.linalg.svdvals(M.double())
    return int((S > rtol * S[0]).sum()) if S[0] > 0 else 0


def _rank_float32(M, rtol=1e-5):
    S = torch.linalg.svdvals(M.float())
    return int((S > rtol * S[0]).sum()) if S[0] > 0 else 0


def _rank_numpy(M, rtol=1e-5):
    S = np.linalg.svd(np.asarray(M, dtype=np.float64), compute_uv=False)
    return np.int64((S > rtol * S[0]).sum()) if S.size and S[0] > 0 else 0


def _rank_loop(M, rtol=1e-5):
    S = torch.linalg.svdvals(M.double()).tolist()
    top = max(S, default=0.0)
    return sum(1 for s in S if s > rtol * top) if top > 0 else 0


def _score_in_place(A, B):
    A /= A.norm()
    B /= B.norm()
    return (A @ B).norm().item()


def _baseline(d_model, d_head, n_samples=1000, seed=0, sample=None):
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n_samples)
    for i in range(n_samples):
        A, B = sample(g, d_model, d_head), sample(g, d_model, d_head)
        out[i] = _score(A, B)
    return out


def _low_rank(g, d_model, d_head):
    return torch.randn(d_model, d_head, generator=g) @ torch.randn(d_head, d_model, generator=g)


def _full_rank(g, d_model, d_head):
    return torch.randn(d_model, d_model, generator=g)


def _baseline_global_rng(d_model, d_head, n_samples=1000, seed=0):
    torch.manual_seed(seed)
    torch.randn(1)  # whatever else the notebook draws moves the global generator
    return torch.tensor([_score(torch.randn(d_model, d_head) @ torch.randn(d_head, d_model),
                                torch.randn(d_model, d_head) @ torch.randn(d_head, d_model))
                         for _ in range(n_samples)])


def _baseline_unseeded(d_model, d_head, n_samples=1000, seed=0):
    return torch.tensor([_score(torch.randn(d_model, d_head) @ torch.randn(d_head, d_model),
                                torch.randn(d_model, d_head) @ torch.randn(d_head, d_model))
                         for _ in range(n_samples)])


def _baseline_fixed_seed(d_model, d_head, n_samples=1000, seed=0):
    return _baseline(d_model, d_head, n_samples, 0, sample=_low_rank)


def _baseline_numpy(d_model, d_head, n_samples=1000, seed=0):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((n_samples, 2, d_model, d_head))
    V = rng.standard_normal((n_samples, 2, d_head, d_model))
    W = U @ V
    prod = np.linalg.norm(W[:, 0] @ W[:, 1], axis=(1, 2))
    return prod / (np.linalg.norm(W[:, 0], axis=(1, 2)) * np.linalg.norm(W[:, 1], axis=(1, 2)))


def _baseline_batched(d_model, d_head, n_samples=1000, seed=0):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(n_samples, 2, d_model, d_head, generator=g, dtype=torch.float64)
    V = torch.randn(n_samples, 2, d_head, d_model, generator=g, dtype=torch.float64)
    W = U @ V
    return torch.linalg.matrix_norm(W[:, 0] @ W[:, 1]) / (
        torch.linalg.matrix_norm(W[:, 0]) * torch.linalg.matrix_norm(W[:, 1]))


WRONG_02 = {
    "02.1": {
        "transposed (W_V W_O)^T": lambda m, h: m.W_O[h].T @ m.W_V[h].T,
        "always layer 0": lambda m, h: m.W_V[0, h[1]] @ m.W_O[0, h[1]],
        "W_V only": lambda m, h: m.W_V[h[0], h[1]],
        "factored, not dense": lambda m, h: mechlib.ov_circuit(m, h),
    },
    "02.2": {
        "receiver first": lambda m, s, r: _ov(m, r) @ _ov(m, s),
        "sum, not product": lambda m, s, r: _ov(m, s) + _ov(m, r),
        "QK of the receiver": lambda m, s, r: _ov(m, s) @ _qk(m, r),
    },
    "02.3": {
        "absolute tolerance": _rank_abs,
        "relative to the Frobenius norm": _rank_frobenius,
        "relative to the largest entry": _rank_max_entry,
        "rtol ignored": _rank_ignores_rtol,
        "input scaled in place": _rank_in_place,
        "float result": lambda M, rtol=1e-5: float(_rank_loop(M, rtol)),
    },
    "02.4": {
        "sum of the norms": lambda A, B: ((A @ B).norm() / (A.norm() + B.norm())).item(),
        "not normalised": lambda A, B: (A @ B).norm().item(),
        "squared norms": lambda A, B: ((A @ B).norm() ** 2 / (A.norm() ** 2 * B.norm() ** 2)).item(),
        "spectral norms": lambda A, B: (torch.linalg.matrix_norm(A @ B, ord=2)
                                        / (torch.linalg.matrix_norm(A, ord=2) * torch.linalg.matrix_norm(B, ord=2))).item(),
        "inputs normalised in place": _score_in_place,
    },
    "02.5": {
        "no d_head bottleneck": functools.partial(_baseline, sample=_full_rank),
        "unseeded": _baseline_unseeded,
        "seed hard-coded": _baseline_fixed_seed,
        "one pair repeated": lambda d_model, d_head, n_samples=1000, seed=0: _baseline(
            d_model, d_head, 1, seed, sample=_low_rank).repeat(n_samples),
    },
}

RIGHT_02 = {
    "02.1": {
        "einsum": lambda m, h: torch.einsum("dk,km->dm", m.W_V[h[0], h[1]], m.W_O[h[0], h[1]]),
        "numpy float64 array": lambda m, h: _np(m.W_V[h[0], h[1]]) @ _np(m.W_O[h[0], h[1]]),
        "float64 tensor": lambda m, h: m.W_V[h].double() @ m.W_O[h].double(),
        "library, dense": lambda m, h: mechlib.ov_circuit(m, h).AB,
        "transpose of (W_O^T W_V^T)": lambda m, h: (m.W_O[h[0], h[1]].T @ m.W_V[h[0], h[1]].T).T,
    },
    "02.2": {
        "einsum": lambda m, s, r: torch.einsum("ab,bc->ac", _ov(m, s), _ov(m, r)),
        "numpy float64": lambda m, s, r: _np(_ov(m, s)) @ _np(_ov(m, r)),
        "through the bottlenecks": lambda m, s, r: (
            m.W_V[s[0], s[1]] @ (m.W_O[s[0], s[1]] @ m.W_V[r[0], r[1]]) @ m.W_O[r[0], r[1]]),
    },
    "02.3": {
        "numpy, numpy int": _rank_numpy,
        "loop over singular values": _rank_loop,
        "float32 singular values": _rank_float32,
        "0-d int tensor": lambda M, rtol=1e-5: torch.tensor(_rank_loop(M, rtol)),
    },
    "02.4": {
        "numpy float64 (np.float64)": _score_np,
        "0-d tensor": lambda A, B: (A @ B).norm() / (A.norm() * B.norm()),
        "einsum, float64": lambda A, B: math.sqrt(torch.einsum("ij,jk->ik", A.double(), B.double()).pow(2).sum())
        / (A.double().pow(2).sum().sqrt() * B.double().pow(2).sum().sqrt()).item(),
        "numpy scalar float32": lambda A, B: np.float32(_score_np(A, B)),
    },
    "02.5": {
        "loop": functools.partial(_baseline, sample=_low_rank),
        "batched float64": _baseline_batched,
        "numpy Generator, float64 array": _baseline_numpy,
    },
}

# --------------------------------------------------------------------------- 03 / 04 K- and Q-composition


def _pair(m, s, r, reader):
    A, B = _ov(m, s), reader(m, r)
    return _score(A, B)


def _all_scores(m, kind, strict=True, mask=True, H=None):
    L = m.cfg.n_layers
    H = H or m.cfg.n_heads
    out = torch.zeros(L, H, L, H)
    for l1, h1, l2, h2 in itertools.product(range(L), range(H), range(L), range(H)):
        if not mask or (l1 < l2 if strict else l1 <= l2):
            r = {"Q": _qk(m, (l2, h2)), "K": _qk(m, (l2, h2)).T, "V": _ov(m, (l2, h2))}[kind]
            out[l1, h1, l2, h2] = _score(_ov(m, (l1, h1)), r)
    return out


def _all_scores_batched(m, kind):
    """Without an [L, H, L, H, d, d] tensor: ||A B||_F^2 = tr(A^T A B B^T), from d x d Gram matrices."""
    OV = (m.W_V @ m.W_O).double()  # [L, H, d, d]
    QK = (m.W_Q @ m.W_K.transpose(-1, -2)).double()
    R = {"Q": QK, "K": QK.transpose(-1, -2), "V": OV}[kind]
    G_s = OV.transpose(-1, -2) @ OV  # A^T A
    G_r = R @ R.transpose(-1, -2)  # B B^T
    sq = torch.einsum("abij,cdji->abcd", G_s, G_r)
    scores = sq.clamp_min(0).sqrt() / (OV.norm(dim=(-2, -1))[:, :, None, None] * R.norm(dim=(-2, -1))[None, None])
    L = m.cfg.n_layers
    earlier = torch.arange(L)[:, None] < torch.arange(L)[None, :]
    return (scores * earlier[:, None, :, None]).numpy()


def _path_ablation_by_hand(m, tokens, senders, receivers, kind, late_binding=False, first_sender_only=False,
                           receiver_layer_of_first=False, whole_layer=False):
    _, cache = m.run_with_cache(tokens)
    if first_sender_only:
        senders = senders[:1]
    delta = sum(cache[f"blocks.{l}.attn.hook_z"][:, :, h] @ m.W_O[l, h] for l, h in senders)
    W = {"Q": m.W_Q, "K": m.W_K, "V": m.W_V}[kind]
    b = {"Q": m.b_Q, "K": m.b_K, "V": m.b_V}[kind]
    hooks = []
    if whole_layer:
        layers = sorted({l for l, _ in receivers})
        return m.run_with_hooks(tokens, fwd_hooks=[
            (f"blocks.{l}.hook_resid_pre", lambda x, hook: x - delta) for l in layers])
    first_layer = receivers[0][0]
    for l, h in receivers:
        if receiver_layer_of_first:
            l = first_layer
        if late_binding:
            def splice(act, hook):
                act[:, :, h] = (cache[f"blocks.{l}.hook_resid_pre"] - delta) @ W[l, h] + b[l, h]
                return act
        else:
            edited = (cache[f"blocks.{l}.hook_resid_pre"] - delta) @ W[l, h] + b[l, h]

            def splice(act, hook, h=h, edited=edited):
                act[:, :, h] = edited
                return act
        hooks.append((f"blocks.{l}.attn.hook_{kind.lower()}", splice))
    return m.run_with_hooks(tokens, fwd_hooks=hooks)


def _path_ablation_einsum(m, tokens, senders, receivers, kind):
    """Another way: replace the receiver's whole q/k/v by one recomputed from an edited input, in float64."""
    _, cache = m.run_with_cache(tokens)
    delta = torch.zeros_like(cache["blocks.0.hook_resid_pre"], dtype=torch.float64)
    for l, h in senders:
        delta += torch.einsum("bpd,dm->bpm", cache[f"blocks.{l}.attn.hook_z"][:, :, h].double(), m.W_O[l, h].double())
    W = getattr(m, f"W_{kind}")
    b = getattr(m, f"b_{kind}")
    by_layer = {}
    for l, h in receivers:
        by_layer.setdefault(l, []).append(h)
    hooks = []
    for l, heads in by_layer.items():
        x = cache[f"blocks.{l}.hook_resid_pre"].double() - delta
        new = {h: (torch.einsum("bpd,dk->bpk", x, W[l, h].double()) + b[l, h].double()).float() for h in heads}

        def splice(act, hook, new=new):
            act = act.clone()
            for h, v in new.items():
                act[:, :, h] = v
            return act
        hooks.append((f"blocks.{l}.attn.hook_{kind.lower()}", splice))
    return m.run_with_hooks(tokens, fwd_hooks=hooks)


def _one(fn):
    """A single-sender, single-receiver answer (03.3) from a list answer."""
    return lambda m, t, s, r: fn(m, t, [s], [r], "K")


def _k_term(m, t, s, r, *, transposed=False, swap=False, scale=True, value_bias=True, b_q=False, numpy=False):
    """The K-composition term (W_E[t_i] W_Q^r) . (o^s_j W_K^r) / sqrt(d_head), with one mistake or none."""
    (ls, hs), (lr, hr) = s, r
    _, cache = m.run_with_cache(t)
    z = cache[f"blocks.{ls}.attn.hook_z"][:, :, hs]
    if not value_bias:
        z = z - m.b_V[ls, hs]
    o = z @ m.W_O[ls, hs]                              # [batch, pos, d_model]
    e = m.W_E[t]                                       # [batch, pos, d_model]
    WQ, WK = (m.W_K[lr, hr], m.W_Q[lr, hr]) if swap else (m.W_Q[lr, hr], m.W_K[lr, hr])
    q_side, k_side = (o, e) if transposed else (e, o)
    if numpy:
        q = _np(q_side) @ _np(WQ)
        k = _np(k_side) @ _np(WK)
        return np.einsum("bqd,bkd->bqk", q, k) / np.sqrt(m.cfg.d_head)
    q = q_side @ WQ + (m.b_Q[lr, hr] if b_q else 0)
    k = k_side @ WK
    out = torch.einsum("bqd,bkd->bqk", q, k)
    return out / m.cfg.d_head ** 0.5 if scale else out


WRONG_03 = {
    "03.1": {
        "Q/K transposed (W_QK, not its transpose)": lambda m, s, r: _pair(m, s, r, _qk),
        "V-composition": lambda m, s, r: _pair(m, s, r, _ov),
        "W_K alone": lambda m, s, r: _score(_ov(m, s), m.W_K[r[0], r[1]] @ m.W_K[r[0], r[1]].T),
        "sender and receiver swapped": lambda m, s, r: _score(_ov(m, r), _qk(m, s).T),
        "W_QK^T on the left": lambda m, s, r: _score(_qk(m, r).T, _ov(m, s)),
    },
    "03.2": {
        "no mask (every pair scored)": lambda m, kind: _all_scores(m, kind, mask=False),
        "same layer included (l1 <= l2)": lambda m, kind: _all_scores(m, kind, strict=False),
        "Q and K swapped": lambda m, kind: _all_scores(m, {"Q": "K", "K": "Q"}.get(kind, kind)),
        "hard-coded 4 heads": lambda m, kind: _all_scores(m, kind, H=4),
    },
    "03.3": {
        "head ablation": lambda m, t, s, r: mechlib.run_with_ablation(m, t, [s]),
        "queries, not keys": lambda m, t, s, r: _path_ablation_by_hand(m, t, [s], [r], "Q"),
        "the receiver's whole layer input": lambda m, t, s, r: _path_ablation_by_hand(m, t, [s], [r], "K",
                                                                                       whole_layer=True),
        "clean logits": lambda m, t, s, r: m(t),
    },
    "03.4": {
        "the Q-composition term (transposed)": lambda m, t, s, r: _k_term(m, t, s, r, transposed=True),
        "W_Q and W_K swapped": lambda m, t, s, r: _k_term(m, t, s, r, swap=True),
        "no 1/sqrt(d_head)": lambda m, t, s, r: _k_term(m, t, s, r, scale=False),
        "value bias left out": lambda m, t, s, r: _k_term(m, t, s, r, value_bias=False),
        "b_Q added to the token's side": lambda m, t, s, r: _k_term(m, t, s, r, b_q=True),
    },
}


def _no_bias_k(m, t, s, r):
    _, cache = m.run_with_cache(t)
    delta = cache[f"blocks.{s[0]}.attn.hook_z"][:, :, s[1]] @ m.W_O[s[0], s[1]]
    new = (cache[f"blocks.{r[0]}.hook_resid_pre"] - delta) @ m.W_K[r[0], r[1]]

    def splice(k, hook):
        k[:, :, r[1]] = new
        return k
    return m.run_with_hooks(t, fwd_hooks=[(f"blocks.{r[0]}.attn.hook_k", splice)])


RIGHT_03 = {
    "03.1": {
        "numpy float64 (np.float64)": lambda m, s, r: _score_np(_np(_ov(m, s)), _np(_qk(m, r)).T),
        "FactoredMatrix norms": lambda m, s, r: (
            (mechlib.ov_circuit(m, s) @ mechlib.qk_circuit(m, r).T).norm()
            / (mechlib.ov_circuit(m, s).norm() * mechlib.qk_circuit(m, r).norm())).item(),
        "0-d tensor, einsum": lambda m, s, r: torch.einsum("ij,jk->ik", _ov(m, s), _qk(m, r).T).norm()
        / (_ov(m, s).norm() * _qk(m, r).norm()),
    },
    "03.2": {
        "loops": lambda m, kind: _all_scores(m, kind),
        "batched via Gram matrices, numpy result": _all_scores_batched,
    },
    "03.3": {
        "by hand (one hook)": lambda m, t, s, r: _path_ablation_by_hand(m, t, [s], [r], "K"),
        "einsum in float64": _one(_path_ablation_einsum),
        "library hooks": lambda m, t, s, r: m.run_with_hooks(
            t, fwd_hooks=mechlib.path_ablation_hooks(m, t, s, r, "K")),
        # b_K adds the same amount to every score of a query, which the softmax ignores
        "b_K left out": lambda m, t, s, r: _no_bias_k(m, t, s, r),
    },
    "03.4": {
        "einsum from hook_z": _k_term,
        "numpy float64": lambda m, t, s, r: _k_term(m, t, s, r, numpy=True),
    },
}

WRONG_04 = {
    "04.1": {
        "Q/K transposed (W_QK^T)": lambda m, s, r: _pair(m, s, r, lambda m, r: _qk(m, r).T),
        "V-composition": lambda m, s, r: _pair(m, s, r, _ov),
        "W_QK on the left": lambda m, s, r: _score(_qk(m, r), _ov(m, s)),
    },
    "04.2": {
        "sides swapped": lambda m, s, r, side: _ov(m, s) @ _qk(m, r) if side == "K" else _qk(m, r) @ _ov(m, s).T,
        "OV not transposed on the key side": lambda m, s, r, side: (
            _ov(m, s) @ _qk(m, r) if side == "Q" else _qk(m, r) @ _ov(m, s)),
        "W_QK on the left on both sides": lambda m, s, r, side: (
            _qk(m, r) @ _ov(m, s) if side == "Q" else _qk(m, r) @ _ov(m, s).T),
        "OV transposed on the query side": lambda m, s, r, side: (
            _ov(m, s).T @ _qk(m, r) if side == "Q" else _qk(m, r) @ _ov(m, s).T),
    },
    "04.3": {
        "late-binding closure": functools.partial(_path_ablation_by_hand, late_binding=True),
        "first sender only (no sum over senders)": functools.partial(_path_ablation_by_hand, first_sender_only=True),
        "receivers all put in the first receiver's layer": functools.partial(
            _path_ablation_by_hand, receiver_layer_of_first=True),
        "the receivers' whole layer input": functools.partial(_path_ablation_by_hand, whole_layer=True),
        "head ablation": lambda m, t, s, r, kind: mechlib.run_with_ablation(m, t, s),
        "kind ignored (always K)": lambda m, t, s, r, kind: _path_ablation_by_hand(m, t, s, r, "K"),
    },
}

RIGHT_04 = {
    "04.1": {
        "numpy float64 (np.float64)": lambda m, s, r: _score_np(_np(_ov(m, s)), _np(_qk(m, r))),
        "loop over entries in float64": lambda m, s, r: _loop_score(_ov(m, s).double(), _qk(m, r).double()),
    },
    "04.2": {
        "einsum": lambda m, s, r, side: torch.einsum("ab,bc->ac", _ov(m, s), _qk(m, r)) if side == "Q"
        else torch.einsum("ab,cb->ac", _qk(m, r), _ov(m, s)),
        "numpy float64": lambda m, s, r, side: _np(_ov(m, s)) @ _np(_qk(m, r)) if side == "Q"
        else _np(_qk(m, r)) @ _np(_ov(m, s)).T,
        "FactoredMatrix, dense": lambda m, s, r, side: (
            (mechlib.ov_circuit(m, s) @ mechlib.qk_circuit(m, r)).AB if side == "Q"
            else (mechlib.qk_circuit(m, r) @ mechlib.ov_circuit(m, s).T).AB),
    },
    "04.3": {
        "by hand, default arguments": _path_ablation_by_hand,
        "einsum in float64, one hook per layer": _path_ablation_einsum,
        "library": lambda m, t, s, r, kind: mechlib.path_ablation(m, t, s, r, kind),
    },
}


def _loop_score(A, B):
    P = A @ B
    return math.sqrt(sum(float(x) ** 2 for x in P.flatten())) / (
        math.sqrt(sum(float(x) ** 2 for x in A.flatten())) * math.sqrt(sum(float(x) ** 2 for x in B.flatten())))


# --------------------------------------------------------------------------- 05 virtual heads


def _prev_loops(pattern):
    B, H, S, _ = pattern.shape
    return torch.tensor([sum(pattern[b, h, q, q - 1].item() for b in range(B) for q in range(1, S)) / (B * (S - 1))
                         for h in range(H)], dtype=torch.float64)


def _prev_in_place(pattern):
    pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mul_(1.0)  # harmless so far
    pattern[:, :, 0] = 0.0  # "clean up" the first row, which has no previous token
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def _induction_loops(pattern, half_len, prefix_len):
    B, H = pattern.shape[:2]
    qs = range(prefix_len + half_len, prefix_len + 2 * half_len)
    return np.array([np.mean([float(pattern[b, h, q, q - half_len + 1]) for b in range(B) for q in qs])
                     for h in range(H)])


def _induction_with(pattern, half_len, prefix_len, start=0, offset=1, batch=slice(None)):
    q = torch.arange(prefix_len + half_len + start, prefix_len + 2 * half_len)
    return pattern[batch][:, :, q, q - half_len + offset].mean(dim=(0, -1))


def _hook_zero(z, hook, head, where):
    z = z.clone()
    z[where(head)] = 0.0
    return z


def _mean_hook(dims):
    def hook(z, hook, head):
        z[:, :, head] = z[:, :, head].mean(dim=dims, keepdim=True)
        return z
    return hook


def _ablated_loss(m, tokens, heads, half_len, prefix_len=0, mode="zero", hook_mode=None, clean=False,
                  prefix=None):
    hook = {"zero": mechlib.zero_ablation_hook, "mean": mechlib.mean_ablation_hook}[hook_mode or mode]
    hooks = [] if clean else [(f"blocks.{l}.attn.hook_z", functools.partial(hook, head=h)) for l, h in heads]
    logits = m.run_with_hooks(tokens, fwd_hooks=hooks)
    return mechlib.repeat_loss(logits, tokens, half_len, prefix_len if prefix is None else prefix)


def _loss_all_positions(m, tokens, heads, half_len, prefix_len=0, mode="zero"):
    hook = {"zero": mechlib.zero_ablation_hook, "mean": mechlib.mean_ablation_hook}[mode]
    logits = m.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{l}.attn.hook_z", functools.partial(hook, head=h))
                                                 for l, h in heads])
    logp = logits.log_softmax(-1)[:, :-1]
    return -logp.gather(-1, tokens[:, 1:, None]).mean().item()


def _loss_by_hand(m, tokens, heads, half_len, prefix_len=0, mode="zero"):
    """Hooks written by hand, the loss from log-probabilities in float64, as np.float64."""
    def ablate(z, hook, h):
        z = z.clone()
        z[:, :, h] = 0.0 if mode == "zero" else z[:, :, h].mean(0, keepdim=True)
        return z
    logits = m.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{l}.attn.hook_z", functools.partial(ablate, h=h))
                                                 for l, h in heads]).double()
    logp = logits.log_softmax(-1)
    qs = range(prefix_len + half_len, prefix_len + 2 * half_len - 1)
    losses = [-logp[b, q, tokens[b, q + 1]].item() for b in range(tokens.shape[0]) for q in qs]
    return np.float64(np.mean(losses))


WRONG_05 = {
    "05.1": {
        "main diagonal (attention to itself)": lambda p: p.diagonal(dim1=-2, dim2=-1).mean(dim=(0, -1)),
        "off by one: divides by every query": lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).sum(dim=(0, -1))
        / (p.shape[0] * p.shape[-1]),
        "first sequence only": lambda p: p[0].diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=-1),
        "mean over the wrong axis (heads)": lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(1, -1)),
        "two tokens back": lambda p: p.diagonal(offset=-2, dim1=-2, dim2=-1).mean(dim=(0, -1)),
        "input changed in place": _prev_in_place,
    },
    "05.2": {
        "duplicate-token score (offset 0)": functools.partial(_induction_with, offset=0),
        "prefix ignored": lambda p, half_len, prefix_len: _induction_with(p, half_len, 0),
        "off by one: skips the first query": functools.partial(_induction_with, start=1),
        "first sequence only": functools.partial(_induction_with, batch=slice(0, 1)),
        "first copy's queries": lambda p, half_len, prefix_len: _induction_with(p, half_len, prefix_len - half_len)
        if prefix_len >= half_len else _induction_with(p, half_len, prefix_len, offset=2),
    },
    "05.3": {
        "every head zeroed": lambda z, hook, head: torch.zeros_like(z),
        "position axis": lambda z, hook, head: _hook_zero(z, hook, head, lambda h: (slice(None), h)),
        "d_head axis": lambda z, hook, head: _hook_zero(z, hook, head, lambda h: (Ellipsis, h)),
        "batch axis": lambda z, hook, head: _hook_zero(z, hook, head, lambda h: h),
    },
    "05.4": {
        "mean over positions too": _mean_hook((0, 1)),
        "mean over positions only": _mean_hook(1),
        "mean over d_head": _mean_hook(-1),
        "zero, not mean": mechlib.zero_ablation_hook,
        "mean over heads": lambda z, hook, head: _mean_heads(z, head),
    },
    "05.5": {
        "mode ignored (always zero)": functools.partial(_ablated_loss, hook_mode="zero"),
        "hooks not passed (clean loss)": functools.partial(_ablated_loss, clean=True),
        "loss over every position": _loss_all_positions,
        "prefix ignored": functools.partial(_ablated_loss, prefix=0),
    },
}


def _mean_heads(z, head):
    z[:, :, head] = z.mean(dim=2)
    return z


def _zero_hook_mask(z, hook, head):
    mask = torch.ones(z.shape[2], dtype=z.dtype)
    mask[head] = 0.0
    return z * mask[:, None]


def _mean_hook_loop(z, hook, head):
    out = z.clone()
    for p in range(z.shape[1]):
        out[:, p, head] = sum(z[b, p, head] for b in range(z.shape[0])) / z.shape[0]
    return out


def _mean_hook_in_place(z, hook, head):
    z[:, :, head].copy_(z[:, :, head].mean(0, keepdim=True).expand_as(z[:, :, head]))


RIGHT_05 = {
    "05.1": {
        "loops, float64": _prev_loops,
        "numpy float64 array": lambda p: np.mean(np.diagonal(_np(p), offset=-1, axis1=-2, axis2=-1), axis=(0, 2)),
        "einsum with a shifted identity": lambda p: torch.einsum(
            "bhqk,qk->h", p, torch.eye(p.shape[-1], dtype=p.dtype).roll(-1, dims=1).tril(-1)) / (
            p.shape[0] * (p.shape[-1] - 1)),
    },
    "05.2": {
        "loops, numpy array": _induction_loops,
        "gather": lambda p, half_len, prefix_len: p[:, :, prefix_len + half_len: prefix_len + 2 * half_len].gather(
            -1, (torch.arange(prefix_len + 1, prefix_len + half_len + 1))[None, None, :, None].expand(
                p.shape[0], p.shape[1], half_len, 1)).mean(dim=(0, 2, 3)),
    },
    "05.3": {
        "in place, returns None": lambda z, hook, head: z.__setitem__((slice(None), slice(None), head), 0.0),
        "mask, new tensor": _zero_hook_mask,
        "index_fill": lambda z, hook, head: z.index_fill(2, torch.tensor([head]), 0.0),
    },
    "05.4": {
        "loop, new tensor": _mean_hook_loop,
        "in place, returns None": _mean_hook_in_place,
    },
    "05.5": {
        "library ablation": lambda m, t, heads, half_len, prefix_len=0, mode="zero": mechlib.repeat_loss(
            mechlib.run_with_ablation(m, t, heads, mode) if heads else m(t), t, half_len, prefix_len),
        "by hand, np.float64": _loss_by_hand,
        "0-d tensor": lambda m, t, heads, half_len, prefix_len=0, mode="zero": torch.tensor(
            _ablated_loss(m, t, heads, half_len, prefix_len, mode)),
    },
}

# --------------------------------------------------------------------------- 05b circuit forms


def _steepest(steps, values):
    v = torch.as_tensor(values, dtype=torch.float64)
    smooth = torch.nn.functional.avg_pool1d(v[None, None], 5, 1, 2, count_include_pad=False)[0, 0]
    rate = (smooth[1:] - smooth[:-1]).abs() / torch.tensor(np.diff(steps), dtype=torch.float64)
    return steps[int(rate.argmax()) + 1]


def _halfway_numpy(steps, values):
    v = np.asarray(values, dtype=np.float64)
    progress = (v - v[0]) / (v[-1] - v[0])
    i = int(np.argmax(progress >= 0.5))
    return np.asarray(steps)[i]  # np.int64


def _threshold(lo):
    def fn(steps, values):
        v = torch.as_tensor(values, dtype=torch.float64)
        p = (v - v[0]) / (v[-1] - v[0])
        return int(steps[int((p >= lo).nonzero()[0])])
    return fn


WRONG_05B = {
    "05b.1": {
        "fixed threshold 0.5": lambda steps, values: int(steps[int((torch.as_tensor(values) > 0.5).float().argmax())]),
        "rising curves only (argmax of the value)": lambda steps, values: int(steps[int(torch.as_tensor(values).argmax())]),
        "above the mean of the values": lambda steps, values: int(
            steps[int((torch.as_tensor(values) > torch.as_tensor(values).mean()).float().argmax())]),
        "first step": lambda steps, values: int(steps[0]),
        "index, not step": lambda steps, values: int((torch.as_tensor(values, dtype=torch.float64) - values[0]).abs().ge(
            0.5 * abs(float(values[-1] - values[0]))).float().argmax()),
    },
    "05b.2": {
        "tolerance ignored": lambda steps, a, b, tol: _order_by(steps, a, b, 0),
        "before and after swapped": lambda steps, a, b, tol: {"before": "after", "after": "before"}.get(
            _order_by(steps, a, b, tol), "with"),
        "argmax of each curve": lambda steps, a, b, tol: _order_steps(
            steps[int(torch.as_tensor(a).argmax())], steps[int(torch.as_tensor(b).argmax())], tol),
    },
}


def _order_steps(x, y, tol):
    return "with" if abs(x - y) <= tol else ("before" if x < y else "after")


def _order_by(steps, a, b, tol, fn=None):
    fn = fn or mechlib.halfway_step
    return _order_steps(fn(steps, a), fn(steps, b), tol)


RIGHT_05B = {
    "05b.1": {
        "half-way, numpy int": _halfway_numpy,
        "steepest smoothed change": _steepest,
        "20% of the way": _threshold(0.2),
        "80% of the way": _threshold(0.8),
        "0-d int tensor": lambda steps, values: torch.tensor(mechlib.halfway_step(steps, values)),
    },
    "05b.2": {
        "half-way": lambda steps, a, b, tol: _order_by(steps, a, b, tol),
        "numpy half-way, np.str_": lambda steps, a, b, tol: np.str_(_order_by(steps, a, b, tol, _halfway_numpy)),
    },
}

# --------------------------------------------------------------------------- 06 two-layer expansion


def _direct(m, t):
    return _x0(m, t) @ m.W_U


def _single(m, t, head, x=None):
    l, h = head
    cache = _patterns(m, t)
    A = cache[f"blocks.{l}.attn.hook_pattern"][:, h]
    x = _x0(m, t) if x is None else x(cache, l)
    return A @ (x @ m.W_V[l, h] @ m.W_O[l, h]) @ m.W_U


def _virtual(m, t, s, r, order="sr"):
    cache = _patterns(m, t)
    (l1, h1), (l2, h2) = s, r
    A1, A2 = cache[f"blocks.{l1}.attn.hook_pattern"][:, h1], cache[f"blocks.{l2}.attn.hook_pattern"][:, h2]
    if order == "rs":
        A1, A2 = A2, A1
    x = _x0(m, t)
    return A2 @ A1 @ x @ _ov(m, s) @ _ov(m, r) @ m.W_U


def _expanded(m, t, H=None, bias=True, virtual=True, bU=True):
    H = H or m.cfg.n_heads
    heads = [(l, h) for l in range(m.cfg.n_layers) for h in range(H)]
    pe = mechlib.path_expansion(m, t)
    total = _direct(m, t) + (pe.by_kind()["bias"].float() if bias else 0)
    if bias and not bU:
        total = total - pe.terms["bias unembed"].float()
    for head in heads:
        total = total + _single(m, t, head)
    if virtual:
        for s in heads:
            for r in heads:
                if s[0] < r[0]:
                    total = total + _virtual(m, t, s, r)
    return total


def _expanded_einsum(m, t):
    """Every term at once in float64 with einsum; biases by hand (b_V, b_O, b_U through the paths)."""
    cache = _patterns(m, t)
    L, H = m.cfg.n_layers, m.cfg.n_heads
    x = _x0(m, t).double()
    stream = x.clone()
    for l in range(L):
        A = cache[f"blocks.{l}.attn.hook_pattern"].double()  # [b, h, q, k]
        v = torch.einsum("bkd,hde->bhke", stream, m.W_V[l].double()) + m.b_V[l].double()[None, :, None]
        out = torch.einsum("bhqk,bhke,hem->bqm", A, v, m.W_O[l].double()) + m.b_O[l].double()
        stream = stream + out
    return stream @ m.W_U.double() + m.b_U.double()


WRONG_06 = {
    "06.1": {
        "b_U added": lambda m, t: _direct(m, t) + m.b_U,
        "positions left out": lambda m, t: m.W_E[t] @ m.W_U,
        "residual stream of the last layer": lambda m, t: _patterns(m, t)[f"blocks.{m.cfg.n_layers - 1}.hook_resid_pre"]
        @ m.W_U,
    },
    "06.2": {
        "reads the layer's input, not x0": lambda m, t, head: _single(m, t, head, x=lambda c, l: c[f"blocks.{l}.hook_resid_pre"]),
        "b_V added": lambda m, t, head: _single(m, t, head) + (
            _patterns(m, t)[f"blocks.{head[0]}.attn.hook_pattern"][:, head[1]].sum(-1, keepdim=True)
            * (m.b_V[head] @ m.W_O[head] @ m.W_U)),
        "pattern of layer 0 always": lambda m, t, head: _single_wrong_layer(m, t, head),
        "b_U added": lambda m, t, head: _single(m, t, head) + m.b_U,
    },
    "06.3": {
        "patterns in the wrong order": functools.partial(_virtual, order="rs"),
        "OV circuits in the wrong order": lambda m, t, s, r: _virtual_ov_swapped(m, t, s, r),
        "receiver's pattern only": lambda m, t, s, r: _patterns(m, t)[f"blocks.{r[0]}.attn.hook_pattern"][:, r[1]]
        @ _x0(m, t) @ _ov(m, s) @ _ov(m, r) @ m.W_U,
    },
    "06.4": {
        "hard-coded 4 heads": lambda m, t: _expanded(m, t, H=4),
        "bias terms missing": lambda m, t: _expanded(m, t, bias=False),
        "virtual terms missing": lambda m, t: _expanded(m, t, virtual=False),
        "b_U missing": lambda m, t: _expanded(m, t, bU=False),
    },
}


def _single_wrong_layer(m, t, head):
    cache = _patterns(m, t)
    l, h = head
    A = cache["blocks.0.attn.hook_pattern"][:, h]
    return A @ (_x0(m, t) @ m.W_V[l, h] @ m.W_O[l, h]) @ m.W_U


def _virtual_ov_swapped(m, t, s, r):
    cache = _patterns(m, t)
    (l1, h1), (l2, h2) = s, r
    A1, A2 = cache[f"blocks.{l1}.attn.hook_pattern"][:, h1], cache[f"blocks.{l2}.attn.hook_pattern"][:, h2]
    return A2 @ A1 @ _x0(m, t) @ _ov(m, r) @ _ov(m, s) @ m.W_U


RIGHT_06 = {
    "06.1": {
        "einsum": lambda m, t: torch.einsum("bpd,dv->bpv", _x0(m, t), m.W_U),
        "numpy float64": lambda m, t: (_np(m.W_E)[t.numpy()] + _np(m.W_pos)[: t.shape[1]]) @ _np(m.W_U),
    },
    "06.2": {
        "einsum, float64": lambda m, t, head: torch.einsum(
            "bqk,bkd,de,ev->bqv", _patterns(m, t)[f"blocks.{head[0]}.attn.hook_pattern"][:, head[1]].double(),
            _x0(m, t).double(), _ov(m, head).double(), m.W_U.double()),
        "numpy float64": lambda m, t, head: _np(_patterns(m, t)[f"blocks.{head[0]}.attn.hook_pattern"][:, head[1]])
        @ _np(_x0(m, t)) @ _np(_ov(m, head)) @ _np(m.W_U),
    },
    "06.3": {
        "einsum": lambda m, t, s, r: torch.einsum(
            "bqk,bkj,bjd,de,ef,fv->bqv", _patterns(m, t)[f"blocks.{r[0]}.attn.hook_pattern"][:, r[1]],
            _patterns(m, t)[f"blocks.{s[0]}.attn.hook_pattern"][:, s[1]], _x0(m, t), _ov(m, s), _ov(m, r), m.W_U),
        "library term": lambda m, t, s, r: mechlib.path_expansion(m, t).terms[mechlib.chain_label((s, r), sep="->")],
    },
    "06.4": {
        "term by term": lambda m, t: _expanded(m, t),
        "einsum in float64": _expanded_einsum,
    },
}

# --------------------------------------------------------------------------- 07 counting

WRONG_07 = {
    "07.1": {
        "ordered pairs (no / 2)": lambda L, H: H * H * L * (L - 1),
        "any two heads": lambda L, H: math.comb(L * H, 2),
        "same layer included": lambda L, H: H * H * math.comb(L + 1, 2),
        "float": lambda L, H: H * H * L * (L - 1) / 2,
        "H instead of H^2": lambda L, H: H * math.comb(L, 2),
    },
    "07.2": {
        "same layer included": lambda L, H: [((l1, h1), (l2, h2)) for l1, h1, l2, h2 in
                                             itertools.product(range(L), range(H), range(L), range(H)) if l1 <= l2
                                             and (l1, h1) != (l2, h2)],
        "receiver first": lambda L, H: [((l2, h2), (l1, h1)) for l1, h1, l2, h2 in
                                        itertools.product(range(L), range(H), range(L), range(H)) if l1 < l2],
        "adjacent layers only": lambda L, H: [((l, h1), (l + 1, h2)) for l in range(L - 1)
                                              for h1 in range(H) for h2 in range(H)],
        "each pair twice": lambda L, H: 2 * list(mechlib.enumerate_virtual_heads(L, H, 2)),
    },
    "07.3": {
        "L^k, not C(L, k)": lambda L, H, k: H ** k * L ** k,
        "C(L*H, k)": lambda L, H, k: math.comb(L * H, k),
        "H * C(L, k)": lambda L, H, k: H * math.comb(L, k),
        "float power": lambda L, H, k: float(H) ** k * math.comb(L, k),
    },
    "07.4": {
        "direct path left out": lambda L, H: (1 + H) ** L - 1,
        "H^L": lambda L, H: H ** L,
        "chains of length 1 and 2 only": lambda L, H: 1 + L * H + H * H * math.comb(L, 2),
        "float": lambda L, H: float((1 + H) ** L),
    },
}

RIGHT_07 = {
    "07.1": {
        "numpy int": lambda L, H: np.int64(H * H * (L * (L - 1) // 2)),
        "loop": lambda L, H: sum(1 for l1 in range(L) for l2 in range(L) if l1 < l2) * H * H,
    },
    "07.2": {
        "generator": lambda L, H: (((l1, h1), (l2, h2)) for l1 in range(L) for l2 in range(l1 + 1, L)
                                   for h1 in range(H) for h2 in range(H)),
        "numpy ints, lists": lambda L, H: [[[np.int64(l1), np.int64(h1)], [np.int64(l2), np.int64(h2)]]
                                          for l1, h1, l2, h2 in itertools.product(range(L), range(H), range(L), range(H))
                                          if l1 < l2],
    },
    "07.3": {
        "closed form": lambda L, H, k: H ** k * math.comb(L, k),
        "numpy int": lambda L, H, k: np.int64(H ** k * math.comb(L, k)) if H ** k * math.comb(L, k) < 2 ** 62
        else H ** k * math.comb(L, k),
    },
    "07.4": {
        "closed form": lambda L, H: (1 + H) ** L,
        "binomial sum": lambda L, H: sum(math.comb(L, k) * H ** k for k in range(L + 1)),
    },
}

# --------------------------------------------------------------------------- 08 TransformerLens vocabulary


def _get_by_regex(m, name):
    match = re.fullmatch(r"blocks\.(\d+)\.attn\.(\w+)", name)
    if match:
        return getattr(m, match.group(2))[int(match.group(1))]
    return getattr(m, name.split(".")[-1])


def _head_outputs(m, cache, layer, H=None, bO=0.0):
    z = cache[f"blocks.{layer}.attn.hook_z"]
    H = H or m.cfg.n_heads
    return torch.stack([z[:, :, h] @ m.W_O[layer, h] for h in range(H)], dim=2) + bO


def _record(m, t, name):
    seen = {}

    def keep(a, hook):
        seen["a"] = a.detach().clone()
    m.run_with_hooks(t, fwd_hooks=[(name, keep)])
    return seen["a"]

# --------------------------------------------------------------------------- A1 real transformer


def _raw_scores(m, t, layer):
    _, cache = m.run_with_cache(t)
    q, k = cache[f"blocks.{layer}.attn.hook_q"], cache[f"blocks.{layer}.attn.hook_k"]
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / m.cfg.d_head ** 0.5


def _scores_from_weights(m, t, layer):
    x = _np(_record(m, t, f"blocks.{layer}.hook_resid_pre"))
    q = np.einsum("bpm,hmd->bphd", x, _np(m.W_Q[layer])) + _np(m.b_Q[layer])
    k = np.einsum("bpm,hmd->bphd", x, _np(m.W_K[layer])) + _np(m.b_K[layer])
    return np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(m.cfg.d_head)


WRONG_08 = {
    "08.1": {
        "always layer 0": lambda m, name: _get_by_regex(m, name.replace(name.split(".")[1], "0")
                                                        if name.startswith("blocks") else name),
        "layers counted from 1": lambda m, name: _get_by_regex(
            m, re.sub(r"\.(\d+)\.", lambda g: f".{int(g.group(1)) - 1}.", name)),
        "every layer": lambda m, name: getattr(m, name.split(".")[-1]),
    },
    "08.2": {
        "reads hook_attn_scores (the pattern on this bridge)": lambda m, t, layer: _patterns(m, t)[
            f"blocks.{layer}.attn.hook_attn_scores"],
        "reads hook_pattern": lambda m, t, layer: _patterns(m, t)[f"blocks.{layer}.attn.hook_pattern"],
        "no 1/sqrt(d_head)": lambda m, t, layer: _raw_scores(m, t, layer) * m.cfg.d_head ** 0.5,
        "divided by sqrt(d_model)": lambda m, t, layer: _raw_scores(m, t, layer) * (m.cfg.d_head / m.cfg.d_model) ** 0.5,
        "query and key swapped": lambda m, t, layer: _raw_scores(m, t, layer).transpose(-1, -2),
        "first sequence only": lambda m, t, layer: _raw_scores(m, t, layer)[:1],
        "layer 0 always": lambda m, t, layer: _raw_scores(m, t, 0),
    },
    "08.3": {
        "the output of the whole model": lambda m, t, name: m(t),
        "layer 0's hook always": lambda m, t, name: _record(m, t, re.sub(r"blocks\.\d+\.", "blocks.0.", name)),
        "the activation of another hook (resid_post)": lambda m, t, name: _patterns(m, t)[
            name.replace("hook_resid_pre", "hook_resid_post")] if "resid_pre" in name else _patterns(m, t)[name][:1],
    },
    "08.4": {
        "hard-coded 4 heads": lambda m, cache, layer: _head_outputs(m, cache, layer, H=4),
        "b_O added": lambda m, cache, layer: _head_outputs(m, cache, layer, bO=m.b_O[layer]),
        "b_O shared out": lambda m, cache, layer: _head_outputs(m, cache, layer, bO=m.b_O[layer] / m.cfg.n_heads),
        "summed over heads": lambda m, cache, layer: _head_outputs(m, cache, layer).sum(2, keepdim=True).expand(
            -1, -1, m.cfg.n_heads, -1),
    },
}

RIGHT_08 = {
    "08.1": {
        "regex": _get_by_regex,
        "get_parameter-free loop": lambda m, name: functools.reduce(
            lambda o, p: o[int(p)] if p.isdigit() else getattr(o, p), name.split("."), m),
    },
    "08.2": {
        "einsum of hook_q and hook_k": _raw_scores,
        "numpy float64, from the weights": lambda m, t, layer: _scores_from_weights(m, t, layer),
    },
    "08.3": {
        "hook records a clone": lambda m, t, name: _record(m, t, name),
        "run_with_cache": lambda m, t, name: m.run_with_cache(t, names_filter=name)[1][name],
    },
    "08.4": {
        "loop over heads": lambda m, cache, layer: _head_outputs(m, cache, layer),
        "broadcast, numpy float64": lambda m, cache, layer: (
            _np(cache[f"blocks.{layer}.attn.hook_z"])[..., None, :] @ _np(m.W_O[layer])[None, None]).squeeze(-2),
    },
}


def _prev_head(m, t, offset=-1, batch=slice(None), H=None):
    A = mechlib.attention_patterns(m, t)[:, batch]
    scores = A.diagonal(offset=offset, dim1=-2, dim2=-1).mean(dim=(1, -1))
    H = H or scores.shape[1]
    return divmod(int(scores.argmax()), H)


def _prev_head_numpy(m, t):
    A = _np(mechlib.attention_patterns(m, t))
    scores = np.diagonal(A, offset=-1, axis1=-2, axis2=-1).mean(axis=(1, 3))  # [layer, head]
    return np.unravel_index(np.argmax(scores), scores.shape)  # numpy ints


def _receivers(m, s, n, kind="K", ascending=False, H=None, everyone=False):
    into = mechlib.composition_scores(m, kind)[s]
    H = H or into.shape[1]
    order = into.flatten().argsort(descending=not ascending)
    if ascending:
        order = order[into.flatten()[order] > 0]
    return [divmod(int(i), H) for i in order[:n]]


def _receivers_loop(m, s, n):
    later = [(l, h) for l in range(s[0] + 1, m.cfg.n_layers) for h in range(m.cfg.n_heads)]
    scores = {r: _score(_ov(m, s).double(), _qk(m, r).T.double()) for r in later}
    return sorted(later, key=lambda r: -scores[r])[:n]


def _cut_by_hand(m, t, s, r, kind="K"):
    """Hand-made path ablation that ignores LayerNorm: right only for a model without it."""
    _, cache = m.run_with_cache(t)
    delta = cache[f"blocks.{s[0]}.attn.hook_z"][:, :, s[1]] @ m.W_O[s[0], s[1]]
    W, b = getattr(m, f"W_{kind}"), getattr(m, f"b_{kind}")
    new = (cache[f"blocks.{r[0]}.hook_resid_pre"] - delta) @ W[r] + b[r]

    def splice(act, hook):
        act[:, :, r[1]] = new
        return act
    return mechlib.attention_patterns(m, t, fwd_hooks=[(f"blocks.{r[0]}.attn.hook_{kind.lower()}", splice)])[r[0], :, r[1]]


def _cut_lib(m, t, s, r, kind="K", freeze_ln=True):
    hooks = mechlib.path_ablation_hooks(m, t, s, r, kind, freeze_ln=freeze_ln)
    return mechlib.attention_patterns(m, t, fwd_hooks=hooks)[r[0], :, r[1]]


WRONG_A1 = {
    "A1.1": {
        "first sequence only": functools.partial(_prev_head, batch=slice(0, 1)),
        "attention to itself (offset 0)": functools.partial(_prev_head, offset=0),
        "two tokens back": functools.partial(_prev_head, offset=-2),
        "hard-coded 4 heads": functools.partial(_prev_head, H=4),
        "flat index": lambda m, t: int(mechlib.prev_token_scores(m, t).argmax()),
    },
    "A1.2": {
        "Q-receivers": functools.partial(_receivers, kind="Q"),
        "V-receivers": functools.partial(_receivers, kind="V"),
        "lowest first": functools.partial(_receivers, ascending=True),
        "hard-coded 4 heads": functools.partial(_receivers, H=4),
    },
    "A1.3": {
        "freeze_ln forgotten": functools.partial(_cut_lib, freeze_ln=False),
        "by hand, LayerNorm ignored": _cut_by_hand,
        "queries, not keys": functools.partial(_cut_lib, kind="Q"),
        "head ablation": lambda m, t, s, r: mechlib.attention_patterns(
            m, t, fwd_hooks=mechlib.ablation_hooks(m, [s]))[r[0], :, r[1]],
        "clean pattern": lambda m, t, s, r: mechlib.attention_patterns(m, t)[r[0], :, r[1]],
    },
}

RIGHT_A1 = {
    "A1.1": {
        "library scores": lambda m, t: mechlib.top_head(mechlib.prev_token_scores(m, t)),
        "numpy, numpy ints": _prev_head_numpy,
        "loops over heads": lambda m, t: max(
            ((l, h) for l in range(m.cfg.n_layers) for h in range(m.cfg.n_heads)),
            key=lambda lh: mechlib.attention_patterns(m, t)[lh[0], :, lh[1]].diagonal(-1, -2, -1).double().mean().item()),
    },
    "A1.2": {
        "loops in float64": _receivers_loop,
        "library ranking": lambda m, s, n: mechlib.ranked_heads(mechlib.composition_scores(m, "K")[s])[:n],
        "numpy ints": lambda m, s, n: [(np.int64(l), np.int64(h)) for l, h in _receivers(m, s, n)],
    },
    "A1.3": {
        "library hooks": _cut_lib,
        "numpy float64": lambda m, t, s, r: _cut_lib(m, t, s, r).double().numpy(),
    },
}

# --------------------------------------------------------------------------- investigation 01-04
# --- investigation 01-04 (findings about a model: a head, a number, a kind; see mechlib/teaching/findings.py)


def _inv_loss(logits, tokens, mask, everywhere=False):
    per = mechlib.per_token_loss(logits, tokens).double()
    return per.mean().item() if everywhere else per[mask].mean().item()


def _inv_best(rise, lowest=False):
    best = (min if lowest else max)(rise, key=rise.get)
    return best, rise[best]


def _writer(m, t, mean_first=False, with_bias=False, plus_pos=False, head=None, by_weights=False):
    _, cache = m.run_with_cache(t)
    tok = cache["hook_embed"] + (cache["hook_pos_embed"] if plus_pos else 0)
    outs = {h: mechlib.head_output(m, cache, h) + (m.b_O[0] if with_bias else 0) for h in mechlib.layer_heads(m, 0)}
    size = (lambda x: x.mean((0, 1)).norm()) if mean_first else (lambda x: x.norm(dim=-1).mean())
    ratio = {h: (size(o) / size(tok)).item() for h, o in outs.items()}
    if by_weights:
        head = max(ratio, key=lambda h: (m.W_V[h] @ m.W_O[h]).norm().item())
    return (head, ratio[head]) if head is not None else _inv_best(ratio)


def _writer_numpy(m, t):
    _, cache = m.run_with_cache(t)
    z = cache["blocks.0.attn.hook_z"].double().numpy()  # [batch, pos, head, d_head]
    W_O = m.W_O[0].double().numpy()  # [head, d_head, d_model]
    out = np.einsum("bphd,hdm->bphm", z, W_O)
    norms = np.linalg.norm(out, axis=-1).mean(axis=(0, 1))
    tok = np.linalg.norm(m.W_E.double().numpy()[t.numpy()], axis=-1).mean()
    h = np.argmax(norms)
    return (np.int64(0), h), norms[h] / tok  # numpy ints, np.float64


def _collapse(m, t, mode="zero", heads="layer0", head=None):
    last = m.cfg.n_layers - 1
    clean = mechlib.induction_scores(m, t)
    head = head or mechlib.top_head(clean, layer=last)
    off = {"layer0": mechlib.layer_heads(m, 0), "layer1": mechlib.layer_heads(m, last),
           "prev": [mechlib.top_head(mechlib.prev_token_scores(m, t), layer=0)]}[heads]
    ablated = mechlib.induction_scores(m, t, fwd_hooks=mechlib.ablation_hooks(m, off, mode))
    return head, clean[head].item(), ablated[head].item()


def _collapse_patterns(m, t):
    last = m.cfg.n_layers - 1
    clean = mechlib.induction_scores_from_patterns(mechlib.attention_patterns(m, t), t)
    hooks = [(f"blocks.0.attn.hook_z", lambda z, hook: z * 0)]
    off = mechlib.induction_scores_from_patterns(mechlib.attention_patterns(m, t, fwd_hooks=hooks), t)
    h = int(clean[last].argmax())
    return torch.tensor([last, h]), clean[last, h], off[last, h]  # a tensor head, 0-d tensors


def _decisive(m, t, mask, lowest=False, loss_after=False, everywhere=False, kind=None):
    L0, L1 = mechlib.layer_heads(m, 0), mechlib.layer_heads(m, 1)
    clean = 0.0 if loss_after else _inv_loss(m(t), t, mask, everywhere)
    rise = {k: _inv_loss(mechlib.path_ablation(m, t, L0, L1, k), t, mask, everywhere) - clean for k in "QKV"}
    return (kind, rise[kind]) if kind else _inv_best(rise, lowest)


class _ScoredBatch:
    """A batch object for mechlib.path_ablation_losses: tokens and the scored predictions."""

    def __init__(self, tokens, mask):
        self.tokens, self.mask = tokens, mask

    def loss(self, logits):
        return mechlib.per_token_loss(logits, self.tokens)[self.mask].mean().item()


def _decisive_library(m, t, mask):
    b = _ScoredBatch(t, mask)
    cut = mechlib.path_ablation_losses(m, b, mechlib.layer_heads(m, 0), mechlib.layer_heads(m, 1))
    kind = max(cut, key=cut.get)
    return kind, np.float64(cut[kind] - b.loss(m(t)))


def _sender(m, t, mask, kind="K", how="cut", receivers="all", head=None):
    L0 = mechlib.layer_heads(m, 0)
    rec = mechlib.layer_heads(m, 1)
    if receivers == "top":
        rec = [mechlib.top_head(mechlib.induction_scores(m, t), layer=1)]
    clean = _inv_loss(m(t), t, mask)
    if how == "head ablation":
        rise = {s: _inv_loss(mechlib.run_with_ablation(m, t, [s]), t, mask) - clean for s in L0}
    else:
        rise = {s: _inv_loss(mechlib.path_ablation(m, t, s, rec, kind), t, mask) - clean for s in L0}
    if how == "weights":
        scores = mechlib.composition_scores(m, kind)[0, :, 1].max(-1).values
        head = (0, int(scores.argmax()))
    return (head, rise[head]) if head is not None else _inv_best(rise)


def _sender_hooks(m, t, mask, kind):
    """By hand: hooks that splice the cut input, a loop over senders, numpy results."""
    L1 = mechlib.layer_heads(m, 1)
    clean = _inv_loss(m(t), t, mask)
    rise = []
    for s in mechlib.layer_heads(m, 0):
        logits = m.run_with_hooks(t, fwd_hooks=mechlib.path_ablation_hooks(m, t, [s], L1, kind))
        rise.append(_inv_loss(logits, t, mask) - clean)
    h = int(np.argmax(rise))
    return (np.int64(0), np.int64(h)), np.float64(rise[h])


def _top_guess(m, t, mask, what="top", where="mask", swap=False):
    L0, L1 = mechlib.layer_heads(m, 0), mechlib.layer_heads(m, 1)
    out = []
    for logits in (mechlib.path_ablation(m, t, L0, L1, "K"), mechlib.run_with_ablation(m, t, L0)):
        sel = torch.ones_like(mask) if where == "all" else mask
        aligned = logits[:, 1:] if where == "shifted" else logits[:, :-1]
        probs = aligned.softmax(-1)[sel]
        if what == "right token":
            out.append(probs.gather(-1, t[:, 1:][sel][:, None]).mean().item())
        else:
            out.append(probs.max(-1).values.mean().item())
    return tuple(out[::-1]) if swap else tuple(out)


def _top_guess_float64(m, t, mask):
    L0, L1 = mechlib.layer_heads(m, 0), mechlib.layer_heads(m, 1)
    res = []
    for logits in (mechlib.path_ablation(m, t, L0, L1, "K"), mechlib.run_with_ablation(m, t, L0)):
        logp = logits[:, :-1].double().log_softmax(-1)
        res.append(logp.max(-1).values.exp()[mask].mean())  # a 0-d float64 tensor
    return res[0], res[1]


WRONG_INVESTIGATION = {
    "01.1": {
        "norm of the mean vector": functools.partial(_writer, mean_first=True),
        "b_O added to the head": functools.partial(_writer, with_bias=True),
        "against token + position": functools.partial(_writer, plus_pos=True),
        "hard-coded head 0.3": functools.partial(_writer, head=(0, 3)),
    },
    "01.2": {
        "mean ablation": functools.partial(_collapse, mode="mean"),
        "layer 1 ablated": functools.partial(_collapse, heads="layer1"),
        "one previous-token head ablated": functools.partial(_collapse, heads="prev"),
        "hard-coded head 1.1": functools.partial(_collapse, head=(1, 1)),
    },
    "02.6": {
        "least costly cut": functools.partial(_decisive, lowest=True),
        "loss after the cut, not the rise": functools.partial(_decisive, loss_after=True),
        "every position": functools.partial(_decisive, everywhere=True),
        "hard-coded K": functools.partial(_decisive, kind="K"),
    },
    "03.5": {
        "head ablation": functools.partial(_sender, how="head ablation"),
        "queries, not keys": functools.partial(_sender, kind="Q"),
        "one receiver only": functools.partial(_sender, receivers="top"),
        "hard-coded head 0.3": functools.partial(_sender, head=(0, 3)),
    },
    "03.6": {
        "probability of the right token": functools.partial(_top_guess, what="right token"),
        "every position": functools.partial(_top_guess, where="all"),
        "shifted by one": functools.partial(_top_guess, where="shifted"),
        "swapped": functools.partial(_top_guess, swap=True),
    },
    "04.4": {
        "keys, not queries": functools.partial(_sender, kind="K"),
        "head ablation": functools.partial(_sender, kind="Q", how="head ablation"),
        "one receiver only": functools.partial(_sender, kind="Q", receivers="top"),
        "hard-coded head 0.3": functools.partial(_sender, kind="Q", head=(0, 3)),
    },
}

RIGHT_INVESTIGATION = {
    "01.1": {"numpy einsum in float64": _writer_numpy, "loops": _writer},
    "01.2": {"from the patterns, tensors": _collapse_patterns, "library": _collapse},
    "02.6": {"path_ablation_losses on a batch object": _decisive_library, "loops": _decisive},
    "03.5": {"hooks, numpy": functools.partial(_sender_hooks, kind="K"), "path_ablation": _sender},
    "03.6": {"float64 log-softmax, 0-d tensors": _top_guess_float64, "softmax": _top_guess},
    "04.4": {"hooks, numpy": functools.partial(_sender_hooks, kind="Q"),
             "path_ablation": functools.partial(_sender, kind="Q")},
}
# --- end of investigation 01-04

WRONG = {**WRONG_02, **WRONG_03, **WRONG_04, **WRONG_05, **WRONG_05B, **WRONG_06, **WRONG_07, **WRONG_08,
         **WRONG_A1, **WRONG_INVESTIGATION}
RIGHT = {**RIGHT_02, **RIGHT_03, **RIGHT_04, **RIGHT_05, **RIGHT_05B, **RIGHT_06, **RIGHT_07, **RIGHT_08,
         **RIGHT_A1, **RIGHT_INVESTIGATION}

# --- investigation 05-08 ---------------------------------------------------------------------------------
# the investigation exercises of chapters 5 to 8: each takes (model, tokens, mask[, ...]) and returns a finding


def _scored(logits, tokens, mask):
    return mechlib.per_token_loss(logits, tokens)[mask].mean().item()


def _route(m, t, mask, pick=max, what="rise", everywhere=False, senders=None, numpy=False):
    if everywhere:
        mask = torch.ones_like(mask)
    senders = senders or mechlib.layer_heads(m, 0)
    clean = _scored(m(t), t, mask)
    loss = {k: _scored(mechlib.path_ablation(m, t, senders, mechlib.layer_heads(m, 1), k), t, mask) for k in "QKV"}
    kind = pick(loss, key=loss.get)
    value = loss[kind] - clean if what == "rise" else loss[kind]
    return (np.str_(kind), np.float64(value)) if numpy else (kind, value)


def _route_numpy(m, t, mask):
    def loss(logits):
        lp = _np(logits[:, :-1].log_softmax(-1))
        target = t[:, 1:].numpy()
        picked = np.take_along_axis(lp, target[..., None], -1)[..., 0]
        return -picked[mask.numpy()].mean()
    clean = loss(m(t))
    rise = {k: loss(mechlib.path_ablation(m, t, mechlib.layer_heads(m, 0), mechlib.layer_heads(m, 1), k)) - clean
            for k in "QKV"}
    kind = max(rise, key=rise.get)
    return np.str_(kind), rise[kind]


class _Scored:
    """A batch as path_ablation_losses wants it: .tokens and .loss(logits) on the masked predictions."""

    def __init__(self, tokens, mask):
        self.tokens, self.mask = tokens, mask

    def loss(self, logits):
        return _scored(logits, self.tokens, self.mask)


def _route_library(m, t, mask):
    b = _Scored(t, mask)
    cuts = mechlib.path_ablation_losses(m, b, mechlib.layer_heads(m, 0), mechlib.layer_heads(m, 1))
    kind = max(cuts, key=cuts.get)
    return [kind, torch.tensor(cuts[kind] - b.loss(m(t)))]


def _hedge(m, t, mask, heads, flip=False, measure="top", everywhere=False, numpy=False):
    if everywhere:
        mask = torch.ones_like(mask)

    def stats(logits):
        lp = logits[:, :-1].double().log_softmax(-1)
        p = lp.exp()
        second = {"top": p.max(-1).values, "entropy": -(p * lp).sum(-1),
                  "target": p.gather(-1, t[:, 1:, None])[..., 0]}[measure]
        return _scored(logits, t, mask), second[mask].mean().item()

    (l0, c0), (l1, c1) = stats(m(t)), stats(mechlib.run_with_ablation(m, t, heads))
    out = (l0 - l1, c0 - c1) if flip else (l1 - l0, c1 - c0)
    return tuple(np.float64(x) for x in out) if numpy else out


def _hedge_hooks(m, t, mask, heads):
    def zero(z, hook, h):
        z = z.clone()
        z[:, :, h] = 0.0
        return z
    hooks = [(f"blocks.{l}.attn.hook_z", functools.partial(zero, h=h)) for l, h in heads]
    out = []
    for logits in (m(t), m.run_with_hooks(t, fwd_hooks=hooks)):
        p = _np(logits[:, :-1].softmax(-1))
        loss = _np(mechlib.per_token_loss(logits, t))
        msk = mask.numpy()
        out.append((loss[msk].mean(), p.max(-1)[msk].mean()))
    return out[1][0] - out[0][0], out[1][1] - out[0][1]


def _credits(m, t, mask, centred=True, everywhere=False, kinds=None):
    if everywhere:
        mask = torch.ones_like(mask)
    pe = mechlib.path_expansion(m, t)
    out = {}
    for name, T in pe.terms.items():
        if kinds is not None and pe.kinds[name] not in kinds:
            continue
        lg = T[:, :-1].double()
        margin = lg.gather(-1, t[:, 1:, None])[..., 0] - (lg.mean(-1) if centred else 0.0)
        out[name] = margin[mask].mean().item()
    return out


def _carrier(m, t, mask, share_of=None, percent=False, **kw):
    c = _credits(m, t, mask, **kw)
    best = max(c, key=c.get)
    total = sum(c.values()) if share_of is None else share_of(c)
    return best, (100 if percent else 1) * c[best] / total


def _carrier_einsum(m, t, mask):
    pe = mechlib.path_expansion(m, t)
    onehot = torch.nn.functional.one_hot(t[:, 1:], m.cfg.d_vocab).double()
    w = mask.double() / mask.sum()
    credit = {n: torch.einsum("bpv,bpv,bp->", T[:, :-1].double(), onehot - 1.0 / m.cfg.d_vocab, w).item()
              for n, T in pe.terms.items()}
    best = max(credit, key=credit.get)
    return np.str_(best), np.float64(credit[best] / np.sum(list(credit.values())))


def _pair_rises(m, t, mask, kind, senders_mode="path"):
    clean = _scored(m(t), t, mask)
    return {(s, r): _scored(mechlib.path_ablation(m, t, [s], [r], kind), t, mask) - clean
            for s, r in mechlib.enumerate_virtual_heads(m.cfg.n_layers, m.cfg.n_heads)}


def _inv_pair(m, t, mask, kind="K", pick=max, swap=False, ignore_kind=False, numpy=False):
    rises = _pair_rises(m, t, mask, "K" if ignore_kind else kind)
    s, r = pick(rises, key=rises.get)
    if swap:
        s, r = r, s
    return ((np.int64(s[0]), np.int64(s[1])), (np.int64(r[0]), np.int64(r[1]))) if numpy else (s, r)


def _pair_screen(m, t, mask, kind="K"):
    scores = mechlib.composition_scores(m, kind)
    return max(mechlib.enumerate_virtual_heads(m.cfg.n_layers, m.cfg.n_heads), key=lambda p: float(scores[p[0] + p[1]]))


def _pair_loops(m, t, mask, kind="K"):
    best, worst = None, -math.inf
    for l1 in range(m.cfg.n_layers):
        for l2 in range(l1 + 1, m.cfg.n_layers):
            for h1 in range(m.cfg.n_heads):
                for h2 in range(m.cfg.n_heads):
                    loss = _scored(mechlib.path_ablation(m, t, [(l1, h1)], [(l2, h2)], kind), t, mask)
                    if loss > worst:
                        best, worst = [[l1, h1], [l2, h2]], loss
    return best


def _inv_direct(m, t, mask, centred=True, b_O=False, everywhere=False, pick=max, numpy=False):
    if everywhere:
        mask = torch.ones_like(mask)
    _, cache = m.run_with_cache(t)
    credit = {}
    for l in range(m.cfg.n_layers):
        for h in range(m.cfg.n_heads):
            out = cache[f"blocks.{l}.attn.hook_z"][:, :, h] @ m.W_O[l, h] + (m.b_O[l] if b_O else 0.0)
            lg = (out @ m.W_U)[:, :-1]
            margin = lg.gather(-1, t[:, 1:, None])[..., 0] - (lg.mean(-1) if centred else 0.0)
            credit[(l, h)] = margin[mask].mean().item()
    best = pick(credit, key=credit.get)
    return ((np.int64(best[0]), np.int64(best[1])), np.float64(credit[best])) if numpy else (best, credit[best])


def _direct_single_term(m, t, mask):
    credit = mechlib.correct_token_attribution(mechlib.path_expansion(m, t), mask)
    head = max(mechlib.all_heads(m), key=lambda h: credit[mechlib.head_label(h)])
    return head, _direct_for(m, t, mask)[head]


def _direct_for(m, t, mask):
    _, cache = m.run_with_cache(t)
    out = {}
    for head in mechlib.all_heads(m):
        lg = (mechlib.head_output(m, cache, head) @ m.W_U)[:, :-1]
        out[head] = (lg.gather(-1, t[:, 1:, None])[..., 0] - lg.mean(-1))[mask].mean().item()
    return out


def _direct_hooks(m, t, mask):
    seen = {}

    def keep(layer):
        def hook(z, hook):  # the bridge names the hook by its alias (attn.o.hook_in): key by layer
            seen[f"blocks.{layer}.attn.hook_z"] = z.detach().double()
        return hook

    m.run_with_hooks(t, fwd_hooks=[(f"blocks.{l}.attn.hook_z", keep(l)) for l in range(m.cfg.n_layers)])
    best, value = None, -math.inf
    target = torch.nn.functional.one_hot(t[:, 1:], m.cfg.d_vocab).double() - 1.0 / m.cfg.d_vocab
    for l in range(m.cfg.n_layers):
        lg = torch.einsum("bphd,hdm,mv->bphv", seen[f"blocks.{l}.attn.hook_z"], m.W_O[l].double(),
                          m.W_U.double())[:, :-1]
        credit = torch.einsum("bphv,bpv->bph", lg, target)[mask].mean(0)
        h = int(credit.argmax())
        if credit[h] > value:
            best, value = (l, h), credit[h].item()
    return best, np.float64(value)


WRONG_INV58 = {
    "05.6": {
        "cheapest cut (argmin)": functools.partial(_route, pick=min),
        "loss with the cut, not the rise": functools.partial(_route, what="loss"),
        "every position scored (mask ignored)": functools.partial(_route, everywhere=True),
        "always K (the chapter's answer)": lambda m, t, mask: ("K", _route(m, t, mask)[1]),
        "first layer-0 head only": lambda m, t, mask: _route(m, t, mask, senders=[(0, 0)]),
    },
    "05.7": {
        "signs flipped (clean minus ablated)": functools.partial(_hedge, flip=True),
        "entropy instead of the top guess": functools.partial(_hedge, measure="entropy"),
        "probability of the correct token": functools.partial(_hedge, measure="target"),
        "every position (mask ignored)": functools.partial(_hedge, everywhere=True),
    },
    "06.5": {
        "no mean logit subtracted": functools.partial(_carrier, centred=False),
        "every position (mask ignored)": functools.partial(_carrier, everywhere=True),
        "share as a percentage": functools.partial(_carrier, percent=True),
        "single-head terms only": functools.partial(_carrier, kinds=("direct", "single")),
    },
    "07.5": {
        "cheapest cut (argmin)": functools.partial(_inv_pair, pick=min),
        "receiver first": functools.partial(_inv_pair, swap=True),
        "kind ignored (always K)": functools.partial(_inv_pair, ignore_kind=True),
        "highest composition score (the screen)": _pair_screen,
    },
    "08.5": {
        "b_O added to each head": functools.partial(_inv_direct, b_O=True),
        "no mean logit subtracted": functools.partial(_inv_direct, centred=False),
        "every position (mask ignored)": functools.partial(_inv_direct, everywhere=True),
        "largest single-head term of the expansion": _direct_single_term,
    },
}

RIGHT_INV58 = {
    "05.6": {
        "numpy float64 loss, np.str_": _route_numpy,
        "path_ablation_losses on a batch object, list with a 0-d tensor": _route_library,
        "numpy scalars": functools.partial(_route, numpy=True),
    },
    "05.7": {
        "own zero hooks, numpy float64": _hedge_hooks,
        "float64 softmax, numpy scalars": functools.partial(_hedge, numpy=True),
    },
    "06.5": {
        "library attribution": lambda m, t, mask: (lambda c: (max(c, key=c.get), max(c.values()) / sum(c.values())))(
            mechlib.correct_token_attribution(mechlib.path_expansion(m, t), mask)),
        "einsum, numpy scalars": _carrier_einsum,
    },
    "07.5": {
        "loops over layers and heads, lists": _pair_loops,
        "numpy ints": functools.partial(_inv_pair, numpy=True),
    },
    "08.5": {
        "hooks and einsum in float64": _direct_hooks,
        "library head_output": lambda m, t, mask: (lambda c: (max(c, key=c.get), max(c.values())))(_direct_for(m, t, mask)),
        "numpy scalars": functools.partial(_inv_direct, numpy=True),
    },
}

WRONG.update(WRONG_INV58)
RIGHT.update(RIGHT_INV58)


# --- capstone (C1, find the induction circuit) ----------------------------------------------------------


def _c1_prev(m, t, th, offset=-1, batch=slice(None), top_only=False, ascending=False, H=None, geq_max=False):
    A = mechlib.attention_patterns(m, t)[:, batch]
    scores = A.diagonal(offset=offset, dim1=-2, dim2=-1)
    scores = scores.amax(dim=1).mean(-1) if geq_max else scores.mean(dim=(1, -1))
    H = H or scores.shape[1]
    heads = [divmod(int(i), H) for i in scores.flatten().argsort(descending=not ascending)
             if float(scores.flatten()[i]) > th]
    return heads[:1] if top_only else heads


def _c1_prev_loops(m, t, th):
    A = _np(mechlib.attention_patterns(m, t))  # [layer, batch, head, q, k]
    L, _, H, n, _ = A.shape
    scores = {(l, h): np.mean([A[l, :, h, q, q - 1] for q in range(1, n)]) for l in range(L) for h in range(H)}
    return sorted((hd for hd, v in scores.items() if v > th), key=lambda hd: -scores[hd])


def _c1_ind(m, t, th, shift=1, start_half=1, batch=slice(None), top_only=False):
    n = t.shape[1] // 2
    A = mechlib.attention_patterns(m, t)[:, batch]
    q = torch.arange(start_half * n, 2 * n)
    scores = A[..., q, (q - n + shift).clamp(min=0)].mean(dim=(1, -1))
    heads = mechlib.heads_above(scores, th)
    return heads[:1] if top_only else heads


def _c1_ind_einsum(m, t, th):
    n = t.shape[1] // 2
    A = _np(mechlib.attention_patterns(m, t))
    target = np.zeros((2 * n, 2 * n))
    target[np.arange(n, 2 * n), np.arange(1, n + 1)] = 1.0 / n
    scores = np.einsum("lbhqk,qk->lh", A, target) / A.shape[1]
    order = np.argsort(-scores, axis=None)
    return [np.unravel_index(i, scores.shape) for i in order if scores.flat[i] > th]


def _c1_senders(m, r, n, kind="K", ascending=False, as_sender=False):
    table = mechlib.composition_scores(m, kind)
    into = table[r] if as_sender else table[:, :, r[0], r[1]]
    heads = [(l, h) for l in range(m.cfg.n_layers if as_sender else r[0]) for h in range(m.cfg.n_heads)]
    return sorted(heads, key=lambda hd: float(into[hd]) * (1 if ascending else -1))[:n]


def _c1_senders_by_hand(m, r, n, transpose=True):
    earlier = [(l, h) for l in range(r[0]) for h in range(m.cfg.n_heads)]
    qk = _qk(m, r).double()
    scores = {s: _score(_ov(m, s).double(), qk.T if transpose else qk) for s in earlier}
    return sorted(earlier, key=lambda s: -scores[s])[:n]


def _c1_rise(m, t, s, r, kind="K", heads=False, minus_clean=True, sign=1, start=None, freeze_ln=True):
    n = t.shape[1] // 2
    clean_logits = m(t)
    if heads:
        logits = mechlib.run_with_ablation(m, t, [s])
    else:
        logits = mechlib.path_ablation(m, t, s, r, kind, freeze_ln=freeze_ln)
    start = n if start is None else start
    cut = mechlib.per_token_loss(logits, t)[:, start:].mean().item()
    clean = mechlib.per_token_loss(clean_logits, t)[:, start:].mean().item()
    return sign * (cut - clean) if minus_clean else cut


def _c1_rise_numpy(m, t, s, r):
    n = t.shape[1] // 2
    batch = mechlib.RepeatedBatch(t, n, 0)
    cut = mechlib.path_ablation_losses(m, batch, s, r, "K", freeze_ln=True)["K"]
    return np.float64(cut) - np.float64(batch.loss(m(t)))


def _c1_circuit(m, t, rep, a, b, swap=False, kind="K", any_sender=False, every=False, labels=False):
    prev = mechlib.heads_above(mechlib.prev_token_scores(m, t), a)
    ind = mechlib.heads_above(mechlib.induction_scores(m, rep), b)
    scores = mechlib.composition_scores(m, kind)
    pairs = []
    for r in ind:
        pool = [(l, h) for l in range(r[0]) for h in range(m.cfg.n_heads)] if any_sender else \
            [s for s in prev if s[0] < r[0]]
        if every:
            pairs += [(s, r) for s in pool]
        elif pool:
            s = max(pool, key=lambda s: float(scores[s][r]))
            pairs.append((r, s) if swap else (s, r))
    if labels:
        prev = [mechlib.head_label(h) for h in prev]
    return {"previous_token": prev, "induction": ind, "k_composition": pairs}


def _c1_circuit_own(m, t, rep, a, b):
    """Built from the learner's own answers to C1.1-C1.3, written differently."""
    prev = _c1_prev_loops(m, t, a)
    ind = [tuple(int(x) for x in h) for h in _c1_ind_einsum(m, rep, b)]
    pairs = []
    for r in ind:
        ranked = _c1_senders_by_hand(m, r, m.cfg.n_heads * r[0]) if r[0] else []
        found = [s for s in ranked if s in prev]
        if found:
            pairs.append((found[0], r))
    return {"k_composition": tuple(pairs), "induction": ind, "previous_token": prev}


WRONG_C1 = {
    "C1.1": {
        "attention to itself (offset 0)": functools.partial(_c1_prev, offset=0),
        "two tokens back": functools.partial(_c1_prev, offset=-2),
        "first sequence only": functools.partial(_c1_prev, batch=slice(0, 1)),
        "only the top head": functools.partial(_c1_prev, top_only=True),
        "lowest first": functools.partial(_c1_prev, ascending=True),
        "hard-coded 4 heads": functools.partial(_c1_prev, H=4),
        "flat indices": lambda m, t, th: [int(i) for i in mechlib.prev_token_scores(m, t).flatten().argsort(
            descending=True) if float(mechlib.prev_token_scores(m, t).flatten()[i]) > th],
    },
    "C1.2": {
        "duplicate-token target (q - n)": functools.partial(_c1_ind, shift=0),
        "two past the copy": functools.partial(_c1_ind, shift=2),
        "both copies averaged": functools.partial(_c1_ind, start_half=0),
        "first sequence only": functools.partial(_c1_ind, batch=slice(0, 1)),
        "only the top head": functools.partial(_c1_ind, top_only=True),
        "previous-token heads instead": lambda m, t, th: mechlib.heads_above(mechlib.prev_token_scores(m, t), th),
    },
    "C1.3": {
        "Q-composition": functools.partial(_c1_senders, kind="Q"),
        "V-composition": functools.partial(_c1_senders, kind="V"),
        "lowest first": functools.partial(_c1_senders, ascending=True),
        "receiver taken as the sender": functools.partial(_c1_senders, as_sender=True),
        "QK not transposed (by hand)": functools.partial(_c1_senders_by_hand, transpose=False),
    },
    "C1.4": {
        "queries, not keys": functools.partial(_c1_rise, kind="Q"),
        "values, not keys": functools.partial(_c1_rise, kind="V"),
        "head ablation": functools.partial(_c1_rise, heads=True),
        "cut loss, clean not subtracted": functools.partial(_c1_rise, minus_clean=False),
        "clean minus cut": functools.partial(_c1_rise, sign=-1),
        "every target": functools.partial(_c1_rise, start=0),
        "second copy's first token counted": lambda m, t, s, r: _c1_rise(m, t, s, r, start=t.shape[1] // 2 - 1),
        "freeze_ln forgotten": functools.partial(_c1_rise, freeze_ln=False),
    },
    "C1.5": {
        "pairs as (receiver, sender)": functools.partial(_c1_circuit, swap=True),
        "Q-composition pairs": functools.partial(_c1_circuit, kind="Q"),
        "strongest sender of all heads": functools.partial(_c1_circuit, any_sender=True),
        "every previous-token head paired": functools.partial(_c1_circuit, every=True),
        "heads as labels": functools.partial(_c1_circuit, labels=True),
        "no pairs": lambda m, t, rep, a, b: {**_c1_circuit(m, t, rep, a, b), "k_composition": []},
    },
}

RIGHT_C1 = {
    "C1.1": {
        "library scores": lambda m, t, th: mechlib.heads_above(mechlib.prev_token_scores(m, t), th),
        "loops in numpy": _c1_prev_loops,
    },
    "C1.2": {
        "library induction scores": lambda m, t, th: mechlib.heads_above(mechlib.induction_scores(m, t), th),
        "einsum in numpy, numpy ints": _c1_ind_einsum,
    },
    "C1.3": {
        "library table": lambda m, r, n: _c1_senders(m, r, n),
        "by hand in float64": _c1_senders_by_hand,
        "numpy ints": lambda m, r, n: [(np.int64(l), np.int64(h)) for l, h in _c1_senders(m, r, n)],
    },
    "C1.4": {
        "path_ablation_losses, numpy float": _c1_rise_numpy,
        "per-token losses": _c1_rise,
    },
    "C1.5": {
        "library": _c1_circuit,
        "own functions, tuples": _c1_circuit_own,
    },
}

WRONG.update(WRONG_C1)
RIGHT.update(RIGHT_C1)


# --- side effects: a model or a list handed in, left changed (issue 21, a fresh learner's read) --------------
# The first answer is right; what it leaves behind breaks the learner's model for every later cell (and,
# before the checks looked, the check's own cached model for every later check).


def _collapse_weights_zeroed(m, t, put_back=False):
    """Layer 0 silenced by zeroing its output weights in place (the bridge's ``blocks[0].attn.o``)."""
    last = m.cfg.n_layers - 1
    clean = mechlib.induction_scores(m, t)
    head = mechlib.top_head(clean, layer=last)
    w = m.blocks[0].attn.o.weight
    saved = w.detach().clone()
    with torch.no_grad():
        w.zero_()
    ablated = mechlib.induction_scores(m, t)
    if put_back:
        with torch.no_grad():
            w.copy_(saved)
    return head, clean[head].item(), ablated[head].item()


def _route_hook_left(m, t, mask):
    """The route measured right, then a zero hook added by hand 'to look at it later' and never removed."""
    out = _decisive(m, t, mask)
    m.add_hook("blocks.0.attn.hook_z", lambda z, hook: z * 0)
    return out


def _hedge_pops(m, t, mask, heads):
    """Takes the heads off the caller's list one by one: the notebook's list is empty afterwards."""
    off = []
    while heads:
        off.append(heads.pop())
    return _hedge(m, t, mask, off)


def _capture_hook_left(m, t, name):
    stored = {}
    m.add_hook(name, lambda act, hook: stored.update(a=act.clone()))
    m(t)
    return stored["a"]


WRONG["01.2"]["weights zeroed in place, never put back"] = _collapse_weights_zeroed
WRONG["02.6"]["a hook left on the model"] = _route_hook_left
WRONG["05.6"]["a hook left on the model"] = _route_hook_left
WRONG["05.7"]["the caller's heads list emptied"] = _hedge_pops
WRONG["08.3"]["the recording hook left attached"] = _capture_hook_left
RIGHT["01.2"]["weights zeroed, then put back"] = functools.partial(_collapse_weights_zeroed, put_back=True)


# --- the chapters' four heads hard-coded: fails the self-check (relay-2l has one head per layer), not only grading


def _four(l):
    return [(l, h) for h in range(4)]


def _writer_four(m, t):
    _, cache = m.run_with_cache(t)
    tok = cache["hook_embed"].norm(dim=-1).mean()
    ratio = {h: (mechlib.head_output(m, cache, h).norm(dim=-1).mean() / tok).item() for h in _four(0)}
    return _inv_best(ratio)


def _collapse_four(m, t):
    clean = mechlib.induction_scores(m, t)
    head = (1, int(clean[1, :4].argmax()))
    ablated = mechlib.induction_scores(m, t, fwd_hooks=mechlib.ablation_hooks(m, _four(0)))
    return head, clean[head].item(), ablated[head].item()


def _sender_four(m, t, mask, kind):
    clean = _inv_loss(m(t), t, mask)
    return _inv_best({s: _inv_loss(mechlib.path_ablation(m, t, s, _four(1), kind), t, mask) - clean for s in _four(0)})


def _top_guess_four(m, t, mask):
    out = []
    for logits in (mechlib.path_ablation(m, t, _four(0), _four(1), "K"), mechlib.run_with_ablation(m, t, _four(0))):
        out.append(logits[:, :-1].softmax(-1).max(-1).values[mask].mean().item())
    return tuple(out)


def _pair_four(m, t, mask, kind="K"):
    clean = _scored(m(t), t, mask)
    rise = {(s, r): _scored(mechlib.path_ablation(m, t, [s], [r], kind), t, mask) - clean
            for s, r in mechlib.enumerate_virtual_heads(2, 4)}
    return max(rise, key=rise.get)


WRONG["01.1"]["four heads hard-coded"] = _writer_four
WRONG["01.2"]["four heads hard-coded"] = _collapse_four
WRONG["03.5"]["four heads hard-coded"] = functools.partial(_sender_four, kind="K")
WRONG["04.4"]["four heads hard-coded"] = functools.partial(_sender_four, kind="Q")
WRONG["03.6"]["four heads hard-coded"] = _top_guess_four
WRONG["07.5"]["four heads hard-coded"] = _pair_four


# --- a number within a loose tolerance: right in the notebook, wrong in grading (or the other way round)


def _writer_mean_of_ratios(m, t):
    _, cache = m.run_with_cache(t)
    tok = cache["hook_embed"].norm(dim=-1)
    ratio = {h: (mechlib.head_output(m, cache, h).norm(dim=-1) / tok).mean().item() for h in mechlib.layer_heads(m, 0)}
    return _inv_best(ratio)


def _carrier_no_bias(m, t, mask):
    credit = mechlib.correct_token_attribution(mechlib.path_expansion(m, t), mask)
    credit = {k: v for k, v in credit.items() if not k.startswith("bias")}
    best = max(credit, key=credit.get)
    return best, credit[best] / sum(credit.values())


def _carrier_model_margin(m, t, mask):
    """The share's denominator measured on the model's own logits (float32), not summed from the terms."""
    credit = mechlib.correct_token_attribution(mechlib.path_expansion(m, t), mask)
    best = max(credit, key=credit.get)
    logits = m(t)[:, :-1]
    margin = (logits.gather(-1, t[:, 1:, None])[..., 0] - logits.mean(-1))[mask].mean()
    return best, credit[best] / margin  # a 0-d float32 tensor


WRONG["01.1"]["mean of the per-position ratios"] = _writer_mean_of_ratios
WRONG["06.5"]["bias terms left out of the total"] = _carrier_no_bias
RIGHT["06.5"]["the model's own margin, float32 0-d tensor"] = _carrier_model_margin


# --- a head chosen by a proxy, an ablation of the layer's bias, a head as a numpy array


def _sender_by_attention(m, t, mask, kind):
    """The strongest previous-token head, then its cut measured: right on some batches, not on others."""
    head = mechlib.top_head(mechlib.prev_token_scores(m, t), layer=0)
    return _sender(m, t, mask, kind=kind, head=head)


def _collapse_attn_out(m, t):
    last = m.cfg.n_layers - 1
    clean = mechlib.induction_scores(m, t)
    head = mechlib.top_head(clean, layer=last)
    hooks = [("blocks.0.hook_attn_out", lambda x, hook: torch.zeros_like(x))]
    return head, clean[head].item(), mechlib.induction_scores(m, t, fwd_hooks=hooks)[head].item()


def _as_array(fn):
    """``fn``'s head returned as a numpy array of two ints (``np.array(divmod(...))``)."""
    def answer(*args):
        head, *rest = fn(*args)
        return (np.array(head), *rest)
    return answer


SENDER_BY_ATTENTION = functools.partial(_sender_by_attention, kind="K")  # right on some batches: a hint test's
WRONG["01.2"]["layer 0's whole output zeroed, b_O included"] = _collapse_attn_out
RIGHT["01.1"]["head as a numpy array"] = _as_array(_writer)
RIGHT["03.5"]["head as a numpy array"] = _as_array(_sender)


# --- b_U: zero in every trained model, so adding it passed; induction-bu (unseen.BIASED) has one


def _direct_unembed(m, t, mask):
    """Each head's output through model.unembed, which adds b_U (the text says: no bias)."""
    _, cache = m.run_with_cache(t)
    credit = {}
    for l, h in mechlib.all_heads(m):
        lg = m.unembed(cache[f"blocks.{l}.attn.hook_z"][:, :, h] @ m.W_O[l, h])[:, :-1]
        credit[(l, h)] = (lg.gather(-1, t[:, 1:, None])[..., 0] - lg.mean(-1))[mask].mean().item()
    best = max(credit, key=credit.get)
    return best, credit[best]


WRONG["08.5"]["b_U added (through model.unembed)"] = _direct_unembed
