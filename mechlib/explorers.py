"""Update logic of the composition explorer, independent of any display.

It returns plain numbers and tensors, so it is tested without a browser; the live
composition explorer (:func:`mechlib.views.live.composition_explorer`) shows them.
The head toggle's logic is :class:`mechlib.HeadToggleState` (:mod:`mechlib.toggle`).

Shown in Chapters 2-4 and the "Play" section of the exercise notebook of Chapter 3.
"""
from __future__ import annotations

from typing import Any

import torch

from mechlib._threads import single_thread
from mechlib.circuits import ov_circuit, receiver_circuit
from mechlib.composition import composition_baseline, pair_composition_score
from mechlib.heads import Head, all_heads
from mechlib.validate import check_head, check_kind, check_sender_receiver


class CompositionExplorerState:
    """Update logic of the composition explorer.

    ``update(sender, receiver, kind)`` returns the composition score (as
    :func:`mechlib.pair_composition_score`), the baseline's mean and standard deviation,
    ``z = (score - mean) / std``, and the singular values (float64, all ``d_model`` of them)
    of the composed circuit: ``W_OV^{s} W_OV^{r}`` for V, ``W_OV^{s} W_QK^{r}`` for Q and
    ``W_OV^{s} W_QK^{r T}`` for K -- the matrices whose norm the score measures. Only the
    first ``d_head`` can be non-zero.
    """

    def __init__(self, model: Any, n_baseline: int = 1000, seed: int = 0):
        self.model = model
        cfg = model.cfg
        self.d_head = cfg.d_head
        with single_thread():
            self.baseline = composition_baseline(cfg.d_model, cfg.d_head, n_baseline, seed)
        self.baseline_mean = self.baseline.mean().item()
        self.baseline_std = self.baseline.std().item()
        self.senders = [hd for hd in all_heads(model) if hd[0] < cfg.n_layers - 1]
        if not self.senders:
            raise ValueError("the composition explorer needs a model with at least 2 layers")

    def receivers_for(self, sender: Head) -> list[Head]:
        """The heads that can read ``sender``'s output: those in later layers."""
        l, _ = check_head(self.model, sender, "sender")
        return [hd for hd in all_heads(self.model) if hd[0] > l]

    def composed(self, sender: Head, receiver: Head, kind: str):
        """The composed circuit (a FactoredMatrix) whose Frobenius norm is the score's numerator."""
        s, r = check_sender_receiver(self.model, sender, receiver)
        return ov_circuit(self.model, s) @ receiver_circuit(self.model, r, kind)

    def update(self, sender: Head, receiver: Head, kind: str) -> dict[str, Any]:
        s, r = check_sender_receiver(self.model, sender, receiver)
        kind = check_kind(kind)
        with torch.no_grad(), single_thread():
            score = pair_composition_score(self.model, s, r, kind)
            # a summary for display: the d_model x d_model product goes to the CPU for the SVD
            dense = self.composed(s, r, kind).AB.detach().cpu().double()
            sv = torch.linalg.svdvals(dense)
        return {
            "sender": s, "receiver": r, "kind": kind, "score": score,
            "baseline_mean": self.baseline_mean, "baseline_std": self.baseline_std,
            "z": (score - self.baseline_mean) / self.baseline_std,
            "singular_values": sv,
            "rank": int((sv > sv[0] * 1e-6).sum()) if sv[0] > 0 else 0,
        }
