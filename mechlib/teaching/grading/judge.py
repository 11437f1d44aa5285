"""The verdict, in the grader's own process: draw each exercise's hidden cases, and compare
the outputs a notebook's run recorded with their reference values.

Only the cases' *inputs* leave this process (:func:`~mechlib.teaching.grading.transport.encode_calls`);
the seed, the reference values and the comparisons never exist where the notebook runs.
"""
from __future__ import annotations

from mechlib.teaching.grading.report import clean
from mechlib.teaching.results import FAILED

MAX_MESSAGE = 1000  # characters of one exercise's message kept (it may quote what the notebook returned)

def hidden_inputs(name: str, seed: int) -> dict[str, list]:
    """The hidden cases of every exercise of notebook ``name`` under ``seed``: ``{exercise id: [Case]}``,
    inputs and reference values. Only the inputs go into the sandbox (:func:`transport.encode_calls`)."""
    from mechlib.teaching.registry import EXERCISES

    return {ex.id: ex.cases(seed) for ex in EXERCISES[name]}


def unchecked(name: str, message: str = "not checked (see the notes on this notebook)") -> dict[str, dict]:
    """A failed result, with ``message``, for every exercise of notebook ``name``."""
    from mechlib.teaching.registry import EXERCISES

    return {ex.id: {"exercise": ex.id, "function": ex.function, "status": FAILED, "message": message}
            for ex in EXERCISES[name]}


def judge(name: str, records: dict[str, dict], cases: dict[str, list]) -> dict[str, dict[str, str]]:
    """Each exercise's result: the outcomes recorded in the sandbox on the inputs of ``cases``
    (:func:`hidden_inputs`), compared here with the cases' reference values
    (:meth:`mechlib.teaching.exercise.Exercise.judge`, the self-check's comparisons and messages)."""
    from mechlib.teaching.registry import EXERCISES

    results = {}
    for ex in EXERCISES[name]:
        rec = records.get(ex.id)
        if rec is None:
            continue
        if rec.get("status") == "missing":
            result = ex.check(None, verbose=False).to_dict()
        elif rec.get("status") == "not_callable":
            result = ex.not_callable(str(rec.get("type", "object"))[:80]).to_dict()
        else:
            try:
                result = ex.judge(rec.get("outcomes", []), cases[ex.id], str(rec.get("note", ""))).to_dict()
            except Exception as exc:  # noqa: BLE001 -- a result so odd that comparing it failed: this exercise fails
                result = unchecked(name, f"the result could not be compared with the reference "
                                         f"({type(exc).__name__})")[ex.id]
        results[ex.id] = {k: clean(v)[:MAX_MESSAGE] for k, v in result.items()}
    return results


def grade_in_process(name: str, namespace: dict, seed: int, time_limit: float = 60.0) -> dict[str, dict[str, str]]:
    """Every step of grading in this one process, without the notebook and the sandbox: draw the
    hidden cases, send their inputs through the transport, call the functions in ``namespace`` on
    them, send the outcomes back, judge. For tests."""
    from mechlib.teaching.grading import kernel_side
    from mechlib.teaching.inputs import build_model, model_spec
    from mechlib.teaching.grading.transport import decode_calls, decode_outcomes, encode_calls, encode_outcomes

    cases = hidden_inputs(name, seed)
    calls = decode_calls(*encode_calls(cases, model_spec), build_model)
    records = kernel_side.record_namespace(name, namespace, calls, time_limit)
    return judge(name, decode_outcomes(*encode_outcomes(records)), cases)
