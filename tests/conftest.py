"""Fixtures shared by every test folder (core, views, teaching, book).

Reference computations live in :mod:`mechlib.teaching.reference` (the checks use the
same ones); no test module imports another.
"""
import pytest
import torch

import mechlib
from mechlib import toggle

# one thread per worker: tests run under pytest-xdist on two cores, and oversubscribed
# torch threads are many times slower than one thread each
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def model():
    return mechlib.load_model()


@pytest.fixture(scope="session")
def random_model():
    """An untrained 3-layer model: checks must not depend on training having gone well."""
    return mechlib.random_model(n_layers=3)


@pytest.fixture(scope="session")
def rep_tokens():
    return mechlib.repeated_tokens(32, 64, 7, seed=11, prefix_len=5)


@pytest.fixture(scope="session")
def toggle_tokens(model):
    """The head toggle's default data: 32 sequences, 5 random tokens, then 10 tokens twice."""
    return toggle.default_tokens(model)



# Longest first. Under pytest-xdist (``--dist loadscope``, as ``make test`` runs) each module, and
# each notebook under nbval, goes whole to one worker, in the order collected: a long one handed
# out last keeps one worker busy while the others wait. So the modules that grade whole classes
# in the sandbox, retrain, or start JupyterLab go first (longest first, as measured with
# ``--durations``), then the notebooks, then everything else, each group in its usual order.
LONG_FIRST = (
    "tests/teaching/test_grading_class.py",
    "tests/teaching/test_grading_hostile.py",
    "tests/teaching/test_grading_cli.py",
    "tests/teaching/test_grading_gradescope.py",
    "tests/teaching/test_check_quality.py",
    "tests/core/test_models.py",
    "tests/teaching/test_grading_limits.py",
    "chapters/05b_circuit_forms.ipynb",
    "tests/book/test_kernel_widgets.py",
    "tests/book/test_appendix_switch.py",
    "tests/core/test_core_alone.py",
    "tests/teaching/test_judge.py",
)


def _rank(item) -> tuple[int, int]:
    path = item.nodeid.split("::")[0]
    if path in LONG_FIRST:
        return (0, LONG_FIRST.index(path))
    return (1, 0) if path.endswith(".ipynb") else (2, 0)


def pytest_collection_modifyitems(config, items):
    items.sort(key=_rank)  # stable: the order within each group is pytest's
