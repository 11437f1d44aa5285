"""What a check says about one exercise: passed, failed or not attempted, and why.

Shared by the notebook's self-check and the grader, and free of torch, so that the
grader's bookkeeping (:mod:`mechlib.teaching.grading.report`) reads it without loading a model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"


def single_number(x: Any) -> Any:
    """The Python number ``x`` holds when it is one number in any form an honest notebook may
    return it in -- a numpy scalar (``np.float64``, ``np.int64``, ``np.bool_``), a 0-d or
    one-element numpy array, a tensor of one element of any shape (``()``, ``(1,)``, ``(1, 1)``) --
    and ``x`` itself otherwise (already a Python number, or not one number). Read the same
    way wherever a check expects a number, in the self-check and in grading alike."""
    if type(x) in (bool, int, float):
        return x
    module = type(x).__module__.split(".")[0]
    if module not in ("numpy", "torch"):
        return x
    try:
        n = x.numel() if module == "torch" else x.size
        if n == 1 and getattr(x, "dtype", None) is not None and not getattr(x, "is_complex", lambda: False)():
            value = x.item()
            return value if type(value) in (bool, int, float) else x
    except (AttributeError, TypeError, ValueError, RuntimeError):
        pass
    return x


@dataclass
class CheckResult:
    """Outcome of one self-check: ``status`` is "passed", "failed" or "not attempted"."""

    exercise: str
    function: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __str__(self) -> str:
        label = {PASSED: "passed", FAILED: "FAILED", NOT_ATTEMPTED: "not attempted"}[self.status]
        return f"{self.exercise} {self.function} -- {label}: {self.message}"

    def __repr__(self) -> str:
        return f"CheckResult(exercise={self.exercise!r}, status={self.status!r})"

    def _ipython_display_(self) -> None:
        # the check has already printed its message; showing the result again would repeat it
        pass

    def to_dict(self) -> dict[str, str]:
        return {"exercise": self.exercise, "function": self.function, "status": self.status, "message": self.message}
