"""A checkpoint slider that works in the static HTML book: no kernel, no widget manager, no CDN.

:func:`static_checkpoint_slider` takes what :func:`mechlib.training_dynamics` measured at
every checkpoint of ``induction-2l`` (the attention patterns of every head on one repeated
sequence, the loss at each of its positions, and the loss on the repeated half of the
whole batch), embeds it as JSON in an HTML snippet and adds inline vanilla JavaScript:
dragging the slider (or pressing the arrow keys on it) redraws the patterns and the losses
of that step. Patterns travel as one byte per entry of their lower triangle
(``round(255 * a)``, within 1/510 of the truth), so the payload stays near 150 kB.

Shown in The Circuit Forms, in chapter 5. (When the book's live in-page model is there, the
same view can run it instead of looking numbers up.)
"""
from __future__ import annotations

import base64
import itertools
import json
import math
import re
from typing import Any

import torch

from mechlib.heads import head_label
from mechlib.views.html import BOUNDARY_COLOUR, colour_table, gradient_css, style_block
from mechlib.views.plots import ATTENTION_CMAP

_counter = itertools.count()


def checkpoint_slider_payload(dynamics: Any, tokens: torch.Tensor, boundaries: list[int], d_vocab: int) -> dict[str, Any]:
    """The JSON payload of a checkpoint slider: for every step, the repeat loss (3 decimals),
    the example's loss at each target position (2 decimals) and every head's attention pattern
    on the example, its lower triangle (row by row, ``q >= k``) as base64 bytes."""
    P = dynamics.example_patterns  # [step, layer, head, q, k]
    S, L, H, n, _ = P.shape
    if tuple(tokens.shape) != (n,):
        raise ValueError(f"tokens must be the example sequence of {n} tokens; got shape {tuple(tokens.shape)}")
    rows, cols = torch.tril_indices(n, n)

    def b64(step: int) -> str:
        tri = P[step][:, :, rows, cols].clamp(0, 1)  # [layer, head, n(n+1)/2]
        q = (tri * 255).round().to(torch.uint8).numpy()
        return base64.b64encode(q.tobytes()).decode("ascii")

    return {
        "steps": [int(s) for s in dynamics.steps],
        "heads": [head_label((l, h)) for l in range(L) for h in range(H)],
        "n_layers": L,
        "n_heads": H,
        "seq_len": n,
        "batch": int(dynamics.batch_size),
        "tokens": [int(t) for t in tokens],
        "boundaries": [int(b) for b in boundaries],
        "loss": [round(float(x), 3) for x in dynamics.loss_repeat],
        "example_loss": [[round(float(x), 2) for x in row] for row in dynamics.example_loss],
        "patterns": [b64(i) for i in range(S)],
        "uniform": round(math.log(d_vocab), 3),
        "bar_top": math.ceil(max(math.log(d_vocab), float(dynamics.example_loss.max()))),
        "attn_lut": colour_table(ATTENTION_CMAP),
    }


_SCRIPT = r"""
(function () {
  var P = "__PREFIX__";
  var el = function (s) { return document.getElementById(P + "-" + s); };
  var D = JSON.parse(el("data").textContent);
  var n = D.seq_len, NH = D.heads.length, tri = n * (n + 1) / 2, decoded = {};
  var second = D.boundaries[1];  // targets from here on are in the second copy
  var top = D.bar_top;
  function bytes(i) {
    if (!(i in decoded)) {
      var s = atob(D.patterns[i]), a = new Uint8Array(s.length);
      for (var j = 0; j < s.length; j++) a[j] = s.charCodeAt(j);
      decoded[i] = a;
    }
    return decoded[i];
  }
  function colour(v) {
    var lut = D.attn_lut; v = Math.min(Math.max(v, 0), 1);
    return lut[Math.min(Math.floor(v * lut.length), lut.length - 1)];
  }
  function drawHead(c, a, offset) {  // 4 x 4 pixels per entry, orange lines where the copies start
    var ctx = c.getContext("2d"), idx = offset;
    ctx.fillStyle = colour(0); ctx.fillRect(0, 0, 4 * n, 4 * n);
    for (var q = 0; q < n; q++) for (var k = 0; k <= q; k++) {
      ctx.fillStyle = colour(a[idx++] / 255); ctx.fillRect(4 * k, 4 * q, 4, 4);
    }
    ctx.fillStyle = "__BOUNDARY__";
    D.boundaries.forEach(function (b) { ctx.fillRect(4 * b - 0.5, 0, 1, 4 * n); ctx.fillRect(0, 4 * b - 0.5, 4 * n, 1); });
  }
  function render() {
    var i = parseInt(el("range").value, 10), step = D.steps[i], a = bytes(i);
    el("range").setAttribute("aria-valuetext", "step " + step);
    el("step").textContent = step;
    el("index").textContent = i + 1;
    el("loss").textContent = D.loss[i].toFixed(3);
    el("lossbar").style.width = (100 * Math.min(D.loss[i] / (1.1 * D.uniform), 1)).toFixed(1) + "%";
    for (var h = 0; h < NH; h++) drawHead(el("c" + h), a, h * tri);
    var bars = el("bars").children, row = D.example_loss[i];
    for (var p = 0; p < row.length; p++) {
      bars[p].style.height = (100 * Math.min(row[p] / top, 1)).toFixed(1) + "%";
      bars[p].title = "predicting position " + (p + 1) + " (token " + D.tokens[p + 1] + "): " + row[p].toFixed(2) + " nats";
    }
    var mark = el("mark"); mark.setAttribute("cx", step); mark.setAttribute("cy", D.loss[i]);
  }
  el("range").addEventListener("input", render);
  el("prev").addEventListener("click", function () { el("range").stepDown(); render(); });
  el("next").addEventListener("click", function () { el("range").stepUp(); render(); });
  el("nojs").style.display = "none";
  el("root").setAttribute("data-ready", "1");
  render();
})();
"""


def static_checkpoint_slider_html(payload: dict[str, Any], prefix: str, start_step: int | None = None) -> str:
    """The HTML (markup, JSON payload and inline script) of a static checkpoint slider."""
    steps, p = payload["steps"], prefix
    start = len(steps) - 1 if start_step is None else steps.index(start_step)
    n, b = payload["seq_len"], payload["boundaries"]
    lut = payload["attn_lut"]
    H = payload["n_heads"]
    canvases = "".join(
        f'<figure class="mlt-head"><canvas id="{p}-c{i}" width="{4 * n}" height="{4 * n}" role="img" '
        f'aria-label="attention pattern of head {name}"></canvas><figcaption>{name}</figcaption></figure>'
        for i, name in enumerate(payload["heads"]))  # one row per layer: a grid of n_heads columns
    bars = "".join(
        f'<div style="background:{"#d62728" if t + 1 > b[1] else "#9e9e9e"}"></div>' for t in range(n - 1))
    # the repeat loss of every checkpoint against its training step (checkpoints are denser early)
    top = max(max(payload["loss"]), payload["uniform"]) * 1.05
    pts = " ".join(f"{t},{v}" for t, v in zip(steps, payload["loss"]))
    S, last = len(steps), steps[-1]
    # one entry per line: the page does not care, and line-based tools (nbval sanitizers) stay fast
    data = json.dumps(payload, indent=0, separators=(",", ":")).replace("</", "<\\/")
    return f"""<div id="{p}-root" class="mlt-toggle mlt-slider">
{style_block(p + "-root")}
<style>
#{p}-root .mlt-heads-grid {{ display: grid; grid-template-columns: repeat({H}, minmax(0, 80px)); gap: 6px 10px; }}
#{p}-root figure.mlt-head {{ margin: 0; text-align: center; position: relative; min-width: 0; }}
#{p}-root figure.mlt-head canvas {{ width: 100%; height: auto; aspect-ratio: 1; border: 1px solid #ccc; box-sizing: border-box; }}
#{p}-root figure.mlt-head figcaption {{ font-size: 0.85em; }}
#{p}-root input[type=range] {{ flex: 1 1 150px; min-width: 0; max-width: 420px; }}
#{p}-root .mlt-bars {{ display: flex; align-items: flex-end; gap: 1px; height: 70px; width: 100%; max-width: 360px;
  border-bottom: 1px solid #888; }}
#{p}-root .mlt-bars > div {{ flex: 1; min-width: 3px; }}
#{p}-root svg {{ width: 100%; max-width: 360px; height: 70px; border-bottom: 1px solid #888; border-left: 1px solid #888; }}
</style>
<div id="{p}-nojs" class="mlt-axis">(This interactive view needs JavaScript; the plots above show the same numbers.)</div>
<div><label for="{p}-range"><b>Training step: <span id="{p}-step">{steps[start]}</span></b>
(checkpoint <span id="{p}-index">{start + 1}</span> of {S}; drag, or focus the slider and use the arrow keys, Home and End)</label></div>
<div style="display:flex;align-items:center;gap:6px;flex-wrap:wrap;margin:0.3em 0">
<button type="button" id="{p}-prev" aria-label="previous checkpoint">&#9664;</button>
<input type="range" id="{p}-range" min="0" max="{S - 1}" step="1" value="{start}" aria-valuetext="step {steps[start]}">
<button type="button" id="{p}-next" aria-label="next checkpoint">&#9654;</button></div>
<div>Loss on the repeated half ({payload["batch"]} sequences): <b id="{p}-loss"></b> nats
<span class="mlt-lossbar"><div id="{p}-lossbar"></div></span>
<span class="mlt-axis">(uniform guess: {payload["uniform"]:.3f} nats)</span></div>
<div class="mlt-row">
<div><div class="mlt-axis">repeat loss during training (dot: this checkpoint; dashed: uniform guess)</div>
<svg viewBox="{-last / 80:.2f} 0 {last * 1.025:.2f} {top:.3f}" preserveAspectRatio="none" aria-hidden="true">
<g transform="translate(0,{top:.3f}) scale(1,-1)">
<line x1="0" x2="{last}" y1="{payload["uniform"]}" y2="{payload["uniform"]}" stroke="#888" vector-effect="non-scaling-stroke"
 style="stroke-width:1px;stroke-dasharray:4 3"/>
<polyline points="{pts}" fill="none" stroke="#1f77b4" vector-effect="non-scaling-stroke" style="stroke-width:1.5px"/>
<ellipse id="{p}-mark" cx="{steps[start]}" cy="0" rx="{last / 80:.2f}" ry="{top / 25:.3f}" fill="#d62728"/></g></svg>
<div class="mlt-axis">training step, 0 (left) to {last} (right); height 0 to {top:.1f} nats</div></div>
<div><div class="mlt-axis">loss at each position of sequence 0 (red: second copy, predictable)</div>
<div class="mlt-bars" id="{p}-bars">{bars}</div>
<div class="mlt-axis">position of the predicted token, 1 to {n - 1}; a full-height bar is {payload["bar_top"]} nats</div></div>
</div>
<div class="mlt-axis" style="margin-top:0.4em">Attention patterns on sequence 0 (rows: query position, columns: key position;
orange lines where the first and the second copy start):</div>
<div class="mlt-heads-grid">{canvases}</div>
<div style="display:flex;align-items:center;gap:4px;margin-top:4px"><span class="mlt-axis">0</span>
<div style="width:140px;height:9px;background:{gradient_css(lut, "to right")}"></div><span class="mlt-axis">1 attention</span></div>
<script type="application/json" id="{p}-data">{data}</script>
<script>{_SCRIPT.replace("__PREFIX__", p).replace("__BOUNDARY__", BOUNDARY_COLOUR)}</script>
</div>"""


def static_checkpoint_slider(dynamics: Any, batch: Any, d_vocab: int = 32, prefix: str | None = None,
                             start_step: int | None = None):
    """A checkpoint slider for the static HTML book, as an ``IPython.display.HTML`` object.

    ``dynamics``: a :class:`mechlib.TrainingDynamics` measured on ``batch`` (the
    :class:`mechlib.RepeatedBatch` passed to :func:`mechlib.training_dynamics`); its first
    sequence is the one shown. ``prefix`` (default ``"mlcs<n>"``) starts every element id;
    ``start_step`` (default the last) is the step shown first.
    """
    from IPython.display import HTML

    if prefix is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", prefix):
        raise ValueError(f"prefix must start with a letter and hold only letters, digits, - and _; got {prefix!r}")
    if start_step is not None and start_step not in dynamics.steps:
        raise ValueError(f"start_step must be one of the measured steps {dynamics.steps}; got {start_step!r}")
    payload = checkpoint_slider_payload(dynamics, batch.tokens[0], batch.boundaries, d_vocab)
    if prefix is None:
        prefix = f"mlcs{next(_counter)}"
    return HTML(static_checkpoint_slider_html(payload, prefix, start_step))
