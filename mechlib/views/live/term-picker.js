/* term-picker.js: the term picker (chapter 6): a checkbox per term of the exact path expansion
 * (direct path, single heads, virtual heads, biases), ticked = kept; the logits are the sum of
 * the kept terms (model.js's expandRaw), shown by the model view (model-view.js).
 *
 * window.mechlibLive.widgets.termPicker(root, config, runner); config as modelView's, and
 * terms_off; asking a kernel (kernel.js: runner given), config.expansion {names, kinds} lists the
 * terms and the kernel sums the kept ones.
 */
(function () {
  "use strict";
  var api = window.mechlibLive;
  if (!api || !api.modelView) throw new Error("mechlibLive: load model-view.js before term-picker.js");
  if (api.widgets.termPicker) return;
  var ui = api.ui, el = ui.el;
  var GROUPS = [["direct", "direct path"], ["single", "single-head terms"], ["virtual", "virtual-head terms"], ["bias", "bias terms"]];

  function termGroup(box, ctx, ex, g, off, boxes) {
    var names = ex.names.filter(function (n) { return ex.kinds[n] === g[0]; });
    if (!names.length) return;
    var row = el("div", {"class": "mll-group", role: "group", "aria-label": g[1]}, box);
    el("b", {}, row, g[1] + " ");
    var group = names.map(function (name) {
      var cb = ui.checkbox(row, {id: ctx.P + "-term-" + name.replace(/[^0-9a-z]+/g, "_"), "data-term": name}, name,
                           off.indexOf(name) < 0, ctx.changed);
      boxes.push(cb);
      return cb;
    });
    [["all", true], ["none", false]].forEach(function (b) {
      var btn = ui.button(row, ctx.P + "-" + g[0] + "-" + b[0], b[0], function () {
        group.forEach(function (cb) { cb.checked = b[1]; }); ctx.changed(); });
      btn.setAttribute("aria-label", (b[1] ? "keep all " : "keep none of the ") + g[1]);
    });
  }

  function termControls(root, ctx) {
    var ex = ctx.config.expansion || api.expandRaw(ctx.config.model, ctx.config.tokens);
    var boxes = [], off = ctx.config.terms_off || [];
    var box = el("fieldset", {"class": "mlt-heads mll-built"}, root);
    el("legend", {}, box, "Terms of the path expansion (ticked = kept in the logits)");
    GROUPS.forEach(function (g) { termGroup(box, ctx, ex, g, off, boxes); });
    return function () {
      return {terms: boxes.filter(function (cb) { return cb.checked; }).map(function (cb) { return cb.getAttribute("data-term"); })};
    };
  }

  // a run with `terms`: the sum of those terms of the clean run's expansion; without: a forward pass
  function termRunner(name) {
    var page = api.modelView.pageRunner(name);
    return {info: page.info, run: function (t, o) {
      if (!o.terms) return page.run(t, o);
      var ex = api.expandRaw(name, t), V = page.info.config.d_vocab, logits = new Float64Array(t.length * V);
      o.terms.forEach(function (term) { var x = ex.terms[term]; for (var i = 0; i < logits.length; i++) logits[i] += x[i]; });
      return {n: t.length, V: V, logits: logits, patterns: ex.patterns};
    }};
  }

  api.widgets.termPicker = function termPicker(root, config, runner) {
    return api.modelView.mount(root, Object.assign({label: "live term picker"}, config), termControls,
                               runner || termRunner(config.model));
  };
})();
