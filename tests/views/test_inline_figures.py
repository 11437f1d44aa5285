"""Figures in a notebook are drawn at twice their displayed size (mechlib.views, on import).

A real kernel runs a two-line notebook: importing any view switches IPython's inline backend
to 'retina', a PNG with twice the pixels and the displayed size in its metadata, which
myst-nb writes into the book's HTML as the image's width.
"""
import base64
import os
import struct
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[2]


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def _run(*sources: str) -> list:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", env=env)
    client.execute()
    return [o for c in nb.cells for o in c.outputs if "image/png" in o.get("data", {})]


@pytest.mark.slow
@pytest.mark.parametrize("first, second", [
    ("import mechlib.views", "import matplotlib.pyplot as plt"),
    ("import matplotlib.pyplot as plt", "from mechlib.views import book"),
], ids=["views-first", "pyplot-first"])
def test_a_figure_has_twice_the_pixels_of_its_displayed_size(first, second):
    [out] = _run(first, second, "fig = plt.figure(figsize=(4, 2), dpi=100)\nfig.gca().plot([0, 1])\nplt.show()")
    width, height = _png_size(base64.b64decode(out["data"]["image/png"]))
    shown = out["metadata"]["image/png"]
    assert (shown["width"], shown["height"]) == (width // 2, height // 2)  # IPython rounds down
    assert 300 <= shown["width"] <= 400, "shown at about the figure's size, 4 inches at 100 dpi (cropped tight)"


def test_importing_views_outside_ipython_changes_nothing():
    import subprocess
    import sys

    code = "import sys, mechlib.views; print('IPython' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.split() == ["False", "False"]
