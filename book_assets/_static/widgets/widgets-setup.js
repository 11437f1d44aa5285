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
