"""Matplotlib figures used across the book, with one naming and colour convention.

A head is labelled ``"l.h"`` (layer l, head h) everywhere. Composition scores use a
diverging scale centred on the random baseline (blue below, red above); attention
uses a sequential scale from 0 to 1; head scores a sequential scale from 0 to 1.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import TwoSlopeNorm
from matplotlib.patches import Patch

from mechlib.heads import head_label

COMPOSITION_CMAP = "RdBu_r"
ATTENTION_CMAP = "Blues"
SCORE_CMAP = "viridis"
#: the colour of each kind of path-expansion term (``PathExpansion.kinds``)
TERM_COLOURS = {
    "direct": "tab:gray", "single": "tab:blue", "virtual": "tab:red",
    "bias": "tab:olive",
}


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def _annotate(ax, values: np.ndarray, fmt: str = "{:.2f}", threshold: float | None = None, cmap_dark=None) -> None:
    for (i, j), v in np.ndenumerate(values):
        if np.isnan(v):
            continue
        ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=8,
                color="white" if cmap_dark is not None and cmap_dark(v) else "black")


def plot_head_scores(scores: Any, title: str, ax=None, label: str = "score", annotate: bool = True):
    """Heatmap of a per-head score ``[layer, head]``, scale 0..1, one cell per head."""
    s = _np(scores)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 + 0.75 * s.shape[1], 0.9 + 0.6 * s.shape[0]), layout="constrained")
    im = ax.imshow(s, cmap=SCORE_CMAP, vmin=0, vmax=1)
    ax.set_xticks(range(s.shape[1]), [str(h) for h in range(s.shape[1])])
    ax.set_yticks(range(s.shape[0]), [str(l) for l in range(s.shape[0])])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title)
    if annotate:
        _annotate(ax, s, cmap_dark=lambda v: v < 0.55)
    ax.figure.colorbar(im, ax=ax, label=label, shrink=0.8)
    return ax


def composition_matrix(scores: Any) -> tuple[np.ndarray, list[str], list[str]]:
    """Flatten ``[L, H, L, H]`` scores to a (sender x receiver) matrix over the heads that can compose.

    Rows are heads of layers ``0..L-2``, columns heads of layers ``1..L-1``; pairs whose
    sender is not in an earlier layer are NaN (drawn blank).
    """
    s = _np(scores)
    L, H = s.shape[:2]
    senders = [(l, h) for l in range(L - 1) for h in range(H)]
    receivers = [(l, h) for l in range(1, L) for h in range(H)]
    m = np.full((len(senders), len(receivers)), np.nan)
    for i, (l1, h1) in enumerate(senders):
        for j, (l2, h2) in enumerate(receivers):
            if l1 < l2:
                m[i, j] = s[l1, h1, l2, h2]
    return m, [head_label(h) for h in senders], [head_label(h) for h in receivers]


def plot_composition_scores(scores: Any, baseline: float, kind: str, ax=None, vmax: float | None = None,
                            annotate: bool = True):
    """Sender x receiver heatmap of ``kind``-composition scores, diverging around ``baseline``."""
    m, rows, cols = composition_matrix(scores)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 + 0.7 * len(cols), 1.0 + 0.55 * len(rows)), layout="constrained")
    top = vmax if vmax is not None else max(float(np.nanmax(m)), baseline * 1.5)
    norm = TwoSlopeNorm(vcenter=baseline, vmin=0.0, vmax=top)
    im = ax.imshow(m, cmap=COMPOSITION_CMAP, norm=norm)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("receiver (later head)")
    ax.set_ylabel("sender (earlier head)")
    ax.set_title(f"{kind}-composition")
    if annotate and m.size <= 400:
        _annotate(ax, m, cmap_dark=lambda v: abs(norm(v) - 0.5) > 0.35)
    cb = ax.figure.colorbar(im, ax=ax, shrink=0.8, label=f"{kind}-composition score")
    cb.ax.axhline(baseline, color="black", lw=1)
    return ax


def plot_composition_comparison(scores_by_kind: dict[str, Any], baseline: float, vmax: float | None = None):
    """The Q-, K- and V-composition heatmaps side by side, on one shared colour scale."""
    kinds = list(scores_by_kind)
    if vmax is None:
        vmax = max(float(np.nanmax(composition_matrix(s)[0])) for s in scores_by_kind.values())
    m0, rows, cols = composition_matrix(next(iter(scores_by_kind.values())))
    fig, axes = plt.subplots(1, len(kinds), figsize=(0.2 + (1.3 + 0.62 * len(cols)) * len(kinds), 1.2 + 0.5 * len(rows)),
                             layout="constrained")
    for ax, k in zip(np.atleast_1d(axes), kinds):
        plot_composition_scores(scores_by_kind[k], baseline, k, ax=ax, vmax=vmax)
    return fig


def plot_attention(pattern: Any, tokens: Sequence[int] | None = None, title: str = "", ax=None,
                   boundaries: Iterable[int] = ()):
    """One attention pattern ``[dest, src]`` (rows: query position, columns: key position)."""
    p = _np(pattern)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 4.0), layout="constrained")
    im = ax.imshow(p, cmap=ATTENTION_CMAP, vmin=0, vmax=1)
    ax.set_xlabel("key position (attended to)")
    ax.set_ylabel("query position")
    ax.set_title(title)
    for b in boundaries:
        ax.axvline(b - 0.5, color="tab:orange", lw=0.8)
        ax.axhline(b - 0.5, color="tab:orange", lw=0.8)
    if tokens is not None and len(tokens) <= 24:
        labels = [str(int(t)) for t in tokens]
        ax.set_xticks(range(len(labels)), labels, fontsize=6, rotation=90)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label="attention")
    return ax


def plot_baseline(baseline: Any, marks: dict[str, float] | None = None, ax=None, kind: str = ""):
    """Histogram of random-baseline composition scores, with chosen head pairs marked."""
    b = _np(baseline)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    ax.hist(b, bins=40, color="0.7", label=f"random matrices (n={len(b)})")
    ax.axvline(b.mean(), color="black", lw=1, ls="--", label=f"baseline mean {b.mean():.3f}")
    for i, (name, v) in enumerate((marks or {}).items()):
        ax.axvline(v, color=plt.cm.tab10(i), lw=2, label=f"{name}: {v:.3f}")
    ax.set_xlabel(f"{kind}-composition score".strip("-") if kind else "composition score")
    ax.set_ylabel("count")
    ax.legend(fontsize=8, loc="upper right")
    return ax


def plot_singular_values(values: Any, d_head: int, ax=None, title: str = "singular values",
                         rel_floor: float = 1e-12):
    """Singular values on a log scale, with the rank bound ``d_head`` marked.

    Values below ``rel_floor * max`` are drawn at that floor (a log scale cannot show 0);
    pass ``rel_floor=1e-20`` to show float64 rounding (about 1e-16 of the largest value).
    """
    s = _np(values)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    floor = max(s.max() * rel_floor, 1e-300)
    ax.semilogy(np.arange(1, len(s) + 1), np.maximum(s, floor), "o-", ms=3)
    ax.axvline(d_head + 0.5, color="tab:red", ls="--", lw=1, label=f"d_head = {d_head}")
    ax.set_xlabel("index")
    ax.set_ylabel("singular value")
    ax.set_title(title)
    ax.legend()
    return ax


def plot_term_sizes(sizes: dict[str, float], kinds: dict[str, str], ax=None, top: int = 20,
                    xlabel: str = "size of term (RMS logit)"):
    """Horizontal bars: the ``top`` largest path-expansion terms, coloured by kind.

    Terms are ranked by absolute value, largest at the top, so a signed value per term
    (e.g. :func:`mechlib.correct_token_attribution`, with an ``xlabel`` that says what
    it is) works as well as a size; a zero line is drawn when a value is negative.
    """
    items = sorted(sizes.items(), key=lambda kv: -abs(float(kv[1])))[:top]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.28 * len(items) + 1.0), layout="constrained")
    names = [n for n, _ in items][::-1]
    values = [float(v) for _, v in items][::-1]
    ax.barh(names, values, color=[TERM_COLOURS[kinds[n]] for n in names])
    if min(values, default=0.0) < 0:
        ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(xlabel)
    # legend from patches: empty bar containers would all take the default colour
    handles = [Patch(color=c, label=k) for k, c in TERM_COLOURS.items()]
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    return ax


def plot_loss_bars(losses: dict[str, float], chance: float | None = None, ax=None, title: str = "",
                   colors: Sequence[str] | None = None):
    """Bar chart of losses on repeated tokens, one bar per intervention, values written on the bars.

    ``losses`` maps a bar label (e.g. ``"clean"``, ``"K path ablated"``) to a loss in nats;
    ``chance`` (e.g. ``ln d_vocab``) is drawn as a dashed line: the loss of a uniform guess.
    It is named in the legend only; the value labels sit on white boxes drawn above the
    line, so a bar that ends near chance keeps a readable number.
    """
    names = list(losses)
    values = [float(losses[n]) for n in names]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 1.0 * len(names), 3.2), layout="constrained")
    bars = ax.bar(range(len(names)), values, color=colors if colors is not None else "tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=9)
    for b, v in zip(bars, values):
        ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, v), xytext=(0, 2),
                    textcoords="offset points", ha="center", va="bottom", fontsize=9,
                    zorder=4, bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))
    if chance is not None:
        ax.axhline(chance, color="black", ls="--", lw=1, zorder=2,
                   label=f"chance (uniform guess) = {chance:.2f}")
        ax.legend(fontsize=8, loc="upper left")
    top = max(values + ([chance] if chance is not None else []))
    ax.set_ylim(0, 1.3 * top if top > 0 else 1)
    ax.set_ylabel("loss on repeated tokens (nats)")
    ax.set_title(title)
    return ax


#: one colour per receiver input that a path ablation cuts, and for the bars around them
PATH_COLOURS = {"clean": "0.5", "Q": "tab:blue", "K": "tab:red", "V": "tab:green", "ablated": "0.2"}


def plot_path_ablation(cut: dict[str, float], clean: float, ablated: tuple[str, float] | None = None,
                       chance: float | None = None, ax=None, title: str = ""):
    """Loss bars of a path ablation: the clean loss, the loss with the sender cut from each of
    the receiver's inputs (``cut``, as :func:`mechlib.path_ablation_losses` returns it, in its
    order), and optionally ``ablated = (label, loss)`` with the sender switched off everywhere.

    Each input keeps its colour in every chapter (:data:`PATH_COLOURS`): Q blue, K red, V green.
    Chapter 3, K-Composition; Chapter 4, Q-Composition; Chapter 5, Virtual Attention Heads.
    """
    unknown = [k for k in cut if k not in ("Q", "K", "V")]
    if unknown:
        raise ValueError(f"cut must map 'Q', 'K' or 'V' to a loss; got keys {unknown}")
    losses, colours = {"clean": clean}, [PATH_COLOURS["clean"]]
    for kind, value in cut.items():
        losses[f"{kind} path ablated"] = value
        colours.append(PATH_COLOURS[kind])
    if ablated is not None:
        losses[ablated[0]] = ablated[1]
        colours.append(PATH_COLOURS["ablated"])
    return plot_loss_bars(losses, chance=chance, ax=ax, title=title, colors=colours)
