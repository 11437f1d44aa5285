"""Running torch on one thread inside a block."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, then restore the previous setting.

    The bundled model's matrices are so small that a thread pool costs more than it
    saves, and on a busy CPU spinning threads can stall a 4 ms forward pass for
    hundreds of ms. One thread also makes results independent of the core count.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
