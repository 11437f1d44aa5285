/* path-ablation.js: path ablation (chapters 3 and 4): the reader ticks senders, receivers and
 * inputs of the receivers (Q, K, V); every ticked sender's output is removed from the ticked
 * inputs of every ticked receiver in a later layer (model.js's paths_off, as
 * mechlib.path_ablation) and the model view (model-view.js) reruns. With config.predict, the
 * reader first commits a prediction (predict.js). Needs model-view.js (and predict.js).
 *
 * window.mechlibLive.widgets.pathAblation(root, config); config as modelView's, and
 * cut: {senders, receivers, kinds} ticked at the start, predict: true or absent.
 */
(function () {
  "use strict";
  var api = window.mechlibLive;
  if (!api || !api.modelView) throw new Error("mechlibLive: load model-view.js before path-ablation.js");
  if (api.widgets.pathAblation) return;
  var ui = api.ui, el = ui.el;

  function checkGroup(box, ctx, label, names, ids, picked) {
    var row = el("div", {role: "group", "aria-label": label}, box, label + ": ");
    return names.map(function (name) {
      var attrs = {id: ctx.P + "-" + ids + "-" + name.replace(".", "-"), "data-name": name};
      if (ids !== "kind") attrs["aria-label"] = label.replace(/s$/, "") + " " + name;
      return ui.checkbox(row, attrs, name, (picked || []).indexOf(name) >= 0, ctx.changed);
    });
  }

  function picked(list) {
    return list.filter(function (cb) { return cb.checked; }).map(function (cb) { return cb.getAttribute("data-name"); });
  }

  // every (sender, receiver, kind) with the sender in an earlier layer than the receiver
  function pathsOf(senders, receivers, kinds) {
    var paths = [];
    senders.forEach(function (s) {
      receivers.forEach(function (r) {
        if (+s.split(".")[0] < +r.split(".")[0]) kinds.forEach(function (k) { paths.push([s, r, k]); });
      });
    });
    return paths;
  }

  function pathControls(root, ctx) {
    var H = ctx.H, heads = ctx.heads, L = heads.length / H, cut = ctx.config.cut || {};
    var box = el("fieldset", {"class": "mlt-heads mll-built"}, root);
    el("legend", {}, box, "Cut paths: remove the senders' output from these inputs of the receivers");
    var senders = checkGroup(box, ctx, "senders", heads.slice(0, (L - 1) * H), "send", cut.senders);
    var receivers = checkGroup(box, ctx, "receivers", heads.slice(H), "recv", cut.receivers);
    var kinds = checkGroup(box, ctx, "inputs of the receivers", ["Q", "K", "V"], "kind", cut.kinds);
    var btns = el("div", {style: "margin-top:0.3em"}, box);
    ui.button(btns, ctx.P + "-uncut", "cut nothing", function () { kinds.forEach(function (cb) { cb.checked = false; }); ctx.changed(); });
    var count = el("span", {"class": "mlt-axis", id: ctx.P + "-npaths"}, btns);
    if (ctx.config.predict) api.predict.panel(ctx.view, box, {
      intro: "Cut the ticked senders from one input of the ticked receivers.", question: "which input matters most?",
      choices: [["Q", "Q"], ["K", "K"], ["V", "V"]], verb: "cutting ",
      options: function (k) { return {paths_off: pathsOf(picked(senders), picked(receivers), [k])}; },
      problem: function () {
        return pathsOf(picked(senders), picked(receivers), ["K"]).length ? null : "Tick a sender and a receiver in a later layer first.";
      }});
    return function () {
      var paths = pathsOf(picked(senders), picked(receivers), picked(kinds));
      count.textContent = paths.length + " path" + (paths.length === 1 ? "" : "s") + " cut";
      return {paths_off: paths};
    };
  }

  // runner: the page's (default) or a kernel's (kernel.js)
  api.widgets.pathAblation = function pathAblation(root, config, runner) {
    return api.modelView.mount(root, Object.assign({label: "live path ablation"}, config), pathControls, runner);
  };
})();
