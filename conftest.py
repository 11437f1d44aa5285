"""Repository-wide pytest set-up (tests/conftest.py holds the tests' fixtures).

The chapters' stored outputs are the book's: their live widgets load the model from the
built site (``MECHLIB_LIVE_ASSETS=site``, see :func:`mechlib.views.live.resolve_assets`).
When nbval compares those outputs, the kernels it starts (which inherit this environment)
must produce the same; ``--nbval-lax`` runs keep a learner's default, the widgets carrying
the model inline.

``MECHLIB_EXECUTED_DIR``: where nbval's run writes each notebook it executed, every cell
passing, with the outputs that run computed (the same path under that folder). `make test`
builds the book from these (tests/book/test_book.py), so each notebook is executed once per
test run, not once for nbval and again for the book.
"""
import os
from pathlib import Path

import nbformat
import pytest

EXECUTED_ENV = "MECHLIB_EXECUTED_DIR"
ROOT = Path(__file__).resolve().parent


def pytest_configure(config):
    if config.getoption("nbval", default=False):
        os.environ.setdefault("MECHLIB_LIVE_ASSETS", "site")


class _ExecutedNotebooks:
    """Collects the outputs nbval's cells computed and writes each notebook whose cells all passed."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.notebooks = {}   # path -> nbval's IPyNbFile (its .nb holds the cells)
        self.failed = set()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if not hasattr(item, "cell_num") or not hasattr(item.parent, "nb"):
            return  # not an nbval cell
        path = Path(str(item.parent.fspath))
        self.notebooks[path] = item.parent
        if report.failed:
            self.failed.add(path)
        elif report.when == "call" and report.passed and item.test_outputs is not None:
            item.cell.outputs = item.test_outputs

    def pytest_sessionfinish(self, session):
        for path, notebook in self.notebooks.items():
            if path in self.failed:
                continue
            target = self.folder / path.resolve().relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook.nb, str(target))


def pytest_sessionstart(session):
    folder = os.environ.get(EXECUTED_ENV)
    if folder and session.config.getoption("nbval", default=False) or (
            folder and session.config.getoption("nbval_lax", default=False)):
        session.config.pluginmanager.register(_ExecutedNotebooks(Path(folder).resolve()), "mechlib-executed-notebooks")
