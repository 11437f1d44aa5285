"""What runs inside the student's sandboxed kernel when a notebook is graded.

:mod:`mechlib.teaching.grading` appends one cell to the notebook that calls
:func:`collect`: it calls each exercise's function on the hidden cases of the seed
the grader chose (the check's own inputs, :func:`mechlib.teaching.checking.hidden_cases`)
and writes what came back, as plain data (:mod:`mechlib.teaching.transport`), to the
sandbox's scratch folder. It decides nothing: the comparisons, the points and the
messages are computed later in the grader's own process. Whatever the notebook did to
this module, to the checks or to torch can only change the outputs it reports -- and an
output is worth points only if it is right for inputs the notebook never saw.
"""
from __future__ import annotations

import contextlib
import io
import signal
import threading
from pathlib import Path

from mechlib.teaching.checking import Recorder, hidden_cases
from mechlib.teaching.registry import EXERCISES
from mechlib.teaching.transport import encode_outcomes


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


def record_namespace(notebook: str, namespace: dict, seed: int, time_limit: float = 60.0) -> dict[str, dict]:
    """``{exercise id: {"status", "type", "outcomes", "note"}}`` for every exercise of ``notebook``.

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
        rec = Recorder(fn)
        note = ""

        def on_alarm(signum, frame):
            raise _CheckTimeout()

        old = signal.signal(signal.SIGALRM, on_alarm) if use_alarm else None
        try:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, time_limit)
            with contextlib.redirect_stdout(_CappedIO()), contextlib.redirect_stderr(_CappedIO()), \
                    hidden_cases(seed):
                ex.check(rec, verbose=False)
        except _CheckTimeout:
            note = f"the check did not finish within {time_limit:g} s (an endless loop?)"
        except BaseException as exc:  # noqa: BLE001 -- SystemExit, KeyboardInterrupt from the learner's code
            rec.outcomes.append(("raised", type(exc).__name__, str(exc)))
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
        records[ex.id] = {"status": "called", "outcomes": rec.outcomes, "note": note}
    return records


def collect(notebook: str, namespace: dict, seed: int, out_dir: str, time_limit: float = 60.0) -> None:
    """Record the exercises of ``notebook`` (:func:`record_namespace`) and write them to
    ``out_dir/outcomes.json`` and ``out_dir/outcomes.npz``."""
    records = record_namespace(notebook, namespace, seed, time_limit)
    doc, npz = encode_outcomes(records)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "outcomes.npz").write_bytes(npz)
    (out / "outcomes.json").write_text(doc)
