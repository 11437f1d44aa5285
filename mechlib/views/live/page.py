"""One live widget as notebook output: the template ``widget.html`` with one JSON blob in it.

The files of this folder (package data) are what the page runs: ``model.js`` (the forward
pass, pure), ``ui.js`` (what the views share), one file per view and the parts some views
share (:data:`WIDGET_FILES`), ``live.css``, ``loader.js`` (mounts the widgets) and
``<model>.weights.js``. A widget's output is ``widget.html``: its root element, a
``<script type="application/json">`` holding ``{id, widget, site_dir, assets, config}``, and
the loader, which loads each asset once per page -- from the built book's ``_static/live/``
(``assets="site"``; the book's Sphinx extension copies them there) or from the text carried
in the JSON (``"inline"``: a running notebook, no book to load from).
"""
from __future__ import annotations

import itertools
import json
import os
import re
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from mechlib.views.live.weights import weights_file

#: where the assets land in the built book, relative to its root
SITE_DIR = "_static/live"
#: environment variable naming how ``assets="auto"`` ships the scripts: ``site`` or ``inline``
ASSETS_ENV = "MECHLIB_LIVE_ASSETS"
#: the files of each view after :data:`SHARED_FILES`, in order (each needs the ones before it)
WIDGET_FILES = {
    "headToggle": ("heatmap.js", "model-view.js", "predict.js", "head-toggle.js"),
    "pathAblation": ("heatmap.js", "model-view.js", "predict.js", "path-ablation.js"),
    "termPicker": ("heatmap.js", "model-view.js", "term-picker.js"),
    "virtualHeadCalculator": ("virtual-heads.js",),
    "compositionExplorer": ("composition-explorer.js",),
    "checkpointSlider": ("checkpoint-slider.js",),
}
#: what every view loads first: the forward pass (and the page's API), the shared helpers, the look
SHARED_FILES = ("model.js", "ui.js", "live.css")
#: every code file, in an order that loads each after what it needs
CODE_FILES = SHARED_FILES + tuple(dict.fromkeys(f for files in WIDGET_FILES.values() for f in files))
LOADER_FILE, TEMPLATE_FILE = "loader.js", "widget.html"

_counter = itertools.count()


def asset_dir() -> Path:
    """The folder holding the live widgets' files (inside the installed package)."""
    return Path(str(resources.files("mechlib.views.live")))


def code_files(widget: str) -> tuple[str, ...]:
    """The code files view ``widget`` loads, in order: :data:`SHARED_FILES`, then its own
    (:data:`WIDGET_FILES`)."""
    if widget not in WIDGET_FILES:
        raise ValueError(f"widget must be one of {sorted(WIDGET_FILES)}; got {widget!r}")
    return SHARED_FILES + WIDGET_FILES[widget]


def asset_files(name: str | None = "induction-2l") -> list[Path]:
    """Every file a page with live widgets may load: ``name``'s weights (none for ``None``),
    then :data:`CODE_FILES` (what the book copies to ``_static/live/``)."""
    return ([asset_dir() / weights_file(name)] if name is not None else []) + [asset_dir() / f for f in CODE_FILES]


def resolve_assets(assets: str = "auto") -> str:
    """How a live widget ships its files: ``"site"`` or ``"inline"``.

    ``"auto"`` (every widget's default) reads the environment variable :data:`ASSETS_ENV`
    (``MECHLIB_LIVE_ASSETS``): the book's build sets it to ``"site"`` (its Sphinx extension
    ``live_assets``), and so does the repository's ``conftest.py`` when nbval compares the
    stored outputs (they are the book's). Anywhere else -- Jupyter, Colab, VS Code -- it is
    unset and the widget carries its files inline, so running the cell shows the same widget
    as the book's page.
    """
    if assets == "auto":
        assets = os.environ.get(ASSETS_ENV, "inline") or "inline"
        if assets not in ("site", "inline"):
            raise ValueError(f"environment variable {ASSETS_ENV} must be 'site' or 'inline'; got {assets!r}")
    elif assets not in ("site", "inline"):
        raise ValueError(f"assets must be 'auto', 'site' (the built book) or 'inline' (a notebook); got {assets!r}")
    return assets


def check_prefix(prefix: str | None, default: str) -> str:
    """The widget's prefix of element ids: ``prefix``, or ``default`` and a counter."""
    if prefix is None:
        return f"{default}{next(_counter)}"
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", prefix):
        raise ValueError(f"prefix must start with a letter and hold only letters, digits, - and _; got {prefix!r}")
    return prefix


def _json_in_html(value: Any) -> str:
    """JSON that can stand inside a ``<script>`` element: every ``<`` written as ``\\u003c``.

    One entry per line: the page does not care, and line-based tools stay fast (nbval's
    sanitizers scan a line with patterns that are quadratic in its length; the checkpoint
    slider's payload is 150 kB)."""
    return json.dumps(value, indent=0, separators=(",", ":")).replace("<", "\\u003c")


def widget_spec(widget: str, config: dict[str, Any], prefix: str, assets: str = "auto",
                weights: tuple[str, str | None] | None = None) -> dict[str, Any]:
    """What the loader reads: ``{id, widget, site_dir, assets: [{file, text?}], config}``.

    ``weights``: ``(name, text)`` of the weight set (text ``None``: it ships as a file, see
    :func:`mechlib.views.live.weights.page_weights`), or ``None`` for a widget that runs no
    model. A file carries its text when ``assets`` resolves to ``"inline"``; the weights of a
    model that ships no file carry theirs always.
    """
    inline = resolve_assets(assets) == "inline"
    files = []
    if weights is not None:
        name, text = weights
        if text is None and inline:
            text = (asset_dir() / weights_file(name)).read_text()
        files.append({"file": weights_file(name), **({"text": text} if text is not None else {})})
    for f in code_files(widget):
        files.append({"file": f, **({"text": (asset_dir() / f).read_text()} if inline else {})})
    return {"id": prefix + "-root", "widget": widget, "site_dir": SITE_DIR, "assets": files, "config": config}


def widget_html(spec: dict[str, Any]) -> str:
    """The widget's HTML: the template ``widget.html`` with ``spec`` as JSON and the loader."""
    template = Template((asset_dir() / TEMPLATE_FILE).read_text())
    return template.substitute(config=_json_in_html(spec), loader=(asset_dir() / LOADER_FILE).read_text()).strip()


def spec_of(html: str) -> dict[str, Any]:
    """The spec inside a widget's HTML (the inverse of :func:`widget_html`, for tests and tools)."""
    found = re.search(r'<script type="application/json" class="mll-config">(.*?)</script>', html, re.S)
    if found is None:
        raise ValueError("no live widget configuration in this HTML")
    return json.loads(found.group(1))
