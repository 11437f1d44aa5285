"""Repository-wide pytest set-up (tests/conftest.py holds the tests' fixtures).

The chapters' stored outputs are the book's: their live widgets load the model from the
built site (``MECHLIB_LIVE_ASSETS=site``, see :func:`mechlib.views.live.resolve_assets`).
When nbval compares those outputs, the kernels it starts (which inherit this environment)
must produce the same; ``--nbval-lax`` runs (the learner install) keep a learner's default,
the widgets carrying the model inline.
"""
import os


def pytest_configure(config):
    if config.getoption("nbval", default=False):
        os.environ.setdefault("MECHLIB_LIVE_ASSETS", "site")
