/* kernel.js: the live views asking a kernel to run the model (an anywidget ES module).
 *
 * For a model the page cannot run (GPT-2 in Colab, a learner's own), the same view of
 * head-toggle.js is drawn, and each forward pass is a message to the kernel through the
 * ipywidgets protocol: {type: "run", id, tokens, options} (options: heads_off, paths_off or
 * terms, as window.mechlibLive.run's and the term picker's) -> {type: "result", id, n, V,
 * n_layers, n_heads} with two float32 buffers (logits [n, V] and patterns [layer, head, n, n]),
 * or {type: "error", id, message}. The Python side is mechlib.views.live.kernel.KernelWidget,
 * whose _esm is the head toggle's scripts (model.js to head-toggle.js) and this file, in order.
 */

function floats(view) {  // a DataView of float32 little-endian -> Float64Array
  var f = new Float32Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
  return Float64Array.from(f);
}

function kernelRunner(model, info) {
  var pending = {}, next = 0;
  model.on("msg:custom", function (msg, buffers) {
    var p = pending[msg.id];
    if (!p || (msg.type !== "result" && msg.type !== "error")) return;
    delete pending[msg.id];
    if (msg.type === "error") { p.reject(new Error(msg.message)); return; }
    var logits = floats(buffers[0]), flat = floats(buffers[1]), n = msg.n, patterns = [];
    for (var l = 0; l < msg.n_layers; l++) {
      var layer = [];
      for (var h = 0; h < msg.n_heads; h++) layer.push(flat.subarray((l * msg.n_heads + h) * n * n, (l * msg.n_heads + h + 1) * n * n));
      patterns.push(layer);
    }
    p.resolve({n: n, V: msg.V, logits: logits, patterns: patterns});
  });
  return {
    info: info,
    run: function (tokens, options) {
      return new Promise(function (resolve, reject) {
        var id = ++next;
        pending[id] = {resolve: resolve, reject: reject};
        model.send({type: "run", id: id, tokens: Array.from(tokens), options: options || {}});
      });
    }
  };
}

// spec: {id, widget, config}; config.info: {config: {n_layers, n_heads, d_vocab, n_ctx, ...}, heads}
function render(ctx) {
  var spec = ctx.model.get("spec"), root = document.createElement("div");
  root.className = "mll-widget";
  root.id = spec.id;
  ctx.el.appendChild(root);
  window.mechlibLive.widgets[spec.widget](root, spec.config, kernelRunner(ctx.model, spec.config.info));
}

export default { render: render };
