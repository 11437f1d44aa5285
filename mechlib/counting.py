"""Counting virtual heads: chains of heads in strictly increasing layers.

Taught in Chapter 7, Combinatorial Richness.
"""
from __future__ import annotations

import itertools
import math
from typing import Iterator

from mechlib.heads import Head
from mechlib.validate import check_positive_int


def count_virtual_heads(n_layers: int, n_heads: int, length: int = 2) -> int:
    """Number of chains of ``length`` heads in strictly increasing layers.

    Choose the ``length`` layers (``C(n_layers, length)`` ways), then one of ``n_heads``
    heads in each: ``n_heads**length * C(n_layers, length)``. For 12 layers of 12 heads
    and ``length=2``: ``12 * 12 * C(12, 2) = 9504``. With ``length=1`` it counts the single
    heads, which are not virtual heads: a virtual head is a chain of two heads or more, one
    V-composed OV path along the product of their patterns (Chapter 7, Combinatorial Richness).
    """
    check_positive_int(n_layers, "n_layers")
    check_positive_int(n_heads, "n_heads")
    check_positive_int(length, "length")
    return n_heads**length * math.comb(n_layers, length)


def enumerate_virtual_heads(n_layers: int, n_heads: int, length: int = 2) -> Iterator[tuple[Head, ...]]:
    """Every chain ``((l_1, h_1), ..., (l_k, h_k))`` with ``l_1 < ... < l_k``, in lexicographic order."""
    check_positive_int(n_layers, "n_layers")
    check_positive_int(n_heads, "n_heads")
    check_positive_int(length, "length")
    for layers in itertools.combinations(range(n_layers), length):
        for heads in itertools.product(range(n_heads), repeat=length):
            yield tuple(zip(layers, heads))
