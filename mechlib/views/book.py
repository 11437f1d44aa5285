"""The book's bookkeeping: record a number for the prose, and check the claim it backs.

The chapters' prose quotes numbers computed on the page (``{glue:text}`name```); this
module records them. It lives in hidden cells (tagged ``remove-cell``), so readers see
only the teaching code. Two rules keep the pages the same on every machine, thread
count and BLAS:

* a float is recorded only as far as the prose shows it (:func:`glue` takes the
  number of decimals or significant digits, and refuses a float without one);
* a quantity at the noise floor is recorded as a bound, after an assert that it holds
  (:func:`glue_bound`), never as digits of noise.

A record is the display output myst-nb's ``glue`` writes (the value's mime bundle under
``application/papermill.record/``, with ``scrapbook`` metadata naming it), written here
without importing myst-nb: a learner's install (Colab) has no myst-nb, and its notebooks must
produce the same outputs as the book's, which the book build reads. Outside IPython nothing
is displayed; every value is also kept in :data:`RECORDED`.

Used by every chapter, in its hidden (``remove-cell``) cells.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

#: the mime prefix of a recorded value (myst-nb's ``GLUE_PREFIX``, as papermill's scrapbook wrote it)
GLUE_PREFIX = "application/papermill.record/"

#: every value recorded in this process, by name (what the prose would show)
RECORDED: dict[str, Any] = {}


def round_to(value: float, decimals: int | None = None, sig: int | None = None) -> float:
    """``value`` rounded to ``decimals`` places, or to ``sig`` significant digits."""
    if (decimals is None) == (sig is None):
        raise TypeError("give exactly one of decimals= or sig=")
    if decimals is not None:
        return round(float(value), decimals)
    if value == 0:
        return 0.0
    return round(float(value), sig - 1 - math.floor(math.log10(abs(value))))


def glue(name: str, value: Any, decimals: int | None = None, sig: int | None = None) -> Any:
    """Record ``value`` under ``name`` for the prose; floats rounded as the prose shows them.

    Ints, strings and bools are recorded as they are. A float (Python, numpy or a 0-d
    tensor) needs ``decimals`` (``round(value, decimals)``) or ``sig`` (significant
    digits): recording more digits than the page shows would make the notebook's
    stored output depend on the machine. Returns the recorded value.
    """
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        if decimals is None and sig is None:
            raise TypeError(
                f"glue({name!r}, {value!r}): a float needs decimals= or sig=, the precision the prose shows"
            )
        value = round_to(value, decimals, sig)
    elif decimals is not None or sig is not None:
        value = round_to(value, decimals, sig) if isinstance(value, numbers.Real) else value
    RECORDED[name] = value
    _display_record(name, value)
    return value


def glue_bound(name: str, value: float, below: float) -> float:
    """Assert ``value < below`` and record ``below``: a noise-floor quantity stated as a bound.

    Float rounding differs between machines; the claim "below 1e-5" does not.
    """
    value = float(value.item() if hasattr(value, "item") else value)
    if not value < below:
        raise AssertionError(f"{name}: expected a value below {below:g}, got {value:.3g}")
    RECORDED[name] = below
    _display_record(name, below)
    return below


def _display_record(name: str, value: Any) -> None:
    """Write the record as myst-nb's ``glue(name, value, display=False)`` would, in IPython only."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - the views extra brings IPython
        return
    if get_ipython() is None:
        return
    from IPython.core.formatters import format_display_data
    from IPython.display import display

    bundle, metadata = format_display_data(value)
    metadata["scrapbook"] = {"name": name, "mime_prefix": GLUE_PREFIX}
    display({GLUE_PREFIX + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)
