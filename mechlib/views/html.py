"""HTML helpers shared by every widget the book shows: colour tables, a per-head score
table, an attention heatmap, a loss line, and the CSS they share.

The live page widgets (:mod:`mechlib.views.live`) and the ipywidgets
views (:mod:`mechlib.views.widgets`) both draw with these, so a reader sees the same
colours and layout with or without a kernel. Colour scales are those of
:mod:`mechlib.views.plots`.

Shown in Chapter 5 (the static head toggle) and the exercise notebooks' "Play" sections.
"""
from __future__ import annotations

import html
from typing import Any, Sequence

import numpy as np
import torch
from matplotlib import colormaps

from mechlib.heads import head_label
from mechlib.views.plots import ATTENTION_CMAP, SCORE_CMAP

#: colours per table: enough steps that neighbouring values look distinct
LUT_SIZE = 64
#: orange boundary lines between prefix, first copy and second copy, as in plots.plot_attention
BOUNDARY_COLOUR = "#ff7f0e"


def colour_table(cmap: str, n: int = LUT_SIZE) -> list[str]:
    """``n`` hex colours sampled evenly from the matplotlib colour map ``cmap`` (its 0..1 scale)."""
    rgba = colormaps[cmap](np.linspace(0, 1, n))
    return ["#%02x%02x%02x" % tuple(int(round(255 * c)) for c in col[:3]) for col in rgba]


def colour_of(value: float, lut: Sequence[str]) -> str:
    """Colour of ``value`` in ``[0, 1]`` (clipped) from a colour table."""
    v = min(max(float(value), 0.0), 1.0)
    return lut[min(int(v * len(lut)), len(lut) - 1)]


def text_colour(value: float) -> str:
    """Black or white text, whichever reads better on the viridis colour of ``value`` (as in plots)."""
    return "white" if value < 0.55 else "black"


def gradient_css(lut: Sequence[str], direction: str = "to top") -> str:
    """A CSS ``linear-gradient`` through the colours of ``lut`` (for colour bars)."""
    return f"linear-gradient({direction}, {', '.join(lut)})"


def style_block(root: str) -> str:
    """CSS for one toggle, scoped to the element with id ``root``."""
    r = f"#{root}"
    return f"""<style>
{r} {{ font-family: inherit; font-size: 0.9em; line-height: 1.3; }}
{r} .mlt-row {{ display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; margin: 0.4em 0; }}
{r} table.mlt-scores {{ border-collapse: collapse; }}
{r} table.mlt-scores td, {r} table.mlt-scores th {{ padding: 3px 7px; text-align: center; font-variant-numeric: tabular-nums; }}
{r} table.mlt-scores td {{ min-width: 3.2em; }}
{r} table.mlt-attn {{ border-collapse: collapse; table-layout: fixed; }}
{r} table.mlt-attn td {{ width: 10px; height: 10px; padding: 0; }}
{r} table.mlt-attn td.mlt-tick {{ font-size: 9px; width: auto; opacity: 0.75; text-align: right; padding-right: 2px; }}
{r} table.mlt-attn th.mlt-tick {{ font-size: 9px; font-weight: normal; opacity: 0.75; height: 12px; padding: 0; overflow: visible; white-space: nowrap; }}
{r} .mlt-axis {{ font-size: 0.85em; opacity: 0.8; }}
{r} .mlt-ylabel {{ writing-mode: vertical-rl; transform: rotate(180deg); text-align: center; }}
{r} .mlt-heads label {{ margin-right: 0.9em; white-space: nowrap; cursor: pointer; }}
{r} .mlt-lossbar {{ height: 10px; background: #e8e8e8; width: 260px; display: inline-block; vertical-align: middle; }}
{r} .mlt-lossbar > div {{ height: 100%; background: #d62728; }}
{r} button {{ font-size: 0.9em; margin-right: 0.4em; }}
</style>"""


def score_table_html(scores: Any, enabled: Any = None, cell_id: str | None = None,
                     title: str = "induction score") -> str:
    """Per-head scores ``[layer, head]`` as an HTML table coloured on the 0..1 score scale of
    :mod:`mechlib.views.plots` (viridis); heads not in ``enabled`` are faded and marked "off"."""
    s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=float)
    L, H = s.shape
    on = None if enabled is None else {tuple(h) for h in enabled}
    lut = colour_table(SCORE_CMAP)
    rows = [f'<tr><th colspan="{H + 1}" style="font-weight:normal">{html.escape(title)} (rows: layer, columns: head)</th></tr>',
            "<tr><th></th>" + "".join(f"<th>head {h}</th>" for h in range(H)) + "</tr>"]
    for l in range(L):
        cells = []
        for h in range(H):
            v = s[l, h]
            off = on is not None and (l, h) not in on
            ident = f' id="{cell_id}-{l}-{h}"' if cell_id else ""
            label = f"{v:.2f}" + (" (off)" if off else "")
            cells.append(f'<td{ident} title="head {head_label((l, h))}" style="background:{colour_of(v, lut)};'
                         f'color:{text_colour(v)};opacity:{0.45 if off else 1}">{label}</td>')
        rows.append(f"<tr><th>layer {l}</th>{''.join(cells)}</tr>")
    bar = (f'<div style="display:flex;align-items:center;gap:4px;margin-top:4px">'
           f'<span class="mlt-axis">0</span>'
           f'<div style="width:160px;height:9px;background:{gradient_css(lut, "to right")}"></div>'
           f'<span class="mlt-axis">1 &nbsp;{html.escape(title)}</span></div>')
    return f'<table class="mlt-scores">{"".join(rows)}</table>{bar}'


def pattern_html(pattern: Any = None, seq_len: int | None = None, boundaries: Sequence[int] = (),
                 table_id: str | None = None, title: str = "", tick_every: int = 5) -> str:
    """An attention pattern ``[dest, src]`` as a heatmap table (Blues, 0..1) with labelled axes and a
    colour bar. With ``pattern=None`` the cells are left blank (the static toggle fills them in)."""
    p = None if pattern is None else np.asarray(
        pattern.detach().cpu() if isinstance(pattern, torch.Tensor) else pattern, dtype=float)
    n = p.shape[0] if p is not None else int(seq_len)
    lut = colour_table(ATTENTION_CMAP)
    bset = set(boundaries)

    def border(i: int, j: int) -> str:
        out = ""
        if j in bset:
            out += f"border-left:1px solid {BOUNDARY_COLOUR};"
        if i in bset:
            out += f"border-top:1px solid {BOUNDARY_COLOUR};"
        return out

    head = '<tr><td class="mlt-tick"></td>' + "".join(
        f'<th class="mlt-tick">{j if j % tick_every == 0 else ""}</th>' for j in range(n)) + "</tr>"
    rows = [head]
    for i in range(n):
        cells = []
        for j in range(n):
            if p is None:
                style, tip = border(i, j), ""
            else:
                style = f"background:{colour_of(p[i, j], lut)};" + border(i, j)
                tip = f' title="query {i}, key {j}: {p[i, j]:.2f}"'
            cells.append(f'<td style="{style}"{tip}></td>')
        rows.append(f'<tr><td class="mlt-tick">{i if i % tick_every == 0 else ""}</td>{"".join(cells)}</tr>')
    ident = f' id="{table_id}"' if table_id else ""
    title_ident = f' id="{table_id}-title"' if table_id else ""
    title_html = f'<div{title_ident} style="text-align:center">{html.escape(title)}</div>'
    colourbar = (f'<div style="display:flex;align-items:stretch;gap:3px;margin-left:6px;padding-top:13px">'
                 f'<div style="width:11px;background:{gradient_css(lut)}"></div>'
                 f'<div class="mlt-axis" style="display:flex;flex-direction:column;justify-content:space-between">'
                 f"<span>1.0</span><span>0.5</span><span>0.0</span></div>"
                 f'<div class="mlt-axis mlt-ylabel" style="align-self:center">attention</div></div>')
    return (f'<div style="display:inline-block">{title_html}<div style="display:flex;align-items:stretch">'
            f'<div class="mlt-axis mlt-ylabel" style="align-self:center">query position</div>'
            f'<table class="mlt-attn"{ident}>{"".join(rows)}</table>{colourbar}</div>'
            f'<div class="mlt-axis" style="text-align:center">key position (attended to)</div></div>')


def loss_html(loss: float, clean: float, all_off: float, uniform: float, ident: str | None = None) -> str:
    """One line with the repeat loss, a bar for it, and the reference values to compare with."""
    top = max(all_off, uniform, clean) * 1.1
    i = (lambda s: f' id="{ident}-{s}"') if ident else (lambda s: "")
    return (f'<div>Loss on the repeated half: <b{i("value")}>{loss:.3f}</b> nats '
            f'<span class="mlt-lossbar"><div{i("bar")} style="width:{100 * loss / top:.1f}%"></div></span>'
            f'<div class="mlt-axis">all heads on: {clean:.3f} &nbsp;·&nbsp; all heads off: {all_off:.3f} '
            f"&nbsp;·&nbsp; uniform guess: {uniform:.3f} nats</div></div>")
