"""Diagrams drawn from the model: which head reads what, and the induction circuit on real tokens.

Two schematic figures whose every label comes from the model, so that a retrained model
relabels them with the rest of the book:

* :func:`draw_residual_stream` -- the residual stream from the embedding to the
  unembedding; the layer-0 heads read it and write into it, and a later head reads it
  through three inputs, query, key and value. A sender's output (orange) enters the
  receiver's query (Q-composition, blue), key (K-composition, red) or value
  (V-composition, green): the colours of :data:`mechlib.views.plots.PATH_COLOURS`.
  Chapter 1, Beyond One Layer.
* :func:`draw_induction_circuit` -- ``[A][B] ... [A] -> [B]`` on one real sequence: the
  previous-token head moves "A came before" into B's position, the induction head's
  query at the second A attends to B through its key (K-composition), and the model
  predicts B. The attention weights and the prediction are computed on the sequence.
  Chapter 3, K-Composition.

Heads are named ``"l.h"`` and by their role from :func:`mechlib.head_roles` (on the book's
evaluation batch unless ``roles`` is given). Each text that tests or pages look up carries a
``gid``: ``"head-l.h"`` for a head's box, ``"token-p"`` for the token at position ``p``,
``"prediction"``, ``"prev-head"`` and ``"induction-head"``.
"""
from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

import mechlib
from mechlib.heads import Head, head_label, layer_heads
from mechlib.validate import check_head, check_sender_receiver, check_tokens
from mechlib.views.plots import PATH_COLOURS

__all__ = ["SENDER_COLOUR", "draw_induction_circuit", "draw_residual_stream", "induction_positions"]

#: the colour of a sender's output (and of the previous-token head's move) in both diagrams
SENDER_COLOUR = "tab:orange"
_STREAM = "0.78"
_FONT = 9
_SMALL = 8
_EDGE = 0.07  # half the stream's width, in inches


def _roles(model: Any, roles: dict | None) -> dict:
    if roles is None:
        return mechlib.head_roles(model)
    if not isinstance(roles, dict) or not all(hasattr(r, "role") for r in roles.values()):
        raise TypeError("roles must be the dict that mechlib.head_roles(model, ...) returns")
    return roles


def _role_of(roles: dict, head: Head) -> str:
    if head not in roles:
        raise ValueError(f"roles has no entry for head {head_label(head)}; pass mechlib.head_roles(model)")
    return roles[head].role


def _canvas(ax, width: float, height: float):
    """An axes whose data unit is one inch of the figure (when we make the figure)."""
    if ax is None:
        fig = plt.figure(figsize=(width, height))
        ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def _arrow(ax, start, end, colour, lw=1.6, rad=0.0, style="-|>", z=3, ls="-"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=11, color=colour, lw=lw,
                                 connectionstyle=f"arc3,rad={rad}", zorder=z, linestyle=ls,
                                 shrinkA=0, shrinkB=0))


def _box(ax, x, y, w, h, edge="0.3", face="white", lw=1.0, z=2, ls="-"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.06",
                                ec=edge, fc=face, lw=lw, zorder=z, linestyle=ls))


def draw_residual_stream(model: Any, sender: Head, receiver: Head, roles: dict | None = None, ax=None):
    """The residual stream with a sender's output entering a receiver's query, key and value.

    The stream runs from the embedding (bottom) to the unembedding (top). Every head of the
    sender's layer is a box that reads the stream and writes its output ``z W_O`` back into it
    (``x_{l+1} = x_l + sum_h z^{l.h} W_O^{l.h}``), labelled ``"l.h · role"`` with its role from
    ``roles`` (:func:`mechlib.head_roles`; computed on the book's evaluation batch if ``None``).
    The sender's box and output are orange; the receiver reads the stream through three
    inputs, ``q = x W_Q`` (blue, Q-composition), ``k = x W_K`` (red, K-composition) and
    ``v = x W_V`` (green, V-composition). The other heads of the receiver's layer are named
    under it. Draws on ``ax`` (data unit: one inch) or on a new 4.3 x 6.2 inch figure, and
    returns the axes. Raises ``ValueError`` naming ``sender`` or ``receiver`` when a head does
    not exist or the sender is not in an earlier layer.

    Chapter 1, Beyond One Layer.
    """
    sender, receiver = check_sender_receiver(model, sender, receiver)
    roles = _roles(model, roles)
    W, H = 4.3, 6.2
    ax = _canvas(ax, W, H)
    sx = 0.5  # the stream
    bx, bw = 1.75, 1.95  # head boxes
    ax.plot([sx, sx], [0.5, H - 0.75], color=_STREAM, lw=9, zorder=1, solid_capstyle="butt")
    ax.add_patch(FancyArrowPatch((sx, H - 0.8), (sx, H - 0.5), arrowstyle="simple,head_width=1.6,head_length=1.0",
                                 mutation_scale=14, color=_STREAM, lw=0, zorder=1, shrinkA=0, shrinkB=0))
    ax.text(0.12, 0.3, "embedding (token + position)", ha="left", va="center", fontsize=_FONT)
    ax.text(0.12, H - 0.3, "unembedding → logits", ha="left", va="center", fontsize=_FONT)
    ax.text(sx - 0.22, 1.05, "residual stream", rotation=90, ha="center", va="bottom", fontsize=_FONT,
            color="0.35")

    # the sender's layer: one row per head, reading below and writing above
    heads = layer_heads(model, sender[0])
    row, y0 = 0.62, 1.0
    ax.text(bx, y0 + row * len(heads) + 0.02, f"layer {sender[0]}", ha="left", va="bottom", fontsize=_FONT,
            fontweight="bold")
    y_sender = None
    for i, head in enumerate(heads):
        yc = y0 + row * i + row / 2
        is_sender = head == sender
        colour = SENDER_COLOUR if is_sender else "0.35"
        _box(ax, bx, yc - 0.2, bw, 0.4, edge=colour, lw=2.0 if is_sender else 1.0)
        ax.text(bx + 0.1, yc, f"{head_label(head)} · {_role_of(roles, head)}", ha="left", va="center",
                fontsize=_FONT, fontweight="bold" if is_sender else "normal", gid=f"head-{head_label(head)}")
        _arrow(ax, (sx + _EDGE, yc - 0.09), (bx, yc - 0.09), "0.45", lw=1.0)  # reads
        _arrow(ax, (bx, yc + 0.09), (sx + _EDGE, yc + 0.09), colour, lw=2.2 if is_sender else 1.0)  # writes
        if is_sender:
            y_sender = yc + 0.09
            ax.text(bx + bw + 0.08, yc, "sender", ha="left", va="center", fontsize=_SMALL,
                    color=SENDER_COLOUR, fontweight="bold")
    first = y0 + row / 2
    ax.text((sx + bx) / 2 + 0.05, first - 0.14, "reads", ha="center", va="top", fontsize=_SMALL, color="0.35")
    ax.text((sx + bx) / 2 + 0.05, first + 0.14, "writes", ha="center", va="bottom", fontsize=_SMALL,
            color="0.35")

    # the receiver: three inputs, one output
    ry0, rh, rw = y0 + row * len(heads) + 0.55, 1.75, 2.35
    ax.text(bx, ry0 + rh + 0.06, f"layer {receiver[0]}", ha="left", va="bottom", fontsize=_FONT,
            fontweight="bold")
    _box(ax, bx, ry0, rw, rh, edge="0.2", lw=1.4)
    ax.text(bx + 0.1, ry0 + rh - 0.2, f"{head_label(receiver)} · {_role_of(roles, receiver)}", ha="left",
            va="center", fontsize=_FONT, fontweight="bold", gid=f"head-{head_label(receiver)}")
    ax.text(bx + rw - 0.08, ry0 + rh - 0.2, "receiver", ha="right", va="center", fontsize=_SMALL,
            color="0.3", style="italic")
    ports = {"V": ry0 + 0.3, "K": ry0 + 0.72, "Q": ry0 + 1.14}
    words = {"Q": "query", "K": "key", "V": "value"}
    for kind, y in ports.items():
        c = PATH_COLOURS[kind]
        _box(ax, bx + 0.08, y - 0.15, 0.95, 0.3, edge=c, face="white", lw=1.4, z=3)
        ax.text(bx + 0.155, y, f"{kind}  {words[kind]}", ha="left", va="center", fontsize=_FONT, color=c,
                fontweight="bold", zorder=4)
        _arrow(ax, (sx + _EDGE, y), (bx + 0.08, y), c, lw=2.0)
        ax.text((sx + bx) / 2 + 0.05, y + 0.05, f"{kind}-comp.", ha="center", va="bottom", fontsize=_SMALL,
                color=c)
    ax.text(bx + 1.12, ports["K"] + 0.21, "Q·K: where to look", ha="left", va="center", fontsize=_SMALL,
            color="0.25")
    ax.text(bx + 1.12, ports["V"] + 0.05, "V: what to move", ha="left", va="center", fontsize=_SMALL,
            color="0.25")
    y_out = ry0 + rh - 0.2
    _arrow(ax, (bx, y_out + 0.02), (sx + _EDGE, y_out + 0.02), "0.35", lw=1.0)
    ax.text((sx + bx) / 2 + 0.05, y_out + 0.06, "writes", ha="center", va="bottom", fontsize=_SMALL,
            color="0.35")
    # the sender's output, carried up the stream to the receiver's inputs
    ax.plot([sx, sx], [y_sender, ports["Q"]], color=SENDER_COLOUR, lw=4.0, zorder=2, solid_capstyle="butt")
    _arrow(ax, (sx + _EDGE, y_sender), (sx, y_sender), SENDER_COLOUR, lw=2.2, style="-")
    others = [h for h in layer_heads(model, receiver[0]) if h != receiver]
    if others:
        by_role: dict[str, list[str]] = {}
        for h in others:
            by_role.setdefault(_role_of(roles, h), []).append(head_label(h))
        listed = "; ".join(f"{', '.join(v)} ({k})" for k, v in by_role.items())
        ax.text(bx, ry0 - 0.08, f"also in layer {receiver[0]}: {listed}", ha="left", va="top",
                fontsize=_SMALL, color="0.3", wrap=True)
    return ax


def induction_positions(tokens: Sequence[int] | torch.Tensor, query: int | None = None) -> tuple[int, int]:
    """``(a, query)``: the earlier position ``a`` of the query's token ``A``; ``B`` is at ``a + 1``.

    ``tokens`` is one sequence (1-D). With ``query=None`` the query is the first position whose
    token occurred exactly once before, at least two positions back (so that ``B`` comes before
    the query), preferring one whose previous token also matches the token before ``A`` (a
    position inside a repeated stretch, not a chance repeat of one token). Raises ``ValueError`` naming ``query`` when its token does not occur earlier
    exactly once with ``a + 1 < query``, or naming ``tokens`` when no position qualifies.
    Chapter 3, K-Composition.
    """
    t = [int(x) for x in (tokens.tolist() if isinstance(tokens, torch.Tensor) else tokens)]

    def earlier(q: int) -> list[int]:
        return [p for p in range(q) if t[p] == t[q]]

    if query is None:
        fits = [(earlier(q)[0], q) for q in range(len(t)) if len(earlier(q)) == 1 and earlier(q)[0] + 1 < q]
        # prefer a query inside a repeated stretch: the token before it matches the token before A
        in_repeat = [(a, q) for a, q in fits if a > 0 and t[a - 1] == t[q - 1]]
        if in_repeat or fits:
            return (in_repeat or fits)[0]
        raise ValueError("tokens has no position whose token occurred exactly once before; pass a repeated sequence")
    if isinstance(query, bool) or not isinstance(query, int) or not 0 <= query < len(t):
        raise ValueError(f"query must be a position in [0, {len(t)}); got {query!r}")
    e = earlier(query)
    if len(e) != 1 or not e[0] + 1 < query:
        raise ValueError(
            f"query={query}: its token {t[query]} must occur exactly once before it, at least two positions "
            f"back (so that the token after it, B, comes before the query); it occurs at {e}"
        )
    return e[0], query


def _strongest(roles: dict, role: str, layers) -> Head:
    heads = [h for h, r in roles.items() if r.role == role and h[0] in layers]
    if not heads:
        raise ValueError(f"the model has no {role} head in layers {sorted(layers)}; pass the head explicitly")
    return max(heads, key=lambda h: roles[h].score)


def draw_induction_circuit(model: Any, tokens: Any, query: int | None = None, prev_head: Head | None = None,
                           induction_head: Head | None = None, roles: dict | None = None, ax=None):
    """The induction circuit ``[A][B] ... [A] -> [B]`` on one real sequence.

    ``tokens``: one sequence of token ids (1-D, e.g. ``batch.tokens[0]``); ``query``: the
    position of the second ``A`` (see :func:`induction_positions`, which picks one if
    ``None``); ``B`` is at ``a + 1``. Draws a row of the sequence's tokens around ``A, B`` and
    the query (gaps as "…"), and three arrows, with weights computed on this sequence:

    * above, ``prev_head`` moving "A came before" into B's position, with its attention
      ``A^{prev}[a+1, a]``;
    * below, ``induction_head``'s query at the second A attending to B's key (K-composition),
      with its attention ``A^{ind}[query, a+1]``;
    * right, the model's prediction at the query, ``argmax softmax(logits[query])``, and its
      probability.

    The heads default to the strongest ``"previous-token"`` head before the strongest
    ``"induction"`` head of ``roles`` (:func:`mechlib.head_roles`, computed on the book's
    evaluation batch if ``None``). Raises ``ValueError`` naming ``prev_head`` or
    ``induction_head`` for a head that does not exist or a previous-token head that is not
    in an earlier layer, and naming ``tokens`` or ``query`` for a sequence the circuit cannot
    run on. Returns the axes (a new 4.3 x 3.0 inch figure if ``ax`` is ``None``).

    Chapter 3, K-Composition.
    """
    tokens = check_tokens(model, tokens)
    if tokens.shape[0] != 1:
        raise ValueError(f"tokens must be one sequence (1-D, or shape [1, pos]); got shape {tuple(tokens.shape)}")
    roles = _roles(model, roles)
    if induction_head is None:
        induction_head = _strongest(roles, "induction", range(1, model.cfg.n_layers))
    induction_head = check_head(model, induction_head, "induction_head")
    if prev_head is None:
        prev_head = _strongest(roles, "previous-token", range(induction_head[0]))
    prev_head = check_head(model, prev_head, "prev_head")
    if prev_head[0] >= induction_head[0]:
        raise ValueError(f"prev_head {head_label(prev_head)} must be in an earlier layer than induction_head "
                         f"{head_label(induction_head)}: its output can only reach later heads' keys")
    seq = tokens[0].tolist()
    a, q = induction_positions(seq, query)
    b = a + 1
    A = mechlib.attention_patterns(model, tokens)[:, 0]  # [layer, head, dest, src]
    w_prev = float(A[prev_head[0], prev_head[1], b, a])
    w_ind = float(A[induction_head[0], induction_head[1], q, b])
    with torch.no_grad():
        probs = model(tokens)[0, q].float().softmax(-1)
    pred = int(probs.argmax())

    shown = sorted(p for p in {a - 1, a, b, b + 1, q - 1, q} if 0 <= p <= q)
    slots: list[int | None] = []
    for p in shown:
        if slots and slots[-1] is not None and p > slots[-1] + 1:
            slots.append(None)  # a gap
        slots.append(p)
    W, Hh, step, size = 4.3, 2.8, 0.44, 0.34
    ax = _canvas(ax, W, Hh)
    x0, yrow = 0.42, 1.45
    xs = {}
    for i, p in enumerate(slots):
        x = x0 + i * step
        if p is None:
            ax.text(x + size / 2, yrow, "…", ha="center", va="center", fontsize=_FONT + 2)
            continue
        xs[p] = x + size / 2
        role = {a: "A", b: "B", q: "A"}.get(p)
        _box(ax, x, yrow - size / 2, size, size, edge="0.2" if role else "0.6", lw=1.4 if role else 0.8,
             face="0.93" if role else "white")
        ax.text(x + size / 2, yrow, str(seq[p]), ha="center", va="center", fontsize=_FONT + 1, gid=f"token-{p}",
                fontweight="bold" if role else "normal")
        ax.text(x + size / 2, yrow - size / 2 - 0.05, str(p), ha="center", va="top", fontsize=_SMALL,
                color="0.45")
        if role:
            ax.text(x + size / 2, yrow + size / 2 + 0.04, role, ha="center", va="bottom", fontsize=_FONT,
                    fontweight="bold", color="0.15")
    ax.text(x0 - 0.02, yrow - size / 2 - 0.05, "pos", ha="right", va="top", fontsize=_SMALL, color="0.45")
    # the prediction
    xp = x0 + len(slots) * step + 0.32
    _arrow(ax, (xs[q] + size / 2 + 0.03, yrow), (xp - 0.03, yrow), "0.2", lw=1.4)
    _box(ax, xp, yrow - size / 2, size, size, edge=PATH_COLOURS["V"], lw=1.6, ls="--")
    ax.text(xp + size / 2, yrow, str(pred), ha="center", va="center", fontsize=_FONT + 1, fontweight="bold",
            gid="prediction")
    hit = pred == seq[b]
    ax.text(xp + size / 2, yrow + size / 2 + 0.04, "B" if hit else "not B", ha="center", va="bottom",
            fontsize=_FONT, fontweight="bold", color=PATH_COLOURS["V"] if hit else "tab:purple")
    ax.text(xp + size / 2, yrow + size / 2 + 0.22, "prediction", ha="center", va="bottom", fontsize=_SMALL,
            color="0.3")
    ax.text(xp + size / 2, yrow - size / 2 - 0.05, f"p = {probs[pred]:.3f}", ha="center", va="top",
            fontsize=_SMALL, color="0.3")

    # above: the previous-token head moves A into B's position
    top = yrow + size / 2 + 0.28
    _arrow(ax, (xs[a], top), (xs[b], top), SENDER_COLOUR, lw=2.0, rad=-0.9)
    ax.text(0.12, Hh - 0.08, f"{head_label(prev_head)} ({_role_of(roles, prev_head)}"
            f" head) at B attends to A\n(weight {w_prev:.2f}) and writes \"A came before\" there",
            ha="left", va="top", fontsize=_FONT, color="0.1", gid="prev-head")
    # below: the induction head's query at the second A finds B by its key
    bottom = yrow - size / 2 - 0.27
    _arrow(ax, (xs[q], bottom), (xs[b], bottom), PATH_COLOURS["K"], lw=2.0, rad=-0.4 / (xs[q] - xs[b]))  # sags about 0.2 in
    ax.text(xs[b] - 0.2, bottom - 0.02, "K", ha="center", va="top", fontsize=_FONT, color=PATH_COLOURS["K"],
            fontweight="bold")
    ax.text(0.12, 0.08, f"{head_label(induction_head)} ({_role_of(roles, induction_head)}"
            f" head) at the second A attends to B\n(weight {w_ind:.2f}): B's key holds \"A came before\""
            f" (K-composition);\nit copies B; the model predicts {pred}" + (" = B" if hit else ", not B"),
            ha="left", va="bottom", fontsize=_FONT, color="0.1", gid="induction-head")
    return ax
