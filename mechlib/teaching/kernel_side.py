"""What runs inside the learner's kernel when a notebook is graded: every check of one
notebook on the functions the notebook defined, with a time limit and the learner's
printing swallowed. :mod:`mechlib.teaching.grading` injects a call to
:func:`grade_namespace` after the notebook's own cells.
"""
from __future__ import annotations

import contextlib
import io
import signal
import threading

from mechlib.teaching.checking import FAILED, CheckResult
from mechlib.teaching.registry import EXERCISES


class _CheckTimeout(BaseException):
    """Raised by the alarm when a learner's function runs too long (BaseException so `except Exception`
    in the learner's code cannot swallow it)."""


class _CappedIO(io.StringIO):
    """Swallows what the learner's functions print during grading, beyond a small cap."""

    def __init__(self, cap: int = 10_000):
        super().__init__()
        self.cap = cap

    def write(self, s: str) -> int:
        if self.tell() < self.cap:
            super().write(s[: self.cap - self.tell()])
        return len(s)


def grade_namespace(notebook: str, namespace: dict, time_limit: float = 60.0) -> dict[str, dict[str, str]]:
    """Run the check of every exercise of ``notebook`` on the functions defined in ``namespace``.

    Returns ``{exercise id: CheckResult.to_dict()}``. Each check runs with a time
    limit (SIGALRM, main thread only) and with the learner's printing swallowed; any
    exception escaping a check (the learner's function may raise ``SystemExit`` or
    ``KeyboardInterrupt``) fails that exercise only.
    """
    if notebook not in EXERCISES:
        raise ValueError(f"unknown exercise notebook {notebook!r}; notebooks are {list(EXERCISES)}")
    results: dict[str, dict[str, str]] = {}
    # an alarm can only be set from the main thread (where a kernel runs its cells)
    use_alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    for ex in EXERCISES[notebook]:
        fn = namespace.get(ex.function)

        def on_alarm(signum, frame):
            raise _CheckTimeout()

        old = signal.signal(signal.SIGALRM, on_alarm) if use_alarm else None
        try:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, time_limit)
            with contextlib.redirect_stdout(_CappedIO()), contextlib.redirect_stderr(_CappedIO()):
                result = ex.check(fn, verbose=False)
        except _CheckTimeout:
            result = CheckResult(ex.id, ex.function, FAILED,
                                 f"the check did not finish within {time_limit:g} s (an endless loop?)")
        except BaseException as exc:  # noqa: BLE001 -- SystemExit, KeyboardInterrupt from the learner's code
            result = CheckResult(ex.id, ex.function, FAILED,
                                 f"running the check raised {type(exc).__name__}: {exc}")
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
        results[ex.id] = result.to_dict()
    return results
