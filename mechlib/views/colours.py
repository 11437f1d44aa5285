"""Colour tables for the live widgets: the colour scales of :mod:`mechlib.views.plots`,
sampled as hex colours, so that a widget in the page colours a quantity as the book's
figures do.

Shown in every live widget (:mod:`mechlib.views.live`), Chapters 2-7.
"""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps

#: colours per table: enough steps that neighbouring values look distinct
LUT_SIZE = 64
#: orange boundary lines between prefix, first copy and second copy, as in plots.plot_attention
BOUNDARY_COLOUR = "#ff7f0e"


def colour_table(cmap: str, n: int = LUT_SIZE) -> list[str]:
    """``n`` hex colours sampled evenly from the matplotlib colour map ``cmap`` (its 0..1 scale)."""
    rgba = colormaps[cmap](np.linspace(0, 1, n))
    return ["#%02x%02x%02x" % tuple(int(round(255 * c)) for c in col[:3]) for col in rgba]
