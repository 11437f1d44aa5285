/* predict.js: "predict, then see" (window.mechlibLive.predict), on the path ablation (chapters
 * 3 and 4) and the head toggle (chapter 5). Before the page shows what an ablation does, the
 * reader commits a prediction: which choice matters most -- which input of the receivers (Q, K
 * or V) cut from the ticked senders, or which head switched off alone -- and roughly how much
 * the loss on the scored tokens (the repeated ones, or those of config.batch) will rise (under
 * 0.1 nats, 0.1 to 1, over 1). Then the model
 * answers beside it: the rise for every choice on the current sequence, and whether the choice
 * and the size were right. State in the page only: nothing is stored or sent. Needs ui.js; a
 * view calls panel(view, its controls, question).
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
      var lab = el("label", {}, box);
      var r = el("input", {type: "radio", name: P + "-" + group, id: P + "-" + group + "-" + it[0].replace(".", "-"), value: it[0]}, lab);
      ui.text(lab, " " + it[1]);
      return r;
    });
  }

  function chosen(list) { var r = list.filter(function (x) { return x.checked; })[0]; return r ? r.value : null; }

  function sizeOf(rise) { return SIZES.filter(function (s) { return rise >= s[2] && rise < s[3]; })[0] || SIZES[0]; }

  // the rise of the repeat loss over the clean run for each choice's intervention: {choice: rise}
  function rises(v, q, done) {
    var t = v.state.tokens, V = v.C.d_vocab, clean = v.state.refs.clean, out = {}, names = q.choices.map(function (c) { return c[0]; });
    (function next(i) {
      if (i === names.length) return done(out);
      ui.after(v.runner.run(t, q.options(names[i])), function (r) {
        out[names[i]] = api.repeatLoss(r.logits, t, v.state.repeat, V) - clean;
        next(i + 1);
      });
    })(0);
  }

  function answerTable(v, p, q, r, best) {
    p.model.innerHTML = "";
    var tbl = el("table", {"class": "mll-predtable", id: v.P + "-answer"}, p.model);
    el("caption", {}, tbl, "the model: rise of the loss on the " + v.what);
    q.choices.forEach(function (c) {
      var tr = el("tr", {}, tbl);
      el("th", {scope: "row"}, tr, q.verb + c[1]);
      el("td", {id: v.P + "-rise-" + c[0].replace(".", "-")}, tr, (r[c[0]] >= 0 ? "+" : "") + r[c[0]].toFixed(3) + " nats" + (c[0] === best ? " (most)" : ""));
    });
  }

  function answer(v, p, q, guess, size) {
    var problem = q.problem && q.problem();
    if (problem) { p.verdict.textContent = problem; return false; }
    if (!v.state.repeat.length) {
      p.verdict.textContent = v.config.batch ? "This sequence has none of the " + v.what + ": take one of the batch first."
        : "This sequence repeats no token: draw a repeated one first.";
      return false;
    }
    rises(v, q, function (r) {
      var best = Object.keys(r).reduce(function (a, b) { return r[b] > r[a] ? b : a; }), big = sizeOf(r[best]);
      answerTable(v, p, q, r, best);
      p.verdict.textContent = "You predicted " + guess + ", " + SIZES.filter(function (s) { return s[0] === size; })[0][1] +
        ". The model: " + q.verb + best + " matters most, +" + r[best].toFixed(3) + " nats, " + big[1] + ". Your choice is " +
        (guess === best ? "right" : "wrong") + "; the size is " + (size === big[0] ? "right" : "wrong") + ".";
      p.again.hidden = false;
    });
    return true;
  }

  // q: {question, choices: [[value, label]], verb ("cutting "), options(value) -> run options, problem() -> text or null}
  function panel(v, controls, q) {
    var P = v.P, box = el("fieldset", {"class": "mlt-heads mll-built mll-predict", id: P + "-predict"});
    controls.parentNode.insertBefore(box, controls.nextSibling);
    el("legend", {}, box, "Predict, then see");
    el("div", {}, box, q.intro + " Before you look, commit a guess:");
    var p = {guess: radios(box, P, "guess", q.question, q.choices),
             sizes: radios(box, P, "size", "how much will the loss rise?", SIZES)};
    var btns = el("div", {}, box), row = el("div", {"class": "mlt-row"}, box), all = p.guess.concat(p.sizes);
    p.commit = ui.button(btns, P + "-commit", "commit my prediction", function () {
      var guess = chosen(p.guess), size = chosen(p.sizes);
      if (!guess || !size) { p.verdict.textContent = "Choose an answer and a size first."; return; }
      if (answer(v, p, q, guess, size)) all.forEach(function (r) { r.disabled = true; });
    });
    p.again = ui.button(btns, P + "-again", "predict again", function () {
      all.forEach(function (r) { r.disabled = false; r.checked = false; });
      p.model.innerHTML = ""; p.verdict.textContent = ""; p.again.hidden = true;
    });
    p.again.hidden = true;
    p.verdict = el("div", {id: P + "-verdict", role: "status", "aria-live": "polite"}, row);
    p.model = el("div", {}, row);
    return p;
  }

  api.predict = {panel: panel};
})();
