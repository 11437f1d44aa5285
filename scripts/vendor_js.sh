#!/usr/bin/env bash
# Fetch the JavaScript that renders ipywidgets in the built book, so that no page needs a CDN.
#
# Run this only to upgrade the pinned versions below; its output is committed under
# book_assets/ and the book build never needs npm. `_config.yml` copies book_assets/ into
# the built site (html_extra_path) and points myst-nb's `nb_ipywidgets_js` at the files.
#
#   requirejs                      -> require.js    (AMD loader that embed-amd.js needs)
#   @jupyter-widgets/html-manager  -> embed-amd.js  (widget manager, bundles base/controls/output
#                                     for ipywidgets 7 and 8) + the Font Awesome fonts it uses
#
# The npm package `requirejs` ships require.js only (no minified copy), so that is what we use.
set -euo pipefail

REQUIREJS_VERSION=2.3.8
HTML_MANAGER_VERSION=1.0.15   # the 1.0.x line renders ipywidgets 8 (and 7) widget state

cd "$(dirname "$0")/.."
dest=book_assets/_static/widgets
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# `npm pack` downloads the package tarballs (checked against the registry's integrity hash)
# without installing dependencies or running install scripts.
(cd "$tmp" && npm pack --silent "requirejs@$REQUIREJS_VERSION" \
    "@jupyter-widgets/html-manager@$HTML_MANAGER_VERSION" >/dev/null)
mkdir -p "$tmp/requirejs" "$tmp/html-manager"
tar xzf "$tmp/requirejs-$REQUIREJS_VERSION.tgz" -C "$tmp/requirejs"
tar xzf "$tmp/jupyter-widgets-html-manager-$HTML_MANAGER_VERSION.tgz" -C "$tmp/html-manager"

rm -rf "$dest"
mkdir -p "$dest"
cp "$tmp/requirejs/package/require.js" "$dest/"
hm="$tmp/html-manager/package/dist"
cp "$hm/embed-amd.js" "$dest/"
cp "$hm/embed.js.LICENSE.txt" "$dest/embed-amd.js.LICENSE.txt"
# Font Awesome fonts for widget icons. Current browsers use woff2 (woff, ttf as fallbacks);
# the .eot and .svg variants are for Internet Explorer and old iOS only, so they are left out.
cp "$hm"/*.woff2 "$hm"/*.woff "$hm"/*.ttf "$dest/"

# Loaded before require.js and embed-amd.js on every page with widgets (see _config.yml).
cat > "$dest/widgets-setup.js" <<'JS'
// Book-specific set-up for the ipywidgets bundle (embed-amd.js). Load before require.js.
(function () {
  // The folder this script was served from (_static/widgets/), wherever the page is.
  var here = document.currentScript.src.replace(/[^/?]*(\?.*)?$/, "");

  // embed-amd.js fetches its Font Awesome fonts relative to the URL that require.js gives
  // its modules, by default the page's folder (chapters/@jupyter-widgets/...): a 404.
  // Map those module names here so the fonts come from _static/widgets/. A `require`
  // object that exists before require.js loads is read by it as its configuration.
  window.require = {
    paths: {
      "@jupyter-widgets": here.slice(0, -1),
      "@jupyter-widgets/html-manager/dist": here.slice(0, -1),
    },
  };

  // The widgets typeset their labels through the MathJax 2 API (MathJax.Hub.Queue); the
  // book loads MathJax 3, where that call throws. Give MathJax 3 that one entry point.
  // Labels write math as $...$ (as in Jupyter); the book's MathJax reads \(...\) only.
  document.addEventListener("DOMContentLoaded", function () {
    var mj = window.MathJax;
    if (!mj || mj.Hub || typeof mj.version !== "string" || mj.version[0] !== "3") return;
    mj.Hub = {
      Queue: function (job) {
        var element = job && job[2];
        if (!element) return;
        if (element.childElementCount === 0 && element.textContent.indexOf("$") >= 0) {
          element.textContent = element.textContent
            .replace(/\$\$([^$]+)\$\$/g, "\\[$1\\]")
            .replace(/\$([^$]+)\$/g, "\\($1\\)");
        }
        mj.startup.promise.then(function () { return mj.typesetPromise([element]); });
      },
    };
  });
})();
JS

cat > "$dest/VERSIONS.txt" <<TXT
Vendored by scripts/vendor_js.sh from the npm registry; do not edit by hand.
requirejs@$REQUIREJS_VERSION (MIT): require.js
@jupyter-widgets/html-manager@$HTML_MANAGER_VERSION (BSD-3-Clause): embed-amd.js, font files;
  the bundle's third-party JavaScript licences are in embed-amd.js.LICENSE.txt; the fonts are
  Font Awesome Free 5 (fonts SIL OFL 1.1, icons CC BY 4.0, code MIT; notice inside embed-amd.js)
TXT
(cd "$dest" && sha256sum -- * | grep -v ' VERSIONS.txt$' >> VERSIONS.txt)
echo "vendored into $dest:"
ls -l "$dest"
