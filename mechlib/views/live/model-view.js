/* model-view.js: the frame the model views share (window.mechlibLive.modelView): a sequence to
 * type or draw, the loss on its repeated tokens, the attention pattern (heatmap.js), the
 * next-token predictions and every head's induction score, redrawn after each forward pass.
 * Needs model.js, ui.js and heatmap.js.
 *
 * modelView.mount(root, config, controls, runner): `controls(root, ctx)` builds the view's own
 * controls (head-toggle.js, path-ablation.js, term-picker.js) and returns a function giving the
 * options of the next run; `runner` is {info: {config, heads}, run(tokens, options) -> {n,
 * logits, patterns} or a promise of it} (default: the forward pass in the page; kernel.js
 * passes one that asks the kernel). After every run the widget's live region says the loss and
 * what was cut in words.
 *
 * config: {model, tokens, prefix_len, half_len, pattern_head, attn_lut, prob_lut, seed} and the
 * controls' own (heads_off; cut: {senders, receivers, kinds}; terms_off). With config.batch
 * ({tokens, mask, after_token, scored}: a batch other than the induction one, such as
 * relay-2l's) the loss is taken on its mask (model.js's scoredPositions) and the button steps
 * through its sequences instead of drawing repeated ones.
 */
(function () {
  "use strict";
  var api = window.mechlibLive;
  if (!api || !api.heatmap) throw new Error("mechlibLive: load model.js, ui.js and heatmap.js before model-view.js");
  if (api.modelView) return;
  var ui = api.ui, el = ui.el, text = ui.text, after = ui.after, heatmap = api.heatmap;

  function sequenceBox(v) {
    var C = v.C, P = v.P, box = el("div", {"class": "mll-seq mll-built"}, v.root);
    el("label", {"for": P + "-tokens"}, box, "Tokens (integers 0 to " + (C.d_vocab - 1) + ", at most " + C.n_ctx + "): ");
    v.input = el("input", {id: P + "-tokens", type: "text", inputmode: "numeric", spellcheck: "false",
                           autocomplete: "off", "class": "mll-tokens"}, box);
    v.apply = el("button", {type: "button", id: P + "-apply"}, box, "run on these tokens");
    v.draw = el("button", {type: "button", id: P + "-draw"}, box, v.config.batch ? "next sequence of the batch" : "new repeated sequence");
    v.msg = el("div", {id: P + "-msg", "class": "mlt-axis", role: "alert"}, box);
  }

  function lossBox(v) {
    var box = el("div", {"class": "mll-built", style: "margin:0.6em 0"}, v.root), line = el("div", {}, box);
    text(line, "Loss on the " + v.what + ": ");
    v.lossValue = el("b", {id: v.P + "-loss"}, line);
    text(line, " nats ");
    v.barFill = el("div", {}, el("span", {"class": "mlt-lossbar", "aria-hidden": "true"}, line));
    v.lossRefs = el("div", {"class": "mlt-axis", id: v.P + "-loss-refs"}, box);
  }

  function predictionBox(v, row) {
    var box = el("div", {"class": "mll-preds"}, row);
    el("div", {}, box, "next-token predictions (top guess and the probability of the true next token)");
    v.predWrap = ui.scrollBox(box, "next-token predictions", "\u2194 scroll the table sideways for the later positions", v.P + "-preds-more").wrap;
    v.preds = el("table", {"class": "mll-predtable", id: v.P + "-preds"}, v.predWrap);
    ui.colourBar(el("div", {"class": "mlt-axis"}, box, "framed: the " + v.what + " the loss is taken on; bold: the top guess is right; p(next): "),
                 v.config.prob_lut, "0", "1");
  }

  function scoreBox(v, row) {  // every head's induction score, above the pattern and predictions
    var box = el("div", {"class": "mll-built", style: "margin:0.4em 0"});
    var wrap = ui.scrollBox(box, "induction score of every head", "\u2194 scroll sideways for the later heads", v.P + "-scores-more").wrap;
    var scores = el("table", {"class": "mll-predtable", id: v.P + "-scores"}, wrap), srow = el("tr", {}, scores), hrow;
    el("th", {}, srow, "induction score on this sequence");
    v.scoreCells = v.heads.map(function (name) { return el("td", {title: "head " + name}, srow); });
    hrow = el("tr", {}, scores);
    el("th", {}, hrow, "head");
    v.heads.forEach(function (name) { el("td", {}, hrow, name); });
    v.root.insertBefore(box, row);
  }

  function buildPredictions(v) {
    var t = v.state.tokens, rows;
    v.preds.innerHTML = ""; v.predCells = [];
    rows = ["position", "token", "top guess", "p(next)"].map(function (name) {
      var tr = el("tr", {}, v.preds); el("th", {scope: "row"}, tr, name); return tr;
    });
    for (var q = 0; q < t.length; q++) {
      el("td", {}, rows[0], String(q));
      el("td", {}, rows[1], String(t[q]));
      var guess = el("td", {}, rows[2]), p = el("td", {}, rows[3]);
      if (v.state.repeat.indexOf(q) >= 0) {  // framed, and said: the frame's colour is not the only cue
        guess.className = "mll-rep"; p.className = "mll-rep"; p.title = "position " + q + ": " + (v.config.batch ? "one of the " + v.what : "a repeated token") + ", counted in the loss";
      }
      v.predCells.push([guess, p]);
    }
  }

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
          ? rep.length + " " + v.what + " \u00b7 all heads on: " + clean.toFixed(3) + " \u00b7 all heads off: " +
            none.toFixed(3) + " \u00b7 uniform guess: " + v.state.refs.uniform.toFixed(3) + " nats"
          : v.config.batch ? "this sequence has none of the " + v.what + ", so there is no loss to show"
          : "this sequence has no repeated pair of tokens, so there is nothing to copy and no loss to show";
      });
    });
  }

  function build(v) {  // everything sized to the current sequence
    v.input.value = v.state.tokens.join(" ");
    var scored = api.scoredPositions(v.state.tokens, v.config.batch);
    v.state.repeat = scored.positions; v.state.row = scored.row;
    heatmap.build(v);
    buildPredictions(v);
    return lossReferences(v);
  }

  function showLoss(v) {
    var loss = api.repeatLoss(v.out.logits, v.state.tokens, v.state.repeat, v.C.d_vocab), r = v.state.refs;
    var top = Math.max(r.clean, r.none, r.uniform) * 1.1;
    v.lossValue.textContent = isNaN(loss) ? "n/a" : loss.toFixed(3);
    v.barFill.style.width = (isNaN(loss) ? 0 : Math.min(100, 100 * loss / top)).toFixed(1) + "%";
    return loss;
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
        ui.paint(c[1], v.config.prob_lut, p);
        c[0].style.fontWeight = best === t[q + 1] ? "bold" : "normal";
        c[0].title = best === t[q + 1] ? "right" : "wrong: the next token is " + t[q + 1];
      } else {
        c[1].textContent = "";
      }
    }
  }

  function showScores(v) {
    v.heads.forEach(function (name, i) {
      var s = api.inductionScore(v.out.patterns[Math.floor(i / v.H)][i % v.H], v.state.tokens), td = v.scoreCells[i];
      td.textContent = isNaN(s) ? "n/a" : s.toFixed(2);
      if (isNaN(s)) { td.style.backgroundColor = ""; td.style.color = ""; } else ui.paint(td, v.config.prob_lut, s);
      td.title = "head " + name + ": induction score " + td.textContent;
    });
  }

  // what the controls changed, in words: "heads 0.0 and 0.3 off", "8 paths cut", "5 of 21 terms kept"
  function describe(v, o) {
    var parts = [];
    if (o.heads_off) parts.push(o.heads_off.length ? "heads off: " + o.heads_off.join(", ") : "every head on");
    if (o.paths_off) parts.push(o.paths_off.length + " path" + (o.paths_off.length === 1 ? "" : "s") + " cut");
    if (o.terms) parts.push(o.terms.length + " terms kept");
    return parts.join("; ");
  }

  function announce(v, o, loss) {
    var r = v.state.refs;
    v.live.textContent = (describe(v, o) ? describe(v, o) + ". " : "") + (isNaN(loss)
      ? "No " + v.what + ", so no loss."
      : "Loss on the " + v.what + " " + loss.toFixed(3) + " nats (all heads on " + r.clean.toFixed(3) +
        ", all heads off " + r.none.toFixed(3) + ").");
  }

  function update(v) {
    var seq = v.seq = (v.seq || 0) + 1, o = v.options();
    return told(v, after(v.runner.run(v.state.tokens, o), function (out) {
      if (seq !== v.seq) return;  // a later update has started: its result is the one to show
      v.out = out;
      var loss = showLoss(v);
      showPredictions(v);
      showScores(v);
      heatmap.draw(v);
      announce(v, o, loss);
      ui.bump(v.root);
    }));
  }

  function setTokens(v, t) {
    v.state.tokens = t; v.state.cursor = null;
    return told(v, after(after(build(v), function () { return update(v); }), function () { ui.scrollCues(v.root); }));
  }

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
      var t = [], seg = [], i, b = v.config.batch;
      if (b) { v.msg.textContent = ""; setTokens(v, b.tokens[(v.state.row + 1) % b.tokens.length].slice()); return; }
      for (i = 0; i < v.config.prefix_len; i++) t.push(random(v, v.C.d_vocab));
      for (i = 0; i < v.config.half_len; i++) seg.push(random(v, v.C.d_vocab));
      v.msg.textContent = "";
      setTokens(v, t.concat(seg, seg));
    });
  }

  // the forward pass in the page (model.js, weights config.model)
  function pageRunner(name) {
    return {info: api.model(name), run: function (t, o) { o.model = name; return api.runRaw(t, o); }};
  }

  function mount(root, config, controls, runner) {
    runner = runner || pageRunner(config.model);
    var info = runner.info, v = {root: root, config: config, C: info.config, H: info.config.n_heads, runner: runner,
      heads: info.heads, name: config.model, P: ui.start(root, config.label), cells: [], predCells: [], out: null,
      what: (config.batch && config.batch.scored) || "repeated tokens",
      state: {tokens: config.tokens.slice(), seed: config.seed >>> 0 || 1, cursor: null, refs: null}};
    sequenceBox(v);
    v.options = controls(root, {P: v.P, H: v.H, heads: v.heads, config: config, view: v, changed: function () { update(v); }});
    lossBox(v);
    v.live = ui.liveRegion(root, v.P);
    var row = el("div", {"class": "mlt-row mll-built"}, root);
    heatmap.box(v, row);
    predictionBox(v, row);
    scoreBox(v, row);
    bindSequence(v);
    heatmap.bind(v);
    return after(setTokens(v, v.state.tokens), function () { root.setAttribute("data-ready", "1"); });
  }

  api.modelView = {mount: mount, pageRunner: pageRunner, update: update};
})();
