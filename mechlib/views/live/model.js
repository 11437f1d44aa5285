/* model.js: the forward pass of an attention-only transformer without LayerNorm, in the page.
 *
 * Pure computation: no DOM, no framework, no network. Weights come from <model>.weights.js
 * (written by mechlib.views.live.weights_js), which registers them in window.mechlibLiveWeights.
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
 *   window.mechlibLive.expand(tokens, {model}) -> {names, kinds, terms}: the exact path
 *     expansion of the clean run (as mechlib.path_expansion, chapter 6)
 *   Bad input throws an Error that names the option and what is allowed.
 *
 * Computed in float64 from the float32 weights. The views (one file each, after ui.js)
 * register themselves in window.mechlibLive.widgets; loader.js mounts them.
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

  // ------------------------------------------------------------------ readouts the views share
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

  // The positions q whose prediction of tokens[q + 1] the loss is taken on, and which row of the
  // batch the sequence is (-1: none). No batch (the induction batch): the repeated tokens
  // (repeatPositions). A batch {tokens, mask, after_token} (mechlib.views.live.batches): its
  // mask where the sequence is one of its rows; else every q holding after_token (the relay's
  // recall token R), if it names one; else the repeated tokens.
  function scoredPositions(tokens, batch) {
    var key = Array.prototype.join.call(tokens, ","), row = -1, out = [], q;
    if (!batch) return {row: -1, positions: repeatPositions(tokens)};
    for (q = 0; q < batch.tokens.length && row < 0; q++) if (batch.tokens[q].join(",") === key) row = q;
    if (row >= 0) return {row: row, positions: batch.mask[row].slice()};
    if (batch.after_token === null || batch.after_token === undefined) return {row: -1, positions: repeatPositions(tokens)};
    for (q = 0; q + 1 < tokens.length; q++) if (tokens[q] === batch.after_token) out.push(q);
    return {row: -1, positions: out};
  }

  // mean -log p(tokens[q + 1]) over the positions q; logits [n][V], or flat [n * V] with V given
  function repeatLoss(logits, tokens, positions, V) {
    if (!positions.length) return NaN;
    var s = 0;
    positions.forEach(function (q) { s -= (V === undefined ? logSoftmax(logits[q]) : logSoftmax(logits, q, V))[tokens[q + 1]]; });
    return s / positions.length;
  }



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


  // ------------------------------------------------------------------ counting virtual heads (chapter 7)
  // Chains of k heads in strictly increasing layers of L layers with H heads each:
  // H^k * C(n_layers, length) (mechlib.count_virtual_heads), in exact integers (BigInt).
  function countVirtualHeads(L, H, k) {
    if (k > L) return BigInt(0);
    var c = BigInt(1), i;
    for (i = 0; i < k; i++) c = c * BigInt(L - i) / BigInt(i + 1);
    return c * BigInt(H) ** BigInt(k);
  }



  window.mechlibLive = {
    run: run,
    expand: expand,
    model: function (name) { var M = loadModel(name || defaultModel()); return {name: M.name, config: M.cfg, heads: M.heads.slice(), source: M.source}; },
    logSoftmax: logSoftmax,
    repeatPositions: repeatPositions,
    repeatLoss: repeatLoss,
    scoredPositions: scoredPositions,
    inductionScore: inductionScore,
    countVirtualHeads: countVirtualHeads,
    // flat Float64Array results for the views (validated as run and expand are)
    runRaw: runRaw,
    expandRaw: function (name, tokens) { var M = loadModel(name); checkTokens(M, tokens); return expandRaw(M, Array.from(tokens)); },
    widgets: {}
  };
})();
