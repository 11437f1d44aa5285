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
import dis
import io
import signal
import threading
import time
import types
from pathlib import Path
from typing import Any, Callable, Sequence

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


def is_placeholder(fn: Any) -> bool:
    """Whether ``fn`` is an untouched placeholder: a plain function whose body only raises
    ``NotImplementedError`` (with constant arguments, touching none of its own).

    Its outcome on any input is ``("not_implemented",)``, so the grader records that without
    building the exercise's inputs (models included). A function that does anything else, or that
    this test cannot read, is called as usual: the shortcut never changes a verdict.
    """
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType) or type(fn) is not types.FunctionType:
        return False
    if code.co_names != ("NotImplementedError",) or code.co_consts and any(
            isinstance(c, types.CodeType) for c in code.co_consts):
        return False
    ops = {i.opname for i in dis.get_instructions(code)}
    return "RAISE_VARARGS" in ops and ops <= _PLACEHOLDER_OPS


# what `raise NotImplementedError(...)` with constant arguments compiles to (CPython 3.10 to 3.13)
_PLACEHOLDER_OPS = {"RESUME", "NOP", "CACHE", "LOAD_GLOBAL", "LOAD_CONST", "PUSH_NULL", "PRECALL", "CALL",
                    "CALL_FUNCTION", "RAISE_VARARGS", "RETURN_VALUE", "RETURN_CONST", "LOAD_ASSERTION_ERROR"}


def call_all(fn: Callable, calls: Sequence[tuple], outcomes: list, time_limit: float | None = None) -> str:
    """Call ``fn`` on each ``(args, kwargs, edited)`` (:func:`mechlib.teaching.exercise.call`, as the
    self-check does) and append its outcome to ``outcomes``; stop at the first call that does
    not return a value (the verdict stops there too). Returns a note ("" if none).

    Each call's inputs are decoded (models built) before its clock starts: ``time_limit``
    seconds (SIGALRM, main thread only) are shared by the calls themselves, with the learner's
    printing swallowed.
    """
    if is_placeholder(fn):
        if len(calls):
            outcomes.append(("not_implemented",))
        return ""
    use_alarm = (time_limit is not None and hasattr(signal, "setitimer")
                 and threading.current_thread() is threading.main_thread())
    left = time_limit

    def on_alarm(signum, frame):
        raise _CheckTimeout()

    old = signal.signal(signal.SIGALRM, on_alarm) if use_alarm else None
    try:
        for i in range(len(calls)):
            args, kwargs, edited = calls[i]  # decoded (models built) here, before the clock runs
            start = time.monotonic()
            try:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))
                with single_thread(), contextlib.redirect_stdout(_CappedIO()), contextlib.redirect_stderr(_CappedIO()):
                    outcome, _ = call(fn, args, kwargs, edited)  # side effects are not evidence here: the notebook could forge them
            except _CheckTimeout:
                return f"the check did not finish within {time_limit:g} s (an endless loop?)"
            except BaseException as exc:  # noqa: BLE001 -- SystemExit, KeyboardInterrupt from the learner's code
                outcomes.append(("raised", type(exc).__name__, str(exc)))
                return ""
            finally:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            if left is not None:
                left -= time.monotonic() - start
            outcomes.append(outcome)
            if outcome[0] != "value":
                return ""
        return ""
    finally:
        if use_alarm:
            signal.signal(signal.SIGALRM, old)


def record_namespace(notebook: str, namespace: dict, calls: dict[str, Sequence[tuple]],
                     time_limit: float = 60.0) -> dict[str, dict]:
    """``{exercise id: {"status", "type", "outcomes", "note"}}`` for every exercise of ``notebook``,
    its function taken from ``namespace`` and called on ``calls[exercise id]`` (:func:`call_all`).

    ``status`` is ``"missing"`` (no such name), ``"not_callable"`` or ``"called"``; each
    exercise's calls run under a time limit of ``time_limit`` seconds in all.
    """
    if notebook not in EXERCISES:
        raise ValueError(f"unknown exercise notebook {notebook!r}; notebooks are {list(EXERCISES)}")
    records: dict[str, dict] = {}
    for ex in EXERCISES[notebook]:
        fn = namespace.get(ex.function)
        if fn is None:
            records[ex.id] = {"status": "missing", "outcomes": []}
            continue
        if not callable(fn):
            records[ex.id] = {"status": "not_callable", "type": type(fn).__name__, "outcomes": []}
            continue
        outcomes: list[Any] = []
        note = call_all(fn, calls.get(ex.id, []), outcomes, time_limit)
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
