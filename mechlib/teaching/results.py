"""What a check says about one exercise: passed, failed or not attempted, and why.

Shared by the notebook's self-check and the grader, and free of torch, so that the
grader's bookkeeping (:mod:`mechlib.teaching.grading.report`) reads it without loading a model.
"""
from __future__ import annotations

from dataclasses import dataclass

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"


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
