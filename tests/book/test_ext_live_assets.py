"""The book's live-assets extension (book/_ext/live_assets.py): the build copies the live
widgets' files into the site and makes the notebooks it executes load them from there."""
from types import SimpleNamespace

import live_assets  # book/_ext, on the path by tests/book/conftest.py

from mechlib.views import live


def test_the_book_build_makes_the_executed_notebooks_load_the_site_assets(monkeypatch):
    monkeypatch.delenv(live.ASSETS_ENV, raising=False)
    live_assets.setup(SimpleNamespace(connect=lambda *a: None))
    assert live.resolve_assets("auto") == "site"


def test_the_book_extension_copies_the_assets_into_the_built_site(tmp_path):
    app = SimpleNamespace(outdir=str(tmp_path), builder=SimpleNamespace(format="html"))
    live_assets.copy_assets(app, None)
    for f in live.asset_files():
        assert (tmp_path / live.SITE_DIR / f.name).read_bytes() == f.read_bytes()
    for name in live.SHIPPED_MODELS:  # relay-2l's weights too, for the pages whose widgets run it
        f = live.asset_dir() / live.weights_file(name)
        assert (tmp_path / live.SITE_DIR / f.name).read_bytes() == f.read_bytes()
