"""The views floor: everything a reader or learner looks at, drawn from core results.

Imports the core (:mod:`mechlib`) and nothing from :mod:`mechlib.teaching`:

* :mod:`~mechlib.views.plots` -- matplotlib figures, one colour scale per kind of quantity;
* :mod:`~mechlib.views.diagrams` -- schematic figures labelled by the model: the residual stream
  with a receiver's Q/K/V inputs, and the induction circuit on a real sequence;
* :mod:`~mechlib.views.html` -- HTML pieces shared by every widget (colours, tables, heatmaps);
* :mod:`~mechlib.views.live` -- the model in the page: a JavaScript forward pass of the bundled
  model and the kernel-free widgets built on it (the book's pages and running notebooks);
* :mod:`~mechlib.views.widgets` -- ipywidgets views for Jupyter and Colab;
* :mod:`~mechlib.views.book` -- the book's bookkeeping: numbers recorded for the prose.

Import each by its own name (``from mechlib.views import plots``); importing this
package imports none of them, so the core stays free of plotting and widget libraries.
"""
