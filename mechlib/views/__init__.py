"""The views floor: everything a reader or learner looks at, drawn from core results.

Imports the core (:mod:`mechlib`) and nothing from :mod:`mechlib.teaching`:

* :mod:`~mechlib.views.plots` -- matplotlib figures, one colour scale per kind of quantity;
* :mod:`~mechlib.views.diagrams` -- schematic figures labelled by the model: the residual stream
  with a receiver's Q/K/V inputs, and the induction circuit on a real sequence;
* :mod:`~mechlib.views.colours` -- the plots' colour scales as colour tables for the live widgets;
* :mod:`~mechlib.views.live` -- the live widgets, one JavaScript view per panel: the model runs
  in the page (the book's pages and running notebooks), or a kernel answers for a model the
  page cannot run (anywidget);
* :mod:`~mechlib.views.book` -- the book's bookkeeping: numbers recorded for the prose.

The book's Sphinx extensions (numbered figures, author-year bibliography, copying the live
assets) are not part of the package: they live in ``book/_ext/``.

Import each by its own name (``from mechlib.views import plots``); importing this
package imports none of them, so the core stays free of plotting and widget libraries.
Inside IPython it asks the inline backend for figures at twice the resolution, shown at
their usual size (``INLINE_FIGURE_FORMAT``); that imports neither IPython nor matplotlib.
"""
import sys as _sys

#: the inline backend's figure format in the book and in Jupyter: PNG at twice the
#: figure's dpi, with width and height metadata so it shows at the usual size (sharp on a
#: high-density screen). Set here, once, because every page that draws imports a view.
INLINE_FIGURE_FORMAT = "retina"


def _sharp_inline_figures() -> None:
    """Ask IPython's inline matplotlib backend for ``INLINE_FIGURE_FORMAT`` figures.

    Only inside IPython (a notebook kernel); a plain Python process (tests, scripts) is left
    alone, and neither IPython nor matplotlib is imported by this.
    """
    if "IPython" not in _sys.modules:
        return
    from IPython import get_ipython

    if get_ipython() is None:
        return
    try:
        from matplotlib_inline.config import InlineBackend
    except ImportError:  # IPython without the inline backend: nothing to configure
        return
    # a trait: applied to the shell's formatters now if the backend is active, and kept
    # for when `import matplotlib.pyplot` activates it later
    InlineBackend.instance().figure_formats = {INLINE_FIGURE_FORMAT}


_sharp_inline_figures()
