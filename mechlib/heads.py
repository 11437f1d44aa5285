"""Heads and their names: ``(layer, head)`` in code, ``"l.h"`` in prose and plots.

A head is a ``(layer, head)`` tuple of ints everywhere in :mod:`mechlib`; the book
writes it ``l.h`` (``(0, 3)`` is ``"0.3"``), as the literature does. This module is the
one home of that convention: the label, its inverse, the list of a model's heads, and
picking heads (and head pairs) out of score tables (so that chapters derive the heads
they discuss from scores instead of typing them).

Introduced in Chapter 1, Beyond One Layer.
"""
from __future__ import annotations

import re
from typing import Any

import torch
from jaxtyping import Float

Head = tuple[int, int]

_LABEL = re.compile(r"^\s*(\d+)\.(\d+)\s*$")


def head_label(head: Head) -> str:
    """``(0, 3) -> "0.3"``: how the book names a head."""
    layer, h = head
    return f"{int(layer)}.{int(h)}"


def chain_label(chain: Any, sep: str = " -> ") -> str:
    """``((0, 3), (1, 1)) -> "0.3 -> 1.1"``: a chain of heads (a virtual head), sender first.

    ``sep="->"`` gives the names of the virtual-head terms of :func:`mechlib.path_expansion`
    (``"0.3->1.1"``). Introduced in Chapter 2, V-Composition.
    """
    return sep.join(head_label(head) for head in chain)


def parse_head(label: Any, name: str = "head") -> Head:
    """``"0.3" -> (0, 3)``: the inverse of :func:`head_label`.

    Raises ``ValueError`` naming ``name`` unless ``label`` is a string ``"<layer>.<head>"``.
    """
    m = _LABEL.match(label) if isinstance(label, str) else None
    if m is None:
        raise ValueError(f"{name} must be a head name like '0.3' (layer 0, head 3); got {label!r}")
    return (int(m.group(1)), int(m.group(2)))


def all_heads(model: Any) -> list[Head]:
    """Every head of ``model`` in layer-major order: ``[(0, 0), (0, 1), ..., (L-1, H-1)]``."""
    return [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]


def layer_heads(model: Any, layer: int) -> list[Head]:
    """The heads of one layer, ``[(layer, 0), ..., (layer, H-1)]``; negative layers count from the end."""
    n_layers = model.cfg.n_layers
    if isinstance(layer, bool) or not isinstance(layer, int) or not -n_layers <= layer < n_layers:
        raise ValueError(f"layer must be an int in [{-n_layers}, {n_layers}); got {layer!r}")
    layer %= n_layers
    return [(layer, h) for h in range(model.cfg.n_heads)]


def _check_table(scores: Any, dims: tuple[str, ...] = ("layer", "head")) -> torch.Tensor:
    """``scores`` detached, or a ``ValueError`` naming the ``[dims]`` it must have."""
    if not isinstance(scores, torch.Tensor) or scores.ndim != len(dims):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"scores must be a [{', '.join(dims)}] tensor; got {shape}")
    return scores.detach()


def ranked_heads(
    scores: Float[torch.Tensor, "layer head"], layer: int | None = None
) -> list[Head]:
    """Heads sorted by ``scores[layer, head]``, highest first (ties: layer-major order).

    ``layer`` restricts the ranking to one layer.
    """
    s = _check_table(scores)
    layers = range(s.shape[0]) if layer is None else [layer % s.shape[0]]
    heads = [(l, h) for l in layers for h in range(s.shape[1])]
    return sorted(heads, key=lambda hd: -float(s[hd]))


def top_head(scores: Float[torch.Tensor, "layer head"], layer: int | None = None) -> Head:
    """The head with the largest score (in ``layer``, if given): ``argmax scores[l, h]``."""
    return ranked_heads(scores, layer)[0]


def heads_above(
    scores: Float[torch.Tensor, "layer head"], threshold: float, layer: int | None = None
) -> list[Head]:
    """Heads with ``scores[l, h] > threshold`` (in ``layer``, if given), highest score first."""
    s = _check_table(scores)
    return [hd for hd in ranked_heads(s, layer) if float(s[hd]) > threshold]


def top_pair(
    scores: Float[torch.Tensor, "sender_layer sender_head receiver_layer receiver_head"],
) -> tuple[Head, Head]:
    """The ``(sender, receiver)`` pair with the largest ``scores[l1, h1, l2, h2]``.

    ``scores`` is a ``[layer, head, layer, head]`` table of head pairs, such as
    :func:`mechlib.composition_scores`. Ties go to the first pair in layer-major order
    (sender first), as ``argmax`` does. Introduced in Chapter 2, V-Composition.
    """
    scores = _check_table(scores, ("layer", "head", "layer", "head"))
    _, n_heads, _, n_receiver_heads = scores.shape
    flat = int(scores.flatten().argmax())
    sender, receiver = divmod(flat, scores.shape[2] * n_receiver_heads)
    return divmod(sender, n_heads), divmod(receiver, n_receiver_heads)
