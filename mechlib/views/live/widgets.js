/* widgets.js: the live views, one per panel, drawn from the forward pass of model.js.
 *
 * Each view is window.mechlibLive.widgets.<name>(root, config): it builds its controls and
 * readouts inside `root` (whose id is "<prefix>-root"; every element id starts with the
 * prefix) from `config`, the JSON the Python entry point wrote (mechlib.views.live), and
 * sets root's data-ready when it has drawn, and counts redraws in data-updates. loader.js
 * mounts them; live.css styles them. Needs model.js loaded first.
 *
 *   headToggle, pathAblation, termPicker  the model run in the page (chapters 3-6)
 *   virtualHeadCalculator                 counting virtual heads (chapter 7)
 *   compositionExplorer                   precomputed composition scores (chapters 2-4)
 *   checkpointSlider                      patterns and losses along training (The Circuit Forms)
 */
(function () {
  "use strict";
  var api = window.mechlibLive;
  if (!api) throw new Error("mechlibLive: load model.js before widgets.js");
  if (api.widgets.headToggle) return;  // loaded twice on one page: keep the first
  var SVG = "http://www.w3.org/2000/svg";

  // ------------------------------------------------------------------ DOM helpers
  function el(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  function svgEl(parent, tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    parent.appendChild(e);
    return e;
  }

  function text(parent, s) { parent.appendChild(document.createTextNode(s)); }

  function colour(lut, v) {
    v = Math.min(Math.max(v, 0), 1);
    return lut[Math.min(Math.floor(v * lut.length), lut.length - 1)];
  }

  // "w-root" -> "w"; removes the no-JavaScript note and whatever an earlier mount built
  function start(root) {
    var nojs = root.querySelector(".mll-nojs");
    if (nojs) root.removeChild(nojs);
    Array.prototype.forEach.call(root.querySelectorAll(".mll-built"), function (e) { e.parentNode.removeChild(e); });
    return root.id.replace(/-root$/, "");
  }

  function bump(root) { root.setAttribute("data-updates", String(+(root.getAttribute("data-updates") || 0) + 1)); }

  function colourBar(parent, lut, low, high) {
    text(parent, low);
    el("span", {"class": "mll-bar", style: "background:linear-gradient(to right," + lut.join(",") + ")"}, parent);
    text(parent, high);
  }

  // ------------------------------------------------------------------ controls of the model views
  // Each returns a function that reads the controls: the options of the next run.

  // The head toggle: a checkbox per head (ticked = on).
  function headControls(root, ctx) {
    var P = ctx.P, H = ctx.H, heads = ctx.heads;
    var box = el("fieldset", {"class": "mlt-heads mll-built"}, root);
    el("legend", {}, box, "Heads (ticked = on; untick to switch a head off)");
    var boxes = heads.map(function (name, i) {
      if (i % H === 0) el("div", {}, box, "layer " + Math.floor(i / H) + ": ");
      var lab = el("label", {}, box.lastChild);
      var cb = el("input", {type: "checkbox", id: P + "-cb-" + i, "data-head": name}, lab);
      cb.checked = (ctx.config.heads_off || []).indexOf(name) < 0;
      text(lab, " " + name);
      cb.addEventListener("change", ctx.changed);
      return cb;
    });
    var btns = el("div", {style: "margin-top:0.3em"}, box);
    [["all-on", "all on", true], ["all-off", "all off", false]].forEach(function (b) {
      el("button", {type: "button", id: P + "-" + b[0]}, btns, b[1]).addEventListener("click", function () {
        boxes.forEach(function (cb) { cb.checked = b[2]; }); ctx.changed(); });
    });
    return function () {
      return {heads_off: heads.filter(function (n, i) { return !boxes[i].checked; })};
    };
  }

  function checkGroup(box, ctx, label, names, ids, picked) {
    var row = el("div", {}, box, label + ": ");
    return names.map(function (name) {
      var lab = el("label", {}, row);
      var cb = el("input", {type: "checkbox", id: ctx.P + "-" + ids + "-" + name.replace(".", "-"), "data-name": name}, lab);
      cb.checked = (picked || []).indexOf(name) >= 0;
      text(lab, " " + name);
      cb.addEventListener("change", ctx.changed);
      return cb;
    });
  }

  // The path ablation: senders, receivers and inputs (Q, K, V); every sender is cut from the
  // ticked inputs of every receiver in a later layer.
  function pathControls(root, ctx) {
    var H = ctx.H, heads = ctx.heads, L = heads.length / H, cut = ctx.config.cut || {};
    var box = el("fieldset", {"class": "mlt-heads mll-built"}, root);
    el("legend", {}, box, "Cut paths: remove the senders' output from these inputs of the receivers");
    var senders = checkGroup(box, ctx, "senders", heads.slice(0, (L - 1) * H), "send", cut.senders);
    var receivers = checkGroup(box, ctx, "receivers", heads.slice(H), "recv", cut.receivers);
    var kinds = checkGroup(box, ctx, "inputs of the receivers", ["Q", "K", "V"], "kind", cut.kinds);
    var btns = el("div", {style: "margin-top:0.3em"}, box);
    el("button", {type: "button", id: ctx.P + "-uncut"}, btns, "cut nothing").addEventListener("click", function () {
      kinds.forEach(function (cb) { cb.checked = false; }); ctx.changed(); });
    var count = el("span", {"class": "mlt-axis", id: ctx.P + "-npaths"}, btns);
    function picked(list) { return list.filter(function (cb) { return cb.checked; }).map(function (cb) { return cb.getAttribute("data-name"); }); }
    return function () {
      var paths = [];
      picked(senders).forEach(function (s) {
        picked(receivers).forEach(function (r) {
          if (+s.split(".")[0] < +r.split(".")[0]) picked(kinds).forEach(function (k) { paths.push([s, r, k]); });
        });
      });
      count.textContent = paths.length + " path" + (paths.length === 1 ? "" : "s") + " cut";
      return {paths_off: paths};
    };
  }

  // The term picker: a checkbox per term of the path expansion, grouped by kind.
  function termControls(root, ctx) {
    var ex = api.expandRaw(ctx.config.model, ctx.config.tokens), boxes = [], off = ctx.config.terms_off || [];
    var box = el("fieldset", {"class": "mlt-heads mll-built"}, root);
    el("legend", {}, box, "Terms of the path expansion (ticked = kept in the logits)");
    [["direct", "direct path"], ["single", "single-head terms"], ["virtual", "virtual-head terms"], ["bias", "bias terms"]]
      .forEach(function (g) {
        var names = ex.names.filter(function (n) { return ex.kinds[n] === g[0]; });
        if (!names.length) return;
        var row = el("div", {"class": "mll-group"}, box);
        el("b", {}, row, g[1] + " ");
        var group = names.map(function (name) {
          var lab = el("label", {}, row);
          var cb = el("input", {type: "checkbox", id: ctx.P + "-term-" + name.replace(/[^0-9a-z]+/g, "_"), "data-term": name}, lab);
          cb.checked = off.indexOf(name) < 0;
          text(lab, " " + name);
          cb.addEventListener("change", ctx.changed);
          boxes.push(cb);
          return cb;
        });
        [["all", true], ["none", false]].forEach(function (b) {
          el("button", {type: "button", id: ctx.P + "-" + g[0] + "-" + b[0]}, row, b[0]).addEventListener("click", function () {
            group.forEach(function (cb) { cb.checked = b[1]; }); ctx.changed(); });
        });
      });
    return function () {
      return {terms: boxes.filter(function (cb) { return cb.checked; }).map(function (cb) { return cb.getAttribute("data-term"); })};
    };
  }

  // ------------------------------------------------------------------ the model views: parts
  // A view `v` holds the config, the model's shape, the elements and the state of one widget.

  function sequenceBox(v) {
    var C = v.C, P = v.P, box = el("div", {"class": "mll-seq mll-built"}, v.root);
    el("label", {"for": P + "-tokens"}, box, "Tokens (integers 0 to " + (C.d_vocab - 1) + ", at most " + C.n_ctx + "): ");
    v.input = el("input", {id: P + "-tokens", type: "text", inputmode: "numeric", spellcheck: "false",
                           autocomplete: "off", "class": "mll-tokens"}, box);
    v.apply = el("button", {type: "button", id: P + "-apply"}, box, "run on these tokens");
    v.draw = el("button", {type: "button", id: P + "-draw"}, box, "new repeated sequence");
    v.msg = el("div", {id: P + "-msg", "class": "mlt-axis", role: "status", "aria-live": "polite"}, box);
  }

  function lossBox(v) {
    var box = el("div", {"class": "mll-built", style: "margin:0.6em 0"}, v.root), line = el("div", {}, box);
    text(line, "Loss on the repeated tokens: ");
    v.lossValue = el("b", {id: v.P + "-loss"}, line);
    text(line, " nats ");
    v.barFill = el("div", {}, el("span", {"class": "mlt-lossbar"}, line));
    v.lossRefs = el("div", {"class": "mlt-axis", id: v.P + "-loss-refs"}, box);
  }

  function patternBox(v, row) {
    var P = v.P, box = el("div", {"class": "mll-pattern"}, row);
    v.select = el("select", {id: P + "-head"}, el("label", {}, box, "attention pattern of head "));
    v.heads.forEach(function (name) { el("option", {value: name}, v.select, name); });
    v.select.value = v.heads.indexOf(v.config.pattern_head) >= 0 ? v.config.pattern_head : v.heads[v.H];
    v.table = el("table", {"class": "mlt-attn mll-attn", id: P + "-attn", tabindex: "0",
                           "aria-label": "attention pattern: arrow keys move between cells"}, el("div", {"class": "mll-scroll"}, box));
    el("div", {"class": "mlt-axis"}, box, "rows: query position, columns: key position (attended to); " +
       "orange lines: where a repeated segment and its copy begin; hover a cell, or focus the grid and use the arrow keys");
    v.readout = el("div", {id: P + "-readout", "class": "mll-readout", "aria-live": "polite"}, box, "\u00a0");
    colourBar(el("div", {"class": "mlt-axis"}, box, "attention weight: "), v.config.attn_lut, "0", "1");
  }

  function predictionBox(v, row) {
    var box = el("div", {"class": "mll-preds"}, row);
    el("div", {}, box, "next-token predictions (top guess and the probability of the true next token)");
    v.predWrap = el("div", {"class": "mll-scroll"}, box);
    v.preds = el("table", {"class": "mll-predtable", id: v.P + "-preds"}, v.predWrap);
    v.predMore = el("div", {"class": "mlt-axis", id: v.P + "-preds-more"}, box, "");
    colourBar(el("div", {"class": "mlt-axis"}, box, "framed: the repeated tokens the loss is taken on; bold: the top guess is right; p(next): "),
              v.config.prob_lut, "0", "1");
  }

  function scoreBox(v, row) {  // every head's induction score, above the pattern and predictions
    var box = el("div", {"class": "mll-built mll-scroll", style: "margin:0.4em 0"}), scores = el("table", {"class": "mll-predtable", id: v.P + "-scores"}, box);
    var srow = el("tr", {}, scores), hrow;
    el("th", {}, srow, "induction score on this sequence");
    v.scoreCells = v.heads.map(function (name) { return el("td", {title: "head " + name}, srow); });
    hrow = el("tr", {}, scores);
    el("th", {}, hrow, "head");
    v.heads.forEach(function (name) { el("td", {}, hrow, name); });
    v.root.insertBefore(box, row);
  }

  // [p, p + h] when the sequence is p tokens, then a segment of h tokens twice (the longest such
  // segment), else []: where the pattern's orange lines go, as in the book's static figures
  function repeatBounds(t) {
    for (var h = Math.floor(t.length / 2); h >= 2; h--) {
      var p = t.length - 2 * h, same = true;
      for (var i = 0; i < h && same; i++) same = t[p + i] === t[p + h + i];
      if (same) return p > 0 ? [p, p + h] : [p + h];
    }
    return [];
  }

  function buildPattern(v) {  // the pattern's grid, sized to the sequence
    var n = v.state.tokens.length, bounds = repeatBounds(v.state.tokens), q, k, head = el("tr", {}, v.table);
    el("td", {"class": "mlt-tick"}, head);
    for (k = 0; k < n; k++) el("th", {"class": "mlt-tick"}, head, k % 5 === 0 ? String(k) : "");
    for (q = 0; q < n; q++) {
      var tr = el("tr", {}, v.table), rowCells = [];
      el("td", {"class": "mlt-tick"}, tr, q % 5 === 0 ? String(q) : "");
      for (k = 0; k < n; k++) {
        var td = el("td", {"data-q": q, "data-k": k}, tr);
        var top = k <= q && bounds.indexOf(q) >= 0, left = k <= q && bounds.indexOf(k) >= 0;
        if (top || left) td.style.boxShadow = "inset " + (left ? "1px " : "0 ") + (top ? "1px " : "0 ") + "0 #ff7f0e";
        rowCells.push(td);
      }
      v.cells.push(rowCells);
    }
  }

  function buildPredictions(v) {
    var t = v.state.tokens, rows = ["position", "token", "top guess", "p(next)"].map(function (name) {
      var tr = el("tr", {}, v.preds); el("th", {}, tr, name); return tr;
    });
    for (var q = 0; q < t.length; q++) {
      el("td", {}, rows[0], String(q));
      el("td", {}, rows[1], String(t[q]));
      var guess = el("td", {}, rows[2]), p = el("td", {}, rows[3]);
      if (v.state.repeat.indexOf(q) >= 0) { guess.className = "mll-rep"; p.className = "mll-rep"; }
      v.predCells.push([guess, p]);
    }
  }

  // f(x), or x.then(f) when x is a promise: the page answers at once, a kernel later
  function after(x, f) { return x && typeof x.then === "function" ? x.then(f) : f(x); }

  // a kernel's answer that failed: said in the view's message line (the page's errors throw)
  function told(v, x) {
    return x && typeof x.then === "function" ? x.catch(function (e) { v.msg.textContent = "Not run: " + e.message; }) : x;
  }

  function lossReferences(v) {  // the loss with every head on, every head off, and a uniform guess
    var t = v.state.tokens, V = v.C.d_vocab, rep = v.state.repeat;
    return after(v.runner.run(t, {}), function (on) {
      return after(v.runner.run(t, {heads_off: v.heads}), function (off) {
        var clean = api.repeatLoss(on.logits, t, rep, V), none = api.repeatLoss(off.logits, t, rep, V);
        v.state.refs = {clean: clean, none: none, uniform: Math.log(V)};
        v.lossRefs.textContent = rep.length
          ? rep.length + " repeated tokens \u00b7 all heads on: " + clean.toFixed(3) + " \u00b7 all heads off: " +
            none.toFixed(3) + " \u00b7 uniform guess: " + v.state.refs.uniform.toFixed(3) + " nats"
          : "this sequence has no repeated pair of tokens, so there is nothing to copy and no loss to show";
      });
    });
  }

  function build(v) {  // everything sized to the current sequence
    v.input.value = v.state.tokens.join(" ");
    v.table.innerHTML = ""; v.cells = [];
    v.preds.innerHTML = ""; v.predCells = [];
    v.state.repeat = api.repeatPositions(v.state.tokens);
    buildPattern(v);
    buildPredictions(v);
    return lossReferences(v);
  }

  // ------------------------------------------------------------------ the model views: updates
  function pattern(v) {
    var i = v.heads.indexOf(v.select.value);
    return v.out.patterns[Math.floor(i / v.H)][i % v.H];
  }

  function drawPattern(v) {
    var A = pattern(v), n = v.out.n;
    for (var q = 0; q < n; q++) for (var k = 0; k <= q; k++) {  // above the diagonal stays blank
      var col = colour(v.config.attn_lut, A[q * n + k]), td = v.cells[q][k];
      if (td.mllColour !== col) { td.style.backgroundColor = col; td.mllColour = col; }  // touch only what changed
    }
    showCell(v);
  }

  // "head 1.2: query 5 (token 2) -> key 2 (token 21): 0.377", when a cell is hovered or reached
  function showCell(v) {
    var c = v.state.cursor, t = v.state.tokens;
    Array.prototype.forEach.call(v.table.querySelectorAll(".mll-cursor"), function (e) { e.classList.remove("mll-cursor"); });
    if (!c || c[0] >= t.length) { v.readout.textContent = "\u00a0"; return; }
    var td = v.cells[c[0]][c[1]];
    td.classList.add("mll-cursor");
    td.title = "query " + c[0] + " (token " + t[c[0]] + ") \u2192 key " + c[1] + " (token " + t[c[1]] + "): " +
               pattern(v)[c[0] * v.out.n + c[1]].toFixed(3);
    v.readout.textContent = "head " + v.select.value + ": " + td.title;
  }

  function run(v) {  // one forward pass with the controls' options (the term picker: a sum of terms)
    var t = v.state.tokens, o = v.options();
    if (!o.terms) return v.runner.run(t, o);
    var ex = api.expandRaw(v.name, t), logits = new Float64Array(t.length * v.C.d_vocab);
    o.terms.forEach(function (name) { var term = ex.terms[name]; for (var i = 0; i < logits.length; i++) logits[i] += term[i]; });
    return {n: t.length, V: v.C.d_vocab, logits: logits, patterns: ex.patterns};
  }

  function showLoss(v) {
    var loss = api.repeatLoss(v.out.logits, v.state.tokens, v.state.repeat, v.C.d_vocab), r = v.state.refs;
    var top = Math.max(r.clean, r.none, r.uniform) * 1.1;
    v.lossValue.textContent = isNaN(loss) ? "n/a" : loss.toFixed(3);
    v.barFill.style.width = (isNaN(loss) ? 0 : Math.min(100, 100 * loss / top)).toFixed(1) + "%";
  }

  function showPredictions(v) {
    var t = v.state.tokens, V = v.C.d_vocab;
    for (var q = 0; q < t.length; q++) {
      var lp = api.logSoftmax(v.out.logits, q, V), best = 0, c = v.predCells[q];
      for (var w = 1; w < lp.length; w++) if (lp[w] > lp[best]) best = w;
      c[0].textContent = String(best);
      if (q + 1 < t.length) {
        var p = Math.exp(lp[t[q + 1]]);
        c[1].textContent = p.toFixed(2);
        c[1].style.backgroundColor = colour(v.config.prob_lut, p);
        c[1].style.color = p < 0.55 ? "white" : "black";
        c[0].style.fontWeight = best === t[q + 1] ? "bold" : "normal";
      } else {
        c[1].textContent = "";
      }
    }
  }

  function showScores(v) {
    v.heads.forEach(function (name, i) {
      var s = api.inductionScore(v.out.patterns[Math.floor(i / v.H)][i % v.H], v.state.tokens), td = v.scoreCells[i];
      td.textContent = isNaN(s) ? "n/a" : s.toFixed(2);
      td.style.backgroundColor = isNaN(s) ? "" : colour(v.config.prob_lut, s);
      td.style.color = isNaN(s) || s >= 0.55 ? "black" : "white";
    });
  }

  function update(v) {
    var seq = v.seq = (v.seq || 0) + 1;
    return told(v, after(run(v), function (out) {
      if (seq !== v.seq) return;  // a later update has started: its result is the one to show
      v.out = out;
      showLoss(v);
      showPredictions(v);
      showScores(v);
      drawPattern(v);
      bump(v.root);
    }));
  }

  function scrollCue(v) {  // after the tables are filled: does the predictions table overflow?
    v.predMore.textContent = v.predWrap.scrollWidth > v.predWrap.clientWidth + 1
      ? "\u2194 scroll the table sideways for the later positions" : "";
  }

  function setTokens(v, t) {
    v.state.tokens = t; v.state.cursor = null;
    return told(v, after(after(build(v), function () { return update(v); }), function () { scrollCue(v); }));
  }

  // ------------------------------------------------------------------ the model views: events
  function parseTokens(v) {
    var C = v.C, parts = v.input.value.trim().split(/[\s,]+/).filter(function (s) { return s.length; });
    if (!parts.length) throw new Error("type at least one token");
    if (parts.length > C.n_ctx) throw new Error("at most " + C.n_ctx + " tokens (the model's context); got " + parts.length);
    return parts.map(function (s) {
      if (!/^\d+$/.test(s) || +s >= C.d_vocab) throw new Error("tokens are integers from 0 to " + (C.d_vocab - 1) + "; got " + JSON.stringify(s));
      return +s;
    });
  }

  function random(v, nMax) {  // a small LCG: the same draws on every page load
    v.state.seed = (Math.imul(v.state.seed, 1664525) + 1013904223) >>> 0;
    return Math.floor(v.state.seed / 4294967296 * nMax);
  }

  function bindSequence(v) {
    v.apply.addEventListener("click", function () {
      try { setTokens(v, parseTokens(v)); v.msg.textContent = ""; } catch (e) { v.msg.textContent = "Not run: " + e.message; }
    });
    v.input.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); v.apply.click(); } });
    v.draw.addEventListener("click", function () {
      var t = [], seg = [], i;
      for (i = 0; i < v.config.prefix_len; i++) t.push(random(v, v.C.d_vocab));
      for (i = 0; i < v.config.half_len; i++) seg.push(random(v, v.C.d_vocab));
      v.msg.textContent = "";
      setTokens(v, t.concat(seg, seg));
    });
  }

  function bindPattern(v) {
    v.select.addEventListener("change", function () { drawPattern(v); });
    v.table.addEventListener("mouseover", function (e) {
      var td = e.target.closest("td[data-q]");
      if (!td || +td.getAttribute("data-k") > +td.getAttribute("data-q")) return;
      v.state.cursor = [+td.getAttribute("data-q"), +td.getAttribute("data-k")]; showCell(v);
    });
    v.table.addEventListener("focus", function () { if (!v.state.cursor) { v.state.cursor = [0, 0]; showCell(v); } });
    v.table.addEventListener("keydown", function (e) {
      var d = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]}[e.key];
      if (!d) return;
      e.preventDefault();
      var n = v.state.tokens.length, c = v.state.cursor || [0, 0];
      var q = Math.min(Math.max(c[0] + d[0], 0), n - 1), k = Math.min(Math.max(c[1] + d[1], 0), q);
      v.state.cursor = [q, k]; showCell(v);
    });
  }

  // config: {model, tokens, prefix_len, half_len, pattern_head, attn_lut, prob_lut, seed} and the
  // controls' own (heads_off; cut: {senders, receivers, kinds}; terms_off)
  // The forward pass in the page (model.js, weights config.model)
  function pageRunner(name) {
    return {info: api.model(name), run: function (t, o) { o.model = name; return api.runRaw(t, o); }};
  }

  // runner (optional): {info: {config, heads}, run(tokens, {heads_off}) -> {n, logits, patterns} or a
  // promise of it}, e.g. a kernel's (kernel.js); default: the forward pass in the page
  function mountModelView(root, config, controls, runner) {
    runner = runner || pageRunner(config.model);
    var info = runner.info, v = {root: root, config: config, C: info.config, H: info.config.n_heads, runner: runner,
      heads: info.heads, name: config.model, P: start(root), cells: [], predCells: [], out: null,
      state: {tokens: config.tokens.slice(), seed: config.seed >>> 0 || 1, cursor: null, refs: null}};
    sequenceBox(v);
    v.options = controls(root, {P: v.P, H: v.H, heads: v.heads, config: config, changed: function () { update(v); }});
    lossBox(v);
    var row = el("div", {"class": "mlt-row mll-built"}, root);
    patternBox(v, row);
    predictionBox(v, row);
    scoreBox(v, row);
    bindSequence(v);
    bindPattern(v);
    return after(setTokens(v, v.state.tokens), function () { root.setAttribute("data-ready", "1"); });
  }

  function headToggle(root, config, runner) { return mountModelView(root, config, headControls, runner); }
  function pathAblation(root, config) { return mountModelView(root, config, pathControls); }
  function termPicker(root, config) { return mountModelView(root, config, termControls); }

  // ------------------------------------------------------------------ charts
  function chart(parent, viewBox, label) {  // an SVG chart and its caption
    var box = el("div", {"class": "mll-chartbox"}, parent), svg = svgEl(box, "svg", {viewBox: viewBox, "class": "mll-chart", role: "img"});
    if (label) el("div", {"class": "mlt-axis"}, box, label);
    return svg;
  }

  function axes(svg, x0, y0, w, h, xlabel, ylabel) {
    svgEl(svg, "line", {x1: x0, y1: y0, x2: x0 + w, y2: y0, stroke: "#555"});
    svgEl(svg, "line", {x1: x0, y1: y0, x2: x0, y2: y0 - h, stroke: "#555"});
    svgEl(svg, "text", {x: x0 + w / 2, y: y0 + 28, "text-anchor": "middle", "font-size": "11"}, xlabel);
    svgEl(svg, "text", {x: 10, y: y0 - h / 2, "font-size": "11", "text-anchor": "middle",
                        transform: "rotate(-90 10 " + (y0 - h / 2) + ")"}, ylabel);
  }

  function bar(svg, x, y, w, h, fill, title) {
    svgEl(svg, "rect", {x: x, y: y, width: w, height: h, fill: fill}).appendChild(document.createElementNS(SVG, "title")).textContent = title;
  }

  // ------------------------------------------------------------------ virtual-head calculator (chapter 7)
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
    var total = (BigInt(H) + BigInt(1)) ** BigInt(L) - BigInt(1);
    v.result.innerHTML = "";
    el("b", {id: v.P + "-count"}, v.result, bigText(api.countVirtualHeads(L, H, k)));
    text(v.result, " virtual heads of length " + k + " (H^k \u00d7 C(L, k) = " + H + "^" + k + " \u00d7 C(" + L + ", " + k + "))" +
         (k > L ? ": a chain needs a different layer for each head" : "") + "; all lengths together: " +
         bigText(total) + " ((H + 1)^L \u2212 1).");
  }

  function countChart(svg, L, H, k) {  // log10 of the count of every chain length, the chosen one red
    var logs = [], maxLog = 1, x0 = 40, y0 = 160, w = 310, h = 140, bw = w / L;
    for (var j = 1; j <= L; j++) { var c = log10Big(api.countVirtualHeads(L, H, j)); logs.push(c); maxLog = Math.max(maxLog, c); }
    svg.innerHTML = "";
    svgEl(svg, "line", {x1: x0, y1: y0, x2: x0 + w, y2: y0, stroke: "#555"});
    svgEl(svg, "line", {x1: x0, y1: y0, x2: x0, y2: y0 - h, stroke: "#555"});
    logs.forEach(function (c, i) {
      var bh = h * c / maxLog;
      bar(svg, x0 + i * bw + bw * 0.1, y0 - bh, Math.max(bw * 0.8, 0.5), bh, i + 1 === k ? "#d62728" : "#1f77b4", "length " + (i + 1) + ": 10^" + c.toFixed(1));
    });
    [0, maxLog / 2, maxLog].forEach(function (c) {
      svgEl(svg, "text", {x: x0 - 4, y: y0 - h * c / maxLog + 4, "text-anchor": "end", "font-size": "10"}, "10^" + c.toFixed(0));
    });
    svgEl(svg, "text", {x: x0 + w / 2, y: y0 + 25, "text-anchor": "middle", "font-size": "11"}, "chain length k (1 to " + L + ")");
    svgEl(svg, "text", {x: x0 + bw / 2, y: y0 + 12, "text-anchor": "middle", "font-size": "10"}, "1");
    svgEl(svg, "text", {x: x0 + w - bw / 2, y: y0 + 12, "text-anchor": "middle", "font-size": "10"}, String(L));
    svgEl(svg, "text", {x: 10, y: y0 - h / 2, "font-size": "11", "text-anchor": "middle",
                        transform: "rotate(-90 10 " + (y0 - h / 2) + ")"}, "number of virtual heads");
    svg.setAttribute("aria-label", "number of virtual heads by chain length, largest 10^" + maxLog.toFixed(0));
  }

  // config: {n_layers, n_heads, length}: n_heads^length * C(n_layers, length) (mechlib.count_virtual_heads)
  function virtualHeadCalculator(root, config) {
    var v = {root: root, P: start(root), inputs: {}};
    var form = el("div", {"class": "mll-built mll-calc"}, root);
    [["n_layers", "layers L", 1, 96], ["n_heads", "heads per layer H", 1, 256], ["length", "chain length k", 1, 96]]
      .forEach(function (f) {
        v.inputs[f[0]] = el("input", {type: "number", id: v.P + "-" + f[0], min: String(f[2]), max: String(f[3]),
                                      step: "1", value: String(config[f[0]])}, el("label", {}, form, f[1] + " "));
        v.inputs[f[0]].addEventListener("input", update);
      });
    v.result = el("div", {"class": "mll-built", id: v.P + "-result", "aria-live": "polite", style: "margin:0.5em 0"}, root);
    var svg = svgEl(root, "svg", {viewBox: "0 0 360 190", "class": "mll-built mll-chart", role: "img"});
    el("div", {"class": "mll-built mlt-axis"}, root,
       "bars: the number of virtual heads of each chain length for these L and H (log scale); the chosen length is red");
    function update() {
      var L, H, k;
      try { L = readNumber(v.inputs.n_layers); H = readNumber(v.inputs.n_heads); k = readNumber(v.inputs.length); }
      catch (e) { v.result.textContent = e.message; return; }
      countText(v, L, H, k);
      countChart(svg, L, H, k);
      bump(root);
    }
    update();
    root.setAttribute("data-ready", "1");
  }

  // ------------------------------------------------------------------ composition explorer (chapters 2-4)
  function explorerForm(v) {
    var form = el("div", {"class": "mll-built mll-calc"}, v.root), config = v.config, P = v.P;
    v.sSel = el("select", {id: P + "-sender"}, el("label", {}, form, "sender "));
    v.rSel = el("select", {id: P + "-receiver"}, el("label", {}, form, "receiver "));
    var kBox = el("span", {role: "radiogroup", "aria-label": "kind of composition"}, form);
    v.kinds = {};
    ["Q", "K", "V"].forEach(function (k) {
      var lab = el("label", {}, kBox);
      v.kinds[k] = el("input", {type: "radio", name: P + "-kind", id: P + "-kind-" + k, value: k}, lab);
      text(lab, " " + k + "-composition");
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
    text(v.result, kind + "-composition score of " + v.sSel.value + " \u2192 " + v.rSel.value + ": ");
    el("b", {id: v.P + "-score"}, v.result, d.score.toFixed(3));
    text(v.result, ", " + Math.abs(d.z).toFixed(1) + " standard deviations " + (d.z >= 0 ? "above" : "below") +
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
    axes(svg, x0, y0, w, h, "composition score", "random pairs");
    svg.setAttribute("aria-label", "histogram of random scores with this pair's score " + score.toFixed(3));
  }

  function spectrum(svg, sv) {  // the composed circuit's singular values
    var x0 = 40, y0 = 150, w = 290, h = 130, n = sv.length, smax = sv[0] || 1, bw = w / n;
    svg.innerHTML = "";
    sv.forEach(function (s, i) {
      var bh = h * s / smax;
      bar(svg, x0 + i * bw + bw * 0.1, y0 - bh, bw * 0.8, bh, "#1f77b4", "singular value " + (i + 1) + ": " + s.toFixed(4));
    });
    svgEl(svg, "text", {x: x0 - 4, y: y0 - h + 4, "text-anchor": "end", "font-size": "10"}, smax.toFixed(2));
    svgEl(svg, "text", {x: x0 - 4, y: y0 + 4, "text-anchor": "end", "font-size": "10"}, "0");
    axes(svg, x0, y0, w, h, "index (1 to " + n + ")", "singular value");
    svg.setAttribute("aria-label", "singular values, largest " + smax.toFixed(3));
  }

  // config: {pairs: {"s>r": {Q|K|V: {score, z, sv}}}, heads, n_heads, d_head, baseline: {mean, std, edges, counts},
  //          sender, receiver, kind}. The weights are fixed, so every number was computed in Python.
  function compositionExplorer(root, config) {
    var v = {root: root, config: config, P: start(root)};
    explorerForm(v);
    v.result = el("div", {"class": "mll-built", id: v.P + "-result", "aria-live": "polite", style: "margin:0.5em 0"}, root);
    var charts = el("div", {"class": "mll-built mlt-row"}, root);
    var hist = chart(charts, "0 0 340 180", "grey: the scores of random pairs of rank-" + config.d_head + " matrices; red: this pair");
    var spec = chart(charts, "0 0 340 180", "singular values of the composed circuit (only " + config.d_head + " can be non-zero)");
    function update() {
      var kind = ["Q", "K", "V"].filter(function (k) { return v.kinds[k].checked; })[0];
      var d = config.pairs[v.sSel.value + ">" + v.rSel.value][kind];
      scoreText(v, kind, d);
      histogram(hist, config.baseline, d.score);
      spectrum(spec, d.sv);
      bump(root);
    }
    ["Q", "K", "V"].forEach(function (k) { v.kinds[k].addEventListener("change", update); });
    v.sSel.addEventListener("change", function () { fillReceivers(v); update(); });
    v.rSel.addEventListener("change", update);
    fillReceivers(v);
    v.rSel.value = config.receiver;
    update();
    root.setAttribute("data-ready", "1");
  }

  // ------------------------------------------------------------------ checkpoint slider (The Circuit Forms)
  // config: {steps, heads, n_layers, n_heads, seq_len, batch, tokens, boundaries, loss, example_loss,
  //          patterns (per step: base64 bytes round(255 a) of every head's lower triangle, row by row),
  //          uniform, bar_top, attn_lut, boundary_colour, start}: what training_dynamics measured.
  function sliderControls(v) {
    var D = v.D, P = v.P, S = D.steps.length, box = el("div", {"class": "mll-built"}, v.root);
    var lab = el("label", {"for": P + "-range"}, el("div", {}, box)), b = el("b", {}, lab, "Training step: ");
    v.step = el("span", {id: P + "-step"}, b);
    text(lab, " (checkpoint ");
    v.index = el("span", {id: P + "-index"}, lab);
    text(lab, " of " + S + "; drag, or focus the slider and use the arrow keys, Home and End)");
    var row = el("div", {"class": "mll-sliderrow"}, box);
    v.prev = el("button", {type: "button", id: P + "-prev", "aria-label": "previous checkpoint"}, row, "\u25c0");
    v.range = el("input", {type: "range", id: P + "-range", min: "0", max: String(S - 1), step: "1", value: String(D.start)}, row);
    v.next = el("button", {type: "button", id: P + "-next", "aria-label": "next checkpoint"}, row, "\u25b6");
    var line = el("div", {}, box);
    text(line, "Loss on the repeated half (" + D.batch + " sequences): ");
    v.loss = el("b", {id: P + "-loss"}, line);
    text(line, " nats ");
    v.lossbar = el("div", {id: P + "-lossbar"}, el("span", {"class": "mlt-lossbar"}, line));
    el("span", {"class": "mlt-axis"}, line, " (uniform guess: " + D.uniform.toFixed(3) + " nats)");
  }

  function lossCurve(v, parent) {  // the repeat loss against the training step (checkpoints are denser early)
    var D = v.D, last = D.steps[D.steps.length - 1], top = Math.max(Math.max.apply(null, D.loss), D.uniform) * 1.05;
    var box = el("div", {}, parent);
    el("div", {"class": "mlt-axis"}, box, "repeat loss during training (dot: this checkpoint; dashed: uniform guess)");
    var svg = svgEl(box, "svg", {viewBox: (-last / 80).toFixed(2) + " 0 " + (last * 1.025).toFixed(2) + " " + top.toFixed(3),
                                 preserveAspectRatio: "none", "aria-hidden": "true", "class": "mll-curve"});
    var g = svgEl(svg, "g", {transform: "translate(0," + top.toFixed(3) + ") scale(1,-1)"});
    svgEl(g, "line", {x1: 0, x2: last, y1: D.uniform, y2: D.uniform, stroke: "#888", "vector-effect": "non-scaling-stroke",
                      style: "stroke-width:1px;stroke-dasharray:4 3"});
    svgEl(g, "polyline", {points: D.steps.map(function (s, i) { return s + "," + D.loss[i]; }).join(" "), fill: "none",
                          stroke: "#1f77b4", "vector-effect": "non-scaling-stroke", style: "stroke-width:1.5px"});
    v.mark = svgEl(g, "ellipse", {id: v.P + "-mark", cx: D.steps[D.start], cy: 0, rx: (last / 80).toFixed(2),
                                  ry: (top / 25).toFixed(3), fill: "#d62728"});
    el("div", {"class": "mlt-axis"}, box, "training step, 0 (left) to " + last + " (right); height 0 to " + top.toFixed(1) + " nats");
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
       "columns: key position; orange lines where the first and the second copy start):");
    var grid = el("div", {"class": "mll-heads-grid", style: "grid-template-columns: repeat(" + D.n_heads + ", minmax(0, 80px))"}, box);
    v.canvases = D.heads.map(function (name, i) {
      var fig = el("figure", {"class": "mll-head"}, grid);
      var c = el("canvas", {id: v.P + "-c" + i, width: 4 * n, height: 4 * n, role: "img", "aria-label": "attention pattern of head " + name}, fig);
      el("figcaption", {}, fig, name);
      return c;
    });
    colourBar(el("div", {"class": "mlt-axis"}, box), D.attn_lut, "0", "1 attention");
  }

  function stepBytes(v, i) {
    if (!(i in v.decoded)) {
      var s = atob(v.D.patterns[i]), a = new Uint8Array(s.length);
      for (var j = 0; j < s.length; j++) a[j] = s.charCodeAt(j);
      v.decoded[i] = a;
    }
    return v.decoded[i];
  }

  function drawHead(v, c, a, offset) {  // orange lines where the copies start
    var D = v.D, n = D.seq_len, ctx = c.getContext("2d"), idx = offset;
    ctx.fillStyle = colour(D.attn_lut, 0); ctx.fillRect(0, 0, 4 * n, 4 * n);
    for (var q = 0; q < n; q++) for (var k = 0; k <= q; k++) {
      ctx.fillStyle = colour(D.attn_lut, a[idx++] / 255); ctx.fillRect(4 * k, 4 * q, 4, 4);
    }
    ctx.fillStyle = D.boundary_colour;
    D.boundaries.forEach(function (b) { ctx.fillRect(4 * b - 0.5, 0, 1, 4 * n); ctx.fillRect(0, 4 * b - 0.5, 4 * n, 1); });
  }

  function renderStep(v) {
    var D = v.D, i = parseInt(v.range.value, 10), step = D.steps[i], a = stepBytes(v, i), n = D.seq_len;
    v.range.setAttribute("aria-valuetext", "step " + step);
    v.step.textContent = step;
    v.index.textContent = i + 1;
    v.loss.textContent = D.loss[i].toFixed(3);
    v.lossbar.style.width = (100 * Math.min(D.loss[i] / (1.1 * D.uniform), 1)).toFixed(1) + "%";
    v.canvases.forEach(function (c, h) { drawHead(v, c, a, h * n * (n + 1) / 2); });
    var row = D.example_loss[i];
    for (var p = 0; p < row.length; p++) {
      v.bars.children[p].style.height = (100 * Math.min(row[p] / D.bar_top, 1)).toFixed(1) + "%";
      v.bars.children[p].title = "predicting position " + (p + 1) + " (token " + D.tokens[p + 1] + "): " + row[p].toFixed(2) + " nats";
    }
    v.mark.setAttribute("cx", step); v.mark.setAttribute("cy", D.loss[i]);
    bump(v.root);
  }

  function checkpointSlider(root, config) {
    var v = {root: root, D: config, P: start(root), decoded: {}};
    sliderControls(v);
    var charts = el("div", {"class": "mlt-row mll-built"}, root);
    lossCurve(v, charts);
    positionBars(v, charts);
    headGrid(v);
    v.range.addEventListener("input", function () { renderStep(v); });
    v.prev.addEventListener("click", function () { v.range.stepDown(); renderStep(v); });
    v.next.addEventListener("click", function () { v.range.stepUp(); renderStep(v); });
    renderStep(v);
    root.setAttribute("data-ready", "1");
  }

  api.widgets.headToggle = headToggle;
  api.widgets.pathAblation = pathAblation;
  api.widgets.termPicker = termPicker;
  api.widgets.virtualHeadCalculator = virtualHeadCalculator;
  api.widgets.compositionExplorer = compositionExplorer;
  api.widgets.checkpointSlider = checkpointSlider;
})();
