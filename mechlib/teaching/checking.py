"""The check framework: run a learner's function on cases, compare with a reference,
say precisely what is wrong.

A check (one per exercise, in :mod:`mechlib.teaching.checks`) is a list of
:class:`Case` objects -- one call of the learner's function and a comparison of its
result with an independent reference (:mod:`mechlib.teaching.reference`, or the
:mod:`mechlib` core) -- run by :func:`run_check`. It prints one line that says what is
wrong -- wrong type, wrong shape (expected vs got), or the first index where the values
differ (expected vs got, and the tolerance) -- and returns a :class:`CheckResult`. A
function whose body is still the exercise placeholder (it raises
``NotImplementedError``) is reported as "not attempted" instead of crashing the notebook.

Grading (:mod:`mechlib.teaching.grading`) splits a check in two, across two processes.
In the grader's process, under :func:`hidden_cases` (other random models, tokens,
matrices and sizes, drawn from a seed the grader picks at grading time, so that an
answer memorised from the notebook's self-check fails), a :class:`Collector` takes the
cases without calling anything. Only their *inputs* travel into the student's sandboxed
kernel, as data (:func:`mechlib.teaching.transport.encode_calls`), where
:mod:`~mechlib.teaching.kernel_side` calls the learner's function on them and sends the
outputs back. A :class:`Replayer` then hands those outputs to the same cases, so the
reference values, the comparisons and the verdict never exist where the notebook runs.
"""
from __future__ import annotations

import contextlib
import functools
import math
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from transformer_lens import FactoredMatrix

import mechlib
from mechlib._threads import single_thread
from mechlib.heads import Head

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"


# --------------------------------------------------------------------------- results


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


class Mismatch(Exception):
    """Raised inside a check when the learner's output disagrees with the reference."""


@dataclass
class Case:
    """One call of the learner's function: ``fn(*args, **kwargs)`` compared by ``compare``.

    ``edited``: the index of an argument the function may edit in place instead of
    returning a result (a TransformerLens hook may return ``None``); a ``None`` result is
    then judged as that argument after the call. ``after``: a check of the call's side
    effects (:func:`side_effects`), run before ``compare`` in the notebook's self-check only
    (grading sees outputs, not side effects).
    """

    desc: str
    args: tuple
    compare: Callable[[Any], None]
    kwargs: dict = field(default_factory=dict)
    edited: int | None = None
    after: Callable[[dict], None] | None = None


# --------------------------------------------------------------------------- comparisons


def fmt_number(x: float) -> str:
    return f"{x:.6g}"


def _tol_text(rtol: float, atol: float) -> str:
    return f"tolerance |got - expected| <= {atol:g} + {rtol:g} * |expected|"


def compare_tensor(
    got: Any,
    expected: torch.Tensor,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    what: str = "the result",
    alternatives: tuple[tuple[torch.Tensor, str], ...] = (),
) -> None:
    """Raise ``Mismatch`` with a precise message unless ``got`` is a tensor close to ``expected``.

    ``alternatives`` are (tensor, hint) pairs for common mistakes: when ``got`` matches
    one of them, its hint is added to the message.
    """
    if isinstance(got, FactoredMatrix):
        raise Mismatch(
            f"{what} has the wrong type: expected a torch.Tensor, got a FactoredMatrix "
            "(its dense matrix is .AB)"
        )
    if not isinstance(got, torch.Tensor):
        raise Mismatch(f"{what} has the wrong type: expected a torch.Tensor, got {type(got).__name__}")
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
    for alt, hint in alternatives:
        if tuple(alt.shape) == tuple(g.shape) and torch.allclose(g, alt.detach().double(), rtol=rtol, atol=atol):
            msg += f". Hint: {hint}"
            break
    raise Mismatch(msg)


def _as_float(got: Any, what: str) -> float:
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
    for alt, hint in alternatives:
        if math.isclose(g, alt, rel_tol=rtol, abs_tol=atol):
            msg += f". Hint: {hint}"
            break
    raise Mismatch(msg)


def compare_int(got: Any, expected: int, what: str = "the result") -> None:
    """Raise ``Mismatch`` unless ``got`` is the integer ``expected`` (an ``int``, not a float)."""
    if isinstance(got, torch.Tensor) and got.ndim == 0 and not got.dtype.is_floating_point and got.dtype != torch.bool:
        got = int(got.item())
    elif type(got).__module__ == "numpy" and getattr(got, "ndim", None) == 0:
        got = got.item()  # a numpy scalar: judge the Python number it holds
    if isinstance(got, bool) or not isinstance(got, int):
        raise Mismatch(f"{what} has the wrong type: expected an int, got {type(got).__name__} {got!r}")
    if got != expected:
        raise Mismatch(f"{what}: expected {expected}, got {got}")


# --------------------------------------------------------------------------- models and inputs


class _Hidden(threading.local):
    """The seeds of the hidden grading cases, per thread (the grader judges notebooks in parallel)."""

    def __init__(self):
        self.seeds: list[int] = []


_HIDDEN = _Hidden()


@contextlib.contextmanager
def hidden_cases(seed: int):
    """Inside this block every check draws the grader's hidden inputs, fixed by ``seed``."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed!r}")
    _HIDDEN.seeds.append(seed)
    try:
        yield
    finally:
        _HIDDEN.seeds.pop()


def hidden_seed() -> int | None:
    """The seed of the hidden cases, or None for the notebook's own self-check."""
    return _HIDDEN.seeds[-1] if _HIDDEN.seeds else None


def hidden_sizes(count: int, *ranges: tuple[int, int]) -> list[tuple[int, ...]]:
    """``count`` tuples of sizes drawn from ``ranges`` (inclusive) for the hidden cases; none in a self-check."""
    seed = hidden_seed()
    if seed is None:
        return []
    rng = random.Random(seed * 1_000_003 + count * 7919 + sum(a * 31 + b for a, b in ranges))
    return [tuple(rng.randint(a, b) for a, b in ranges) for _ in range(count)]


# How to rebuild each model a case hands to the learner, keyed by id (the models are cached,
# so they stay alive): grading sends the spec, not the weights, into the sandbox.
_SPECS: dict[int, dict] = {}


def model_spec(model) -> dict:
    """``{"bundled": True}`` or ``{"random_model": kwargs}``: what :func:`build_model` needs to rebuild ``model``."""
    try:
        return _SPECS[id(model)]
    except KeyError:
        raise ValueError("model must be bundled() or a check_model(); other models cannot be sent to a sandbox") from None


def build_model(spec: dict):
    """The model that :func:`model_spec` describes (the same weights on every machine)."""
    if spec.get("bundled") is True:
        return bundled()
    kwargs = spec.get("random_model")
    if not isinstance(kwargs, dict) or not all(isinstance(v, int) for v in kwargs.values()):
        raise ValueError(f"unknown model spec {spec!r}")
    return _random_model(tuple(sorted(kwargs.items())))


@functools.lru_cache(maxsize=16)
def _random_model(kwargs: tuple):
    model = mechlib.random_model(**dict(kwargs))
    _SPECS[id(model)] = {"random_model": dict(kwargs)}
    return model


_LOADING = threading.Lock()


def bundled():
    """The bundled ``induction-2l``, loaded once (the grader asks from two threads at once)."""
    with _LOADING:
        return _bundled()


@functools.lru_cache(maxsize=None)
def _bundled():
    model = mechlib.load_model()
    _SPECS[id(model)] = {"bundled": True}
    return model


def check_model(n_layers: int = 3):
    """An untrained model of another shape with non-zero biases (:func:`mechlib.random_model`):
    a check must not pass by hard-coding the bundled model's sizes. Under
    :func:`hidden_cases` its other sizes and its weights come from the hidden seed."""
    return _check_model(n_layers, hidden_seed())


def _check_model(n_layers: int, seed: int | None):
    if seed is None:
        return build_model({"random_model": {"n_layers": n_layers}})
    rng = random.Random(seed * 7 + n_layers)
    d_head = rng.choice([4, 6, 8])
    n_heads = rng.randint(2, 4)
    return build_model({"random_model": dict(
        n_layers=n_layers, n_heads=n_heads, d_head=d_head, d_model=d_head * rng.randint(3, 6),
        d_vocab=rng.randint(17, 29), n_ctx=rng.randint(16, 24), seed=1000 + seed % 1_000_000)})


def model_desc(model) -> str:
    if model is bundled():
        return "the bundled induction-2l model"
    c = model.cfg
    return f"a random {c.n_layers}-layer model (d_model {c.d_model}, {c.n_heads} heads of d_head {c.d_head})"


def head_pairs(model) -> list[tuple[Head, Head]]:
    """Every (sender, receiver) pair with the sender in an earlier layer."""
    return list(mechlib.enumerate_virtual_heads(model.cfg.n_layers, model.cfg.n_heads))


def _case_seed(seed: int) -> int:
    hidden = hidden_seed()
    return seed if hidden is None else (seed + 1 + hidden * 104_729) % (2**63)


def generator(seed: int) -> torch.Generator:
    """A generator for a case's random inputs (another stream under :func:`hidden_cases`)."""
    return torch.Generator().manual_seed(_case_seed(seed))


def repeat_tokens_for(model, batch: int, seed: int) -> torch.Tensor:
    """Repeated-token batch that fits the model's context (other tokens under :func:`hidden_cases`)."""
    seed = _case_seed(seed)
    c = model.cfg
    half = min(7, (c.n_ctx - 2) // 2)
    prefix = min(5, c.n_ctx - 2 * half)
    return mechlib.repeated_tokens(c.d_vocab, batch, half, seed=seed, prefix_len=prefix), half, prefix


# --------------------------------------------------------------------------- running a check


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


def _is_placeholder(value: Any) -> bool:
    return value is None or value is Ellipsis


class Collector:
    """Stands in for a learner's function in the grader: :func:`run_check` keeps its cases in
    ``cases`` and calls nothing. Their inputs are what grading sends into the sandbox."""

    def __init__(self):
        self.cases: list[Case] = []


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


class _NoOutput(Exception):
    """The sandboxed run left no outcome for this case (it stopped, crashed or timed out)."""


class Replayer:
    """Stands in for a learner's function in the grader: returns (or raises) the outcomes the
    sandbox recorded on the inputs of ``cases`` (a :class:`Collector`'s), one case at a time, so
    :func:`run_check` judges them with its usual comparisons. An outcome is ``("value", result)``,
    ``("raised", type name, message)`` or ``("not_implemented",)``. A case's ``after`` check is
    skipped: side effects happen in the sandbox, where anything the notebook reports about
    them could be forged, so they are judged by the notebook's self-check only."""

    def __init__(self, outcomes: list, cases: list[Case], note: str = ""):
        self.outcomes = list(outcomes)
        self.cases = cases
        self.note = note  # why the recording ended early, if it did
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        i, self.calls = self.calls, self.calls + 1
        if i >= len(self.outcomes):
            raise _NoOutput(self.note or "the notebook's run recorded no result for this case")
        kind, *rest = self.outcomes[i]
        if kind == "value":
            return rest[0]
        if kind == "not_implemented":
            raise NotImplementedError()
        if kind == "raised":
            name, message = rest
            # an exception of the same name, so the message reads as it would in the notebook
            raise type(str(name)[:80] or "Exception", (Exception,), {})(str(message)[:2000])
        raise _NoOutput(f"unreadable recorded outcome {kind!r}")


def run_check(
    exercise: str,
    name: str,
    fn: Any,
    cases: Callable[[], Iterator[Case]],
    verbose: bool = True,
    none_is_placeholder: bool = True,
    success: str = "",
) -> CheckResult:
    def done(status: str, message: str) -> CheckResult:
        result = CheckResult(exercise, name, status, message)
        if verbose:
            print(result)
        return result

    if isinstance(fn, Collector):
        fn.cases = list(cases())
        return CheckResult(exercise, name, "collected", f"{len(fn.cases)} cases")
    if isinstance(fn, Replayer):
        cases = functools.partial(iter, fn.cases)
    if fn is None:
        return done(NOT_ATTEMPTED, f"no function named {name} was given")
    if not callable(fn):
        return done(FAILED, f"{name} must be a function; got {type(fn).__name__}")
    with single_thread():
        status, message = _run_cases(name, fn, cases, none_is_placeholder)
    return done(status, (success or message) if status == PASSED else message)


def _run_cases(name: str, fn: Callable, cases: Callable[[], Iterator[Case]], none_is_placeholder: bool):
    """``(status, message)`` of calling ``fn`` on every case; an empty message on success."""
    n = 0
    for case in cases():
        n += 1
        call = _call_text(name, case)
        try:
            with torch.no_grad():
                got = fn(*case.args, **case.kwargs)
        except _NoOutput as exc:
            return FAILED, f"calling {call} on {case.desc}: no result ({exc})"
        except NotImplementedError:
            return NOT_ATTEMPTED, (
                "the body still raises NotImplementedError (the placeholder): write your code in place "
                "of `raise NotImplementedError()`, and finish any exercise it calls"
            )
        except Exception as exc:  # the learner's code raised: say where, not a stack trace from torch
            return FAILED, f"calling {call} on {case.desc} raised {type(exc).__name__}: {exc}"
        effects = None
        if not isinstance(fn, Replayer):
            if got is None and case.edited is not None:
                got = case.args[case.edited]
            effects = side_effects(case.args, case.kwargs)
        if none_is_placeholder and _is_placeholder(got):
            return NOT_ATTEMPTED, f"{name} returned {got!r}: it still looks like the placeholder"
        try:
            if case.after is not None and effects is not None:
                case.after(effects)
            case.compare(got)
        except Mismatch as exc:
            return FAILED, f"{call} on {case.desc}: {exc}"
    return PASSED, f"{n} cases agree with the reference"
