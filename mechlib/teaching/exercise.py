"""An exercise as data: what the learner writes, its ratings, and its cases -- each case an
input, a reference and a comparison that names common mistakes.

The notebook's self-check (:meth:`Exercise.check`) and the grader
(:mod:`mechlib.teaching.grading`) both ask the exercise for its cases
(:meth:`Exercise.cases`) and compare the learner's outputs with them, one case after the
other, stopping at the first that is wrong. The self-check calls the function itself; the
grader sends only the cases' inputs into the sandbox, where
:mod:`~mechlib.teaching.grading.kernel_side` calls the function with :func:`call`, and judges
the recorded outcomes here (:meth:`Exercise.judge`), with the same messages.

An outcome of one call is ``("value", result)``, ``("raised", type name, message)``,
``("not_implemented",)`` (the placeholder's ``NotImplementedError``), or -- in grading only --
``("none", why)`` when the sandboxed run left nothing for the case.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch

from mechlib._threads import single_thread
from mechlib.teaching import model_state
from mechlib.teaching.comparisons import Mismatch
from mechlib.teaching.inputs import hidden_cases
from mechlib.teaching.results import FAILED, NOT_ATTEMPTED, PASSED, CheckResult

NOT_IMPLEMENTED_MESSAGE = (
    "the body still raises NotImplementedError (the placeholder): write your code in place "
    "of `raise NotImplementedError()`, and finish any exercise it calls")


@dataclass
class Case:
    """One call of the learner's function: ``fn(*args, **kwargs)`` compared by ``compare``.

    ``compare(got)`` raises :class:`~mechlib.teaching.comparisons.Mismatch` when ``got`` is
    wrong; it holds the reference value and the hints for common mistakes. ``edited``: the
    index of an argument the function may edit in place instead of returning a result (a
    TransformerLens hook may return ``None``); a ``None`` result is then judged as that
    argument after the call. ``after``: a check of the call's side effects
    (:func:`side_effects`), run before ``compare`` in the notebook's self-check only (grading
    sees outputs, not side effects).
    """

    desc: str
    args: tuple
    compare: Callable[[Any], None]
    kwargs: dict = field(default_factory=dict)
    edited: int | None = None
    after: Callable[[dict], None] | None = None


# the cases of the grader's notebooks are drawn one notebook at a time: they run the shared
# check models, and hooks are model state (two threads' path ablations would fire each other's hooks)
_DRAWING = threading.Lock()


@dataclass(frozen=True)
class Exercise:
    """One exercise: where it lives, what the learner writes, how hard, how important, how long,
    what passing it is worth in ``mechlib-grade``'s CSV, and how it is checked.

    ``draw`` yields the cases (see :meth:`cases`); ``success`` is the message of a pass;
    ``statement`` says what the function computes (the check's docstring);
    ``none_is_placeholder``: a ``None`` result means "not attempted" (not so for hooks,
    which may return ``None`` after editing their input). ``on_model``: for an exercise whose
    answer is a finding about whichever model the learner loaded (the capstone), the cases on
    that model, ``on_model(model)``; it raises ``ValueError`` naming ``model`` when the exercise
    does not apply to it. Self-check only: the grader cannot rebuild a learner's model.
    """

    id: str
    notebook: str
    function: str
    title: str
    difficulty: int  # 1 (easy) .. 5
    importance: int  # 1 (optional) .. 5 (core idea)
    minutes: int
    draw: Callable[[], Iterable[Case]] = field(repr=False)
    success: str = ""
    statement: str = ""
    points: int = 1
    none_is_placeholder: bool = True
    on_model: Callable[[Any], Iterable[Case]] | None = field(default=None, repr=False)

    @property
    def column(self) -> str:
        """Column name in the grades CSV."""
        return f"{self.id} {self.function}"

    def header(self) -> str:
        """The ratings line printed under the exercise's title in the notebooks."""
        return (
            f"**Difficulty** {self.difficulty} of 5 · **Importance** {self.importance} of 5 · "
            f"**Time** about {self.minutes} minutes"
        )

    def cases(self, seed: int | None = None) -> Iterable[Case]:
        """The cases: the self-check's (``seed=None``, drawn lazily, so that a check stops early
        without computing every reference), or the grader's hidden ones for ``seed`` (a list)."""
        if seed is None:
            return iter(self.draw())
        with _DRAWING, hidden_cases(seed):
            return list(self.draw())

    def check(self, fn: Any, verbose: bool = True, cases: Iterable[Case] | None = None,
              model: Any = None) -> CheckResult:
        """The notebook's self-check: call ``fn`` on each case and compare; print the result's line.
        ``cases``: these instead of the self-check's own (a test that checks many answers draws them once).
        ``model``: the learner's own model; its cases (``on_model``) follow the others."""
        if model is not None:
            if self.on_model is None:
                raise TypeError(f"check_{self.function} takes no model: its cases are fixed")
            mine = self.on_model(model)  # raises here, naming model, when the exercise does not apply
            cases = itertools.chain(self.cases() if cases is None else cases, mine)
        result = self._check(fn, cases)
        if verbose:
            print(result)
        return result

    def _check(self, fn: Any, cases: Iterable[Case] | None = None) -> CheckResult:
        if fn is None:
            return self.result(NOT_ATTEMPTED, f"no function named {self.function} was given")
        if not callable(fn):
            return self.not_callable(type(fn).__name__)
        with single_thread():
            return self._verdict((case, *call(fn, case.args, case.kwargs, case.edited))
                                 for case in (self.cases() if cases is None else cases))

    def judge(self, outcomes: list, cases: list[Case], note: str = "") -> CheckResult:
        """The grader's verdict: the ``outcomes`` a sandboxed run recorded on the inputs of ``cases``
        (in order; fewer outcomes than cases when the run stopped early, ``note`` says why)."""
        outcomes = list(outcomes)
        why = note or "the notebook's run recorded no result for this case"
        return self._verdict((case, outcomes[i] if i < len(outcomes) else ("none", why), None)
                             for i, case in enumerate(cases))

    def not_callable(self, type_name: str) -> CheckResult:
        return self.result(FAILED, f"{self.function} must be a function; got {type_name}")

    def result(self, status: str, message: str) -> CheckResult:
        return CheckResult(self.id, self.function, status, message)

    def _verdict(self, calls: Iterator[tuple[Case, tuple, dict | None]]) -> CheckResult:
        n = 0
        for case, outcome, effects in calls:
            n += 1
            wrong = self._judge_case(case, outcome, effects)
            if wrong is not None:
                return self.result(*wrong)
        return self.result(PASSED, self.success or f"{n} cases agree with the reference")

    def _judge_case(self, case: Case, outcome: tuple, effects: dict | None) -> tuple[str, str] | None:
        """``(status, message)`` when ``outcome`` is not right for ``case``; None when it is."""
        call_text = _call_text(self.function, case)
        kind = outcome[0] if isinstance(outcome, (tuple, list)) and outcome else None
        if kind == "not_implemented":
            return NOT_ATTEMPTED, NOT_IMPLEMENTED_MESSAGE
        if kind == "raised":  # the learner's code raised: say where, not a stack trace from torch
            name, message = str(outcome[1])[:80] or "Exception", str(outcome[2])[:2000]
            if name == INPUT_CHANGED:
                return FAILED, f"calling {call_text} on {case.desc} changed its input: {message}"
            return FAILED, f"calling {call_text} on {case.desc} raised {name}: {message}"
        if kind != "value":
            why = outcome[1] if kind == "none" else f"unreadable recorded outcome {kind!r}"
            return FAILED, f"calling {call_text} on {case.desc}: no result ({why})"
        got = outcome[1]
        if self.none_is_placeholder and (got is None or got is Ellipsis):
            return NOT_ATTEMPTED, f"{self.function} returned {got!r}: it still looks like the placeholder"
        try:
            if case.after is not None and effects is not None:
                case.after(effects)
            case.compare(got)
        except Mismatch as exc:
            return FAILED, f"{call_text} on {case.desc}: {exc}"
        return None


def call(fn: Callable, args: tuple, kwargs: dict, edited: int | None) -> tuple[tuple, dict]:
    """Call the learner's ``fn(*args, **kwargs)`` once: ``(outcome, side effects)``.

    A ``None`` result of a function that may edit argument ``edited`` in place is that
    argument. A tensor or array argument the function changed in place (other than
    ``edited``), a list or dict argument it changed (``heads.pop()``), a model whose weights it
    changed or on which it left a hook makes the outcome ``("raised", INPUT_CHANGED, message)``:
    the learner's data, or their model, would be corrupted for every later cell. The model's
    weights are put back and its hooks removed (:mod:`mechlib.teaching.model_state`), so that
    one case cannot spoil the next, nor a later check on the same cached model. A
    ``numpy.float64`` result (a subclass of ``float``) is passed on as the ``float`` it is.
    Used by the self-check and, in the sandbox, by the grader's kernel side.
    """
    values = (*args, *kwargs.values())
    inputs = [(i, a) for i, a in enumerate(values) if i != edited and (_is_array(a) or _is_container(a))]
    before = [(i, _copy(a)) for i, a in inputs]
    models = [(i, model_state.snapshot(a)) for i, a in enumerate(values) if model_state.is_model(a)]
    try:
        with torch.no_grad():
            got = fn(*args, **kwargs)
    except NotImplementedError:
        return ("not_implemented",), model_state.restore_all(values, models)
    except Exception as exc:  # noqa: BLE001 -- the learner's error is an outcome like any other
        return ("raised", type(exc).__name__, str(exc)), model_state.restore_all(values, models)
    names = [f"argument {i + 1}" for i in range(len(args))] + [f"argument {k}=" for k in kwargs]
    changed = model_state.changes(values, models, names)  # restores the weights, removes new hooks
    if changed:
        return ("raised", INPUT_CHANGED, changed), {}
    for (i, a), (_, old) in zip(inputs, before):
        if not _same(a, old):
            what = ("its items were changed (a list or dict the caller still uses, e.g. by pop or append): work on "
                    "a copy (list(heads))" if _is_container(a) else
                    "the caller's data must stay as it was: work on a copy (x.clone(), or x * 1.0) or use "
                    "out-of-place operations (x / n, not x /= n)")
            return ("raised", INPUT_CHANGED, f"{names[i]} was changed in place; {what}"), {}
    if got is None and edited is not None:
        got = args[edited]
    if type(got).__module__ == "numpy" and isinstance(got, float):
        got = float(got)
    return ("value", got), side_effects(args, kwargs)


#: the outcome's error name when the learner's function changed one of its inputs in place
INPUT_CHANGED = "InputChangedInPlace"


def _is_array(x: Any) -> bool:
    return isinstance(x, torch.Tensor) or type(x).__module__ == "numpy" and hasattr(x, "shape") and hasattr(x, "copy")


def _is_container(x: Any) -> bool:
    return type(x) in (list, dict)


def _copy(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, (list, tuple)):
        return type(x)(_copy(v) for v in x) if type(x) in (list, tuple) else list(x)
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    return x.copy() if _is_array(x) else x


def _same(x: Any, old: Any) -> bool:
    if _is_container(x) or type(x) is tuple:
        if type(x) is not type(old) or len(x) != len(old):
            return False
        if isinstance(x, dict):
            return x.keys() == old.keys() and all(_same(x[k], old[k]) for k in x)
        return all(_same(a, b) for a, b in zip(x, old))
    if not (isinstance(x, torch.Tensor) or _is_array(x)):
        try:
            return bool(x == old)
        except Exception:  # noqa: BLE001 -- an object without a plain equality: not judged
            return True
    if isinstance(x, torch.Tensor):
        return x.shape == old.shape and x.dtype == old.dtype and torch.equal(
            x.detach().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0) if x.is_floating_point() else x.detach(),
            old.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0) if old.is_floating_point() else old)
    import numpy as np

    return x.shape == old.shape and bool(np.array_equal(x, old, equal_nan=True))


def side_effects(args: tuple, kwargs: dict) -> dict[str, list[str]]:
    """What a call left behind that a check may judge: ``{"hooks_left": names}``, the hook
    points of any model among the arguments that still have a hook attached. The hooks are
    then removed, so one case's leftovers cannot change the next case."""
    left: list[str] = []
    for x in (*args, *kwargs.values()):
        if hasattr(x, "hook_dict") and hasattr(x, "reset_hooks"):
            left += [name for name, hp in x.hook_dict.items() if len(getattr(hp, "_forward_hooks", {})) > 0]
            if left:
                x.reset_hooks(including_permanent=True)
    return {"hooks_left": sorted(set(left))}


def _short(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"<tensor {tuple(x.shape)}>"
    if hasattr(x, "cfg") and hasattr(x, "run_with_cache"):
        return "model"
    if isinstance(x, dict) or type(x).__name__ == "ActivationCache":
        return "cache"
    r = repr(x)
    return r if len(r) <= 40 else r[:37] + "..."


def _call_text(name: str, case: Case) -> str:
    parts = [_short(a) for a in case.args] + [f"{k}={_short(v)}" for k, v in case.kwargs.items()]
    return f"{name}({', '.join(parts)})"
