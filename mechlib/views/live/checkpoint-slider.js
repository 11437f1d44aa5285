/* checkpoint-slider.js: the checkpoint slider (The Circuit Forms): dragging the slider, or
 * pressing the arrow keys, Home and End on it, redraws every head's attention pattern and the
 * losses of that training step; the live region says the step and its loss, and each pattern
 * says in words (its label and title) how much it attends as an induction or previous-token head.
 * It runs no model. Needs ui.js.
 *
 * window.mechlibLive.widgets.checkpointSlider(root, config); config: {steps, heads, n_layers,
 * n_heads, seq_len, batch, tokens, boundaries, loss, example_loss, patterns (per step: base64
 * bytes round(255 a) of every head's lower triangle, row by row), uniform, bar_top, attn_lut,
 * boundary_colour, start}: what mechlib.training_dynamics measured (mechlib.views.live.slider).
 */
(function () {
  "use strict";
  var api = window.mechlibLive;
  if (!api || !api.ui) throw new Error("mechlibLive: load model.js and ui.js before checkpoint-slider.js");
  if (api.widgets.checkpointSlider) return;
  var ui = api.ui, el = ui.el, svgEl = ui.svgEl, text = ui.text;

  function controls(v) {
    var D = v.D, P = v.P, S = D.steps.length, box = el("div", {"class": "mll-built"}, v.root);
    var lab = el("label", {"for": P + "-range"}, el("div", {}, box)), b = el("b", {}, lab, "Training step: ");
    v.step = el("span", {id: P + "-step"}, b);
    text(lab, " (checkpoint ");
    v.index = el("span", {id: P + "-index"}, lab);
    text(lab, " of " + S + "; drag, or focus the slider and use the arrow keys, Home and End)");
    var row = el("div", {"class": "mll-sliderrow"}, box);
    v.prev = ui.button(row, P + "-prev", "\u25c0", function () { v.range.stepDown(); render(v); });
    v.prev.setAttribute("aria-label", "previous checkpoint");
    // a short name of its own: the visible label changes with every step and would be said
    // again, with its instructions, each time the value moves (the value and the live region say the step)
    v.range = el("input", {type: "range", id: P + "-range", min: "0", max: String(S - 1), step: "1", value: String(D.start),
                           "aria-label": "training step"}, row);
    v.next = ui.button(row, P + "-next", "\u25b6", function () { v.range.stepUp(); render(v); });
    v.next.setAttribute("aria-label", "next checkpoint");
    var line = el("div", {}, box);
    text(line, "Loss on the repeated half (" + D.batch + " sequences): ");
    v.loss = el("b", {id: P + "-loss"}, line);
    text(line, " nats ");
    v.lossbar = el("div", {id: P + "-lossbar"}, el("span", {"class": "mlt-lossbar", "aria-hidden": "true"}, line));
    el("span", {"class": "mlt-axis"}, line, " (uniform guess: " + D.uniform.toFixed(3) + " nats)");
  }

  // The training step on the curve's x axis as in the chapter's figures: linear up to step 1000, where
  // the circuit forms, logarithmic after it (1000 steps take the width of two decades), scaled to 0..1000.
  var LINEAR_TO = 1000;
  function stepAxis(last) {
    var f = function (s) { return last <= LINEAR_TO || s <= LINEAR_TO ? 2 * s / LINEAR_TO : 2 + Math.log10(s / LINEAR_TO); };
    return function (s) { return 1000 * f(s) / f(last); };
  }

  function lossCurve(v, parent) {  // the repeat loss against the training step (checkpoints are denser early)
    var D = v.D, last = D.steps[D.steps.length - 1], top = Math.max(Math.max.apply(null, D.loss), D.uniform) * 1.05;
    var X = v.stepX = stepAxis(last), box = el("div", {}, parent);
    el("div", {"class": "mlt-axis"}, box, "repeat loss during training (dot: this checkpoint; dashed: uniform guess)");
    var svg = svgEl(box, "svg", {viewBox: "-12.5 0 1025 " + top.toFixed(3),
                                 preserveAspectRatio: "none", "aria-hidden": "true", "class": "mll-curve"});
    var g = svgEl(svg, "g", {transform: "translate(0," + top.toFixed(3) + ") scale(1,-1)"});
    [500, LINEAR_TO].forEach(function (s) {  // thin grid lines where the tick labels below say
      if (s < last) svgEl(g, "line", {x1: X(s), x2: X(s), y1: 0, y2: top, stroke: "#ccc", "vector-effect": "non-scaling-stroke",
                                      style: "stroke-width:1px"});
    });
    svgEl(g, "line", {x1: 0, x2: 1000, y1: D.uniform, y2: D.uniform, stroke: "#888", "vector-effect": "non-scaling-stroke",
                      style: "stroke-width:1px;stroke-dasharray:4 3"});
    svgEl(g, "polyline", {points: D.steps.map(function (s, i) { return X(s).toFixed(2) + "," + D.loss[i]; }).join(" "), fill: "none",
                          stroke: "#1f77b4", "vector-effect": "non-scaling-stroke", style: "stroke-width:1.5px"});
    v.mark = svgEl(g, "ellipse", {id: v.P + "-mark", cx: X(D.steps[D.start]).toFixed(2), cy: 0, rx: "12.5",
                                  ry: (top / 25).toFixed(3), fill: "#d62728", "data-step": D.steps[D.start]});
    el("div", {"class": "mlt-axis"}, box, last > LINEAR_TO ?
       "training step, as in the figures above: linear from 0 (left) to " + LINEAR_TO + " (grey line at " +
       Math.round(X(LINEAR_TO) / 10) + "% of the width; the other grey line is step 500), logarithmic from there to " + last +
       " (right); height 0 to " + top.toFixed(1) + " nats" :
       "training step, 0 (left) to " + last + " (right); height 0 to " + top.toFixed(1) + " nats");
  }

  function positionBars(v, parent) {  // the loss at each position of the example sequence
    var D = v.D, box = el("div", {}, parent);
    el("div", {"class": "mlt-axis"}, box, "loss at each position of sequence 0 (red: second copy, predictable)");
    v.bars = el("div", {"class": "mll-bars", id: v.P + "-bars"}, box);
    for (var t = 0; t + 1 < D.seq_len; t++) el("div", {style: "background:" + (t + 1 > D.boundaries[1] ? "#d62728" : "#9e9e9e")}, v.bars);
    el("div", {"class": "mlt-axis"}, box, "position of the predicted token, 1 to " + (D.seq_len - 1) + "; a full-height bar is " + D.bar_top + " nats");
  }

  function headGrid(v) {  // one canvas per head, 4 x 4 pixels per entry; a row per layer
    var D = v.D, n = D.seq_len, box = el("div", {"class": "mll-built"}, v.root);
    el("div", {"class": "mlt-axis", style: "margin-top:0.4em"}, box, "Attention patterns on sequence 0 (rows: query position, " +
       "columns: key position; orange lines where the first and the second copy start; focus or hover a pattern for its scores):");
    var grid = el("div", {"class": "mll-heads-grid", style: "grid-template-columns: repeat(" + D.n_heads + ", minmax(0, 80px))"}, box);
    v.canvases = D.heads.map(function (name, i) {
      var fig = el("figure", {"class": "mll-head"}, grid);
      var c = el("canvas", {id: v.P + "-c" + i, width: 4 * n, height: 4 * n, role: "img", tabindex: "0",
                            "aria-label": "attention pattern of head " + name}, fig);
      el("figcaption", {"aria-hidden": "true"}, fig, name);
      return c;
    });
    ui.colourBar(el("div", {"class": "mlt-axis"}, box), D.attn_lut, "0", "1 attention");
  }

  function stepBytes(v, i) {
    if (!(i in v.decoded)) {
      var s = atob(v.D.patterns[i]), a = new Uint8Array(s.length);
      for (var j = 0; j < s.length; j++) a[j] = s.charCodeAt(j);
      v.decoded[i] = a;
    }
    return v.decoded[i];
  }

  // the head's pattern as a full n x n array (0 above the diagonal), from its lower-triangle bytes
  function fullPattern(a, offset, n) {
    var A = new Float64Array(n * n), idx = offset;
    for (var q = 0; q < n; q++) for (var k = 0; k <= q; k++) A[q * n + k] = a[idx++] / 255;
    return A;
  }

  function drawHead(v, c, A) {  // orange lines where the copies start
    var D = v.D, n = D.seq_len, ctx = c.getContext("2d");
    ctx.fillStyle = ui.colour(D.attn_lut, 0); ctx.fillRect(0, 0, 4 * n, 4 * n);
    for (var q = 0; q < n; q++) for (var k = 0; k <= q; k++) {
      ctx.fillStyle = ui.colour(D.attn_lut, A[q * n + k]); ctx.fillRect(4 * k, 4 * q, 4, 4);
    }
    ctx.fillStyle = D.boundary_colour;
    D.boundaries.forEach(function (b) { ctx.fillRect(4 * b - 0.5, 0, 1, 4 * n); ctx.fillRect(0, 4 * b - 0.5, 4 * n, 1); });
  }

  function describeHead(v, c, name, A, step) {  // the pattern in words: induction and previous-token scores
    var n = v.D.seq_len, prev = 0, ind = api.inductionScore(A, v.D.tokens);
    for (var q = 1; q < n; q++) prev += A[q * n + q - 1];
    var words = "attention pattern of head " + name + " at step " + step + ": induction score " +
                (isNaN(ind) ? "n/a" : ind.toFixed(2)) + ", previous-token score " + (prev / Math.max(n - 1, 1)).toFixed(2);
    c.setAttribute("aria-label", words);
    c.title = words;
  }

  function render(v) {
    var D = v.D, i = parseInt(v.range.value, 10), step = D.steps[i], a = stepBytes(v, i), n = D.seq_len;
    v.range.setAttribute("aria-valuetext", "step " + step + ", checkpoint " + (i + 1) + " of " + D.steps.length);
    v.step.textContent = step;
    v.index.textContent = i + 1;
    v.loss.textContent = D.loss[i].toFixed(3);
    v.lossbar.style.width = (100 * Math.min(D.loss[i] / (1.1 * D.uniform), 1)).toFixed(1) + "%";
    v.canvases.forEach(function (c, h) {
      var A = fullPattern(a, h * n * (n + 1) / 2, n);
      drawHead(v, c, A);
      describeHead(v, c, D.heads[h], A, step);
    });
    var row = D.example_loss[i];
    for (var p = 0; p < row.length; p++) {
      v.bars.children[p].style.height = (100 * Math.min(row[p] / D.bar_top, 1)).toFixed(1) + "%";
      v.bars.children[p].title = "predicting position " + (p + 1) + " (token " + D.tokens[p + 1] + (p + 1 > D.boundaries[1] ? ", second copy" : "") +
                                 "): " + row[p].toFixed(2) + " nats";
    }
    v.mark.setAttribute("cx", v.stepX(step).toFixed(2)); v.mark.setAttribute("data-step", step); v.mark.setAttribute("cy", D.loss[i]);
    v.live.textContent = "Step " + step + " (checkpoint " + (i + 1) + " of " + D.steps.length + "): loss on the repeated half " +
                         D.loss[i].toFixed(3) + " nats.";
    ui.bump(v.root);
  }

  api.widgets.checkpointSlider = function checkpointSlider(root, config) {
    var v = {root: root, D: config, P: ui.start(root, "checkpoint slider"), decoded: {}};
    controls(v);
    v.live = ui.liveRegion(root, v.P);
    var charts = el("div", {"class": "mlt-row mll-built"}, root);
    lossCurve(v, charts);
    positionBars(v, charts);
    headGrid(v);
    v.range.addEventListener("input", function () { render(v); });
    render(v);
    root.setAttribute("data-ready", "1");
  };
})();
