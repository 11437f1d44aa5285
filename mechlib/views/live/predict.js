/* predict.js: "predict, then see" for the path ablation (chapters 3 and 4,
 * window.mechlibLive.predict). Before the page shows what a cut does, the reader commits a
 * prediction: which input of the receivers (Q, K or V), cut from the ticked senders, raises
 * the loss on the repeated tokens most, and roughly by how much (under 0.1 nats, 0.1 to 1,
 * over 1). Then the model answers beside it: the rise of each kind of cut on the current
 * sequence, and whether the kind and the size were right. State in the page only: nothing is
 * stored or sent. Needs ui.js; path-ablation.js calls panel(view, controls).
 */
(function () {
  "use strict";
  var api = window.mechlibLive;
  if (!api || !api.ui) throw new Error("mechlibLive: load model.js and ui.js before predict.js");
  if (api.predict) return;
  var ui = api.ui, el = ui.el;
  var SIZES = [["small", "hardly (under 0.1 nats)", 0, 0.1], ["medium", "somewhat (0.1 to 1 nat)", 0.1, 1],
               ["large", "a lot (over 1 nat)", 1, Infinity]];

  function radios(parent, P, group, label, items) {
    var box = el("div", {role: "radiogroup", "aria-label": label}, parent, label + " ");
    return items.map(function (it) {
      var lab = el("label", {}, box), r = el("input", {type: "radio", name: P + "-" + group, id: P + "-" + group + "-" + it[0], value: it[0]}, lab);
      ui.text(lab, " " + it[1]);
      return r;
    });
  }

  function chosen(list) { var r = list.filter(function (x) { return x.checked; })[0]; return r ? r.value : null; }

  function sizeOf(rise) { return SIZES.filter(function (s) { return rise >= s[2] && rise < s[3]; })[0] || SIZES[0]; }

  // the rise of the repeat loss over the clean run for each kind of cut: {Q, K, V}
  function rises(v, done) {
    var t = v.state.tokens, V = v.C.d_vocab, clean = v.state.refs.clean, out = {}, kinds = ["Q", "K", "V"];
    (function next(i) {
      if (i === kinds.length) return done(out);
      ui.after(v.runner.run(t, {paths_off: v.cut.pathsOf([kinds[i]])}), function (r) {
        out[kinds[i]] = api.repeatLoss(r.logits, t, v.state.repeat, V) - clean;
        next(i + 1);
      });
    })(0);
  }

  function answer(v, p, kind, size) {
    if (!v.cut.pathsOf(["K"]).length) { p.verdict.textContent = "Tick a sender and a receiver in a later layer first."; return; }
    if (!v.state.repeat.length) { p.verdict.textContent = "This sequence repeats no token: draw a repeated one first."; return; }
    rises(v, function (r) {
      var best = ["Q", "K", "V"].reduce(function (a, b) { return r[b] > r[a] ? b : a; }), big = sizeOf(r[best]);
      p.model.innerHTML = "";
      var tbl = el("table", {"class": "mll-predtable", id: v.P + "-answer"}, p.model);
      el("caption", {}, tbl, "the model: rise of the loss on the repeated tokens");
      ["Q", "K", "V"].forEach(function (k) {
        var tr = el("tr", {}, tbl);
        el("th", {scope: "row"}, tr, "cut " + k);
        el("td", {id: v.P + "-rise-" + k}, tr, (r[k] >= 0 ? "+" : "") + r[k].toFixed(3) + " nats" + (k === best ? " (most)" : ""));
      });
      p.verdict.textContent = "You predicted " + kind + ", " + SIZES.filter(function (s) { return s[0] === size; })[0][1] +
        ". The model: cutting " + best + " matters most, +" + r[best].toFixed(3) + " nats, " + big[1] + ". The kind is " +
        (kind === best ? "right" : "wrong") + "; the size is " + (size === big[0] ? "right" : "wrong") + ".";
      p.again.hidden = false;
    });
  }

  function panel(v, controls) {
    var P = v.P, box = el("fieldset", {"class": "mlt-heads mll-built mll-predict", id: P + "-predict"});
    controls.parentNode.insertBefore(box, controls.nextSibling);
    el("legend", {}, box, "Predict, then see");
    el("div", {}, box, "Cut the ticked senders from one input of the ticked receivers. Before you look, commit a guess:");
    var p = {kinds: radios(box, P, "guess", "which input matters most?", [["Q", "Q"], ["K", "K"], ["V", "V"]]),
             sizes: radios(box, P, "size", "how much will the loss rise?", SIZES)};
    var btns = el("div", {}, box), row = el("div", {"class": "mlt-row"}, box);
    p.commit = ui.button(btns, P + "-commit", "commit my prediction", function () {
      var kind = chosen(p.kinds), size = chosen(p.sizes);
      if (!kind || !size) { p.verdict.textContent = "Choose an input and a size first."; return; }
      p.kinds.concat(p.sizes).forEach(function (r) { r.disabled = true; });
      answer(v, p, kind, size);
    });
    p.again = ui.button(btns, P + "-again", "predict again", function () {
      p.kinds.concat(p.sizes).forEach(function (r) { r.disabled = false; r.checked = false; });
      p.model.innerHTML = ""; p.verdict.textContent = ""; p.again.hidden = true;
    });
    p.again.hidden = true;
    p.verdict = el("div", {id: P + "-verdict", role: "status", "aria-live": "polite"}, row);
    p.model = el("div", {}, row);
    return p;
  }

  api.predict = {panel: panel, sizeOf: function (rise) { return sizeOf(rise)[0]; }};
})();
