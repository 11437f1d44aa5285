"""Sphinx extension (listed in _config.yml): copies the live widgets' assets into the built
book at ``_static/live/``, where the widgets' loader (``loader.js``) loads them from,
and sets ``MECHLIB_LIVE_ASSETS=site`` so that the notebooks it executes use them.

Not a static path on purpose: Jupyter Book adds every ``.js`` of a static path to every
page; these load only on pages that have a live widget.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from mechlib.views.live import ASSETS_ENV, SITE_DIR, asset_dir


def copy_assets(app: Any, exception: Exception | None) -> None:
    """``build-finished`` handler: copy every ``.js`` and ``.css`` of :func:`asset_dir` to ``<outdir>/_static/live/``."""
    if exception is not None or getattr(app.builder, "format", None) != "html":
        return
    dest = Path(app.outdir) / SITE_DIR
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted([*asset_dir().glob("*.js"), *asset_dir().glob("*.css")]):
        shutil.copyfile(f, dest / f.name)


def setup(app: Any) -> dict[str, Any]:
    # The notebooks run in kernels started by this process, which inherit its environment:
    # their live widgets load the assets from _static/live/ instead of carrying them inline.
    os.environ[ASSETS_ENV] = "site"
    app.connect("build-finished", copy_assets)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
