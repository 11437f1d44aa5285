/* head-toggle.js: the head toggle (chapter 5): a checkbox per head, ticked = on; unticking one
 * switches that head off (zero ablation) and the model view (model-view.js) reruns. Runs in the
 * page, or asks a kernel for each run (kernel.js passes the runner). With config.predict, the
 * reader may first commit which head matters most (predict.js). Needs model-view.js, predict.js.
 *
 * window.mechlibLive.widgets.headToggle(root, config[, runner]); config as modelView's, and
 * heads_off (names "l.h" off at the start), predict: true or absent.
 */
(function () {
  "use strict";
  var api = window.mechlibLive;
  if (!api || !api.modelView) throw new Error("mechlibLive: load model-view.js before head-toggle.js");
  if (api.widgets.headToggle) return;
  var ui = api.ui, el = ui.el;

  function headControls(root, ctx) {
    var H = ctx.H, heads = ctx.heads, off = ctx.config.heads_off || [];
    var box = el("fieldset", {"class": "mlt-heads mll-built"}, root);
    el("legend", {}, box, "Heads (ticked = on; untick to switch a head off)");
    var boxes = heads.map(function (name, i) {
      if (i % H === 0) el("div", {role: "group", "aria-label": "layer " + Math.floor(i / H)}, box, "layer " + Math.floor(i / H) + ": ");
      return ui.checkbox(box.lastChild, {id: ctx.P + "-cb-" + i, "data-head": name, "aria-label": "head " + name},
                         name, off.indexOf(name) < 0, ctx.changed);
    });
    var btns = el("div", {style: "margin-top:0.3em"}, box);
    [["all-on", "all on", true], ["all-off", "all off", false]].forEach(function (b) {
      ui.button(btns, ctx.P + "-" + b[0], b[1], function () { boxes.forEach(function (cb) { cb.checked = b[2]; }); ctx.changed(); });
    });
    if (ctx.config.predict) api.predict.panel(ctx.view, box, {
      intro: "Switch one head off, alone, every other head on.", question: "which head matters most?",
      choices: heads.map(function (h) { return [h, h]; }), verb: "switching off ",
      options: function (h) { return {heads_off: [h]}; }});
    return function () {
      return {heads_off: heads.filter(function (n, i) { return !boxes[i].checked; })};
    };
  }

  api.widgets.headToggle = function headToggle(root, config, runner) {
    return api.modelView.mount(root, Object.assign({label: "live head toggle"}, config), headControls, runner);
  };
})();
