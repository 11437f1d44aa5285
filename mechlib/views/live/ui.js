/* ui.js: what every live view shares -- building elements, charts, colours, scroll boxes,
 * keyboard helpers and the spoken summary (window.mechlibLive.ui). Needs model.js first.
 *
 * Each view (one file per panel: head-toggle.js, path-ablation.js, term-picker.js,
 * virtual-heads.js, composition-explorer.js, checkpoint-slider.js) is
 * window.mechlibLive.widgets.<name>(root, config): it builds its controls inside `root` (id
 * "<prefix>-root"; every element id starts with the prefix), sets root's data-ready when it
 * has drawn and counts redraws in data-updates. loader.js mounts them; live.css styles them.
 */
(function () {
  "use strict";
  var api = window.mechlibLive;
  if (!api) throw new Error("mechlibLive: load model.js before ui.js");
  if (api.ui) return;  // loaded twice on one page: keep the first
  var SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  function svgEl(parent, tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    parent.appendChild(e);
    return e;
  }

  function text(parent, s) { parent.appendChild(document.createTextNode(s)); }

  function colour(lut, v) {
    v = Math.min(Math.max(v, 0), 1);
    return lut[Math.min(Math.floor(v * lut.length), lut.length - 1)];
  }

  // WCAG relative luminance of "#rrggbb"
  function luminance(hex) {
    var c = [1, 3, 5].map(function (i) {
      var x = parseInt(hex.slice(i, i + 2), 16) / 255;
      return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  }

  // black or white text on `hex`, whichever contrasts more (contrast (L1 + 0.05) / (L2 + 0.05))
  function ink(hex) {
    var L = luminance(hex);
    return (L + 0.05) / 0.05 >= 1.05 / (L + 0.05) ? "#000000" : "#ffffff";
  }

  // a table cell coloured by value, its text readable on the colour
  function paint(td, lut, v) {
    var bg = colour(lut, v);
    td.style.backgroundColor = bg;
    td.style.color = ink(bg);
  }

  // "w-root" -> "w"; removes the no-JavaScript note and whatever an earlier mount built; names the widget
  function start(root, name) {
    var nojs = root.querySelector(".mll-nojs");
    if (nojs) root.removeChild(nojs);
    Array.prototype.forEach.call(root.querySelectorAll(".mll-built"), function (e) { e.parentNode.removeChild(e); });
    root.setAttribute("role", "group");
    if (name) root.setAttribute("aria-label", name);
    return root.id.replace(/-root$/, "");
  }

  function bump(root) { root.setAttribute("data-updates", String(+(root.getAttribute("data-updates") || 0) + 1)); }

  // the widget's spoken summary: a polite live region, read out when its text changes
  function liveRegion(root, P) {
    return el("div", {id: P + "-live", "class": "mll-built mll-live", role: "status", "aria-live": "polite", "aria-atomic": "true"}, root);
  }

  function colourBar(parent, lut, low, high) {
    text(parent, low);
    el("span", {"class": "mll-bar", "aria-hidden": "true", style: "background:linear-gradient(to right," + lut.join(",") + ")"}, parent);
    text(parent, high);
  }

  // a box that scrolls sideways when its content is wider, named, reachable by keyboard while
  // it scrolls (its own tab stop unless `inner` says its content has one; scrollCues sets it),
  // and followed by a cue that says so when it scrolls: {wrap, cue}
  function scrollBox(parent, label, cueText, cueId, inner) {
    var wrap = el("div", {"class": "mll-scroll", role: "group", "aria-label": label}, parent);
    if (!inner) wrap.setAttribute("data-tab-stop", "1");
    var cue = el("div", {"class": "mlt-axis mll-cue", "data-cue": cueText}, parent, "");
    if (cueId) cue.id = cueId;
    return {wrap: wrap, cue: cue};
  }

  // every scroll box of `root`: the cue and a tab stop when its content overflows, nothing when
  // it fits (a stop that does nothing costs a keyboard reader a key press)
  function scrollCues(root) {
    Array.prototype.forEach.call(root.querySelectorAll(".mll-scroll"), function (wrap) {
      var cue = wrap.nextElementSibling, wide = wrap.scrollWidth > wrap.clientWidth + 1;
      if (cue && cue.classList.contains("mll-cue")) cue.textContent = wide ? cue.getAttribute("data-cue") : "";
      wrap.classList.toggle("mll-wide", wide);
      if (wrap.hasAttribute("data-tab-stop")) {
        if (wide) wrap.setAttribute("tabindex", "0"); else wrap.removeAttribute("tabindex");
      }
    });
  }

  // a page that changes width (a phone turned, a window resized) re-checks every widget's boxes
  window.addEventListener("resize", function () {
    Array.prototype.forEach.call(document.querySelectorAll(".mll-widget"), scrollCues);
  });

  // a checkbox that Enter toggles as Space does
  function enterToggles(cb) {
    cb.addEventListener("keydown", function (e) {
      if (e.key === "Enter") { e.preventDefault(); cb.click(); }
    });
    return cb;
  }

  // a labelled checkbox inside `parent`
  function checkbox(parent, attrs, label, checked, changed) {
    var lab = el("label", {}, parent);
    var cb = enterToggles(el("input", Object.assign({type: "checkbox"}, attrs), lab));
    cb.checked = checked;
    text(lab, " " + label);
    cb.addEventListener("change", changed);
    return cb;
  }

  function button(parent, id, label, onClick) {
    var b = el("button", {type: "button", id: id}, parent, label);
    b.addEventListener("click", onClick);
    return b;
  }

  // f(x), or x.then(f) when x is a promise: the page answers at once, a kernel later
  function after(x, f) { return x && typeof x.then === "function" ? x.then(f) : f(x); }

  // ------------------------------------------------------------------ charts
  function chart(parent, viewBox, label) {  // an SVG chart and its caption
    var box = el("div", {"class": "mll-chartbox"}, parent), svg = svgEl(box, "svg", {viewBox: viewBox, "class": "mll-chart", role: "img"});
    if (label) el("div", {"class": "mlt-axis"}, box, label);
    return svg;
  }

  function axes(svg, x0, y0, w, h, xlabel, ylabel) {
    svgEl(svg, "line", {x1: x0, y1: y0, x2: x0 + w, y2: y0, stroke: "#555"});
    svgEl(svg, "line", {x1: x0, y1: y0, x2: x0, y2: y0 - h, stroke: "#555"});
    svgEl(svg, "text", {x: x0 + w / 2, y: y0 + 28, "text-anchor": "middle", "font-size": "11"}, xlabel);
    svgEl(svg, "text", {x: 10, y: y0 - h / 2, "font-size": "11", "text-anchor": "middle",
                        transform: "rotate(-90 10 " + (y0 - h / 2) + ")"}, ylabel);
  }

  function bar(svg, x, y, w, h, fill, title) {
    svgEl(svg, "rect", {x: x, y: y, width: w, height: h, fill: fill}).appendChild(document.createElementNS(SVG, "title")).textContent = title;
  }

  api.ui = {el: el, svgEl: svgEl, text: text, colour: colour, ink: ink, paint: paint, start: start, bump: bump,
            liveRegion: liveRegion, colourBar: colourBar, scrollBox: scrollBox, scrollCues: scrollCues,
            enterToggles: enterToggles, checkbox: checkbox, button: button, after: after,
            chart: chart, axes: axes, bar: bar};
})();
