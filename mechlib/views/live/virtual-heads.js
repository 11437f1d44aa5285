/* virtual-heads.js: how many virtual heads? (chapter 7): the reader sets layers L, heads per
 * layer H and chain length k and reads H^k C(L, k) chains of k heads (model.js's
 * countVirtualHeads, exact integers), the total over every length (H + 1)^L - 1, of which
 * (H + 1)^L - 1 - LH (two heads or more) are virtual heads, and a bar chart of every length.
 * A chain of one head is the head itself, not a virtual head (glossary). Needs ui.js.
 *
 * window.mechlibLive.widgets.virtualHeadCalculator(root, {n_layers, n_heads, length})
 */
(function () {
  "use strict";
  var api = window.mechlibLive;
  if (!api || !api.ui) throw new Error("mechlibLive: load model.js and ui.js before virtual-heads.js");
  if (api.widgets.virtualHeadCalculator) return;
  var ui = api.ui, el = ui.el, svgEl = ui.svgEl;
  var FIELDS = [["n_layers", "layers L", 1, 96], ["n_heads", "heads per layer H", 1, 256], ["length", "chain length k", 1, 96]];

  function bigText(b) {
    var s = b.toString();
    if (s.length <= 15) return s.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return s[0] + "." + s.slice(1, 3) + " \u00d7 10^" + (s.length - 1);
  }

  function log10Big(b) {
    var s = b.toString();
    return s.length - 1 + Math.log10(+("0." + s.slice(0, 15)) * 10);
  }

  function readNumber(input) {
    var v = +input.value;
    if (!Number.isInteger(v) || v < +input.min || v > +input.max)
      throw new Error(input.parentNode.textContent.trim() + " must be a whole number from " + input.min + " to " + input.max);
    return v;
  }

  function countText(v, L, H, k) {
    var total = (BigInt(H) + BigInt(1)) ** BigInt(L) - BigInt(1), virtual = total - BigInt(L) * BigInt(H);
    v.result.innerHTML = "";
    el("b", {id: v.P + "-count"}, v.result, bigText(api.countVirtualHeads(L, H, k)));
    ui.text(v.result, " chains of " + k + (k === 1 ? " head" : " heads") + " (H^k \u00d7 C(L, k) = " + H + "^" + k + " \u00d7 C(" + L + ", " + k + "))" +
            (k > L ? ": a chain needs a different layer for each head" :
             k === 1 ? ": the single heads themselves, not virtual heads" : ", each one virtual head") +
            "; all lengths together: " + bigText(total) + " chains ((H + 1)^L \u2212 1), of which " +
            bigText(virtual) + " of two heads or more are virtual heads ((H + 1)^L \u2212 1 \u2212 LH).");
  }

  function countChart(svg, L, H, k) {  // log10 of the count of every chain length, the chosen one red
    var logs = [], maxLog = 1, x0 = 40, y0 = 160, w = 310, h = 140, bw = w / L;
    for (var j = 1; j <= L; j++) { var c = log10Big(api.countVirtualHeads(L, H, j)); logs.push(c); maxLog = Math.max(maxLog, c); }
    svg.innerHTML = "";
    svgEl(svg, "line", {x1: x0, y1: y0, x2: x0 + w, y2: y0, stroke: "#555"});
    svgEl(svg, "line", {x1: x0, y1: y0, x2: x0, y2: y0 - h, stroke: "#555"});
    logs.forEach(function (c, i) {
      var bh = h * c / maxLog;
      ui.bar(svg, x0 + i * bw + bw * 0.1, y0 - bh, Math.max(bw * 0.8, 0.5), bh, i + 1 === k ? "#d62728" : "#1f77b4", "length " + (i + 1) + ": 10^" + c.toFixed(1));
    });
    [0, maxLog / 2, maxLog].forEach(function (c) {
      svgEl(svg, "text", {x: x0 - 4, y: y0 - h * c / maxLog + 4, "text-anchor": "end", "font-size": "10"}, "10^" + c.toFixed(0));
    });
    svgEl(svg, "text", {x: x0 + w / 2, y: y0 + 25, "text-anchor": "middle", "font-size": "11"}, "chain length k (1 to " + L + ")");
    svgEl(svg, "text", {x: x0 + bw / 2, y: y0 + 12, "text-anchor": "middle", "font-size": "10"}, "1");
    svgEl(svg, "text", {x: x0 + w - bw / 2, y: y0 + 12, "text-anchor": "middle", "font-size": "10"}, String(L));
    svgEl(svg, "text", {x: 10, y: y0 - h / 2, "font-size": "11", "text-anchor": "middle",
                        transform: "rotate(-90 10 " + (y0 - h / 2) + ")"}, "number of chains");
    svg.setAttribute("aria-label", "number of chains of heads by length (2 or more: virtual heads), largest 10^" + maxLog.toFixed(0) +
                     " at length " + (logs.indexOf(Math.max.apply(null, logs)) + 1));
  }

  api.widgets.virtualHeadCalculator = function virtualHeadCalculator(root, config) {
    var v = {root: root, P: ui.start(root, "virtual-head calculator"), inputs: {}};
    var form = el("div", {"class": "mll-built mll-calc"}, root);
    FIELDS.forEach(function (f) {
      v.inputs[f[0]] = el("input", {type: "number", id: v.P + "-" + f[0], min: String(f[2]), max: String(f[3]),
                                    step: "1", value: String(config[f[0]])}, el("label", {}, form, f[1] + " "));
      v.inputs[f[0]].addEventListener("input", update);
    });
    v.result = el("div", {"class": "mll-built", id: v.P + "-result", role: "status", "aria-live": "polite", style: "margin:0.5em 0"}, root);
    var svg = svgEl(root, "svg", {viewBox: "0 0 360 190", "class": "mll-built mll-chart", role: "img"});
    el("div", {"class": "mll-built mlt-axis"}, root,
       "bars: the number of chains of each length for these L and H (log scale); length 1 is the single heads, 2 or more are virtual heads; the chosen length is red");
    function update() {
      var L, H, k;
      try { L = readNumber(v.inputs.n_layers); H = readNumber(v.inputs.n_heads); k = readNumber(v.inputs.length); }
      catch (e) { v.result.textContent = e.message; return; }
      countText(v, L, H, k);
      countChart(svg, L, H, k);
      ui.bump(root);
    }
    update();
    root.setAttribute("data-ready", "1");
  };
})();
