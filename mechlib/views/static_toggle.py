"""A head toggle that works in the static HTML book: no kernel, no widget manager, no CDN.

:func:`static_head_toggle` precomputes the model's behaviour for every subset of heads
(:func:`mechlib.toggle.precompute_head_toggle`), embeds it as JSON in an HTML snippet and
adds a few lines of inline vanilla JavaScript that look up the subset the reader has
ticked. Jupyter Book copies ``text/html`` outputs into the page verbatim, so the
script runs when the page loads. Element ids start with a per-instance prefix, so
several toggles can share one page.

It draws with the HTML helpers of :mod:`mechlib.views.html`, shared with the ipywidgets
views in :mod:`mechlib.views.widgets`, so both look the same.

Shown in Chapter 5, Virtual Attention Heads.
"""
from __future__ import annotations

import base64
import itertools
import json
import math
import re
from typing import Any

import numpy as np
import torch

from mechlib.heads import all_heads, head_label
from mechlib.toggle import (
    DEFAULT_HALF_LEN,
    DEFAULT_PREFIX_LEN,
    HeadToggleTable,
    precompute_head_toggle,
)
from mechlib.views.html import (
    colour_table,
    loss_html,
    pattern_html,
    score_table_html,
    style_block,
)
from mechlib.views.plots import ATTENTION_CMAP, SCORE_CMAP

_counter = itertools.count()


# ---------------------------------------------------------------- the static toggle
def head_toggle_payload(table: HeadToggleTable, d_vocab: int) -> dict[str, Any]:
    """The JSON payload of a static toggle: losses (3 decimals), induction scores (3 decimals),
    and attention patterns as base64 bytes (``round(255 * a)``, so within 1/510 of the truth)."""
    def b64(p: torch.Tensor) -> str:
        q = (p.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
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
<div id="{p}-nojs" class="mlt-axis">(This interactive view needs JavaScript; in Jupyter, trust the notebook or use mechlib.views.widgets.head_toggle.)</div>
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
