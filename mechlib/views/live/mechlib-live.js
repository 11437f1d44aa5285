/* mechlib-live.js: the forward pass of an attention-only transformer (induction-2l), in the page.
 *
 * No framework, no network. Weights come from <model>.weights.js (written by
 * scripts/export_live_weights.py), which registers them in window.mechlibLiveWeights.
 *
 *   window.mechlibLive.run(tokens, options) -> {logits, patterns}
 *     tokens            integers in [0, d_vocab), 1 to n_ctx of them
 *     options.heads_off head names "l.h": each one's output is removed (zero ablation, as
 *                       mechlib.run_with_ablation: z = 0, so z W_O vanishes; b_O stays)
 *     options.paths_off [sender, receiver, kind] triples, kind "Q", "K" or "V": the receiver's
 *                       kind input reads x - sum of the cut senders' outputs, every other reader
 *                       still sees them (as mechlib.path_ablation; a sender must sit in an
 *                       earlier layer than its receiver). Combined with heads_off, the outputs
 *                       removed are the ones the senders write in this run.
 *     options.model     name of a registered weight set (default: the first registered)
 *     logits[position][token], patterns[layer][head][query][key] (0 above the diagonal)
 *   Bad input throws an Error that names the option and what is allowed.
 *
 * Computed in float64 from the float32 weights. The widgets of the book (mechlib.views.live)
 * mount themselves with window.mechlibLive.widgets.<name>(root, config).
 */
(function () {
  "use strict";
  if (window.mechlibLive) return;  // loaded twice on one page: keep the first
  var B85 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";
  var KINDS = ["Q", "K", "V"];
  var OPTIONS = ["heads_off", "paths_off", "model"];
  var decoded = {};

  // Book themes style every legend and table; inside a widget, keep them plain.
  if (typeof document !== "undefined" && document.head) {
    var style = document.createElement("style");
    style.textContent = ".mll-widget fieldset legend { font-size: 1em; font-weight: bold; float: none; width: auto;" +
      " padding: 0 0.3em; margin: 0; line-height: 1.3; }\n" +
      ".mll-widget table { margin: 0 !important; width: auto; }";
    document.head.appendChild(style);
  }

  // ------------------------------------------------------------------ weights
  function decodeB85(text) {
    var val = new Int16Array(128).fill(-1), i;
    for (i = 0; i < B85.length; i++) val[B85.charCodeAt(i)] = i;
    if (text.length % 5) throw new Error("mechlibLive: weights data is not whole base85 groups");
    var out = new Uint8Array(text.length / 5 * 4), o = 0;
    for (i = 0; i < text.length; i += 5) {
      var v = 0;
      for (var j = 0; j < 5; j++) {
        var d = val[text.charCodeAt(i + j)];
        if (d < 0) throw new Error("mechlibLive: weights data has a character outside base85");
        v = v * 85 + d;
      }
      out[o++] = (v / 16777216) & 255; out[o++] = (v >>> 16) & 255; out[o++] = (v >>> 8) & 255; out[o++] = v & 255;
    }
    return out;
  }

  function loadModel(name) {
    if (decoded[name]) return decoded[name];
    var all = window.mechlibLiveWeights || {};
    var entry = all[name];
    if (!entry) throw new Error("mechlibLive: options.model " + JSON.stringify(name) + " is not loaded; loaded: " +
                                JSON.stringify(Object.keys(all)));
    if (entry.format !== "float32-le-base85") throw new Error("mechlibLive: unknown weights format " + entry.format);
    var bytes = decodeB85(entry.data), view = new DataView(bytes.buffer), W = {}, at = 0;
    entry.tensors.forEach(function (t) {
      var n = t[1].reduce(function (a, b) { return a * b; }, 1), arr = new Float64Array(n);
      for (var i = 0; i < n; i++) arr[i] = view.getFloat32(4 * (at + i), true);
      W[t[0]] = arr; at += n;
    });
    if (4 * at !== bytes.length) throw new Error("mechlibLive: weights of " + name + " do not match their header");
    var c = entry.config, heads = [];
    for (var l = 0; l < c.n_layers; l++) for (var h = 0; h < c.n_heads; h++) heads.push(l + "." + h);
    decoded[name] = {name: name, cfg: c, scale: entry.attn_scale, W: W, heads: heads, source: entry.source};
    return decoded[name];
  }

  function defaultModel() {
    var names = Object.keys(window.mechlibLiveWeights || {});
    if (!names.length) throw new Error("mechlibLive: no weights loaded (load <model>.weights.js first)");
    return names[0];
  }

  // ------------------------------------------------------------------ validation
  function parseHead(M, name, what) {
    var c = M.cfg, m = typeof name === "string" ? /^(\d+)\.(\d+)$/.exec(name) : null;
    if (!m || +m[1] >= c.n_layers || +m[2] >= c.n_heads)
      throw new Error("mechlibLive: " + what + " must be a head name \"layer.head\" with layer in [0, " + c.n_layers +
                      ") and head in [0, " + c.n_heads + "), e.g. \"0.3\"; got " + JSON.stringify(name));
    return +m[1] * c.n_heads + +m[2];
  }

  function checkTokens(M, tokens) {
    var c = M.cfg;
    if (!tokens || typeof tokens.length !== "number" || typeof tokens === "string")
      throw new Error("mechlibLive: tokens must be an array of integers; got " + JSON.stringify(tokens));
    if (tokens.length < 1 || tokens.length > c.n_ctx)
      throw new Error("mechlibLive: tokens must hold 1 to n_ctx = " + c.n_ctx + " tokens; got " + tokens.length);
    for (var i = 0; i < tokens.length; i++) {
      var t = tokens[i];
      if (typeof t !== "number" || !Number.isInteger(t) || t < 0 || t >= c.d_vocab)
        throw new Error("mechlibLive: tokens must be integers in [0, d_vocab = " + c.d_vocab + "); tokens[" + i +
                        "] is " + JSON.stringify(t));
    }
  }

  function checkOptions(options) {
    if (options === undefined || options === null) return {};
    if (typeof options !== "object" || Array.isArray(options))
      throw new Error("mechlibLive: options must be an object like {heads_off: [...], paths_off: [...]}");
    Object.keys(options).forEach(function (k) {
      if (OPTIONS.indexOf(k) < 0)
        throw new Error("mechlibLive: unknown option " + JSON.stringify(k) + "; allowed: " + OPTIONS.join(", "));
    });
    return options;
  }

  function headsOff(M, list) {
    var off = new Uint8Array(M.heads.length);
    if (list === undefined) return off;
    if (!Array.isArray(list)) throw new Error("mechlibLive: options.heads_off must be an array of head names like \"0.3\"");
    list.forEach(function (name, i) { off[parseHead(M, name, "options.heads_off[" + i + "]")] = 1; });
    return off;
  }

  // cuts[(receiver * 3) + kind] = sender indices whose output that input does not see
  function pathsOff(M, list) {
    var H = M.cfg.n_heads, cuts = [];
    for (var i = 0; i < 3 * M.heads.length; i++) cuts.push([]);
    if (list === undefined) return cuts;
    if (!Array.isArray(list))
      throw new Error("mechlibLive: options.paths_off must be an array of [sender, receiver, kind] like [\"0.3\", \"1.1\", \"K\"]");
    list.forEach(function (p, i) {
      var what = "options.paths_off[" + i + "]";
      if (!Array.isArray(p) || p.length !== 3)
        throw new Error("mechlibLive: " + what + " must be [sender, receiver, kind] like [\"0.3\", \"1.1\", \"K\"]; got " + JSON.stringify(p));
      var s = parseHead(M, p[0], what + " sender"), r = parseHead(M, p[1], what + " receiver"), k = KINDS.indexOf(p[2]);
      if (k < 0) throw new Error("mechlibLive: " + what + " kind must be \"Q\", \"K\" or \"V\"; got " + JSON.stringify(p[2]));
      if (Math.floor(s / H) >= Math.floor(r / H))
        throw new Error("mechlibLive: " + what + ": the sender " + p[0] + " must be in an earlier layer than the receiver " + p[1]);
      var c = cuts[3 * r + k];
      if (c.indexOf(s) < 0) c.push(s);
    });
    return cuts;
  }

  // ------------------------------------------------------------------ the forward pass
  // out[i, e] = sum_d x[i, d] W[off + d * cols + e] + b[boff + e]
  function project(x, n, D, W, off, cols, b, boff) {
    var out = new Float64Array(n * cols);
    for (var i = 0; i < n; i++) {
      var xi = i * D, oi = i * cols;
      var e, d;
      if (b !== null) for (e = 0; e < cols; e++) out[oi + e] = b[boff + e];
      for (d = 0; d < D; d++) {
        var xv = x[xi + d], wr = off + d * cols;
        for (e = 0; e < cols; e++) out[oi + e] += xv * W[wr + e];
      }
    }
    return out;
  }

  function forward(M, tokens, off, cuts) {
    var c = M.cfg, W = M.W, n = tokens.length, D = c.d_model, dh = c.d_head, H = c.n_heads, V = c.d_vocab;
    var scale = M.scale, resid = new Float64Array(n * D), i, j, d, e, t;
    for (i = 0; i < n; i++)
      for (d = 0; d < D; d++) resid[i * D + d] = W.W_E[tokens[i] * D + d] + W.W_pos[i * D + d];
    var outputs = [], patterns = [], projW = [W.W_Q, W.W_K, W.W_V], projB = [W.b_Q, W.b_K, W.b_V];
    var qkv = [null, null, null], row = new Float64Array(n);
    for (var l = 0; l < c.n_layers; l++) {
      var layerOut = new Float64Array(n * D), layerPat = [];
      for (i = 0; i < n; i++) for (d = 0; d < D; d++) layerOut[i * D + d] = W.b_O[l * D + d];
      for (var h = 0; h < H; h++) {
        var idx = l * H + h;
        for (var kind = 0; kind < 3; kind++) {
          var cut = cuts[3 * idx + kind], x = resid;
          if (cut.length) {
            x = new Float64Array(resid);  // a copy
            for (var ci = 0; ci < cut.length; ci++) {
              var so = outputs[cut[ci]];
              for (t = 0; t < n * D; t++) x[t] -= so[t];
            }
          }
          qkv[kind] = project(x, n, D, projW[kind], idx * D * dh, dh, projB[kind], idx * dh);
        }
        var q = qkv[0], kk = qkv[1], v = qkv[2], A = new Float64Array(n * n), z = new Float64Array(n * dh);
        for (i = 0; i < n; i++) {
          var max = -Infinity, sum = 0, qi = i * dh, ai = i * n;
          for (j = 0; j <= i; j++) {
            var s = 0, kj = j * dh;
            for (e = 0; e < dh; e++) s += q[qi + e] * kk[kj + e];
            s /= scale;
            row[j] = s;
            if (s > max) max = s;
          }
          for (j = 0; j <= i; j++) { row[j] = Math.exp(row[j] - max); sum += row[j]; }
          for (j = 0; j <= i; j++) {
            var a = row[j] / sum, vj = j * dh;
            A[ai + j] = a;
            for (e = 0; e < dh; e++) z[qi + e] += a * v[vj + e];
          }
        }
        layerPat.push(A);
        if (off[idx]) {
          outputs[idx] = new Float64Array(n * D);
        } else {
          var o = project(z, n, dh, W.W_O, idx * dh * D, D, null, 0);
          outputs[idx] = o;
          for (t = 0; t < n * D; t++) layerOut[t] += o[t];
        }
      }
      for (t = 0; t < n * D; t++) resid[t] += layerOut[t];
      patterns.push(layerPat);
    }
    return {n: n, V: V, logits: project(resid, n, D, W.W_U, 0, V, W.b_U, 0), patterns: patterns};
  }

  function rows(flat, n, cols) {  // a flat [n * cols] array as n plain arrays
    var out = [];
    for (var r = 0; r < n; r++) {
      var row = new Array(cols);
      for (var c = 0; c < cols; c++) row[c] = flat[r * cols + c];
      out.push(row);
    }
    return out;
  }

  // validated options -> the raw result: logits [n * V] and patterns[l][h] [n * n], flat
  function runRaw(tokens, options) {
    options = checkOptions(options);
    var name = options.model === undefined ? defaultModel() : options.model;
    if (typeof name !== "string") throw new Error("mechlibLive: options.model must be a model name string");
    var M = loadModel(name);
    checkTokens(M, tokens);
    return forward(M, Array.from(tokens), headsOff(M, options.heads_off), pathsOff(M, options.paths_off));
  }

  function run(tokens, options) {
    var raw = runRaw(tokens, options), n = raw.n;
    return {logits: rows(raw.logits, n, raw.V),
            patterns: raw.patterns.map(function (layer) { return layer.map(function (A) { return rows(A, n, n); }); })};
  }

  // ------------------------------------------------------------------ readouts shared by the widgets
  // log softmax of one row of logits: a plain array, or row q of a flat [n * V] array
  function logSoftmax(logits, q, V) {
    var row = V === undefined ? logits : Array.prototype.slice.call(logits, q * V, (q + 1) * V);
    var max = -Infinity, s = 0, i;
    for (i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
    for (i = 0; i < row.length; i++) s += Math.exp(row[i] - max);
    var lse = max + Math.log(s);
    return row.map(function (x) { return x - lse; });
  }

  // Targets an induction head can predict: position q + 1 where the current token t[q] occurred
  // earlier, at p < q, and was followed there by t[q + 1]. Returns the query positions q.
  function repeatPositions(tokens) {
    var out = [];
    for (var q = 1; q + 1 < tokens.length; q++)
      for (var p = 0; p < q; p++)
        if (tokens[p] === tokens[q] && tokens[p + 1] === tokens[q + 1]) { out.push(q); break; }
    return out;
  }

  // mean -log p(tokens[q + 1]) over the positions q; logits [n][V], or flat [n * V] with V given
  function repeatLoss(logits, tokens, positions, V) {
    if (!positions.length) return NaN;
    var s = 0;
    positions.forEach(function (q) { s -= (V === undefined ? logSoftmax(logits[q]) : logSoftmax(logits, q, V))[tokens[q + 1]]; });
    return s / positions.length;
  }


  // ------------------------------------------------------------------ widget: the head toggle (chapter 5)
  // config: {model, tokens, prefix_len, half_len, pattern_head, attn_lut, prob_lut, seed}
  function el(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  function colour(lut, v) {
    v = Math.min(Math.max(v, 0), 1);
    return lut[Math.min(Math.floor(v * lut.length), lut.length - 1)];
  }

  // Controls of the head toggle: a checkbox per head (ticked = on). Returns the run options.
  function headControls(root, ctx) {
    var P = ctx.P, H = ctx.H, heads = ctx.heads;
    var box = el("fieldset", {"class": "mlt-heads mll-built"}, root);
    el("legend", {}, box, "Heads (ticked = on; untick to switch a head off)");
    var boxes = heads.map(function (name, i) {
      if (i % H === 0) el("div", {}, box, "layer " + Math.floor(i / H) + ": ");
      var lab = el("label", {}, box.lastChild);
      var cb = el("input", {type: "checkbox", id: P + "-cb-" + i, "data-head": name}, lab);
      cb.checked = (ctx.config.heads_off || []).indexOf(name) < 0;
      lab.appendChild(document.createTextNode(" " + name));
      cb.addEventListener("change", ctx.changed);
      return cb;
    });
    var btns = el("div", {style: "margin-top:0.3em"}, box);
    el("button", {type: "button", id: P + "-all-on"}, btns, "all on").addEventListener("click", function () {
      boxes.forEach(function (cb) { cb.checked = true; }); ctx.changed(); });
    el("button", {type: "button", id: P + "-all-off"}, btns, "all off").addEventListener("click", function () {
      boxes.forEach(function (cb) { cb.checked = false; }); ctx.changed(); });
    return function () {
      return {heads_off: heads.filter(function (n, i) { return !boxes[i].checked; })};
    };
  }

  // Controls of the path ablation: senders, receivers and inputs (Q, K, V); every sender is
  // cut from the ticked inputs of every receiver in a later layer.
  function pathControls(root, ctx) {
    var P = ctx.P, H = ctx.H, heads = ctx.heads, L = heads.length / H, cut = ctx.config.cut || {};
    var box = el("fieldset", {"class": "mlt-heads mll-built"}, root);
    el("legend", {}, box, "Cut paths: remove the senders' output from these inputs of the receivers");
    function group(label, names, ids, picked) {
      var row = el("div", {}, box, label + ": ");
      return names.map(function (name, i) {
        var lab = el("label", {}, row);
        var cb = el("input", {type: "checkbox", id: P + "-" + ids + "-" + name.replace(".", "-"), "data-name": name}, lab);
        cb.checked = (picked || []).indexOf(name) >= 0;
        lab.appendChild(document.createTextNode(" " + name));
        cb.addEventListener("change", ctx.changed);
        return cb;
      });
    }
    var senders = group("senders", heads.slice(0, (L - 1) * H), "send", cut.senders);
    var receivers = group("receivers", heads.slice(H), "recv", cut.receivers);
    var kinds = group("inputs of the receivers", ["Q", "K", "V"], "kind", cut.kinds);
    var btns = el("div", {style: "margin-top:0.3em"}, box);
    el("button", {type: "button", id: P + "-uncut"}, btns, "cut nothing").addEventListener("click", function () {
      kinds.forEach(function (cb) { cb.checked = false; }); ctx.changed(); });
    var count = el("span", {"class": "mlt-axis", id: P + "-npaths"}, btns);
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

  function headToggle(root, config) { return mountLive(root, config, headControls); }
  function pathAblation(root, config) { return mountLive(root, config, pathControls); }

  // mean_q sum_{p < q, t_p = t_q} A[q, p + 1] over the queries q whose token occurred before
  // (the induction score of mechlib.induction_scores_from_patterns); NaN when none did
  function inductionScore(A, tokens) {
    var n = tokens.length, total = 0, count = 0;
    for (var q = 1; q < n; q++) {
      var s = 0, any = false;
      for (var p = 0; p < q; p++) if (tokens[p] === tokens[q]) { s += A[q * n + p + 1]; any = true; }
      if (any) { total += s; count++; }
    }
    return count ? total / count : NaN;
  }

  // ------------------------------------------------------------------ the path expansion (chapter 6)
  // Exact split of the logits into one term per path, from the clean run's attention patterns
  // (as mechlib.path_expansion): "direct", head "l.h", chain "0.1->1.2", bias "bias l",
  // "bias l->m.h" (layer l's bias read through a later head) and "bias unembed".
  function expandRaw(M, tokens) {
    var key = M.name + ":" + tokens.join(",");
    if (M.expansion && M.expansion.key === key) return M.expansion.value;
    var c = M.cfg, W = M.W, n = tokens.length, D = c.d_model, dh = c.d_head, H = c.n_heads, V = c.d_vocab, i, d, t;
    var clean = forward(M, tokens, new Uint8Array(M.heads.length), pathsOff(M, undefined));
    var x0 = new Float64Array(n * D);
    for (i = 0; i < n; i++) for (d = 0; d < D; d++) x0[i * D + d] = W.W_E[tokens[i] * D + d] + W.W_pos[i * D + d];
    var paths = [{name: "direct", kind: "direct", r: x0}];
    for (var l = 0; l < c.n_layers; l++) {
      var added = [];
      paths.forEach(function (p) {
        for (var h = 0; h < H; h++) {
          var idx = l * H + h, label = l + "." + h;
          var rows = p.kind === "bias" ? 1 : n;  // a bias is the same vector at every position
          var v = project(p.r, rows, D, W.W_V, idx * D * dh, dh, null, 0);
          var o = project(v, rows, dh, W.W_O, idx * dh * D, D, null, 0);
          if (p.kind === "bias") { added.push({name: p.name + "->" + label, kind: "bias", r: o}); continue; }
          var A = clean.patterns[l][h], moved = new Float64Array(n * D);
          for (var q = 0; q < n; q++) for (var k = 0; k <= q; k++) {
            var a = A[q * n + k];
            if (a === 0) continue;
            for (d = 0; d < D; d++) moved[q * D + d] += a * o[k * D + d];
          }
          added.push({name: p.kind === "direct" ? label : p.name + "->" + label, kind: p.kind === "direct" ? "single" : "virtual", r: moved});
        }
      });
      paths = paths.concat(added);
      var beta = new Float64Array(D);
      for (d = 0; d < D; d++) beta[d] = W.b_O[l * D + d];
      for (var hh = 0; hh < H; hh++) {
        var bo = project(W.b_V.subarray((l * H + hh) * dh, (l * H + hh + 1) * dh), 1, dh, W.W_O, (l * H + hh) * dh * D, D, null, 0);
        for (d = 0; d < D; d++) beta[d] += bo[d];
      }
      paths.push({name: "bias " + l, kind: "bias", r: beta});
    }
    var terms = {}, kinds = {}, names = [];
    paths.forEach(function (p) {
      var rows = p.kind === "bias" ? 1 : n, u = project(p.r, rows, D, W.W_U, 0, V, null, 0), full = new Float64Array(n * V);
      for (i = 0; i < n; i++) for (t = 0; t < V; t++) full[i * V + t] = u[(rows === 1 ? 0 : i) * V + t];
      terms[p.name] = full; kinds[p.name] = p.kind; names.push(p.name);
    });
    var bu = new Float64Array(n * V);
    for (i = 0; i < n; i++) for (t = 0; t < V; t++) bu[i * V + t] = W.b_U[t];
    terms["bias unembed"] = bu; kinds["bias unembed"] = "bias"; names.push("bias unembed");
    var value = {names: names, kinds: kinds, terms: terms, patterns: clean.patterns};
    M.expansion = {key: key, value: value};
    return value;
  }

  // window.mechlibLive.expand(tokens, {model}) -> {names, kinds, terms: {name: logits [pos][token]}}
  function expand(tokens, options) {
    options = checkOptions(options);
    ["heads_off", "paths_off"].forEach(function (k) {
      if (options[k] !== undefined) throw new Error("mechlibLive: expand takes no " + k + " (it expands the clean run)");
    });
    var M = loadModel(options.model === undefined ? defaultModel() : options.model);
    checkTokens(M, tokens);
    var ex = expandRaw(M, Array.from(tokens)), out = {};
    ex.names.forEach(function (name) { out[name] = rows(ex.terms[name], tokens.length, M.cfg.d_vocab); });
    return {names: ex.names.slice(), kinds: Object.assign({}, ex.kinds), terms: out};
  }

  // Controls of the term picker: a checkbox per term of the expansion, grouped by kind.
  function termControls(root, ctx) {
    var P = ctx.P, M = loadModel(ctx.config.model), ex = expandRaw(M, ctx.config.tokens), boxes = [];
    var box = el("fieldset", {"class": "mlt-heads mll-built"}, root);
    el("legend", {}, box, "Terms of the path expansion (ticked = kept in the logits)");
    var off = ctx.config.terms_off || [];
    [["direct", "direct path"], ["single", "single-head terms"], ["virtual", "virtual-head terms"], ["bias", "bias terms"]]
      .forEach(function (g) {
        var names = ex.names.filter(function (n) { return ex.kinds[n] === g[0]; });
        if (!names.length) return;
        var row = el("div", {"class": "mll-group"}, box);
        el("b", {}, row, g[1] + " ");
        var group = names.map(function (name) {
          var lab = el("label", {}, row);
          var cb = el("input", {type: "checkbox", id: P + "-term-" + name.replace(/[^0-9a-z]+/g, "_"), "data-term": name}, lab);
          cb.checked = off.indexOf(name) < 0;
          lab.appendChild(document.createTextNode(" " + name));
          cb.addEventListener("change", ctx.changed);
          boxes.push(cb);
          return cb;
        });
        [["all", true], ["none", false]].forEach(function (b) {
          el("button", {type: "button", id: P + "-" + g[0] + "-" + b[0]}, row, b[0]).addEventListener("click", function () {
            group.forEach(function (cb) { cb.checked = b[1]; }); ctx.changed(); });
        });
      });
    return function () {
      return {terms: boxes.filter(function (cb) { return cb.checked; }).map(function (cb) { return cb.getAttribute("data-term"); })};
    };
  }

  function termPicker(root, config) { return mountLive(root, config, termControls); }

  function mountLive(root, config, controls) {
    var api = window.mechlibLive, info = api.model(config.model), C = info.config;
    var P = root.id.replace(/-root$/, ""), H = C.n_heads, heads = info.heads, M = loadModel(info.name);
    var state = {tokens: config.tokens.slice(), seed: config.seed >>> 0 || 1, cursor: null, refs: null};
    var nojs = root.querySelector(".mll-nojs");
    if (nojs) root.removeChild(nojs);  // keeps the widget's <style>
    Array.prototype.forEach.call(root.querySelectorAll(".mll-built"), function (e) { root.removeChild(e); });
    // the sequence
    var seqBox = el("div", {"class": "mll-seq mll-built"}, root);
    el("label", {"for": P + "-tokens"}, seqBox, "Tokens (integers 0 to " + (C.d_vocab - 1) + ", at most " + C.n_ctx + "): ");
    var input = el("input", {id: P + "-tokens", type: "text", inputmode: "numeric", spellcheck: "false",
                             autocomplete: "off", "class": "mll-tokens"}, seqBox);
    var apply = el("button", {type: "button", id: P + "-apply"}, seqBox, "run on these tokens");
    var draw = el("button", {type: "button", id: P + "-draw"}, seqBox, "new repeated sequence");
    var msg = el("div", {id: P + "-msg", "class": "mlt-axis", role: "status", "aria-live": "polite"}, seqBox);
    var cells = [], predCells = [], out = null;
    var options = controls(root, {P: P, H: H, heads: heads, config: config, changed: function () { update(); }});
    // the loss
    var lossBox = el("div", {"class": "mll-built", style: "margin:0.6em 0"}, root);
    var lossLine = el("div", {}, lossBox);
    lossLine.appendChild(document.createTextNode("Loss on the repeated tokens: "));
    var lossValue = el("b", {id: P + "-loss"}, lossLine);
    lossLine.appendChild(document.createTextNode(" nats "));
    var bar = el("span", {"class": "mlt-lossbar"}, lossLine), barFill = el("div", {}, bar);
    var lossRefs = el("div", {"class": "mlt-axis", id: P + "-loss-refs"}, lossBox);
    // pattern and predictions
    var row = el("div", {"class": "mlt-row mll-built"}, root);
    var patBox = el("div", {"class": "mll-pattern"}, row);
    var selLab = el("label", {}, patBox, "attention pattern of head ");
    var select = el("select", {id: P + "-head"}, selLab);
    heads.forEach(function (name) { el("option", {value: name}, select, name); });
    select.value = heads.indexOf(config.pattern_head) >= 0 ? config.pattern_head : heads[H];
    var patWrap = el("div", {"class": "mll-scroll"}, patBox);
    var table = el("table", {"class": "mlt-attn mll-attn", id: P + "-attn", tabindex: "0",
                             "aria-label": "attention pattern: arrow keys move between cells"}, patWrap);
    el("div", {"class": "mlt-axis"}, patBox, "rows: query position, columns: key position (attended to); " +
       "orange lines: where a repeated segment and its copy begin; hover a cell, or focus the grid and use the arrow keys");
    var readout = el("div", {id: P + "-readout", "class": "mll-readout", "aria-live": "polite"}, patBox, "\u00a0");
    var legend = el("div", {"class": "mlt-axis"}, patBox, "attention weight: 0");
    el("span", {"class": "mll-bar", style: "background:linear-gradient(to right," + config.attn_lut.join(",") + ")"}, legend);
    legend.appendChild(document.createTextNode("1"));
    var predBox = el("div", {"class": "mll-preds"}, row);
    el("div", {}, predBox, "next-token predictions (top guess and the probability of the true next token)");
    var predWrap = el("div", {"class": "mll-scroll"}, predBox);
    var preds = el("table", {"class": "mll-predtable", id: P + "-preds"}, predWrap);
    var predMore = el("div", {"class": "mlt-axis", id: P + "-preds-more"}, predBox, "");
    var plegend = el("div", {"class": "mlt-axis"}, predBox, "framed: the repeated tokens the loss is taken on; bold: the top guess is right; p(next): 0");
    el("span", {"class": "mll-bar", style: "background:linear-gradient(to right," + config.prob_lut.join(",") + ")"}, plegend);
    plegend.appendChild(document.createTextNode("1"));

    var scoreBox = el("div", {"class": "mll-built mll-scroll", style: "margin:0.4em 0"}, root);
    var scores = el("table", {"class": "mll-predtable", id: P + "-scores"}, scoreBox);
    var srow = el("tr", {}, scores), scells = [];
    el("th", {}, srow, "induction score on this sequence");
    heads.forEach(function (name) {
      var td = el("td", {title: "head " + name}, srow);
      scells.push(td);
    });
    root.insertBefore(scoreBox, row);
    var hrow = el("tr", {}, scores);
    el("th", {}, hrow, "head");
    heads.forEach(function (name) { el("td", {}, hrow, name); });

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

    function build() {  // tables sized to the current sequence
      var t = state.tokens, n = t.length, q, k, bounds = repeatBounds(t);
      input.value = t.join(" ");
      table.innerHTML = ""; cells = [];
      var head = el("tr", {}, table);
      el("td", {"class": "mlt-tick"}, head);
      for (k = 0; k < n; k++) el("th", {"class": "mlt-tick"}, head, k % 5 === 0 ? String(k) : "");
      for (q = 0; q < n; q++) {
        var tr = el("tr", {}, table), rowCells = [];
        el("td", {"class": "mlt-tick"}, tr, q % 5 === 0 ? String(q) : "");
        for (k = 0; k < n; k++) {
          var td = el("td", {"data-q": q, "data-k": k}, tr);
          var top = k <= q && bounds.indexOf(q) >= 0, left = k <= q && bounds.indexOf(k) >= 0;
          if (top || left) td.style.boxShadow = "inset " + (left ? "1px " : "0 ") + (top ? "1px " : "0 ") + "0 #ff7f0e";
          rowCells.push(td);
        }
        cells.push(rowCells);
      }
      preds.innerHTML = ""; predCells = [];
      var rows = ["position", "token", "top guess", "p(next)"].map(function (name) {
        var tr = el("tr", {}, preds); el("th", {}, tr, name); return tr;
      });
      state.repeat = repeatPositions(t);
      for (q = 0; q < n; q++) {
        el("td", {}, rows[0], String(q));
        el("td", {}, rows[1], String(t[q]));
        var guess = el("td", {}, rows[2]), p = el("td", {}, rows[3]);
        if (state.repeat.indexOf(q) >= 0) { guess.className = "mll-rep"; p.className = "mll-rep"; }
        predCells.push([guess, p]);
      }
      var clean = repeatLoss(runRaw(t, {model: info.name}).logits, t, state.repeat, C.d_vocab);
      var none = repeatLoss(runRaw(t, {model: info.name, heads_off: heads}).logits, t, state.repeat, C.d_vocab);
      state.refs = {clean: clean, none: none, uniform: Math.log(C.d_vocab)};
      lossRefs.textContent = state.repeat.length
        ? state.repeat.length + " repeated tokens \u00b7 all heads on: " + clean.toFixed(3) + " \u00b7 all heads off: " +
          none.toFixed(3) + " \u00b7 uniform guess: " + state.refs.uniform.toFixed(3) + " nats"
        : "this sequence has no repeated pair of tokens, so there is nothing to copy and no loss to show";
    }

    function drawPattern() {
      var name = select.value, i = heads.indexOf(name), A = out.patterns[Math.floor(i / H)][i % H], n = out.n;
      for (var q = 0; q < n; q++) for (var k = 0; k <= q; k++) {  // above the diagonal stays blank
        var col = colour(config.attn_lut, A[q * n + k]), td = cells[q][k];
        if (td.mllColour !== col) { td.style.backgroundColor = col; td.mllColour = col; }  // touch only what changed
      }
      showCell();
    }

    // "query 5 (token 2) -> key 2 (token 21): 0.377", written when a cell is hovered or reached
    function cellText(q, k) {
      var name = select.value, i = heads.indexOf(name), n = out.n;
      return "query " + q + " (token " + state.tokens[q] + ") \u2192 key " + k + " (token " + state.tokens[k] + "): " +
             out.patterns[Math.floor(i / H)][i % H][q * n + k].toFixed(3);
    }

    function showCell() {
      var c = state.cursor;
      Array.prototype.forEach.call(table.querySelectorAll(".mll-cursor"), function (e) { e.classList.remove("mll-cursor"); });
      if (!c || c[0] >= state.tokens.length) { readout.textContent = "\u00a0"; return; }
      var td = cells[c[0]][c[1]];
      td.classList.add("mll-cursor");
      td.title = cellText(c[0], c[1]);
      readout.textContent = "head " + select.value + ": " + td.title;
    }

    function update() {
      var t = state.tokens;
      var o = options();
      if (o.terms) {  // the term picker: the sum of the kept terms of the clean run's path expansion
        var ex = expandRaw(M, t), V = C.d_vocab, logits = new Float64Array(t.length * V);
        o.terms.forEach(function (name) { var term = ex.terms[name]; for (var i = 0; i < logits.length; i++) logits[i] += term[i]; });
        out = {n: t.length, V: V, logits: logits, patterns: ex.patterns};
      } else {
        o.model = info.name;
        out = runRaw(t, o);
      }
      var loss = repeatLoss(out.logits, t, state.repeat, C.d_vocab);
      lossValue.textContent = isNaN(loss) ? "n/a" : loss.toFixed(3);
      var top = Math.max(state.refs.clean, state.refs.none, state.refs.uniform) * 1.1;
      barFill.style.width = (isNaN(loss) ? 0 : Math.min(100, 100 * loss / top)).toFixed(1) + "%";
      for (var q = 0; q < t.length; q++) {
        var lp = logSoftmax(out.logits, q, C.d_vocab), best = 0;
        for (var v = 1; v < lp.length; v++) if (lp[v] > lp[best]) best = v;
        var c = predCells[q];
        c[0].textContent = String(best);
        if (q + 1 < t.length) {
          var p = Math.exp(lp[t[q + 1]]);
          c[1].textContent = p.toFixed(2);
          c[1].style.backgroundColor = colour(config.prob_lut, p);
          c[1].style.color = p < 0.55 ? "white" : "black";
          c[0].style.fontWeight = best === t[q + 1] ? "bold" : "normal";
        } else {
          c[1].textContent = "";
        }
      }
      heads.forEach(function (name, i) {
        var v = inductionScore(out.patterns[Math.floor(i / H)][i % H], t);
        scells[i].textContent = isNaN(v) ? "n/a" : v.toFixed(2);
        scells[i].style.backgroundColor = isNaN(v) ? "" : colour(config.prob_lut, v);
        scells[i].style.color = isNaN(v) || v >= 0.55 ? "black" : "white";
      });
      drawPattern();
      root.setAttribute("data-updates", String(+(root.getAttribute("data-updates") || 0) + 1));
    }

    function scrollCue() {  // after the tables are filled: does the predictions table overflow?
      predMore.textContent = predWrap.scrollWidth > predWrap.clientWidth + 1
        ? "\u2194 scroll the table sideways for the later positions" : "";
    }

    function setTokens(t) { state.tokens = t; state.cursor = null; build(); update(); scrollCue(); }

    function parse() {
      var parts = input.value.trim().split(/[\s,]+/).filter(function (s) { return s.length; });
      if (!parts.length) throw new Error("type at least one token");
      if (parts.length > C.n_ctx) throw new Error("at most " + C.n_ctx + " tokens (the model's context); got " + parts.length);
      return parts.map(function (s) {
        if (!/^\d+$/.test(s) || +s >= C.d_vocab) throw new Error("tokens are integers from 0 to " + (C.d_vocab - 1) + "; got " + JSON.stringify(s));
        return +s;
      });
    }

    function random(nMax) {  // a small LCG: the same draws on every page load
      state.seed = (Math.imul(state.seed, 1664525) + 1013904223) >>> 0;
      return Math.floor(state.seed / 4294967296 * nMax);
    }

    apply.addEventListener("click", function () {
      try { setTokens(parse()); msg.textContent = ""; } catch (e) { msg.textContent = "Not run: " + e.message; }
    });
    input.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); apply.click(); } });
    draw.addEventListener("click", function () {
      var t = [], seg = [], i;
      for (i = 0; i < config.prefix_len; i++) t.push(random(C.d_vocab));
      for (i = 0; i < config.half_len; i++) seg.push(random(C.d_vocab));
      msg.textContent = "";
      setTokens(t.concat(seg, seg));
    });
    select.addEventListener("change", drawPattern);
    table.addEventListener("mouseover", function (e) {
      var td = e.target.closest("td[data-q]");
      if (!td || +td.getAttribute("data-k") > +td.getAttribute("data-q")) return;
      state.cursor = [+td.getAttribute("data-q"), +td.getAttribute("data-k")]; showCell();
    });
    table.addEventListener("focus", function () { if (!state.cursor) { state.cursor = [0, 0]; showCell(); } });
    table.addEventListener("keydown", function (e) {
      var d = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]}[e.key];
      if (!d) return;
      e.preventDefault();
      var n = state.tokens.length, c = state.cursor || [0, 0];
      var q = Math.min(Math.max(c[0] + d[0], 0), n - 1), k = Math.min(Math.max(c[1] + d[1], 0), q);
      state.cursor = [q, k]; showCell();
    });
    build(); update(); scrollCue();
    root.setAttribute("data-ready", "1");
  }


  // ------------------------------------------------------------------ widget: virtual-head calculator (chapter 7)
  // config: {n_layers, n_heads, length}. Chains of `length` heads in strictly increasing layers:
  // n_heads^length * C(n_layers, length) (mechlib.count_virtual_heads), in exact integers (BigInt).
  function countVirtualHeads(L, H, k) {
    if (k > L) return BigInt(0);
    var c = BigInt(1), i;
    for (i = 0; i < k; i++) c = c * BigInt(L - i) / BigInt(i + 1);
    return c * BigInt(H) ** BigInt(k);
  }

  function bigText(b) {
    var s = b.toString();
    if (s.length <= 15) return s.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return s[0] + "." + s.slice(1, 3) + " \u00d7 10^" + (s.length - 1);
  }

  function log10Big(b) {
    var s = b.toString();
    return s.length - 1 + Math.log10(+("0." + s.slice(0, 15)) * 10);
  }

  function virtualHeadCalculator(root, config) {
    var P = root.id.replace(/-root$/, ""), SVG = "http://www.w3.org/2000/svg";
    var nojs = root.querySelector(".mll-nojs");
    if (nojs) root.removeChild(nojs);
    var form = el("div", {"class": "mll-built mll-calc"}, root), inputs = {};
    [["n_layers", "layers L", 1, 96], ["n_heads", "heads per layer H", 1, 256], ["length", "chain length k", 1, 96]]
      .forEach(function (f) {
        var lab = el("label", {}, form, f[1] + " ");
        inputs[f[0]] = el("input", {type: "number", id: P + "-" + f[0], min: String(f[2]), max: String(f[3]),
                                    step: "1", value: String(config[f[0]])}, lab);
        inputs[f[0]].addEventListener("input", update);
      });
    var result = el("div", {"class": "mll-built", id: P + "-result", "aria-live": "polite", style: "margin:0.5em 0"}, root);
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 360 190");
    svg.setAttribute("class", "mll-built mll-chart");
    svg.setAttribute("role", "img");
    root.appendChild(svg);
    el("div", {"class": "mll-built mlt-axis"}, root,
       "bars: the number of virtual heads of each chain length for these L and H (log scale); the chosen length is red");

    function svgEl(tag, attrs, text) {
      var e = document.createElementNS(SVG, tag);
      Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
      if (text !== undefined) e.textContent = text;
      svg.appendChild(e);
      return e;
    }

    function read(name) {
      var i = inputs[name], v = +i.value;
      if (!Number.isInteger(v) || v < +i.min || v > +i.max)
        throw new Error(i.parentNode.textContent.trim() + " must be a whole number from " + i.min + " to " + i.max);
      return v;
    }

    function update() {
      var L, H, k;
      try { L = read("n_layers"); H = read("n_heads"); k = read("length"); }
      catch (e) { result.textContent = e.message; return; }
      var n = countVirtualHeads(L, H, k), total = (BigInt(H) + BigInt(1)) ** BigInt(L) - BigInt(1);
      result.innerHTML = "";
      el("b", {id: P + "-count"}, result, bigText(n));
      result.appendChild(document.createTextNode(
        " virtual heads of length " + k + " (H^k \u00d7 C(L, k) = " + H + "^" + k + " \u00d7 C(" + L + ", " + k + "))" +
        (k > L ? ": a chain needs a different layer for each head" : "") + "; all lengths together: " +
        bigText(total) + " ((H + 1)^L \u2212 1)."));
      svg.innerHTML = "";
      var logs = [], maxLog = 1;
      for (var j = 1; j <= L; j++) { var v = log10Big(countVirtualHeads(L, H, j)); logs.push(v); maxLog = Math.max(maxLog, v); }
      var x0 = 40, y0 = 160, w = 310, h = 140, bw = w / L;
      svgEl("line", {x1: x0, y1: y0, x2: x0 + w, y2: y0, stroke: "#555"});
      svgEl("line", {x1: x0, y1: y0, x2: x0, y2: y0 - h, stroke: "#555"});
      logs.forEach(function (v, j) {
        var bh = h * v / maxLog;
        svgEl("rect", {x: x0 + j * bw + bw * 0.1, y: y0 - bh, width: Math.max(bw * 0.8, 0.5), height: bh,
                       fill: j + 1 === k ? "#d62728" : "#1f77b4"}).appendChild(
          document.createElementNS(SVG, "title")).textContent = "length " + (j + 1) + ": 10^" + v.toFixed(1);
      });
      [0, maxLog / 2, maxLog].forEach(function (v) {
        svgEl("text", {x: x0 - 4, y: y0 - h * v / maxLog + 4, "text-anchor": "end", "font-size": "10"}, "10^" + v.toFixed(0));
      });
      svgEl("text", {x: x0 + w / 2, y: y0 + 25, "text-anchor": "middle", "font-size": "11"}, "chain length k (1 to " + L + ")");
      svgEl("text", {x: x0 + bw / 2, y: y0 + 12, "text-anchor": "middle", "font-size": "10"}, "1");
      svgEl("text", {x: x0 + w - bw / 2, y: y0 + 12, "text-anchor": "middle", "font-size": "10"}, String(L));
      svgEl("text", {x: 10, y: y0 - h / 2, "font-size": "11", "text-anchor": "middle",
                     transform: "rotate(-90 10 " + (y0 - h / 2) + ")"}, "number of virtual heads");
      svg.setAttribute("aria-label", "number of virtual heads by chain length, largest 10^" + maxLog.toFixed(0));
      root.setAttribute("data-updates", String(+(root.getAttribute("data-updates") || 0) + 1));
    }
    update();
    root.setAttribute("data-ready", "1");
  }


  // ------------------------------------------------------------------ widget: composition explorer (chapters 2-4)
  // config: {pairs: {"s>r": {Q|K|V: {score, z, sv}}}, heads, n_heads, d_head, baseline: {mean, std, edges, counts},
  //          sender, receiver, kind}. The weights are fixed, so every number was computed in Python.
  function compositionExplorer(root, config) {
    var P = root.id.replace(/-root$/, ""), SVG = "http://www.w3.org/2000/svg", H = config.n_heads;
    var nojs = root.querySelector(".mll-nojs");
    if (nojs) root.removeChild(nojs);
    var form = el("div", {"class": "mll-built mll-calc"}, root);
    var sLab = el("label", {}, form, "sender "), sSel = el("select", {id: P + "-sender"}, sLab);
    var rLab = el("label", {}, form, "receiver "), rSel = el("select", {id: P + "-receiver"}, rLab);
    var kBox = el("span", {role: "radiogroup", "aria-label": "kind of composition"}, form), kinds = {};
    ["Q", "K", "V"].forEach(function (k) {
      var lab = el("label", {}, kBox);
      kinds[k] = el("input", {type: "radio", name: P + "-kind", id: P + "-kind-" + k, value: k}, lab);
      lab.appendChild(document.createTextNode(" " + k + "-composition"));
      kinds[k].checked = k === config.kind;
      kinds[k].addEventListener("change", update);
    });
    var senders = config.heads.filter(function (h) { return Object.keys(config.pairs).some(function (p) { return p.split(">")[0] === h; }); });
    senders.forEach(function (h) { el("option", {value: h}, sSel, h); });
    sSel.value = config.sender;
    var result = el("div", {"class": "mll-built", id: P + "-result", "aria-live": "polite", style: "margin:0.5em 0"}, root);
    var charts = el("div", {"class": "mll-built mlt-row"}, root);
    function chart(label) {
      var box = el("div", {style: "flex:1 1 300px; min-width:0"}, charts);
      var svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("viewBox", "0 0 340 180");
      svg.setAttribute("class", "mll-chart");
      svg.setAttribute("role", "img");
      box.appendChild(svg);
      el("div", {"class": "mlt-axis"}, box, label);
      return svg;
    }
    var hist = chart("grey: the scores of random pairs of rank-" + config.d_head + " matrices; red: this pair");
    var spec = chart("singular values of the composed circuit (only " + config.d_head + " can be non-zero)");

    function svgEl(svg, tag, attrs, text) {
      var e = document.createElementNS(SVG, tag);
      Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
      if (text !== undefined) e.textContent = text;
      svg.appendChild(e);
      return e;
    }

    function fillReceivers() {
      var s = sSel.value, keep = rSel.value;
      rSel.innerHTML = "";
      config.heads.forEach(function (h) { if ((s + ">" + h) in config.pairs) el("option", {value: h}, rSel, h); });
      if ((s + ">" + keep) in config.pairs) rSel.value = keep;
    }

    function axes(svg, x0, y0, w, h, xlabel, ylabel) {
      svgEl(svg, "line", {x1: x0, y1: y0, x2: x0 + w, y2: y0, stroke: "#555"});
      svgEl(svg, "line", {x1: x0, y1: y0, x2: x0, y2: y0 - h, stroke: "#555"});
      svgEl(svg, "text", {x: x0 + w / 2, y: y0 + 28, "text-anchor": "middle", "font-size": "11"}, xlabel);
      svgEl(svg, "text", {x: 10, y: y0 - h / 2, "font-size": "11", "text-anchor": "middle",
                          transform: "rotate(-90 10 " + (y0 - h / 2) + ")"}, ylabel);
    }

    function update() {
      var kind = ["Q", "K", "V"].filter(function (k) { return kinds[k].checked; })[0];
      var key = sSel.value + ">" + rSel.value, d = config.pairs[key][kind], b = config.baseline;
      result.innerHTML = "";
      result.appendChild(document.createTextNode(kind + "-composition score of " + sSel.value + " \u2192 " + rSel.value + ": "));
      el("b", {id: P + "-score"}, result, d.score.toFixed(3));
      result.appendChild(document.createTextNode(", " + Math.abs(d.z).toFixed(1) + " standard deviations " +
        (d.z >= 0 ? "above" : "below") + " the random baseline (mean " + b.mean.toFixed(3) + ", SD " + b.std.toFixed(4) + ")."));
      // the baseline histogram and this pair's score
      hist.innerHTML = "";
      var x0 = 40, y0 = 150, w = 290, h = 130, lo = Math.min(b.edges[0], d.score), hi = Math.max(b.edges[b.edges.length - 1], d.score);
      var pad = (hi - lo) * 0.05, X = function (v) { return x0 + w * (v - lo + pad) / (hi - lo + 2 * pad); };
      var top = Math.max.apply(null, b.counts);
      b.counts.forEach(function (c, i) {
        svgEl(hist, "rect", {x: X(b.edges[i]), y: y0 - h * c / top, width: Math.max(X(b.edges[i + 1]) - X(b.edges[i]) - 0.5, 0.5),
                             height: h * c / top, fill: "#aaa"});
      });
      svgEl(hist, "line", {x1: X(d.score), x2: X(d.score), y1: y0, y2: y0 - h, stroke: "#d62728", "stroke-width": 2});
      [lo, hi].forEach(function (v, i) {
        svgEl(hist, "text", {x: X(v), y: y0 + 12, "text-anchor": i ? "end" : "start", "font-size": "10"}, v.toFixed(3));
      });
      axes(hist, x0, y0, w, h, "composition score", "random pairs");
      hist.setAttribute("aria-label", "histogram of random scores with this pair's score " + d.score.toFixed(3));
      // the singular values
      spec.innerHTML = "";
      var n = d.sv.length, smax = d.sv[0] || 1, bw = w / n;
      d.sv.forEach(function (v, i) {
        var bh = h * v / smax;
        svgEl(spec, "rect", {x: x0 + i * bw + bw * 0.1, y: y0 - bh, width: bw * 0.8, height: bh, fill: "#1f77b4"})
          .appendChild(document.createElementNS(SVG, "title")).textContent = "singular value " + (i + 1) + ": " + v.toFixed(4);
      });
      svgEl(spec, "text", {x: x0 - 4, y: y0 - h + 4, "text-anchor": "end", "font-size": "10"}, smax.toFixed(2));
      svgEl(spec, "text", {x: x0 - 4, y: y0 + 4, "text-anchor": "end", "font-size": "10"}, "0");
      axes(spec, x0, y0, w, h, "index (1 to " + n + ")", "singular value");
      spec.setAttribute("aria-label", "singular values, largest " + smax.toFixed(3));
      root.setAttribute("data-updates", String(+(root.getAttribute("data-updates") || 0) + 1));
    }
    sSel.addEventListener("change", function () { fillReceivers(); update(); });
    rSel.addEventListener("change", update);
    fillReceivers();
    rSel.value = config.receiver;
    update();
    root.setAttribute("data-ready", "1");
  }

  window.mechlibLive = {
    run: run,
    model: function (name) { var M = loadModel(name || defaultModel()); return {name: M.name, config: M.cfg, heads: M.heads.slice(), source: M.source}; },
    logSoftmax: logSoftmax,
    repeatPositions: repeatPositions,
    repeatLoss: repeatLoss,
    inductionScore: inductionScore,
    countVirtualHeads: countVirtualHeads,
    expand: expand,
    widgets: {termPicker: termPicker, headToggle: headToggle, pathAblation: pathAblation, virtualHeadCalculator: virtualHeadCalculator,
               compositionExplorer: compositionExplorer}
  };
})();
