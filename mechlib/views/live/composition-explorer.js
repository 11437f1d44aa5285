/* composition-explorer.js: the composition explorer (chapters 2-4): the reader picks a sender,
 * a receiver and a kind (Q, K, V) and reads the pair's composition score against the random
 * baseline, with the baseline's histogram and the composed circuit's singular values. The
 * weights are fixed, so every number was computed in Python. Needs ui.js.
 *
 * window.mechlibLive.widgets.compositionExplorer(root, config); config: {pairs: {"s>r": {Q|K|V:
 * {score, z, sv}}}, heads, n_heads, d_head, baseline: {mean, std, edges, counts}, sender, receiver, kind}
 */
(function () {
  "use strict";
  var api = window.mechlibLive;
  if (!api || !api.ui) throw new Error("mechlibLive: load model.js and ui.js before composition-explorer.js");
  if (api.widgets.compositionExplorer) return;
  var ui = api.ui, el = ui.el, svgEl = ui.svgEl;

  function form(v) {
    var box = el("div", {"class": "mll-built mll-calc"}, v.root), config = v.config, P = v.P;
    v.sSel = el("select", {id: P + "-sender"}, el("label", {}, box, "sender "));
    v.rSel = el("select", {id: P + "-receiver"}, el("label", {}, box, "receiver "));
    var kBox = el("span", {role: "radiogroup", "aria-label": "kind of composition"}, box);
    v.kinds = {};
    ["Q", "K", "V"].forEach(function (k) {
      var lab = el("label", {}, kBox);
      v.kinds[k] = el("input", {type: "radio", name: P + "-kind", id: P + "-kind-" + k, value: k}, lab);
      ui.text(lab, " " + k + "-composition");
      v.kinds[k].checked = k === config.kind;
    });
    var pairs = Object.keys(config.pairs);
    config.heads.filter(function (h) { return pairs.some(function (p) { return p.split(">")[0] === h; }); })
      .forEach(function (h) { el("option", {value: h}, v.sSel, h); });
    v.sSel.value = config.sender;
  }

  function fillReceivers(v) {
    var s = v.sSel.value, keep = v.rSel.value;
    v.rSel.innerHTML = "";
    v.config.heads.forEach(function (h) { if ((s + ">" + h) in v.config.pairs) el("option", {value: h}, v.rSel, h); });
    if ((s + ">" + keep) in v.config.pairs) v.rSel.value = keep;
  }

  function scoreText(v, kind, d) {
    var b = v.config.baseline;
    v.result.innerHTML = "";
    ui.text(v.result, kind + "-composition score of " + v.sSel.value + " \u2192 " + v.rSel.value + ": ");
    el("b", {id: v.P + "-score"}, v.result, d.score.toFixed(3));
    ui.text(v.result, ", " + Math.abs(d.z).toFixed(1) + " standard deviations " + (d.z >= 0 ? "above" : "below") +
            " the random baseline (mean " + b.mean.toFixed(3) + ", SD " + b.std.toFixed(4) + ").");
  }

  function histogram(svg, b, score) {  // the baseline's histogram and this pair's score
    var x0 = 40, y0 = 150, w = 290, h = 130, lo = Math.min(b.edges[0], score), hi = Math.max(b.edges[b.edges.length - 1], score);
    var pad = (hi - lo) * 0.05, X = function (x) { return x0 + w * (x - lo + pad) / (hi - lo + 2 * pad); };
    var top = Math.max.apply(null, b.counts);
    svg.innerHTML = "";
    b.counts.forEach(function (c, i) {
      svgEl(svg, "rect", {x: X(b.edges[i]), y: y0 - h * c / top, width: Math.max(X(b.edges[i + 1]) - X(b.edges[i]) - 0.5, 0.5),
                          height: h * c / top, fill: "#aaa"});
    });
    svgEl(svg, "line", {x1: X(score), x2: X(score), y1: y0, y2: y0 - h, stroke: "#d62728", "stroke-width": 2});
    [lo, hi].forEach(function (x, i) {
      svgEl(svg, "text", {x: X(x), y: y0 + 12, "text-anchor": i ? "end" : "start", "font-size": "10"}, x.toFixed(3));
    });
    ui.axes(svg, x0, y0, w, h, "composition score", "random pairs");
    svg.setAttribute("aria-label", "histogram of random scores with this pair's score " + score.toFixed(3));
  }

  function spectrum(svg, sv) {  // the composed circuit's singular values
    var x0 = 40, y0 = 150, w = 290, h = 130, n = sv.length, smax = sv[0] || 1, bw = w / n;
    svg.innerHTML = "";
    sv.forEach(function (s, i) {
      var bh = h * s / smax;
      ui.bar(svg, x0 + i * bw + bw * 0.1, y0 - bh, bw * 0.8, bh, "#1f77b4", "singular value " + (i + 1) + ": " + s.toFixed(4));
    });
    svgEl(svg, "text", {x: x0 - 4, y: y0 - h + 4, "text-anchor": "end", "font-size": "10"}, smax.toFixed(2));
    svgEl(svg, "text", {x: x0 - 4, y: y0 + 4, "text-anchor": "end", "font-size": "10"}, "0");
    ui.axes(svg, x0, y0, w, h, "index (1 to " + n + ")", "singular value");
    svg.setAttribute("aria-label", "singular values: " + sv.map(function (s) { return s.toFixed(3); }).join(", "));
  }

  api.widgets.compositionExplorer = function compositionExplorer(root, config) {
    var v = {root: root, config: config, P: ui.start(root, "composition explorer")};
    form(v);
    v.result = el("div", {"class": "mll-built", id: v.P + "-result", role: "status", "aria-live": "polite", style: "margin:0.5em 0"}, root);
    var charts = el("div", {"class": "mll-built mlt-row"}, root);
    var hist = ui.chart(charts, "0 0 340 180", "grey: the scores of random pairs of rank-" + config.d_head + " matrices; red: this pair");
    var spec = ui.chart(charts, "0 0 340 180", "singular values of the composed circuit (only " + config.d_head + " can be non-zero)");
    function update() {
      var kind = ["Q", "K", "V"].filter(function (k) { return v.kinds[k].checked; })[0];
      var d = config.pairs[v.sSel.value + ">" + v.rSel.value][kind];
      scoreText(v, kind, d);
      histogram(hist, config.baseline, d.score);
      spectrum(spec, d.sv);
      ui.bump(root);
    }
    ["Q", "K", "V"].forEach(function (k) { v.kinds[k].addEventListener("change", update); });
    v.sSel.addEventListener("change", function () { fillReceivers(v); update(); });
    v.rSel.addEventListener("change", update);
    fillReceivers(v);
    v.rSel.value = config.receiver;
    update();
    root.setAttribute("data-ready", "1");
  };
})();
