"""Update logic of the composition and expansion explorers, independent of any display.

Each returns plain numbers and tensors, so it is tested without a browser; the
ipywidgets views in :mod:`mechlib.views.widgets` and the page widgets show them.
The head toggle's logic is :class:`mechlib.HeadToggleState` (:mod:`mechlib.toggle`).

Used by the "Play" sections of the exercise notebooks of Chapters 2-4 (composition
explorer) and Chapter 6 (expansion explorer).
"""
from __future__ import annotations

from typing import Any, Iterable

import torch

from mechlib._threads import single_thread
from mechlib.circuits import ov_circuit, receiver_circuit
from mechlib.composition import composition_baseline, pair_composition_score
from mechlib.expansion import TERM_KINDS, check_expandable, path_expansion
from mechlib.heads import Head, all_heads
from mechlib.scores import repeat_loss
from mechlib.toggle import DEFAULT_HALF_LEN, DEFAULT_PREFIX_LEN, toggle_tokens
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


class ExpansionExplorerState:
    """Update logic of the expansion explorer.

    Holds :func:`mechlib.path_expansion` of ``model`` on ``tokens``; ``update(kept)`` returns
    the repeat loss of the sum of the kept terms (:func:`mechlib.repeat_loss` of
    ``PathExpansion.total(kept)``), and for reference the loss of all terms (the model's own
    loss) and of no terms (uniform logits: ``ln d_vocab``).
    """

    def __init__(self, model: Any, tokens: torch.Tensor | None = None, half_len: int = DEFAULT_HALF_LEN,
                 prefix_len: int = DEFAULT_PREFIX_LEN):
        check_expandable(model, "the expansion explorer")
        self.model = model
        self.tokens = toggle_tokens(model, tokens, half_len, prefix_len)
        self.half_len, self.prefix_len = half_len, prefix_len
        with single_thread():
            self.expansion = path_expansion(model, self.tokens)
        self.names = list(self.expansion.terms)
        self.groups = {k: [n for n in self.names if self.expansion.kinds[n] == k] for k in TERM_KINDS}
        self._stack = torch.stack([self.expansion.terms[n] for n in self.names])  # [term, batch, pos, vocab]
        self.full_loss = self.update(self.names)["loss"]

    def update(self, kept: Iterable[str]) -> dict[str, Any]:
        kept = list(kept)
        unknown = [n for n in kept if n not in self.expansion.terms]
        if unknown:
            raise ValueError(f"unknown term(s) {unknown}; terms are {self.names}")
        weights = torch.tensor([float(n in kept) for n in self.names], dtype=self._stack.dtype,
                               device=self._stack.device)
        with single_thread():
            logits = torch.einsum("t,tbpv->bpv", weights, self._stack)
            loss = repeat_loss(logits, self.tokens, self.half_len, self.prefix_len)
        return {"kept": [n for n in self.names if n in kept], "loss": loss}
