/* loader.js: mounts the live widgets of a page, loading what they need once per page.
 *
 * Every widget's output (widget.html) holds its root element, a
 * <script type="application/json" class="mll-config"> with its configuration, and this file.
 * The configuration (written by mechlib.views.live) is
 *   {id, widget, site_dir, assets: [{file, text?}], config}
 * where `assets` are the files the widget needs in order (weights, model.js, ui.js, live.css,
 * then its view's files, e.g. heatmap.js, model-view.js, head-toggle.js): one that carries its `text` is put into the page as it is (a running notebook:
 * Jupyter, Colab, VS Code); one without is fetched from <content root>/<site_dir>/<file>,
 * where the built book has it (Sphinx writes the root into <html data-content_root>).
 * Each file is added to the page once, whatever the number of widgets.
 */
(function () {
  "use strict";
  var loading = window.mechlibLiveLoading = window.mechlibLiveLoading || {};

  function say(root, message) {
    var note = root.querySelector(".mll-nojs");
    if (note) note.textContent = message;
  }

  function add(asset, base, siteDir) {
    if (loading[asset.file]) return loading[asset.file];
    var css = /\.css$/.test(asset.file), node;
    if (asset.text !== undefined) {  // carried inline: runs (or applies) as soon as it is added
      node = document.createElement(css ? "style" : "script");
      node.textContent = asset.text;
      node.setAttribute("data-mll-file", asset.file);
      document.head.appendChild(node);
      loading[asset.file] = Promise.resolve();
      return loading[asset.file];
    }
    loading[asset.file] = new Promise(function (resolve, reject) {
      node = document.createElement(css ? "link" : "script");
      if (css) { node.rel = "stylesheet"; node.href = base + siteDir + "/" + asset.file; }
      else { node.src = base + siteDir + "/" + asset.file; }
      node.onload = resolve;
      node.onerror = function () { reject(new Error("could not load " + (node.src || node.href))); };
      document.head.appendChild(node);
    });
    return loading[asset.file];
  }

  // assets one after the other: each view's file needs the ones before it; model.js needs nothing
  function addAll(assets, base, siteDir) {
    return assets.reduce(function (done, a) { return done.then(function () { return add(a, base, siteDir); }); },
                         Promise.resolve());
  }

  function mount(root, spec) {
    var fail = function (e) { say(root, "This widget could not start: " + e.message); };
    var inline = spec.assets.every(function (a) { return a.text !== undefined || loading[a.file]; });
    var base = document.documentElement.getAttribute("data-content_root");
    if (!inline && base === null) {
      say(root, "Run this cell to start the widget: in a running notebook it carries the model in its output.");
      return;
    }
    addAll(spec.assets, base, spec.site_dir).then(function () {
      try { window.mechlibLive.widgets[spec.widget](root, spec.config); } catch (e) { fail(e); throw e; }
    }, fail);
  }

  Array.prototype.forEach.call(document.querySelectorAll("script.mll-config"), function (node) {
    var root = node.parentNode;
    if (root.getAttribute("data-mll-mounted")) return;
    root.setAttribute("data-mll-mounted", "1");
    var spec = JSON.parse(node.textContent);
    root.id = spec.id;
    mount(root, spec);
  });
})();
