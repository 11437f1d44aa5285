"""What runs inside the student's sandboxed kernel when a notebook is graded.

:mod:`mechlib.teaching.grading.runner` appends one cell to the notebook that calls
:func:`collect`. The grader has already drawn the hidden cases and written their
*inputs* -- and nothing else -- to a file (:func:`mechlib.teaching.grading.transport.encode_calls`):
models as the recipe that rebuilds them, tensors, numbers and heads. :func:`collect`
calls each exercise's function on those inputs and writes what came back, as plain data
(:mod:`mechlib.teaching.grading.transport`), to the sandbox's scratch folder. It computes no
reference and decides nothing: the expected values exist only in the grader's process,
which compares them with these outputs later. Whatever the notebook did to this module,
to the checks or to torch can only change the outputs it reports -- and an output is worth
points only if it is right for inputs the notebook never saw.
"""
from __future__ import annotations

import contextlib
import io
import signal
import threading
from pathlib import Path
from typing import Any, Callable

from mechlib._threads import single_thread
from mechlib.teaching.exercise import call
from mechlib.teaching.grading.transport import decode_calls, encode_outcomes
from mechlib.teaching.inputs import build_model
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


def call_all(fn: Callable, calls: list[tuple], outcomes: list) -> None:
    """Call ``fn`` on each ``(args, kwargs, edited)`` (:func:`mechlib.teaching.exercise.call`, as the
    self-check does) and append its outcome to ``outcomes``. Stops at the first call that raises
    (the verdict stops there too)."""
    with single_thread():
        for args, kwargs, edited in calls:
            outcome, _ = call(fn, args, kwargs, edited)  # side effects are not evidence here: the notebook could forge them
            outcomes.append(outcome)
            if outcome[0] != "value":
                return


def record_namespace(notebook: str, namespace: dict, calls: dict[str, list[tuple]],
                     time_limit: float = 60.0) -> dict[str, dict]:
    """``{exercise id: {"status", "type", "outcomes", "note"}}`` for every exercise of ``notebook``,
    its function taken from ``namespace`` and called on ``calls[exercise id]``.

    ``status`` is ``"missing"`` (no such name), ``"not_callable"`` or ``"called"``; each
    exercise runs under a time limit (SIGALRM, main thread only) with the learner's
    printing swallowed.
    """
    if notebook not in EXERCISES:
        raise ValueError(f"unknown exercise notebook {notebook!r}; notebooks are {list(EXERCISES)}")
    records: dict[str, dict] = {}
    use_alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    for ex in EXERCISES[notebook]:
        fn = namespace.get(ex.function)
        if fn is None:
            records[ex.id] = {"status": "missing", "outcomes": []}
            continue
        if not callable(fn):
            records[ex.id] = {"status": "not_callable", "type": type(fn).__name__, "outcomes": []}
            continue
        outcomes: list[Any] = []
        note = ""

        def on_alarm(signum, frame):
            raise _CheckTimeout()

        old = signal.signal(signal.SIGALRM, on_alarm) if use_alarm else None
        try:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, time_limit)
            with contextlib.redirect_stdout(_CappedIO()), contextlib.redirect_stderr(_CappedIO()):
                call_all(fn, calls.get(ex.id, []), outcomes)
        except _CheckTimeout:
            note = f"the check did not finish within {time_limit:g} s (an endless loop?)"
        except BaseException as exc:  # noqa: BLE001 -- SystemExit, KeyboardInterrupt from the learner's code
            outcomes.append(("raised", type(exc).__name__, str(exc)))
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
        records[ex.id] = {"status": "called", "outcomes": outcomes, "note": note}
    return records


def collect(notebook: str, namespace: dict, inputs: str, out_dir: str, time_limit: float = 60.0) -> None:
    """Call the exercises of ``notebook`` on the inputs in ``inputs.json`` / ``inputs.npz`` (under
    the folder ``inputs``) and write the outcomes to ``out_dir/outcomes.json`` and ``out_dir/outcomes.npz``."""
    src = Path(inputs)
    calls = decode_calls((src / "inputs.json").read_text(), (src / "inputs.npz").read_bytes(), build_model)
    records = record_namespace(notebook, namespace, calls, time_limit)
    doc, npz = encode_outcomes(records)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "outcomes.npz").write_bytes(npz)
    (out / "outcomes.json").write_text(doc)
