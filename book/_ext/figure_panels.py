"""Side-by-side panels that stack on a phone (a helper of book/_ext/figure_captions.py).

A figure wider than ``figure_captions.WIDE_FIGURE_PX`` is a row of matplotlib panels drawn as one
PNG. On a phone (390 px) the whole row would shrink past legibility. At build time each such
image is cut into its panels, where a column of background pixels runs through the full height
between them, and the figure gets a second, hidden copy of itself as one image per panel;
_static/mechlib.css shows the panels one under the other on a narrow screen and the whole row
elsewhere (and on paper). A row the cut cannot split (a single wide plot, a title across every
panel) keeps the old behaviour: it keeps a legible width and scrolls sideways in its own box.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from docutils import nodes

#: a run of marked columns at least this share of the row wide is a panel's plot (its frame)
MIN_PANEL_SHARE = 0.2
#: a run of marked columns whose ink starts below this share of the height (the last x tick
#: label running past its plot's right edge) belongs to the plot on its left
LOW_SHARE = 0.7
#: a pixel this close (0-255, each channel) to the background colour counts as background
TOLERANCE = 8
PANELS_CLASS = "mechlib-panels"
#: a figure that has its panels (_static/mechlib.css stacks them on a phone)
STACKED_CLASS = "mechlib-stacked"


def panel_columns(rgb: Any) -> list[tuple[int, int]]:
    """The panels of a row of plots: ``[(x0, x1), ...]`` column ranges, left to right, covering the width.

    ``rgb`` is an ``[height, width, 3]`` uint8 array whose top-left pixel is the background.
    The image falls into runs of columns holding some other pixel, separated by blank runs; a
    run at least ``MIN_PANEL_SHARE`` of the width wide is a plot. Panels drawn alike have alike
    decorations on their left (tick labels, an axis label), so the right panel's start where
    the first panel's does, as far left of its plot as the first panel's ink is of its plot:
    the cut is the middle of the blank run ending nearest that point. Runs between two plots
    that only hold ink near the bottom (a tick label running past the left plot's edge) stay
    with the left plot; with nothing else between the plots the cut is halfway between them.
    One range, ``[(0, width)]``, when there are fewer than two plots.
    """
    import numpy as np

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"rgb must be an [height, width, 3] array; got shape {rgb.shape}")
    rgb = rgb[..., :3].astype(int)
    height, width = rgb.shape[:2]
    marked = (np.abs(rgb - rgb[0, 0]) > TOLERANCE).any(axis=2)  # [height, width]
    ink = marked.any(axis=0)
    pieces, start = [], None
    for x, any_ink in enumerate(ink):
        if any_ink and start is None:
            start = x
        elif not any_ink and start is not None:
            pieces.append((start, x))
            start = None
    if start is not None:
        pieces.append((start, width))
    plots = [i for i, (a, b) in enumerate(pieces) if b - a >= MIN_PANEL_SHARE * width]
    if len(plots) < 2:
        return [(0, width)]
    margin = pieces[plots[0]][0] - pieces[0][0]  # the first panel's ink left of its plot

    def low(piece):  # its ink starts near the bottom
        return marked[:, piece[0]:piece[1]].any(axis=1).argmax() > LOW_SHARE * height

    cuts = [0]
    for left, right in zip(plots, plots[1:]):
        between = pieces[left + 1:right]
        end = pieces[left][1]
        while between and low(between[0]):
            end = between.pop(0)[1]
        start_right = pieces[right][0]
        if not between:
            cuts.append((end + start_right) // 2)
            continue
        edges = [end] + [x for piece in between for x in piece] + [start_right]
        gaps = list(zip(edges[::2], edges[1::2]))  # the blank runs, left to right
        a, b = min(gaps, key=lambda g: abs(g[1] - (start_right - margin)))
        cuts.append((a + b) // 2)
    cuts.append(width)
    return list(zip(cuts, cuts[1:]))


def split_png(path: Path) -> list[Path]:
    """Write each panel of the PNG at ``path`` next to it (``<stem>-panel<k>.png``); [] if it does not split."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        rgba = image.convert("RGBA")
    # transparent pixels read as the white page they are shown on
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    columns = panel_columns(rgb)
    if len(columns) < 2:
        return []
    out = []
    for k, (x0, x1) in enumerate(columns, start=1):
        target = path.with_name(f"{path.stem}-panel{k}.png")
        Image.fromarray(rgb[:, x0:x1]).save(target)
        out.append(target)
    return out


def add_panels(figure: nodes.figure, image: nodes.image, srcdir: Path) -> nodes.container | None:
    """Give ``figure`` a container of its image's panels (class ``PANELS_CLASS``), before its caption,
    and the class ``STACKED_CLASS``.

    ``image["uri"]`` is myst-nb's: relative to ``srcdir`` when it starts with "/". Each panel
    image has the figure's alt text and says which panel it is. Returns the container, or None
    when the image cannot be read or does not split (the figure is then left as it was).
    """
    uri = str(image.get("uri", ""))
    path = srcdir / uri.lstrip("/") if uri.startswith("/") else Path(uri)
    if not path.suffix.lower() == ".png" or not path.is_file():
        return None
    panels = split_png(path)
    if not panels:
        return None
    box = nodes.container(classes=[PANELS_CLASS])
    alt = image.get("alt", "")
    for k, panel in enumerate(panels, start=1):
        panel_uri = uri.rsplit("/", 1)[0] + "/" + panel.name if "/" in uri else panel.name
        box += nodes.image(uri=panel_uri, alt=f"{alt} (panel {k} of {len(panels)})".strip())
    captions = [i for i, child in enumerate(figure.children) if isinstance(child, nodes.caption)]
    figure.insert(captions[0] if captions else len(figure.children), box)
    figure["classes"].append(STACKED_CLASS)
    return box
