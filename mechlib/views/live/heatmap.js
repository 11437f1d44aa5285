/* heatmap.js: the attention pattern of one head as a grid of coloured cells
 * (window.mechlibLive.heatmap), used by the model views (model-view.js). Needs ui.js.
 *
 * The colour is never the only carrier of a value: hovering a cell, or focusing the grid and
 * moving with the arrow keys, writes "query q (token a) -> key k (token b): weight" in a
 * readout (and the cell's title; the grid's aria-activedescendant names the cell, so a screen
 * reader says it), and a line under the grid says in words what the head does
 * on this sequence (its induction and previous-token scores).
 */
(function () {
  "use strict";
  var api = window.mechlibLive;
  if (!api || !api.ui) throw new Error("mechlibLive: load model.js and ui.js before heatmap.js");
  if (api.heatmap) return;
  var ui = api.ui, el = ui.el;

  // the head chooser, the grid (in a scroll box), its readout, summary and colour bar
  function box(v, row) {
    var P = v.P, wrap = el("div", {"class": "mll-pattern"}, row);
    v.select = el("select", {id: P + "-head"}, el("label", {}, wrap, "attention pattern of head "));
    v.heads.forEach(function (name) { el("option", {value: name}, v.select, name); });
    v.select.value = v.heads.indexOf(v.config.pattern_head) >= 0 ? v.config.pattern_head : v.heads[v.H];
    var scroll = ui.scrollBox(wrap, "attention pattern", "\u2194 scroll the pattern sideways for the later keys", P + "-attn-more", true);
    // a grid, not a plain table: a screen reader then hands the arrow keys to it (in its
    // browse mode they would walk the cells, which hold no text) and says the cell that
    // aria-activedescendant names, with its weight
    v.table = el("table", {"class": "mlt-attn mll-attn", id: P + "-attn", tabindex: "0", role: "grid", "aria-readonly": "true",
                           "aria-label": "attention pattern: arrow keys move between cells, the weight is read out below"}, scroll.wrap);
    el("div", {"class": "mlt-axis"}, wrap, "rows: query position, columns: key position (attended to); " +
       "orange lines: where a repeated segment and its copy begin; hover a cell, or focus the grid and use the arrow keys");
    v.readout = el("div", {id: P + "-readout", "class": "mll-readout"}, wrap, "\u00a0");
    v.summary = el("div", {id: P + "-pattern-summary", "class": "mlt-axis"}, wrap);
    ui.colourBar(el("div", {"class": "mlt-axis"}, wrap, "attention weight: "), v.config.attn_lut, "0", "1");
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

  function build(v) {  // the grid, sized to the sequence
    var n = v.state.tokens.length, bounds = repeatBounds(v.state.tokens), q, k, head;
    v.table.innerHTML = ""; v.cells = [];
    head = el("tr", {}, v.table);
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

  function pattern(v) {
    var i = v.heads.indexOf(v.select.value);
    return v.out.patterns[Math.floor(i / v.H)][i % v.H];
  }

  // in words: how much the head attends to the token after an earlier copy, and to the previous token
  function summarise(v, A) {
    var t = v.state.tokens, n = t.length, prev = 0, ind = api.inductionScore(A, t);
    for (var q = 1; q < n; q++) prev += A[q * n + q - 1];
    v.summary.textContent = "Head " + v.select.value + " on this sequence: " +
      (isNaN(ind) ? "no repeated token, so no induction score" : "on average " + ind.toFixed(2) +
       " of its attention on the token after an earlier copy (induction score)") +
      "; " + (n > 1 ? (prev / (n - 1)).toFixed(2) : "n/a") + " on the previous token.";
  }

  function draw(v) {
    var A = pattern(v), n = v.out.n;
    for (var q = 0; q < n; q++) for (var k = 0; k <= q; k++) {  // above the diagonal stays blank
      var col = ui.colour(v.config.attn_lut, A[q * n + k]), td = v.cells[q][k];
      if (td.mllColour !== col) { td.style.backgroundColor = col; td.mllColour = col; }  // touch only what changed
    }
    summarise(v, A);
    showCell(v);
  }

  // "head 1.2: query 5 (token 2) -> key 2 (token 21): 0.377", when a cell is hovered or reached
  function showCell(v, scroll) {
    var c = v.state.cursor, t = v.state.tokens;
    Array.prototype.forEach.call(v.table.querySelectorAll(".mll-cursor"), function (e) { e.classList.remove("mll-cursor"); });
    if (!c || c[0] >= t.length) { v.readout.textContent = "\u00a0"; v.table.removeAttribute("aria-activedescendant"); return; }
    var td = v.cells[c[0]][c[1]];
    td.classList.add("mll-cursor");
    td.title = "query " + c[0] + " (token " + t[c[0]] + ") \u2192 key " + c[1] + " (token " + t[c[1]] + "): " +
               pattern(v)[c[0] * v.out.n + c[1]].toFixed(3);
    v.readout.textContent = "head " + v.select.value + ": " + td.title;
    td.id = v.P + "-attn-" + c[0] + "-" + c[1];
    td.setAttribute("aria-label", v.readout.textContent);
    v.table.setAttribute("aria-activedescendant", td.id);
    if (scroll && td.scrollIntoView) td.scrollIntoView({block: "nearest", inline: "nearest"});
  }

  function bind(v) {
    v.select.addEventListener("change", function () { draw(v); });
    v.table.addEventListener("mousemove", function (e) {  // not mouseover: scrolling under a still mouse moves no cursor
      var td = e.target.closest("td[data-q]");
      if (!td || +td.getAttribute("data-k") > +td.getAttribute("data-q")) return;
      var c = v.state.cursor, q = +td.getAttribute("data-q"), k = +td.getAttribute("data-k");
      if (!c || c[0] !== q || c[1] !== k) { v.state.cursor = [q, k]; showCell(v); }
    });
    v.table.addEventListener("focus", function () { if (!v.state.cursor) { v.state.cursor = [0, 0]; showCell(v); } });
    v.table.addEventListener("keydown", function (e) {
      var d = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]}[e.key];
      if (!d) return;
      e.preventDefault();
      var n = v.state.tokens.length, c = v.state.cursor || [0, 0];
      var q = Math.min(Math.max(c[0] + d[0], 0), n - 1), k = Math.min(Math.max(c[1] + d[1], 0), q);
      v.state.cursor = [q, k]; showCell(v, true);
    });
  }

  api.heatmap = {box: box, build: build, draw: draw, bind: bind, pattern: pattern, repeatBounds: repeatBounds};
})();
