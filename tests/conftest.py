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

