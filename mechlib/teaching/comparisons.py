"""How a learner's output is compared with the reference: each comparison raises
:class:`Mismatch` with a message that says precisely what is wrong -- the wrong type, the
wrong shape (expected vs got), or the first index where the values differ (expected vs
got, and the tolerance) -- and, when the output matches a common mistake, a hint.
"""
from __future__ import annotations

import math
import sys
from typing import Any

import torch

from mechlib.teaching.results import single_number


def is_tl_instance(x: Any, name: str) -> bool:
    """Whether ``x`` is an instance of TransformerLens's class ``name`` (``FactoredMatrix``,
    ``ActivationCache``). Looked up only if TransformerLens is already imported (nothing can be
    one otherwise), so a check or a graded kernel that handles only numbers and tensors never pays
    its import (seconds in every fresh process)."""
    cls = getattr(sys.modules.get("transformer_lens"), name, None)
    return isinstance(cls, type) and isinstance(x, cls)


class Mismatch(Exception):
    """Raised inside a check when the learner's output disagrees with the reference."""


def fmt_number(x: float) -> str:
    return f"{x:.6g}"


def _tol_text(rtol: float, atol: float) -> str:
    return f"tolerance |got - expected| <= {atol:g} + {rtol:g} * |expected|"


def as_tensor(got: Any, what: str = "the result") -> Any:
    """``got`` as a tensor when it is a numpy array of real numbers (an answer may compute in
    numpy); anything else unchanged."""
    if type(got).__module__ == "numpy" and hasattr(got, "dtype") and hasattr(got, "shape"):
        import numpy as np

        a = np.asarray(got)
        if a.dtype.kind in "fiub":
            return torch.from_numpy(a.astype(np.float64) if a.dtype.kind == "f" else a.copy())
        raise Mismatch(f"{what} has the wrong dtype: expected real numbers, got a numpy array of {a.dtype}")
    return got


def compare_tensor(
    got: Any,
    expected: torch.Tensor,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    what: str = "the result",
    alternatives: tuple[tuple[torch.Tensor, str], ...] = (),
) -> None:
    """Raise ``Mismatch`` with a precise message unless ``got`` is a tensor (or a numpy array)
    close to ``expected``.

    ``alternatives`` are (tensor, hint) pairs for common mistakes: when ``got`` matches
    one of them, its hint is added to the message.
    """
    if is_tl_instance(got, "FactoredMatrix"):
        raise Mismatch(
            f"{what} has the wrong type: expected a torch.Tensor, got a FactoredMatrix "
            "(its dense matrix is .AB)"
        )
    got = as_tensor(got, what)
    if not isinstance(got, torch.Tensor):
        raise Mismatch(f"{what} has the wrong type: expected a torch.Tensor (or a numpy array), "
                       f"got {type(got).__name__}")
    if tuple(got.shape) != tuple(expected.shape):
        raise Mismatch(
            f"{what} has the wrong shape: expected {tuple(expected.shape)}, got {tuple(got.shape)}"
        )
    if got.is_complex():
        raise Mismatch(f"{what} has the wrong dtype: expected real numbers, got {got.dtype}")
    g = got.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    bad = ~torch.isclose(g, e, rtol=rtol, atol=atol)
    if not bad.any():
        return
    idx = tuple(bad.nonzero()[0].tolist())
    n_bad, n = int(bad.sum()), bad.numel()
    diff = (g - e).abs().nan_to_num(nan=float("inf")).max().item()
    msg = (
        f"{what}: values differ at index {idx}: expected {fmt_number(e[idx].item())}, got {fmt_number(g[idx].item())} "
        f"({_tol_text(rtol, atol)}); {n_bad} of {n} entries differ, largest difference {diff:.3g}"
    )
    hints = [hint for alt, hint in alternatives
             if tuple(alt.shape) == tuple(g.shape) and torch.allclose(g, alt.detach().double(), rtol=rtol, atol=atol)
             and not torch.allclose(e, alt.detach().double(), rtol=rtol, atol=atol)]
    raise Mismatch(msg + _one_hint(hints))


def _one_hint(hints: list[str]) -> str:
    """The hint of the one mistake the output matches; none when it matches several (a coincidence
    of this case, which cannot tell which mistake was made)."""
    distinct = list(dict.fromkeys(hints))
    return f". Hint: {distinct[0]}" if len(distinct) == 1 else ""


def _as_float(got: Any, what: str) -> float:
    got = single_number(got)  # numpy scalars, one-element arrays and tensors: their number
    if isinstance(got, bool):
        raise Mismatch(f"{what} has the wrong type: expected a number (float), got bool")
    if isinstance(got, (int, float)):
        return float(got)
    if isinstance(got, torch.Tensor):
        if got.numel() != 1 or got.ndim > 0:
            raise Mismatch(
                f"{what} has the wrong shape: expected a single number (a float or 0-d tensor), "
                f"got a tensor of shape {tuple(got.shape)}"
            )
        return float(got.item())
    if hasattr(got, "item") and getattr(got, "size", None) == 1:  # numpy scalar
        return float(got.item())
    raise Mismatch(f"{what} has the wrong type: expected a number (float), got {type(got).__name__}")


def compare_scalar(
    got: Any,
    expected: float,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    what: str = "the result",
    alternatives: tuple[tuple[float, str], ...] = (),
) -> None:
    """Raise ``Mismatch`` unless ``got`` is one number close to ``expected``."""
    g = _as_float(got, what)
    if math.isclose(g, expected, rel_tol=rtol, abs_tol=atol):
        return
    msg = f"{what}: expected {fmt_number(expected)}, got {fmt_number(g)} ({_tol_text(rtol, atol)})"
    hints = [hint for alt, hint in alternatives if math.isclose(g, alt, rel_tol=rtol, abs_tol=atol)
             and not math.isclose(expected, alt, rel_tol=rtol, abs_tol=atol)]
    raise Mismatch(msg + _one_hint(hints))


def compare_int(got: Any, expected: int, what: str = "the result",
                alternatives: tuple[tuple[int, str], ...] = ()) -> None:
    """Raise ``Mismatch`` unless ``got`` is the integer ``expected`` (an ``int``, a numpy integer or an
    integer tensor of one element; not a float)."""
    got = single_number(got)  # numpy scalars, one-element arrays and tensors: the Python number they hold
    if isinstance(got, bool) or not isinstance(got, int):
        raise Mismatch(f"{what} has the wrong type: expected an int, got {type(got).__name__} {got!r}")
    if got != expected:
        raise Mismatch(f"{what}: expected {expected}, got {got}"
                       + _one_hint([hint for alt, hint in alternatives if alt == got]))
