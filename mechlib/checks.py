"""Self-checks for the exercise notebooks: one ``check_*`` function per exercise.

Each check calls the learner's function on the bundled ``induction-2l`` model and
on small random models and inputs, and compares the result with an independent
reference (a :mod:`mechlib` function or a dense float64 computation). It prints
one line that says precisely what is wrong -- wrong type, wrong shape (expected
vs got), or the first index where the values differ (expected vs got, and the
tolerance) -- and returns a :class:`CheckResult`. A function whose body is still
the exercise placeholder (it raises ``NotImplementedError``) is reported as
"not attempted" instead of crashing the notebook.

``EXERCISES`` lists every exercise (notebook, function name, difficulty,
importance, time estimate, check); :mod:`mechlib.grading` uses it to grade
submitted notebooks with :func:`grade_namespace`.
"""
from __future__ import annotations

import contextlib
import functools
import io
import itertools
import math
import signal
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from transformer_lens import FactoredMatrix

import mechlib
from mechlib._threads import single_thread
from mechlib.models import InductionConfig, build_model

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


class _Mismatch(Exception):
    """Raised inside a check when the learner's output disagrees with the reference."""


class _NotAttempted(Exception):
    pass


@dataclass
class Case:
    """One call of the learner's function: ``fn(*args, **kwargs)`` compared by ``compare``."""

    desc: str
    args: tuple
    compare: Callable[[Any], None]
    kwargs: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- comparisons


def _fmt(x: float) -> str:
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
    """Raise ``_Mismatch`` with a precise message unless ``got`` is a tensor close to ``expected``.

    ``alternatives`` are (tensor, hint) pairs for common mistakes: when ``got`` matches
    one of them, its hint is added to the message.
    """
    if isinstance(got, FactoredMatrix):
        raise _Mismatch(
            f"{what} has the wrong type: expected a torch.Tensor, got a FactoredMatrix "
            "(its dense matrix is .AB)"
        )
    if not isinstance(got, torch.Tensor):
        raise _Mismatch(f"{what} has the wrong type: expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(expected.shape):
        raise _Mismatch(
            f"{what} has the wrong shape: expected {tuple(expected.shape)}, got {tuple(got.shape)}"
        )
    if got.is_complex():
        raise _Mismatch(f"{what} has the wrong dtype: expected real numbers, got {got.dtype}")
    g = got.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    bad = ~torch.isclose(g, e, rtol=rtol, atol=atol)
    if not bad.any():
        return
    idx = tuple(bad.nonzero()[0].tolist())
    n_bad, n = int(bad.sum()), bad.numel()
    diff = (g - e).abs().nan_to_num(nan=float("inf")).max().item()
    msg = (
        f"{what}: values differ at index {idx}: expected {_fmt(e[idx].item())}, got {_fmt(g[idx].item())} "
        f"({_tol_text(rtol, atol)}); {n_bad} of {n} entries differ, largest difference {diff:.3g}"
    )
    for alt, hint in alternatives:
        if tuple(alt.shape) == tuple(g.shape) and torch.allclose(g, alt.detach().double(), rtol=rtol, atol=atol):
            msg += f". Hint: {hint}"
            break
    raise _Mismatch(msg)


def _as_float(got: Any, what: str) -> float:
    if isinstance(got, bool):
        raise _Mismatch(f"{what} has the wrong type: expected a number (float), got bool")
    if isinstance(got, (int, float)):
        return float(got)
    if isinstance(got, torch.Tensor):
        if got.numel() != 1 or got.ndim > 0:
            raise _Mismatch(
                f"{what} has the wrong shape: expected a single number (a float or 0-d tensor), "
                f"got a tensor of shape {tuple(got.shape)}"
            )
        return float(got.item())
    if hasattr(got, "item") and getattr(got, "size", None) == 1:  # numpy scalar
        return float(got.item())
    raise _Mismatch(f"{what} has the wrong type: expected a number (float), got {type(got).__name__}")


def compare_scalar(
    got: Any,
    expected: float,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    what: str = "the result",
    alternatives: tuple[tuple[float, str], ...] = (),
) -> None:
    """Raise ``_Mismatch`` unless ``got`` is one number close to ``expected``."""
    g = _as_float(got, what)
    if math.isclose(g, expected, rel_tol=rtol, abs_tol=atol):
        return
    msg = f"{what}: expected {_fmt(expected)}, got {_fmt(g)} ({_tol_text(rtol, atol)})"
    for alt, hint in alternatives:
        if math.isclose(g, alt, rel_tol=rtol, abs_tol=atol):
            msg += f". Hint: {hint}"
            break
    raise _Mismatch(msg)


def compare_int(got: Any, expected: int, what: str = "the result") -> None:
    """Raise ``_Mismatch`` unless ``got`` is the integer ``expected`` (an ``int``, not a float)."""
    if isinstance(got, torch.Tensor) and got.ndim == 0 and not got.dtype.is_floating_point and got.dtype != torch.bool:
        got = int(got.item())
    elif type(got).__module__ == "numpy" and getattr(got, "ndim", None) == 0:
        got = got.item()  # a numpy scalar: judge the Python number it holds
    if isinstance(got, bool) or not isinstance(got, int):
        raise _Mismatch(f"{what} has the wrong type: expected an int, got {type(got).__name__} {got!r}")
    if got != expected:
        raise _Mismatch(f"{what}: expected {expected}, got {got}")


# --------------------------------------------------------------------------- models and inputs


@functools.lru_cache(maxsize=None)
def _bundled():
    return mechlib.load_model()


@functools.lru_cache(maxsize=None)
def _random_model(n_layers: int = 3):
    """An untrained model of another shape with non-zero biases: a check must not pass by
    hard-coding the bundled model's sizes."""
    cfg = InductionConfig(seed=7, n_layers=n_layers, d_model=32, n_heads=3, d_head=8, d_vocab=20, n_ctx=16)
    m = build_model(cfg)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    m.requires_grad_(False)
    return m


def _model_desc(model) -> str:
    if model is _bundled():
        return "the bundled induction-2l model"
    c = model.cfg
    return f"a random {c.n_layers}-layer model (d_model {c.d_model}, {c.n_heads} heads of d_head {c.d_head})"


def _hname(head) -> str:
    return f"{head[0]}.{head[1]}"


def _pairs(model) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Every (sender, receiver) pair with the sender in an earlier layer."""
    return list(mechlib.enumerate_virtual_heads(model.cfg.n_layers, model.cfg.n_heads))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tokens(model, batch: int, seed: int) -> torch.Tensor:
    """Repeated-token batch that fits the model's context."""
    c = model.cfg
    half = min(7, (c.n_ctx - 2) // 2)
    prefix = min(5, c.n_ctx - 2 * half)
    return mechlib.repeated_tokens(c.d_vocab, batch, half, seed=seed, prefix_len=prefix), half, prefix


def _W(model, name: str) -> torch.Tensor:
    return getattr(model, name).detach().double()


def _ov64(model, head) -> torch.Tensor:
    l, h = head
    return _W(model, "W_V")[l, h] @ _W(model, "W_O")[l, h]


def _qk64(model, head) -> torch.Tensor:
    l, h = head
    return _W(model, "W_Q")[l, h] @ _W(model, "W_K")[l, h].T


def _c64(A: torch.Tensor, B: torch.Tensor) -> float:
    return ((A @ B).norm() / (A.norm() * B.norm())).item()


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


def _run_check(
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
        except NotImplementedError:
            return NOT_ATTEMPTED, (
                "the body still raises NotImplementedError (the placeholder): write your code in place "
                "of `raise NotImplementedError()`, and finish any exercise it calls"
            )
        except Exception as exc:  # the learner's code raised: say where, not a stack trace from torch
            return FAILED, f"calling {call} on {case.desc} raised {type(exc).__name__}: {exc}"
        if none_is_placeholder and _is_placeholder(got):
            return NOT_ATTEMPTED, f"{name} returned {got!r}: it still looks like the placeholder"
        try:
            case.compare(got)
        except _Mismatch as exc:
            return FAILED, f"{call} on {case.desc}: {exc}"
    return PASSED, f"{n} cases agree with the reference"


# =========================================================================== chapter 2


def _cases_ov_matrix() -> Iterator[Case]:
    for model in (_bundled(), _random_model()):
        L, H = model.cfg.n_layers, model.cfg.n_heads
        for head in [(l, h) for l in range(L) for h in range(H)]:
            exp = _ov64(model, head)
            l, h = head
            alt = ((_W(model, "W_O")[l, h].T @ _W(model, "W_V")[l, h].T),
                   "this is (W_V W_O)^T; in the row-vector convention OV = W_V @ W_O")
            yield Case(f"head {_hname(head)} of {_model_desc(model)}", (model, head),
                       functools.partial(compare_tensor, expected=exp, alternatives=(alt,)))


def check_ov_matrix(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 02.1: ``ov_matrix(model, head)`` is the dense ``W_V^{l.h} @ W_O^{l.h}``."""
    return _run_check("02.1", "ov_matrix", fn, _cases_ov_matrix, verbose,
                      success="matches W_V @ W_O (float64) for every head of the bundled and a random model")


def _cases_composed_ov() -> Iterator[Case]:
    for model in (_bundled(), _random_model()):
        for s, r in _pairs(model):
            exp = _ov64(model, s) @ _ov64(model, r)
            alt = (_ov64(model, r) @ _ov64(model, s),
                   "this is W_OV^receiver @ W_OV^sender; with row vectors the sender acts first: "
                   "x @ W_OV^sender @ W_OV^receiver")
            yield Case(f"sender {_hname(s)}, receiver {_hname(r)} of {_model_desc(model)}", (model, s, r),
                       functools.partial(compare_tensor, expected=exp, rtol=1e-4, atol=1e-5, alternatives=(alt,)))


def check_composed_ov(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 02.2: ``composed_ov(model, sender, receiver)`` is ``W_OV^{sender} @ W_OV^{receiver}``."""
    return _run_check("02.2", "composed_ov", fn, _cases_composed_ov, verbose,
                      success="matches W_OV^sender @ W_OV^receiver for every pair of the bundled and a random model")


def _known_rank(rows: int, cols: int, rank: int, seed: int) -> torch.Tensor:
    g = _gen(seed)
    return torch.randn(rows, rank, generator=g, dtype=torch.float64) @ torch.randn(
        rank, cols, generator=g, dtype=torch.float64)


def _cases_numerical_rank() -> Iterator[Case]:
    for i, (rows, cols, rank) in enumerate([(12, 12, 3), (20, 9, 5), (7, 30, 1), (16, 16, 16)]):
        M = _known_rank(rows, cols, rank, seed=100 + i)
        yield Case(f"a random {rows}x{cols} float64 matrix of rank {rank}", (M,),
                   functools.partial(compare_int, expected=rank))
    yield Case("the 6x6 zero matrix", (torch.zeros(6, 6),), functools.partial(compare_int, expected=0))
    D = torch.diag(torch.tensor([1.0, 0.5, 0.05, 0.001], dtype=torch.float64))
    yield Case("diag(1, 0.5, 0.05, 0.001)", (D,), functools.partial(compare_int, expected=4))
    yield Case("diag(1, 0.5, 0.05, 0.001) with rtol=0.1 (count singular values > 0.1 * the largest)", (D,),
               functools.partial(compare_int, expected=2), kwargs={"rtol": 0.1})
    model = _bundled()
    M = (model.W_V[0, 0] @ model.W_O[0, 0] @ model.W_V[1, 2] @ model.W_O[1, 2]).detach()
    yield Case("the composed OV circuit 0.0 -> 1.2 of the bundled model (float32, 64x64)", (M,),
               functools.partial(compare_int, expected=int(torch.linalg.matrix_rank(M.double(), rtol=1e-5))))


def check_numerical_rank(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 02.3: ``numerical_rank(M, rtol=1e-5)`` counts singular values above ``rtol`` times the largest."""
    return _run_check("02.3", "numerical_rank", fn, _cases_numerical_rank, verbose,
                      success="right rank for matrices of known rank, the zero matrix, a custom rtol and a composed OV circuit")


def _cases_composition_score() -> Iterator[Case]:
    g = _gen(3)
    for shape in [(10, 10, 10), (6, 9, 4), (64, 64, 64)]:
        n, k, m = shape
        A = torch.randn(n, k, generator=g, dtype=torch.float64)
        B = torch.randn(k, m, generator=g, dtype=torch.float64)
        exp = float(mechlib.composition_score(A, B))
        alts = ((((A @ B).norm() / (A.norm() + B.norm())).item(), "divide by the product of the norms, not their sum"),
                ((A @ B).norm().item(), "divide ||A B||_F by ||A||_F ||B||_F"))
        yield Case(f"random float64 matrices A {n}x{k} and B {k}x{m}", (A, B),
                   functools.partial(compare_scalar, expected=exp, alternatives=alts))
    A = torch.eye(8, dtype=torch.float64)[:, :2] @ torch.eye(8, dtype=torch.float64)[:2]  # writes to dims 0,1
    B = torch.eye(8, dtype=torch.float64)[:, 2:4] @ torch.eye(8, dtype=torch.float64)[2:4]  # reads dims 2,3
    yield Case("A writing only to dims 0-1 and B reading only dims 2-3 (orthogonal: score 0)", (A, B),
               functools.partial(compare_scalar, expected=0.0))
    yield Case("A = B = the same rank-1 projection (score 1)", (A[:, :1] @ A[:1], A[:, :1] @ A[:1]),
               functools.partial(compare_scalar, expected=1.0))
    model = _bundled()
    A, B = model.W_V[0, 3] @ model.W_O[0, 3], model.W_V[1, 0] @ model.W_O[1, 0]
    exp = _c64(A.double(), B.double())
    yield Case("the OV circuits of heads 0.3 and 1.0 of the bundled model (float32)", (A.detach(), B.detach()),
               functools.partial(compare_scalar, expected=exp, rtol=1e-4, alternatives=(
                   ((A.double() @ B.double()).norm().item(), "you returned ||A B||_F without dividing by ||A||_F ||B||_F"),)))


def check_composition_score(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 02.4: ``composition_score(A, B)`` is ``||A B||_F / (||A||_F ||B||_F)``."""
    return _run_check("02.4", "composition_score", fn, _cases_composition_score, verbose,
                      success="matches ||AB||_F / (||A||_F ||B||_F) on random, orthogonal, identical and model matrices")


def _compare_baseline(got: Any, d_model: int, d_head: int, n_samples: int) -> None:
    if not isinstance(got, torch.Tensor):
        raise _Mismatch(f"the result has the wrong type: expected a torch.Tensor of {n_samples} scores, "
                        f"got {type(got).__name__}")
    if tuple(got.shape) != (n_samples,):
        raise _Mismatch(f"the result has the wrong shape: expected ({n_samples},), got {tuple(got.shape)}")
    g = got.detach().double()
    if not torch.isfinite(g).all():
        raise _Mismatch("the scores contain NaN or inf")
    if (g < 0).any() or (g > 1 + 1e-6).any():
        i = int(((g < 0) | (g > 1 + 1e-6)).nonzero()[0])
        raise _Mismatch(f"every composition score lies in [0, 1], but score [{i}] is {_fmt(g[i].item())}")
    ref = mechlib.composition_baseline(d_model, d_head, n_samples=2000, seed=12345).double()
    # the two means differ by sampling noise only; allow 6 standard errors of the difference
    se = math.sqrt(ref.var().item() / ref.numel() + g.var().item() / g.numel())
    diff = abs(g.mean().item() - ref.mean().item())
    if diff > 6 * se + 1e-3:
        raise _Mismatch(
            f"the mean score is {_fmt(g.mean().item())}, but random rank-{d_head} matrices of size {d_model} "
            f"give {_fmt(ref.mean().item())} on average (allowed difference {6 * se + 1e-3:.3g}, 6 standard "
            f"errors): sample U (d_model x d_head) and V (d_head x d_model) with i.i.d. standard normal entries "
            f"and score the product U1 V1 against U2 V2"
        )
    if g.std().item() < 1e-6:
        raise _Mismatch("all scores are identical: draw new random matrices for every sample")


def _cases_random_baseline() -> Iterator[Case]:
    for d_model, d_head, n in [(64, 16, 500), (32, 4, 400)]:
        yield Case(f"d_model={d_model}, d_head={d_head}, n_samples={n}", (d_model, d_head, n),
                   functools.partial(_compare_baseline, d_model=d_model, d_head=d_head, n_samples=n),
                   kwargs={"seed": 0})


def check_random_baseline(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 02.5: ``random_baseline(d_model, d_head, n_samples, seed)`` samples scores of random low-rank pairs."""
    return _run_check("02.5", "random_baseline", fn, _cases_random_baseline, verbose,
                      success="right shape, scores in [0, 1], and the mean agrees with mechlib.composition_baseline "
                              "within sampling noise")


# =========================================================================== chapter 3


def _cases_pair_score(kind: str) -> Iterator[Case]:
    for model in (_bundled(), _random_model()):
        for s, r in _pairs(model):
            ov, qk = _ov64(model, s), _qk64(model, r)
            scores = {"Q": _c64(ov, qk), "K": _c64(ov, qk.T), "V": _c64(ov, _ov64(model, r))}
            hints = {
                "Q": "this is the Q-composition score: the sender's output reaches the receiver's "
                     "queries through W_Q, so use W_QK = W_Q W_K^T",
                "K": "this is the K-composition score: the sender's output reaches the receiver's "
                     "keys through W_K, so use W_QK^T = W_K W_Q^T",
                "V": "this is the V-composition score (W_OV of the receiver)",
            }
            alts = tuple((scores[k], hints[k]) for k in "QKV" if k != kind)
            yield Case(f"sender {_hname(s)}, receiver {_hname(r)} of {_model_desc(model)}", (model, s, r),
                       functools.partial(compare_scalar, expected=scores[kind], rtol=1e-4, atol=1e-6,
                                         alternatives=alts))


def check_k_composition_score(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 03.1: ``k_composition_score(model, sender, receiver)`` is ``C(W_OV^{s}, W_QK^{r T})``."""
    return _run_check("03.1", "k_composition_score", fn, lambda: _cases_pair_score("K"), verbose,
                      success="matches C(W_OV^sender, W_K W_Q^T of the receiver) (float64) for every pair")


def _cases_all_scores() -> Iterator[Case]:
    for model in (_bundled(), _random_model()):
        for kind in "QKV":
            exp = mechlib.composition_scores(model, kind)
            yield Case(f"kind={kind!r} on {_model_desc(model)}", (model, kind),
                       functools.partial(compare_tensor, expected=exp, rtol=1e-3, atol=1e-5))


def check_all_composition_scores(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 03.2: ``all_composition_scores(model, kind)`` gives the ``[L, H, L, H]`` tensor of scores."""
    return _run_check("03.2", "all_composition_scores", fn, _cases_all_scores, verbose,
                      success="matches mechlib.composition_scores for Q, K and V on the bundled and a random model")


def _cases_path_ablation(kinds: tuple[str, ...], lists: bool) -> Iterator[Case]:
    for model in (_bundled(), _random_model()):
        tokens, _, _ = _tokens(model, 6, seed=21)
        L, H = model.cfg.n_layers, model.cfg.n_heads
        if lists:
            combos = [([(0, h) for h in range(H)], [(L - 1, h) for h in range(H)]),
                      ([(0, 0)], [(1, 1)]),
                      ([(0, 1), (L - 2, H - 1)], [(L - 1, 0), (L - 1, H - 1)])]
        else:
            combos = [((0, 0), (1, 1)), ((0, H - 1), (L - 1, 0)), ((L - 2, 1), (L - 1, H - 1))]
        for kind in kinds:
            for s, r in combos:
                exp = mechlib.path_ablation(model, tokens, s, r, kind)
                args = (model, tokens, s, r, kind) if lists else (model, tokens, s, r)
                other = [k for k in "QKV" if k != kind]
                alts = tuple((mechlib.path_ablation(model, tokens, s, r, k),
                              f"this removes the sender from the receiver's {k} input, not its {kind} input")
                             for k in other)
                alts += ((mechlib.run_with_ablation(model, tokens, [s] if isinstance(s, tuple) else s),
                          "this removes the sender's output everywhere (a plain head ablation); remove it from "
                          "the receiver's input only"),)
                yield Case(f"kind {kind!r}, sender {s}, receiver {r} on {_model_desc(model)}", args,
                           functools.partial(compare_tensor, expected=exp, rtol=1e-3, atol=1e-4,
                                             alternatives=alts))


def check_remove_sender_from_keys(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 03.3: ``remove_sender_from_keys(model, tokens, sender, receiver)`` is path ablation through K."""
    return _run_check("03.3", "remove_sender_from_keys", fn, lambda: _cases_path_ablation(("K",), False), verbose,
                      success="logits match mechlib.path_ablation(..., kind='K') on the bundled and a random model")


# =========================================================================== chapter 4


def check_q_composition_score(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 04.1: ``q_composition_score(model, sender, receiver)`` is ``C(W_OV^{s}, W_QK^{r})``."""
    return _run_check("04.1", "q_composition_score", fn, lambda: _cases_pair_score("Q"), verbose,
                      success="matches C(W_OV^sender, W_Q W_K^T of the receiver) (float64) for every pair")


def _cases_sender_qk() -> Iterator[Case]:
    for model in (_bundled(), _random_model()):
        for s, r in _pairs(model)[:: max(1, len(_pairs(model)) // 6)]:
            ov, qk = _ov64(model, s), _qk64(model, r)
            forms = {"Q": ov @ qk, "K": qk @ ov.T}
            for side in "QK":
                other = "K" if side == "Q" else "Q"
                mistake = ("the sender's output x W_OV is a row vector that then meets W_QK: W_OV^s @ W_QK^r"
                           if side == "Q" else
                           "the sender's output x W_OV enters the key as k = x W_OV W_K, so the form is "
                           "W_QK^r @ (W_OV^s)^T: transpose the OV circuit")
                alts = ((forms[other], f"this is the {other} side"), (qk @ ov, mistake))
                yield Case(f"side {side!r}, sender {_hname(s)}, receiver {_hname(r)} of {_model_desc(model)}",
                           (model, s, r, side),
                           functools.partial(compare_tensor, expected=forms[side], rtol=1e-4, atol=1e-5,
                                             alternatives=alts))


def check_sender_qk(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 04.2: ``sender_qk(model, sender, receiver, side)``: the receiver's bilinear form with the
    sender's output on the query side (``W_OV^s W_QK^r``) or the key side (``W_QK^r W_OV^{s T}``)."""
    return _run_check("04.2", "sender_qk", fn, _cases_sender_qk, verbose,
                      success="both sides of the bilinear form match the float64 reference")


def check_remove_from_input(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 04.3: ``remove_from_input(model, tokens, senders, receivers, kind)`` is path ablation
    of lists of heads through any input."""
    return _run_check("04.3", "remove_from_input", fn, lambda: _cases_path_ablation(("Q", "K", "V"), True), verbose,
                      success="logits match mechlib.path_ablation for Q, K and V, single heads and lists")


# =========================================================================== chapter 5


def _random_patterns(batch: int, heads: int, seq: int, seed: int) -> torch.Tensor:
    scores = torch.randn(batch, heads, seq, seq, generator=_gen(seed))
    mask = torch.ones(seq, seq, dtype=torch.bool).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


def _prev_ref(A: torch.Tensor) -> torch.Tensor:
    seq = A.shape[-1]
    return torch.stack([A[:, :, q, q - 1] for q in range(1, seq)], dim=-1).double().mean(dim=(0, 2))


def _cases_prev_token() -> Iterator[Case]:
    A = _random_patterns(3, 5, 9, seed=4)
    yield Case("random causal patterns [batch 3, head 5, 9, 9]", (A.clone(),),
               functools.partial(compare_tensor, expected=_prev_ref(A), alternatives=(
                   (A.diagonal(dim1=-2, dim2=-1).double().mean(dim=(0, 2)),
                    "this is attention to the position itself (the main diagonal); the previous token is "
                    "one below it, A[q, q - 1]"),)))
    model = _bundled()
    tokens, _, _ = _tokens(model, 8, seed=5)
    P = mechlib.attention_patterns(model, tokens)
    for l in range(model.cfg.n_layers):
        yield Case(f"layer {l} patterns of the bundled model on repeated tokens", (P[l].clone(),),
                   functools.partial(compare_tensor, expected=_prev_ref(P[l])))


def check_prev_token_score(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 05.1: ``prev_token_score(pattern)``: mean of ``A[b, h, q, q - 1]`` over b and q >= 1."""
    return _run_check("05.1", "prev_token_score", fn, _cases_prev_token, verbose,
                      success="matches the mean attention to the previous position on random and model patterns")


def _induction_ref(A: torch.Tensor, half_len: int, prefix_len: int, offset: int = 1) -> torch.Tensor:
    qs = range(prefix_len + half_len, prefix_len + 2 * half_len)
    return torch.stack([A[:, :, q, q - half_len + offset] for q in qs], dim=-1).double().mean(dim=(0, 2))


def _cases_induction() -> Iterator[Case]:
    for half, prefix, seed in [(4, 3, 6), (5, 0, 7)]:
        A = _random_patterns(2, 3, prefix + 2 * half, seed=seed)
        yield Case(f"random causal patterns [2, 3, {prefix + 2 * half}, {prefix + 2 * half}] with half_len={half}, "
                   f"prefix_len={prefix}", (A.clone(), half, prefix),
                   functools.partial(compare_tensor, expected=_induction_ref(A, half, prefix), alternatives=(
                       (_induction_ref(A, half, prefix, offset=0),
                        "this is attention to the earlier copy of the current token (a duplicate-token score); "
                        "an induction head attends to the token just after it"),)))
    model = _bundled()
    tokens, half, prefix = _tokens(model, 8, seed=8)
    P = mechlib.attention_patterns(model, tokens)
    for l in range(model.cfg.n_layers):
        yield Case(f"layer {l} patterns of the bundled model (half_len={half}, prefix_len={prefix})",
                   (P[l].clone(), half, prefix),
                   functools.partial(compare_tensor, expected=_induction_ref(P[l], half, prefix)))


def check_induction_score(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 05.2: ``induction_score(pattern, half_len, prefix_len)``: mean attention from each token
    of the second copy to the token after its first occurrence."""
    return _run_check("05.2", "induction_score", fn, _cases_induction, verbose,
                      success="matches the mean attention from the second copy to 'the token after' on random and model patterns")


def _hook_cases(mode: str) -> Iterator[Case]:
    for shape, head, seed in [((4, 6, 3, 5), 1, 9), ((2, 7, 4, 16), 3, 10), ((5, 3, 4, 2), 0, 11)]:
        z = torch.randn(*shape, generator=_gen(seed))
        exp = z.clone().double()
        if mode == "zero":
            exp[:, :, head] = 0.0
        else:
            exp[:, :, head] = exp[:, :, head].mean(dim=0, keepdim=True)
        alts = ((_alt_mean_all(z, head), "you averaged over positions as well; average over the batch only, "
                 "position by position (keepdim so it broadcasts)"),) if mode == "mean" else ()
        alts += ((_zero_all(z), "you changed every head; only z[:, :, head] should change"),)
        inp = z.clone()

        def compare(got, inp=inp, exp=exp, alts=alts):
            # a hook may edit the activation in place and return nothing, as TransformerLens allows
            compare_tensor(inp if got is None else got, exp, rtol=1e-5, atol=1e-6,
                           what="the returned (or edited) activation", alternatives=alts)

        yield Case(f"a random hook_z activation of shape {shape} with head={head}", (inp, None), compare,
                   kwargs={"head": head})


def _alt_mean_all(z: torch.Tensor, head: int) -> torch.Tensor:
    out = z.clone().double()
    out[:, :, head] = out[:, :, head].mean(dim=(0, 1), keepdim=True)
    return out


def _zero_all(z: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(z, dtype=torch.float64)


def check_zero_ablation_hook(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 05.3: ``zero_ablation_hook(z, hook, head)`` zeroes one head's ``hook_z``."""
    return _run_check("05.3", "zero_ablation_hook", fn, lambda: _hook_cases("zero"), verbose,
                      none_is_placeholder=False,
                      success="zeroes exactly z[:, :, head] and leaves the other heads alone")


def check_mean_ablation_hook(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 05.4: ``mean_ablation_hook(z, hook, head)`` replaces one head's ``hook_z`` by its batch mean."""
    return _run_check("05.4", "mean_ablation_hook", fn, lambda: _hook_cases("mean"), verbose,
                      none_is_placeholder=False,
                      success="replaces z[:, :, head] by its batch mean at each position, other heads untouched")


def _cases_ablated_loss() -> Iterator[Case]:
    for model in (_bundled(), _random_model()):
        tokens, half, prefix = _tokens(model, 16, seed=12)
        L, H = model.cfg.n_layers, model.cfg.n_heads
        for heads in ([], [(0, 0)], [(0, 0), (0, H - 1)], [(L - 1, h) for h in range(H)]):
            for mode in ("zero", "mean"):
                if not heads and mode == "mean":
                    continue
                logits = mechlib.run_with_ablation(model, tokens, heads, mode) if heads else model(tokens)
                exp = mechlib.repeat_loss(logits, tokens, half, prefix)
                clean = mechlib.repeat_loss(model(tokens), tokens, half, prefix)
                alts = ((clean, "this is the loss with no head ablated: are your hooks passed to run_with_hooks?"),)
                yield Case(f"heads {heads}, mode {mode!r} on {_model_desc(model)}",
                           (model, tokens, heads, half, prefix), functools.partial(
                               compare_scalar, expected=exp, rtol=1e-4, atol=1e-5, alternatives=alts),
                           kwargs={"mode": mode})


def check_ablated_repeat_loss(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 05.5: ``ablated_repeat_loss(model, tokens, heads, half_len, prefix_len, mode)``."""
    return _run_check("05.5", "ablated_repeat_loss", fn, _cases_ablated_loss, verbose,
                      success="matches repeat_loss(run_with_ablation(...)) for zero and mean ablation of several head sets")


# =========================================================================== chapter 6


def _expansion(model, tokens):
    return mechlib.path_expansion(model, tokens)


def _cases_direct() -> Iterator[Case]:
    for model in (_bundled(), _random_model(2)):
        tokens, _, _ = _tokens(model, 4, seed=13)
        pe = _expansion(model, tokens)
        alts = ((pe.terms["direct"] + pe.terms["bias unembed"],
                 "you added b_U; in this expansion the unembedding bias is a separate bias term"),)
        yield Case(f"repeated tokens {tuple(tokens.shape)} on {_model_desc(model)}", (model, tokens),
                   functools.partial(compare_tensor, expected=pe.terms["direct"], rtol=1e-4, atol=1e-4,
                                     alternatives=alts))


def check_direct_path_logits(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 06.1: ``direct_path_logits(model, tokens)`` is ``(W_E[tokens] + W_pos) W_U``."""
    return _run_check("06.1", "direct_path_logits", fn, _cases_direct, verbose,
                      success="matches the direct term of mechlib.path_expansion")


def _cases_single() -> Iterator[Case]:
    for model in (_bundled(), _random_model(2)):
        tokens, _, _ = _tokens(model, 4, seed=14)
        pe = _expansion(model, tokens)
        L, H = model.cfg.n_layers, model.cfg.n_heads
        for head in [(l, h) for l in range(L) for h in range(H)]:
            yield Case(f"head {_hname(head)} of {_model_desc(model)}", (model, tokens, head),
                       functools.partial(compare_tensor, expected=pe.terms[_hname(head)], rtol=1e-4, atol=1e-4))


def check_single_head_logits(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 06.2: ``single_head_logits(model, tokens, head)`` is ``A^{h} x0 W_OV^{h} W_U``."""
    return _run_check("06.2", "single_head_logits", fn, _cases_single, verbose,
                      success="matches every single-head term of mechlib.path_expansion")


def _cases_virtual() -> Iterator[Case]:
    for model in (_bundled(), _random_model(2)):
        tokens, _, _ = _tokens(model, 4, seed=15)
        pe = _expansion(model, tokens)
        for s, r in _pairs(model):
            yield Case(f"sender {_hname(s)}, receiver {_hname(r)} of {_model_desc(model)}", (model, tokens, s, r),
                       functools.partial(compare_tensor, expected=pe.terms[f"{_hname(s)}->{_hname(r)}"],
                                         rtol=1e-4, atol=1e-4))


def check_virtual_head_logits(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 06.3: ``virtual_head_logits(model, tokens, sender, receiver)`` is
    ``A^{r} A^{s} x0 W_OV^{s} W_OV^{r} W_U``."""
    return _run_check("06.3", "virtual_head_logits", fn, _cases_virtual, verbose,
                      success="matches every virtual-head term of mechlib.path_expansion")


def _cases_expanded() -> Iterator[Case]:
    for model in (_bundled(), _random_model(2)):
        tokens, _, _ = _tokens(model, 4, seed=16)
        logits = model(tokens).detach()
        pe = _expansion(model, tokens)
        kinds = pe.by_kind()
        alts = ((logits - kinds["virtual"], "the virtual-head (composition) terms are missing"),
                (logits - kinds["bias"], "the bias terms are missing"),
                (logits - kinds["single"], "the single-head terms are missing"))
        yield Case(f"repeated tokens {tuple(tokens.shape)} on {_model_desc(model)} (compared with model(tokens))",
                   (model, tokens), functools.partial(compare_tensor, expected=logits, rtol=1e-4, atol=2e-4,
                                                      alternatives=alts))


def check_expanded_logits(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 06.4: ``expanded_logits(model, tokens)``: the sum of all terms equals the model's logits."""
    return _run_check("06.4", "expanded_logits", fn, _cases_expanded, verbose,
                      success="the sum of your terms equals model(tokens) to float32 precision")


# =========================================================================== chapter 7


def _brute_chains(n_layers: int, n_heads: int, length: int) -> int:
    heads = [(l, h) for l in range(n_layers) for h in range(n_heads)]
    return sum(1 for chain in itertools.combinations(heads, length)
               if all(a[0] < b[0] for a, b in zip(chain, chain[1:])))


def _cases_count_pairs() -> Iterator[Case]:
    for L, H in [(12, 12), (2, 4), (1, 8), (3, 1), (5, 3), (48, 25)]:
        exp = H * H * math.comb(L, 2)
        yield Case(f"n_layers={L}, n_heads={H}", (L, H), functools.partial(compare_int, expected=exp))


def check_count_pairs(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 07.1: ``count_pairs(n_layers, n_heads)`` is ``n_heads^2 C(n_layers, 2)``."""
    return _run_check("07.1", "count_pairs", fn, _cases_count_pairs, verbose,
                      success="right counts, including 9504 for 12 layers of 12 heads and 0 for one layer")


def _compare_pairs(got: Any, L: int, H: int) -> None:
    expected = list(mechlib.enumerate_virtual_heads(L, H, 2))
    if not isinstance(got, (list, tuple)):
        try:
            got = list(got)
        except TypeError:
            raise _Mismatch(f"the result has the wrong type: expected a list of pairs, got {type(got).__name__}") from None
    got = list(got)
    norm = []
    for i, p in enumerate(got):
        try:
            (l1, h1), (l2, h2) = p
            norm.append(((int(l1), int(h1)), (int(l2), int(h2))))
        except (TypeError, ValueError):
            raise _Mismatch(f"item [{i}] is {p!r}; each item must be a pair of heads ((l1, h1), (l2, h2))") from None
    if len(set(norm)) != len(norm):
        dup = next(p for p in norm if norm.count(p) > 1)
        raise _Mismatch(f"the pair {dup} appears more than once")
    wrong = [p for p in norm if p not in set(expected)]
    if wrong:
        p = wrong[0]
        why = "the sender must be in an earlier layer than the receiver" if p[0][0] >= p[1][0] else "no such head"
        raise _Mismatch(f"{p} is not a virtual head of this model ({why})")
    missing = [p for p in expected if p not in set(norm)]
    if missing:
        raise _Mismatch(f"expected {len(expected)} pairs, got {len(norm)}; missing e.g. {missing[0]}")


def _cases_enumerate_pairs() -> Iterator[Case]:
    for L, H in [(2, 4), (3, 2), (1, 3), (4, 3)]:
        yield Case(f"n_layers={L}, n_heads={H}", (L, H), functools.partial(_compare_pairs, L=L, H=H))


def check_enumerate_pairs(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 07.2: ``enumerate_pairs(n_layers, n_heads)`` lists every (sender, receiver) pair once."""
    return _run_check("07.2", "enumerate_pairs", fn, _cases_enumerate_pairs, verbose,
                      success="every pair with the sender in an earlier layer, each exactly once")


def _cases_count_chains() -> Iterator[Case]:
    for L, H, k in [(3, 2, 2), (4, 2, 3), (3, 3, 3), (5, 2, 1), (2, 3, 3)]:
        yield Case(f"n_layers={L}, n_heads={H}, length={k} (checked by brute force)", (L, H, k),
                   functools.partial(compare_int, expected=_brute_chains(L, H, k)))
    for L, H, k in [(12, 12, 2), (12, 12, 3), (12, 12, 12), (32, 32, 4)]:
        yield Case(f"n_layers={L}, n_heads={H}, length={k}", (L, H, k),
                   functools.partial(compare_int, expected=mechlib.count_virtual_heads(L, H, k)))


def check_count_chains(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 07.3: ``count_chains(n_layers, n_heads, length)`` is ``n_heads^length C(n_layers, length)``."""
    return _run_check("07.3", "count_chains", fn, _cases_count_chains, verbose,
                      success="matches brute-force enumeration on small models and the formula on large ones")


def _cases_count_paths() -> Iterator[Case]:
    model = _bundled()
    pe = mechlib.path_expansion(model, _tokens(model, 1, seed=0)[0])
    n_terms = sum(1 for k in pe.kinds.values() if k != "bias")
    yield Case(f"the bundled model ({model.cfg.n_layers} layers of {model.cfg.n_heads} heads; its path expansion "
               f"has {n_terms} non-bias terms)", (model.cfg.n_layers, model.cfg.n_heads),
               functools.partial(compare_int, expected=n_terms))
    for L, H in [(3, 2), (1, 5), (4, 3)]:
        brute = sum(_brute_chains(L, H, k) for k in range(1, L + 1)) + 1
        yield Case(f"n_layers={L}, n_heads={H} (checked by brute force)", (L, H),
                   functools.partial(compare_int, expected=brute, ))
    yield Case("n_layers=12, n_heads=12", (12, 12), functools.partial(compare_int, expected=13**12))


def check_count_paths(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 07.4: ``count_paths(n_layers, n_heads)``: all terms of the path expansion, direct path included."""
    return _run_check("07.4", "count_paths", fn, _cases_count_paths, verbose,
                      success="counts the direct path plus every chain of every length, (1 + n_heads)^n_layers")


# =========================================================================== chapter 8


def _cases_get_weight() -> Iterator[Case]:
    for model in (_bundled(), _random_model()):
        L = model.cfg.n_layers
        names = {
            "embed.W_E": model.W_E, "unembed.W_U": model.W_U, "pos_embed.W_pos": model.W_pos,
            "blocks.0.attn.W_Q": model.W_Q[0], f"blocks.{L - 1}.attn.W_K": model.W_K[L - 1],
            "blocks.1.attn.W_V": model.W_V[1], "blocks.0.attn.W_O": model.W_O[0],
            "blocks.1.attn.b_Q": model.b_Q[1], "unembed.b_U": model.b_U,
        }
        for name, exp in names.items():
            yield Case(f"{name!r} on {_model_desc(model)}", (model, name),
                       functools.partial(compare_tensor, expected=exp.detach(), rtol=0, atol=0))


def check_get_weight(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 08.1: ``get_weight(model, name)`` resolves a dotted TransformerLens weight name."""
    return _run_check("08.1", "get_weight", fn, _cases_get_weight, verbose,
                      success="resolves embedding, positional, unembedding and per-layer attention weights")


def _cases_attention_pattern() -> Iterator[Case]:
    for model in (_bundled(), _random_model()):
        tokens, _, _ = _tokens(model, 3, seed=17)
        P = mechlib.attention_patterns(model, tokens)
        for l in range(model.cfg.n_layers):
            yield Case(f"layer {l} of {_model_desc(model)}", (model, tokens, l),
                       functools.partial(compare_tensor, expected=P[l], rtol=1e-5, atol=1e-6))


def check_attention_pattern(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 08.2: ``attention_pattern(model, tokens, layer)`` reads ``blocks.{layer}.attn.hook_pattern``."""
    return _run_check("08.2", "attention_pattern", fn, _cases_attention_pattern, verbose,
                      success="matches the cached hook_pattern of every layer")


def _cases_capture() -> Iterator[Case]:
    for model in (_bundled(), _random_model()):
        tokens, _, _ = _tokens(model, 3, seed=18)
        names = ["hook_embed", "blocks.0.attn.hook_z", "blocks.1.hook_resid_pre", "blocks.1.attn.hook_pattern"]
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
        for name in names:
            yield Case(f"hook {name!r} on {_model_desc(model)}", (model, tokens, name),
                       functools.partial(_compare_capture, model=model, expected=cache[name].detach()))


def _hooks_left(model) -> list[str]:
    return [name for name, hp in model.hook_dict.items() if len(getattr(hp, "_forward_hooks", {})) > 0]


def _compare_capture(got, model, expected) -> None:
    left = _hooks_left(model)
    if left:
        model.reset_hooks(including_permanent=True)
        raise _Mismatch(
            f"a hook is still attached to {left[0]} after the call: use model.run_with_hooks "
            "(it removes its hooks when the run ends) instead of adding hooks by hand"
        )
    compare_tensor(got, expected, rtol=1e-5, atol=1e-6)


def check_capture_activation(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 08.3: ``capture_activation(model, tokens, hook_name)`` stores an activation with a hook."""
    return _run_check("08.3", "capture_activation", fn, _cases_capture, verbose,
                      success="captures the same activations that run_with_cache stores")


def _cases_head_outputs() -> Iterator[Case]:
    for model in (_bundled(), _random_model()):
        tokens, _, _ = _tokens(model, 3, seed=19)
        _, cache = model.run_with_cache(tokens)
        H = model.cfg.n_heads
        for l in range(model.cfg.n_layers):
            exp = torch.stack([mechlib.head_output(model, cache, (l, h)) for h in range(H)], dim=2)
            alts = ((exp + model.b_O[l].detach() / H, "leave b_O out: it belongs to the layer, not to a head"),
                    (exp + model.b_O[l].detach(), "leave b_O out: it belongs to the layer, not to a head"))
            yield Case(f"layer {l} of {_model_desc(model)}", (model, cache, l),
                       functools.partial(compare_tensor, expected=exp, rtol=1e-4, atol=1e-5, alternatives=alts))


def check_head_outputs(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 08.4: ``head_outputs(model, cache, layer)``: every head's ``z W_O``, ``[batch, pos, head, d_model]``."""
    return _run_check("08.4", "head_outputs", fn, _cases_head_outputs, verbose,
                      success="matches z^{l.h} @ W_O^{l.h} for every head and layer")


# =========================================================================== registry


@dataclass(frozen=True)
class Exercise:
    """One exercise: where it lives, what the learner writes, how hard, how important, how long."""

    id: str
    notebook: str
    function: str
    title: str
    difficulty: int  # 1 (easy) .. 5
    importance: int  # 1 (optional) .. 5 (core idea)
    minutes: int
    check: Callable[..., CheckResult]

    @property
    def column(self) -> str:
        """Column name in the grades CSV."""
        return f"{self.id} {self.function}"

    def header(self) -> str:
        """The ratings line printed under the exercise's title in the notebooks."""
        return (
            f"**Difficulty** {'🔴' * self.difficulty}{'⚪' * (5 - self.difficulty)} ({self.difficulty}/5) · "
            f"**Importance** {'🔵' * self.importance}{'⚪' * (5 - self.importance)} ({self.importance}/5) · "
            f"**Time** about {self.minutes} minutes"
        )


_E = Exercise
ALL_EXERCISES: tuple[Exercise, ...] = (
    _E("02.1", "02_v_composition", "ov_matrix", "The OV circuit as one matrix", 1, 4, 5, check_ov_matrix),
    _E("02.2", "02_v_composition", "composed_ov", "The composed OV circuit of a virtual head", 1, 5, 5, check_composed_ov),
    _E("02.3", "02_v_composition", "numerical_rank", "Numerical rank", 2, 3, 10, check_numerical_rank),
    _E("02.4", "02_v_composition", "composition_score", "The composition score of one pair", 1, 5, 5, check_composition_score),
    _E("02.5", "02_v_composition", "random_baseline", "The random baseline", 2, 4, 15, check_random_baseline),
    _E("03.1", "03_k_composition", "k_composition_score", "K-composition score of one pair", 2, 5, 10, check_k_composition_score),
    _E("03.2", "03_k_composition", "all_composition_scores", "All pairs at once, batched", 3, 3, 20, check_all_composition_scores),
    _E("03.3", "03_k_composition", "remove_sender_from_keys", "Path ablation through the keys only", 4, 4, 25, check_remove_sender_from_keys),
    _E("04.1", "04_q_composition", "q_composition_score", "Q-composition score of one pair", 1, 4, 5, check_q_composition_score),
    _E("04.2", "04_q_composition", "sender_qk", "Which side of the bilinear form?", 2, 3, 10, check_sender_qk),
    _E("04.3", "04_q_composition", "remove_from_input", "Path ablation through Q, K or V", 3, 4, 20, check_remove_from_input),
    _E("05.1", "05_virtual_attention_heads", "prev_token_score", "Detecting previous-token heads", 1, 4, 5, check_prev_token_score),
    _E("05.2", "05_virtual_attention_heads", "induction_score", "Detecting induction heads", 2, 5, 10, check_induction_score),
    _E("05.3", "05_virtual_attention_heads", "zero_ablation_hook", "Zero ablation as a hook", 1, 4, 5, check_zero_ablation_hook),
    _E("05.4", "05_virtual_attention_heads", "mean_ablation_hook", "Mean ablation as a hook", 2, 3, 5, check_mean_ablation_hook),
    _E("05.5", "05_virtual_attention_heads", "ablated_repeat_loss", "Breaking the virtual head", 2, 5, 15, check_ablated_repeat_loss),
    _E("06.1", "06_two_layer_expansion", "direct_path_logits", "The direct path", 1, 4, 5, check_direct_path_logits),
    _E("06.2", "06_two_layer_expansion", "single_head_logits", "Single-head terms", 2, 5, 15, check_single_head_logits),
    _E("06.3", "06_two_layer_expansion", "virtual_head_logits", "Virtual-head terms", 3, 5, 15, check_virtual_head_logits),
    _E("06.4", "06_two_layer_expansion", "expanded_logits", "The expansion adds up to the logits", 2, 4, 10, check_expanded_logits),
    _E("07.1", "07_combinatorial_richness", "count_pairs", "Counting virtual heads", 1, 4, 5, check_count_pairs),
    _E("07.2", "07_combinatorial_richness", "enumerate_pairs", "Listing virtual heads", 1, 3, 5, check_enumerate_pairs),
    _E("07.3", "07_combinatorial_richness", "count_chains", "Longer chains", 2, 3, 10, check_count_chains),
    _E("07.4", "07_combinatorial_richness", "count_paths", "Every path of the expansion", 2, 3, 10, check_count_paths),
    _E("08.1", "08_transformerlens_vocabulary", "get_weight", "Weights by name", 1, 3, 5, check_get_weight),
    _E("08.2", "08_transformerlens_vocabulary", "attention_pattern", "Reading the cache", 1, 4, 5, check_attention_pattern),
    _E("08.3", "08_transformerlens_vocabulary", "capture_activation", "A hook that records", 2, 4, 10, check_capture_activation),
    _E("08.4", "08_transformerlens_vocabulary", "head_outputs", "What each head writes", 2, 4, 10, check_head_outputs),
)

EXERCISES: dict[str, list[Exercise]] = {}
for _ex in ALL_EXERCISES:
    EXERCISES.setdefault(_ex.notebook, []).append(_ex)
NOTEBOOKS: tuple[str, ...] = tuple(EXERCISES)


def exercise(exercise_id: str) -> Exercise:
    """The :class:`Exercise` with id ``exercise_id`` (e.g. ``"02.4"``)."""
    for ex in ALL_EXERCISES:
        if ex.id == exercise_id:
            return ex
    raise ValueError(f"no exercise {exercise_id!r}; exercises are {[e.id for e in ALL_EXERCISES]}")


# --------------------------------------------------------------------------- grading support


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
