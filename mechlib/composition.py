"""Q-, K- and V-composition scores (Elhage et al. 2021), one pair or all pairs at once.

The composition score of a sender whose OV circuit is ``W_OV^{s}`` into a receiver
matrix ``W^{r}`` (its ``W_QK``, ``W_QK^T`` or ``W_OV``) is

    C = ||W_OV^{s} W^{r}||_F / (||W_OV^{s}||_F ||W^{r}||_F),

following TransformerLens: left is the sender's OV circuit; right is the
receiver's ``W_Q W_K^T`` for Q-, ``W_K W_Q^T`` for K- and ``W_V W_O`` for
V-composition. C is 1 when the sender writes only where the receiver reads, and
near the random baseline :func:`composition_baseline` when they are unrelated.

Taught in Chapter 2, V-Composition (the score and its random baseline), Chapter 3,
K-Composition, and Chapter 4, Q-Composition; counted over a model in Chapter 7.
"""
from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from transformer_lens import FactoredMatrix

from mechlib.heads import Head
from mechlib.validate import check_kind, check_positive_int, check_sender_receiver, float64_device


def _as_dense(M: Any, name: str) -> torch.Tensor:
    if isinstance(M, FactoredMatrix):
        return M
    if isinstance(M, torch.Tensor):
        if M.ndim < 2:
            raise ValueError(f"{name} must be a matrix (2-D or batched); got shape {tuple(M.shape)}")
        return M
    raise TypeError(f"{name} must be a torch.Tensor or FactoredMatrix; got {type(M).__name__}")


def _fro(M: Any) -> torch.Tensor:
    if isinstance(M, FactoredMatrix):
        return M.norm()
    return M.norm(dim=(-2, -1))


def composition_score(A: Any, B: Any) -> float | torch.Tensor:
    """``||A B||_F / (||A||_F ||B||_F)`` for matrices or FactoredMatrix (batched: a tensor of scores).

    ``A`` is the sender's OV circuit, ``B`` the receiver's QK, QK^T or OV circuit.
    By submultiplicativity of the Frobenius norm the score lies in ``[0, 1]``.
    """
    A = _as_dense(A, "A")
    B = _as_dense(B, "B")
    if A.shape[-1] != B.shape[-2]:
        raise ValueError(
            f"A's columns must match B's rows to form A @ B; got A {tuple(A.shape)} and B {tuple(B.shape)}"
        )
    score = _fro(A @ B) / (_fro(A) * _fro(B))
    return score.item() if score.ndim == 0 else score


def _right_factors(model: Any, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors ``(X, Y)`` with ``W^{r} = X Y`` for every receiver, shapes ``[L, H, d_model, d_head]``
    and ``[L, H, d_head, d_model]``."""
    if kind == "Q":
        return model.W_Q, model.W_K.transpose(-2, -1)
    if kind == "K":
        return model.W_K, model.W_Q.transpose(-2, -1)
    return model.W_V, model.W_O


def _gram_root(M: Float[torch.Tensor, "... n k"]) -> Float[torch.Tensor, "... k k"]:
    """A ``k x k`` matrix ``R`` with ``R^T R = M^T M``: ``diag(sqrt(e)) V^T`` from ``M^T M = V diag(e) V^T``.

    The Gram matrix and its eigendecomposition are taken in float64 (cheap: ``k`` is
    d_head), which keeps full float32 accuracy and tolerates rank-deficient ``M``. (On MPS,
    which has no float64, this small step runs on the CPU.)
    """
    M64 = M.to(float64_device(M.device)).double()
    e, V = torch.linalg.eigh(M64.transpose(-2, -1) @ M64)
    return (e.clamp_min(0).sqrt()[..., :, None] * V.transpose(-2, -1)).to(M.device, M.dtype)


def composition_scores(model: Any, kind: str) -> Float[torch.Tensor, "sender_layer sender_head receiver_layer receiver_head"]:
    """Composition scores of every (sender, receiver) head pair, shape ``[L, H, L, H]``.

    ``scores[l1, h1, l2, h2] = C(W_OV^{l1.h1}, W^{l2.h2})`` (see module docstring) when
    ``l1 < l2``, and 0 otherwise. Same numbers as TransformerLens's
    ``all_composition_scores``, computed with far less work:

    write the sender as ``A_s B_s`` (``A_s = W_V``: d_model x d_head, ``B_s = W_O``) and the
    receiver as ``X_r Y_r``. Only the Gram matrices of the outer factors matter:
    with ``d_head x d_head`` roots ``R_s^T R_s = A_s^T A_s`` and ``R'_r^T R'_r = Y_r Y_r^T``,

        ||A_s B_s X_r Y_r||_F^2 = tr(B_s X_r Y_r Y_r^T X_r^T B_s^T A_s^T A_s)
                                = ||R_s (B_s X_r) R'_r^T||_F^2.

    Stacking ``R_s B_s`` over senders and ``X_r R'_r^T`` over receivers turns every pair
    into one block of a single matrix product; each block is ``d_head x d_head``.
    The denominators are ``||R_s B_s||_F`` and ``||X_r R'_r^T||_F``. Computed where the
    model's weights are; the table is returned on the CPU.
    """
    kind = check_kind(kind)
    with torch.no_grad():
        X, Y = (t.detach() for t in _right_factors(model, kind))
        return _scores_from_factors(model.W_V.detach(), model.W_O.detach(), X, Y).cpu()


def _scores_from_factors(A: torch.Tensor, B: torch.Tensor, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """The table of :func:`composition_scores` from sender factors ``A B`` and receiver factors ``X Y``."""
    L, H = A.shape[0], A.shape[1]
    d_model, d_head = A.shape[-2], A.shape[-1]
    R_s = _gram_root(A)  # [L, H, dh, dh]
    R_r = _gram_root(Y.transpose(-2, -1))  # [L, H, dh, dh]
    left = R_s @ B  # [L, H, dh, d_model]
    right = X @ R_r.transpose(-2, -1)  # [L, H, d_model, dh]
    left_norm = left.norm(dim=(-2, -1))  # [L, H]
    right_norm = right.norm(dim=(-2, -1))
    scores = torch.zeros(L, H, L, H, dtype=A.dtype, device=A.device)
    for l1 in range(L - 1):
        # senders of layer l1 against every receiver in a later layer: one matmul
        lhs = left[l1].reshape(H * d_head, d_model)
        rhs = right[l1 + 1 :].permute(2, 0, 1, 3).reshape(d_model, -1)
        prod = (lhs @ rhs).reshape(H, d_head, L - l1 - 1, H, d_head)
        num = prod.square().sum(dim=(1, 4)).sqrt()  # [H, L - l1 - 1, H]
        scores[l1, :, l1 + 1 :] = num / (left_norm[l1][:, None, None] * right_norm[l1 + 1 :][None])
    return scores


def shuffled_sender_permutations(
    n_layers: int, n_heads: int, d_model: int, seed: int = 0
) -> torch.Tensor:
    """The permutations :func:`composition_null` applies: ``[layer, head, d_model]``, one per head,
    drawn on the CPU from a generator seeded with ``seed`` (the same on every machine)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.stack([torch.randperm(d_model, generator=g, device="cpu")
                        for _ in range(n_layers * n_heads)]).reshape(n_layers, n_heads, d_model)


def composition_null(
    model: Any, kind: str, seed: int = 0
) -> Float[torch.Tensor, "sender_layer sender_head receiver_layer receiver_head"]:
    """Composition scores of the model's own weights with every sender's output coordinates shuffled.

    ``W_O'^{s}[:, i] = W_O^{s}[:, pi_s(i)]`` with one random permutation ``pi_s`` of the
    ``d_model`` residual coordinates per sender head (:func:`shuffled_sender_permutations`);
    the table is :func:`composition_scores` of the model with ``W_O'`` in place of ``W_O``
    (as senders; the receivers keep their weights). A permutation keeps each sender's
    singular values and the size of every entry, and destroys only where in the residual
    stream it writes relative to where the receivers read. Scores of real weights that
    sit above this null therefore come from that alignment, not from the weights'
    spectra. Returned on the CPU. Appendix, Composition in a Real Transformer.
    """
    kind = check_kind(kind)
    with torch.no_grad():
        W_O = model.W_O.detach()
        L, H, d_head, d_model = W_O.shape
        perm = shuffled_sender_permutations(L, H, d_model, seed).to(W_O.device)
        shuffled = torch.gather(W_O, -1, perm[:, :, None, :].expand(L, H, d_head, d_model))
        X, Y = (t.detach() for t in _right_factors(model, kind))
        return _scores_from_factors(model.W_V.detach(), shuffled, X, Y).cpu()


def composition_baseline(
    d_model: int, d_head: int, n_samples: int = 1000, seed: int = 0
) -> Float[torch.Tensor, "n_samples"]:
    """Composition scores of random pairs of rank-``d_head`` matrices of size ``d_model``.

    Each sample is ``C(U_1 V_1, U_2 V_2)`` with every factor entry i.i.d. standard
    normal (``U``: d_model x d_head, ``V``: d_head x d_model) -- what the score of two
    heads with unrelated weights of the same shapes looks like. Its mean is the
    baseline that scores of a trained model are compared to. Drawn on the CPU, so the
    samples are the same on every machine.
    """
    check_positive_int(d_model, "d_model")
    check_positive_int(d_head, "d_head")
    check_positive_int(n_samples, "n_samples")
    if d_head > d_model:
        raise ValueError(f"d_head ({d_head}) must be <= d_model ({d_model})")
    g = torch.Generator(device="cpu").manual_seed(seed)
    out = torch.empty(n_samples, device="cpu")
    chunk = max(1, min(n_samples, 2**22 // (d_model * d_head)))
    for start in range(0, n_samples, chunk):
        n = min(chunk, n_samples - start)
        U1, U2 = (torch.randn(n, d_model, d_head, generator=g, device="cpu") for _ in range(2))
        V1, V2 = (torch.randn(n, d_head, d_model, generator=g, device="cpu") for _ in range(2))
        out[start : start + n] = composition_score(FactoredMatrix(U1, V1), FactoredMatrix(U2, V2))
    return out


def pair_composition_score(model: Any, sender: Head, receiver: Head, kind: str) -> float:
    """Composition score of one head pair: ``C(W_OV^{sender}, W^{receiver})`` for ``kind`` Q, K or V."""
    from mechlib.circuits import ov_circuit, receiver_circuit

    s, r = check_sender_receiver(model, sender, receiver)
    return composition_score(ov_circuit(model, s), receiver_circuit(model, r, kind))
