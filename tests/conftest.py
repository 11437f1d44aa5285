import pytest
import torch

import mechlib
from mechlib.models import InductionConfig, build_model

# one thread per worker: tests run under pytest-xdist on two cores, and oversubscribed
# torch threads are many times slower than one thread each
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def model():
    return mechlib.load_model()


@pytest.fixture(scope="session")
def random_model():
    """An untrained 3-layer model: checks must not depend on training having gone well."""
    cfg = InductionConfig(seed=7, n_layers=3, d_model=32, n_heads=3, d_head=8, d_vocab=20, n_ctx=16)
    m = build_model(cfg)
    # give every bias a non-zero value so bias paths are exercised
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    return m


@pytest.fixture(scope="session")
def rep_tokens():
    return mechlib.repeated_tokens(32, 64, 7, seed=11, prefix_len=5)
