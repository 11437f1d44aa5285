"""A head toggle that works in the static HTML book: no kernel, no widget manager, no CDN.

:func:`static_head_toggle` precomputes the model's behaviour for every subset of heads
(:func:`mechlib.toggle.precompute_head_toggle`), embeds it as JSON in an HTML snippet and
adds a few lines of inline vanilla JavaScript that look up the subset the reader has
ticked. Jupyter Book copies ``text/html`` outputs into the page verbatim, so the
script runs when the page loads. Element ids start with a per-instance prefix, so
several toggles can share one page.

The small HTML helpers here (colour tables, score table, attention heatmap) are shared
with the live widgets in :mod:`mechlib.widgets`, so both look the same.
"""
from __future__ import annotations

import base64
import html
import itertools
import json
import math
import re
from typing import Any, Sequence

import numpy as np
import torch
from matplotlib import colormaps

from mechlib.plots import ATTENTION_CMAP, SCORE_CMAP, head_label
from mechlib.toggle import (
    DEFAULT_HALF_LEN,
    DEFAULT_PREFIX_LEN,
    HeadToggleTable,
    all_heads,
    precompute_head_toggle,
)

#: colours per table: enough steps that neighbouring values look distinct
LUT_SIZE = 64
#: orange boundary lines between prefix, first copy and second copy, as in plots.plot_attention
BOUNDARY_COLOUR = "#ff7f0e"
_counter = itertools.count()


# ---------------------------------------------------------------- shared HTML helpers
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
    :mod:`mechlib.plots` (viridis); heads not in ``enabled`` are faded and marked "off"."""
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
            cells.append(f'<td{ident} title="head {l}.{h}" style="background:{colour_of(v, lut)};'
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


# ---------------------------------------------------------------- the static toggle
def head_toggle_payload(table: HeadToggleTable, d_vocab: int) -> dict[str, Any]:
    """The JSON payload of a static toggle: losses (3 decimals), induction scores (3 decimals),
    and attention patterns as base64 bytes (``round(255 * a)``, so within 1/510 of the truth)."""
    def b64(p: torch.Tensor) -> str:
        q = (p.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        return base64.b64encode(q.tobytes()).decode("ascii")

    full = len(table.loss) - 1
    return {
        "heads": [head_label(h) for h in table.heads],
        "n_layers": table.n_layers,
        "n_heads": table.n_heads,
        "seq_len": int(table.tokens.shape[0]),
        "batch": table.batch,
        "boundaries": [table.prefix_len, table.prefix_len + table.half_len],
        "loss": [round(float(x), 3) for x in table.loss],
        "induction": [[round(float(x), 3) for x in row.flatten()] for row in table.induction],
        "patterns": {head_label(h): [b64(p) for p in ps] for h, ps in table.patterns.items()},
        "clean": round(float(table.loss[full]), 3),
        "all_off": round(float(table.loss[0]), 3),
        "uniform": round(math.log(d_vocab), 3),
        "attn_lut": colour_table(ATTENTION_CMAP),
        "score_lut": colour_table(SCORE_CMAP),
    }


_SCRIPT = r"""
(function () {
  var P = "__PREFIX__";
  var el = function (s) { return document.getElementById(P + "-" + s); };
  var D = JSON.parse(el("data").textContent);
  var H = D.n_heads, N = D.heads.length, n = D.seq_len;
  var decoded = {};
  function pattern(name, layer, mask) {
    var key = name + ":" + (mask % Math.pow(2, layer * H));
    if (!(key in decoded)) {
      var s = atob(D.patterns[name][mask % Math.pow(2, layer * H)]), a = new Array(s.length);
      for (var i = 0; i < s.length; i++) a[i] = s.charCodeAt(i) / 255;
      decoded[key] = a;
    }
    return decoded[key];
  }
  function colour(lut, v) {
    v = Math.min(Math.max(v, 0), 1);
    return lut[Math.min(Math.floor(v * lut.length), lut.length - 1)];
  }
  function mask() {
    var m = 0;
    for (var i = 0; i < N; i++) if (el("cb-" + i).checked) m += Math.pow(2, i);
    return m;
  }
  function render() {
    var m = mask(), loss = D.loss[m], ind = D.induction[m];
    el("loss-value").textContent = loss.toFixed(3);
    var top = Math.max(D.all_off, D.uniform, D.clean) * 1.1;
    el("loss-bar").style.width = (100 * loss / top).toFixed(1) + "%";
    for (var i = 0; i < N; i++) {
      var l = Math.floor(i / H), h = i % H, c = el("ind-" + l + "-" + h), v = ind[i];
      var on = el("cb-" + i).checked;
      c.textContent = v.toFixed(2) + (on ? "" : " (off)");
      c.style.background = colour(D.score_lut, v);
      c.style.color = v < 0.55 ? "white" : "black";
      c.style.opacity = on ? 1 : 0.45;
    }
    var name = el("head").value, layer = parseInt(name.split(".")[0], 10);
    var a = pattern(name, layer, m), rows = el("attn").rows;
    el("attn-title").textContent = "attention pattern of head " + name + " (sequence 0)";
    for (var q = 0; q < n; q++) {
      var cells = rows[q + 1].cells;
      for (var k = 0; k < n; k++) {
        var v = a[q * n + k], td = cells[k + 1];
        td.style.backgroundColor = colour(D.attn_lut, v);
        td.title = "query " + q + ", key " + k + ": " + v.toFixed(2);
      }
    }
  }
  for (var i = 0; i < N; i++) el("cb-" + i).addEventListener("change", render);
  el("head").addEventListener("change", render);
  el("all-on").addEventListener("click", function () {
    for (var i = 0; i < N; i++) el("cb-" + i).checked = true; render(); });
  el("all-off").addEventListener("click", function () {
    for (var i = 0; i < N; i++) el("cb-" + i).checked = false; render(); });
  el("nojs").style.display = "none";
  el("root").setAttribute("data-ready", "1");
  render();
})();
"""


def static_head_toggle_html(payload: dict[str, Any], prefix: str, pattern_head: str | None = None) -> str:
    """The HTML (markup, JSON payload and inline script) of a static head toggle."""
    heads, H = payload["heads"], payload["n_heads"]
    if pattern_head is None:
        pattern_head = heads[H] if len(heads) > H else heads[0]  # first head of layer 1
    if pattern_head not in heads:
        raise ValueError(f"pattern_head must be one of {heads}; got {pattern_head!r}")
    p = prefix
    boxes = []
    for l in range(payload["n_layers"]):
        items = "".join(
            f'<label><input type="checkbox" id="{p}-cb-{l * H + h}" checked> {heads[l * H + h]}</label>'
            for h in range(H))
        boxes.append(f"<div>layer {l}: {items}</div>")
    options = "".join(f'<option value="{n}"{" selected" if n == pattern_head else ""}>{n}</option>' for n in heads)
    clean = payload["clean"]
    L = payload["n_layers"]
    blank_scores = score_table_html(np.zeros((L, H)), cell_id=f"{p}-ind",
                                    title=f"induction score (mean over {payload['batch']} sequences)")
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    return f"""<div id="{p}-root" class="mlt-toggle">
{style_block(p + "-root")}
<div id="{p}-nojs" class="mlt-axis">(This interactive view needs JavaScript; in Jupyter, trust the notebook or use mechlib.widgets.head_toggle.)</div>
<div class="mlt-heads"><b>Heads</b> (ticked = on; untick to switch a head off):{''.join(boxes)}
<div style="margin-top:0.3em"><button type="button" id="{p}-all-on">all on</button><button type="button" id="{p}-all-off">all off</button></div></div>
<div style="margin:0.6em 0">{loss_html(clean, clean, payload["all_off"], payload["uniform"], ident=f"{p}-loss")}</div>
<div class="mlt-row">
<div>{blank_scores}</div>
<div><div><label>show the attention pattern of head <select id="{p}-head">{options}</select></label></div>
{pattern_html(None, seq_len=payload["seq_len"], boundaries=payload["boundaries"], table_id=f"{p}-attn")}
<div class="mlt-axis">orange lines: start of the first and of the second copy</div></div>
</div>
<script type="application/json" id="{p}-data">{data}</script>
<script>{_SCRIPT.replace("__PREFIX__", p)}</script>
</div>"""


def static_head_toggle(model: Any = None, tokens: torch.Tensor | None = None, half_len: int = DEFAULT_HALF_LEN,
                       prefix_len: int = DEFAULT_PREFIX_LEN, prefix: str | None = None,
                       pattern_head: str | None = None, table: HeadToggleTable | None = None):
    """A head toggle for the static HTML book, as an ``IPython.display.HTML`` object.

    Precomputes every subset of heads (:func:`mechlib.toggle.precompute_head_toggle`; 256
    runs of ``induction-2l``, about a second) and embeds it with inline JavaScript: ticking
    a box looks the numbers up, so the page needs no kernel and no network. Pass ``table``
    (a :class:`~mechlib.toggle.HeadToggleTable` of ``model``) to reuse a precomputed one.
    ``prefix`` (default ``"mlht<n>"``, numbered per session) starts every element id;
    ``pattern_head`` (e.g. ``"1.0"``, the default) is the head whose pattern is shown first.
    """
    from IPython.display import HTML

    if model is None:
        from mechlib.models import load_model

        model = load_model()
    if prefix is not None and not (re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", prefix)):
        raise ValueError(f"prefix must start with a letter and hold only letters, digits, - and _; got {prefix!r}")
    labels = [head_label(h) for h in all_heads(model)]
    if pattern_head is not None and pattern_head not in labels:
        raise ValueError(f"pattern_head must be one of {labels}; got {pattern_head!r}")
    if table is None:
        table = precompute_head_toggle(model, tokens, half_len, prefix_len)
    if prefix is None:
        prefix = f"mlht{next(_counter)}"
    return HTML(static_head_toggle_html(head_toggle_payload(table, model.cfg.d_vocab), prefix, pattern_head))
