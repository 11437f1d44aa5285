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
      for (var e = 0; e < cols; e++) out[oi + e] = b ? b[boff + e] : 0;
      for (var d = 0; d < D; d++) {
        var xv = x[xi + d], wr = off + d * cols;
        if (xv === 0) continue;
        for (e = 0; e < cols; e++) out[oi + e] += xv * W[wr + e];
      }
    }
    return out;
  }

  function forward(M, tokens, off, cuts) {
    var c = M.cfg, W = M.W, n = tokens.length, D = c.d_model, dh = c.d_head, H = c.n_heads, V = c.d_vocab;
    var resid = new Float64Array(n * D), i, j, d, e;
    for (i = 0; i < n; i++)
      for (d = 0; d < D; d++) resid[i * D + d] = W.W_E[tokens[i] * D + d] + W.W_pos[i * D + d];
    var outputs = [], patterns = [];
    for (var l = 0; l < c.n_layers; l++) {
      var layerOut = new Float64Array(n * D), layerPat = [];
      for (i = 0; i < n; i++) for (d = 0; d < D; d++) layerOut[i * D + d] = W.b_O[l * D + d];
      for (var h = 0; h < H; h++) {
        var idx = l * H + h, woff = idx * D * dh, boff = idx * dh, inputs = [];
        for (var k = 0; k < 3; k++) {
          var cut = cuts[3 * idx + k];
          if (!cut.length) { inputs.push(resid); continue; }
          var x = Float64Array.from(resid);
          cut.forEach(function (s) { var o = outputs[s]; for (var t = 0; t < o.length; t++) x[t] -= o[t]; });
          inputs.push(x);
        }
        var q = project(inputs[0], n, D, W.W_Q, woff, dh, W.b_Q, boff);
        var kk = project(inputs[1], n, D, W.W_K, woff, dh, W.b_K, boff);
        var v = project(inputs[2], n, D, W.W_V, woff, dh, W.b_V, boff);
        var A = [], z = new Float64Array(n * dh);
        for (i = 0; i < n; i++) {
          var row = new Array(n).fill(0), max = -Infinity, sum = 0;
          for (j = 0; j <= i; j++) {
            var s = 0;
            for (e = 0; e < dh; e++) s += q[i * dh + e] * kk[j * dh + e];
            row[j] = s / M.scale;
            if (row[j] > max) max = row[j];
          }
          for (j = 0; j <= i; j++) { row[j] = Math.exp(row[j] - max); sum += row[j]; }
          for (j = 0; j <= i; j++) {
            row[j] /= sum;
            for (e = 0; e < dh; e++) z[i * dh + e] += row[j] * v[j * dh + e];
          }
          A.push(row);
        }
        layerPat.push(A);
        var o = off[idx] ? new Float64Array(n * D) : project(z, n, dh, W.W_O, idx * dh * D, D, null, 0);
        outputs[idx] = o;
        if (!off[idx]) for (i = 0; i < n * D; i++) layerOut[i] += o[i];
      }
      for (i = 0; i < n * D; i++) resid[i] += layerOut[i];
      patterns.push(layerPat);
    }
    var flat = project(resid, n, D, W.W_U, 0, V, W.b_U, 0), logits = [];
    for (i = 0; i < n; i++) logits.push(Array.prototype.slice.call(flat, i * V, (i + 1) * V));
    return {logits: logits, patterns: patterns};
  }

  function run(tokens, options) {
    options = checkOptions(options);
    var name = options.model === undefined ? defaultModel() : options.model;
    if (typeof name !== "string") throw new Error("mechlibLive: options.model must be a model name string");
    var M = loadModel(name);
    checkTokens(M, tokens);
    return forward(M, Array.from(tokens), headsOff(M, options.heads_off), pathsOff(M, options.paths_off));
  }

  // ------------------------------------------------------------------ readouts shared by the widgets
  function logSoftmax(row) {
    var max = Math.max.apply(null, row), s = 0;
    for (var i = 0; i < row.length; i++) s += Math.exp(row[i] - max);
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

  function repeatLoss(logits, tokens, positions) {
    if (!positions.length) return NaN;
    var s = 0;
    positions.forEach(function (q) { s -= logSoftmax(logits[q])[tokens[q + 1]]; });
    return s / positions.length;
  }

  window.mechlibLive = {
    run: run,
    model: function (name) { var M = loadModel(name || defaultModel()); return {name: M.name, config: M.cfg, heads: M.heads.slice(), source: M.source}; },
    logSoftmax: logSoftmax,
    repeatPositions: repeatPositions,
    repeatLoss: repeatLoss,
    widgets: {}
  };
})();
