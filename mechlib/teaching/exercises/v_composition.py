"""The exercises of Chapter 2, V-Composition (``02_v_composition.ipynb``)."""
from __future__ import annotations

import functools
import math
from typing import Any, Iterator

import torch

import mechlib
from mechlib.heads import head_label
from mechlib.teaching import reference as ref
from mechlib.teaching.comparisons import (Mismatch, as_tensor, compare_int, compare_scalar, compare_tensor,
                                          fmt_number)
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.inputs import bundled, check_model, generator, head_pairs, hidden_sizes, model_desc


def _cases_ov_matrix() -> Iterator[Case]:
    for model in (bundled(), check_model()):
        L, H = model.cfg.n_layers, model.cfg.n_heads
        for head in [(l, h) for l in range(L) for h in range(H)]:
            exp = ref.ov64(model, head)
            l, h = head
            alt = ((ref.weight64(model, "W_O")[l, h].T @ ref.weight64(model, "W_V")[l, h].T),
                   "this is (W_V W_O)^T; in the row-vector convention OV = W_V @ W_O")
            yield Case(f"head {head_label(head)} of {model_desc(model)}", (model, head),
                       functools.partial(compare_tensor, expected=exp, alternatives=(alt,)))


def _cases_composed_ov() -> Iterator[Case]:
    for model in (bundled(), check_model()):
        for s, r in head_pairs(model):
            exp = ref.ov64(model, s) @ ref.ov64(model, r)
            alt = (ref.ov64(model, r) @ ref.ov64(model, s),
                   "this is W_OV^receiver @ W_OV^sender; with row vectors the sender acts first: "
                   "x @ W_OV^sender @ W_OV^receiver")
            yield Case(f"sender {head_label(s)}, receiver {head_label(r)} of {model_desc(model)}", (model, s, r),
                       functools.partial(compare_tensor, expected=exp, rtol=1e-4, atol=1e-5, alternatives=(alt,)))


def _known_rank(rows: int, cols: int, rank: int, seed: int) -> torch.Tensor:
    g = generator(seed)
    return torch.randn(rows, rank, generator=g, dtype=torch.float64) @ torch.randn(
        rank, cols, generator=g, dtype=torch.float64)


def _with_spectrum(values: list[float], rows: int, cols: int, seed: int) -> torch.Tensor:
    """A float64 ``rows x cols`` matrix with exactly these singular values, in random directions
    (so that no entry is as large as the largest singular value)."""
    g = generator(seed)
    U, _ = torch.linalg.qr(torch.randn(rows, rows, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(cols, cols, generator=g, dtype=torch.float64))
    S = torch.zeros(rows, cols, dtype=torch.float64)
    for i, v in enumerate(values):
        S[i, i] = v
    return U @ S @ V.T


def _spectra(seed: int) -> list[tuple[str, torch.Tensor, float, int]]:
    """Matrices whose rank depends on measuring the tolerance against the largest singular value:
    tiny and huge scales (an absolute tolerance miscounts), many equal large singular values
    (the Frobenius norm is then several times the largest one) and random directions (the
    largest entry is well below the largest singular value). ``(description, M, rtol, rank)``."""
    g = generator(seed)
    out = []
    for k, (scale, rtol) in enumerate([(1e-8, 1e-5), (1e7, 1e-5), (1.0, 0.1), (3.0, 0.05)]):
        for attempt in range(50):  # random directions until every mistake below miscounts
            big = 6 + int(torch.randint(0, 5, (1,), generator=g))  # equal large singular values
            kept = 1 + int(torch.randint(0, 3, (1,), generator=g))  # above rtol * largest, below rtol * ||M||_F
            cut = rtol * 1.6
            values = [1.0] * big + [cut] * kept + [rtol / 2, rtol / 10]  # rtol / 2: above rtol * the largest entry
            rows = len(values) + 2 + int(torch.randint(0, 4, (1,), generator=g))
            cols = rows + int(torch.randint(-1, 4, (1,), generator=g))
            M = _with_spectrum([v * scale for v in values], rows, cols, seed=seed + 10 + 100 * k + attempt)
            # (an absolute tolerance is caught by the tiny and huge scales)
            if all(alt != big + kept for alt, _ in _rank_mistakes(M, rtol)[1:]):
                break
        out.append((f"a {rows}x{cols} matrix with singular values {scale:g} x ({big} x 1, {kept} x {cut:g}, "
                    f"{rtol / 2:g}, {rtol / 10:g}) and rtol={rtol:g}", M, rtol, big + kept))
    return out


def _rank_mistakes(M: torch.Tensor, rtol: float) -> tuple[tuple[int, str], ...]:
    S = torch.linalg.svdvals(M)
    return ((int((S > rtol).sum()), "this counts singular values above rtol itself; the tolerance is relative: "
             "rtol times the largest singular value"),
            (int((S > rtol * M.norm()).sum()), "this measures the tolerance against the Frobenius norm; use the "
             "largest singular value, S[0]"),
            (int((S > rtol * M.abs().max()).sum()), "this measures the tolerance against the largest entry; use the "
             "largest singular value, S[0]"))


def _cases_numerical_rank() -> Iterator[Case]:
    shapes = [(12, 12, 3), (20, 9, 5), (7, 30, 1), (16, 16, 16)]
    shapes += [(r, c, min(k, r, c)) for r, c, k in hidden_sizes(3, (5, 30), (5, 30), (1, 6))]
    for i, (rows, cols, rank) in enumerate(shapes):
        M = _known_rank(rows, cols, rank, seed=100 + i)
        yield Case(f"a random {rows}x{cols} float64 matrix of rank {rank}", (M,),
                   functools.partial(compare_int, expected=rank))
    for i, (desc, M, rtol, rank) in enumerate(_spectra(200)):
        yield Case(desc, (M,), functools.partial(compare_int, expected=rank, alternatives=_rank_mistakes(M, rtol)),
                   kwargs={} if rtol == 1e-5 else {"rtol": rtol})
    yield Case("the 6x6 zero matrix", (torch.zeros(6, 6),), functools.partial(compare_int, expected=0))
    D = torch.diag(torch.tensor([1.0, 0.5, 0.05, 0.001], dtype=torch.float64))
    yield Case("diag(1, 0.5, 0.05, 0.001)", (D,), functools.partial(compare_int, expected=4))
    yield Case("diag(1, 0.5, 0.05, 0.001) with rtol=0.1 (count singular values > 0.1 * the largest)", (D,),
               functools.partial(compare_int, expected=2), kwargs={"rtol": 0.1})
    model = bundled()
    M = (model.W_V[0, 0] @ model.W_O[0, 0] @ model.W_V[1, 2] @ model.W_O[1, 2]).detach()
    yield Case("the composed OV circuit 0.0 -> 1.2 of the bundled model (float32, 64x64)", (M,),
               functools.partial(compare_int, expected=int(torch.linalg.matrix_rank(M.double(), rtol=1e-5))))


def _cases_composition_score() -> Iterator[Case]:
    g = generator(3)
    for shape in [(10, 10, 10), (6, 9, 4), (64, 64, 64)] + hidden_sizes(2, (3, 40), (2, 20), (3, 40)):
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
    yield Case("A = B = the same rank-2 projection (lined up, flat spectrum: score 1/sqrt(2))", (A, A),
               functools.partial(compare_scalar, expected=2 ** -0.5))
    yield Case("A = B = the same rank-1 projection (score 1)", (A[:, :1] @ A[:1], A[:, :1] @ A[:1]),
               functools.partial(compare_scalar, expected=1.0))
    model = bundled()
    A, B = model.W_V[0, 3] @ model.W_O[0, 3], model.W_V[1, 0] @ model.W_O[1, 0]
    exp = ref.composition_score64(A.double(), B.double())
    yield Case("the OV circuits of heads 0.3 and 1.0 of the bundled model (float32)", (A.detach(), B.detach()),
               functools.partial(compare_scalar, expected=exp, rtol=1e-4, alternatives=(
                   ((A.double() @ B.double()).norm().item(), "you returned ||A B||_F without dividing by ||A||_F ||B||_F"),)))


def _scores_of(got: Any, n_samples: int) -> torch.Tensor:
    got = as_tensor(got)
    if not isinstance(got, torch.Tensor):
        raise Mismatch(f"the result has the wrong type: expected a torch.Tensor (or a numpy array) of {n_samples} "
                       f"scores, got {type(got).__name__}")
    if tuple(got.shape) != (n_samples,):
        raise Mismatch(f"the result has the wrong shape: expected ({n_samples},), got {tuple(got.shape)}")
    g = got.detach().double()
    if not torch.isfinite(g).all():
        raise Mismatch("the scores contain NaN or inf")
    if (g < 0).any() or (g > 1 + 1e-6).any():
        i = int(((g < 0) | (g > 1 + 1e-6)).nonzero()[0])
        raise Mismatch(f"every composition score lies in [0, 1], but score [{i}] is {fmt_number(g[i].item())}")
    if n_samples > 1 and g.std().item() < 1e-6:
        raise Mismatch("all scores are identical: draw new random matrices for every sample")
    return g


#: the sample's standard deviation over the reference's must lie in this band: sampling noise of
#: 300 or more scores moves the ratio by about 5% (so the band is at least 6 standard errors
#: wide), while matrices without the d_head bottleneck give a ratio near 0.2
_STD_RATIO = (0.7, 1.4)


def _compare_baseline(got: Any, d_model: int, d_head: int, n_samples: int) -> None:
    g = _scores_of(got, n_samples)
    ref = _reference_baseline(d_model, d_head)
    # the two means differ by sampling noise only; allow 6 standard errors of the difference
    se = math.sqrt(ref.var().item() / ref.numel() + g.var().item() / g.numel())
    diff = abs(g.mean().item() - ref.mean().item())
    recipe = (f"sample U (d_model x d_head) and V (d_head x d_model) with i.i.d. standard normal entries and score "
              f"the product U1 V1 against U2 V2")
    if diff > 6 * se + 1e-3:
        raise Mismatch(
            f"the mean score is {fmt_number(g.mean().item())}, but random rank-{d_head} matrices of size {d_model} "
            f"give {fmt_number(ref.mean().item())} on average (allowed difference {6 * se + 1e-3:.3g}, 6 standard "
            f"errors): {recipe}")
    ratio = g.std().item() / ref.std().item()
    if not _STD_RATIO[0] <= ratio <= _STD_RATIO[1]:
        hint = (". Hint: scores this close together come from full-rank matrices; each matrix must pass "
                "through the d_head bottleneck, U (d_model x d_head) @ V (d_head x d_model)"
                if ratio < _STD_RATIO[0] else "")
        raise Mismatch(
            f"the mean is right but the scores spread too {'little' if ratio < 1 else 'much'}: standard deviation "
            f"{fmt_number(g.std().item())}, while random rank-{d_head} matrices of size {d_model} give "
            f"{fmt_number(ref.std().item())} (allowed ratio {_STD_RATIO[0]} to {_STD_RATIO[1]}): {recipe}{hint}")


@functools.lru_cache(maxsize=32)
def _reference_baseline(d_model: int, d_head: int) -> torch.Tensor:
    return mechlib.composition_baseline(d_model, d_head, n_samples=2000, seed=12345).double()


class _SeedChecks:
    """Three calls with a small sample: ``seed`` twice (the same scores), then another seed
    (other scores). Each case's comparison sees the one before it (cases are judged in order)."""

    def __init__(self, n_samples: int):
        self.n_samples = n_samples
        self.first: torch.Tensor | None = None

    def first_call(self, got: Any) -> None:
        self.first = _scores_of(got, self.n_samples)

    def same_seed(self, got: Any) -> None:
        g = _scores_of(got, self.n_samples)
        if self.first is None or not torch.allclose(g, self.first, rtol=1e-6, atol=1e-9):
            raise Mismatch("two calls with the same seed gave different scores: draw every random number from a "
                           "torch.Generator seeded with `seed` (torch.Generator().manual_seed(seed)), not from "
                           "torch's global generator")

    def other_seed(self, got: Any) -> None:
        g = _scores_of(got, self.n_samples)
        if self.first is not None and torch.allclose(g, self.first, rtol=1e-6, atol=1e-9):
            raise Mismatch("another seed gave the same scores: seed the generator with the `seed` argument, "
                           "not with a fixed number")


def _cases_random_baseline() -> Iterator[Case]:
    for d_model, d_head, n in [(64, 16, 500), (32, 4, 400)] + [
            (dm, dh, 300) for dm, dh in hidden_sizes(1, (16, 48), (2, 8))]:
        yield Case(f"d_model={d_model}, d_head={d_head}, n_samples={n}", (d_model, d_head, n),
                   functools.partial(_compare_baseline, d_model=d_model, d_head=d_head, n_samples=n),
                   kwargs={"seed": 0})
    (seed, other), = hidden_sizes(1, (1, 10**6), (10**6 + 1, 2 * 10**6)) or [(5, 6)]
    checks = _SeedChecks(40)
    args = (24, 4, 40)
    yield Case(f"d_model=24, d_head=4, n_samples=40, seed={seed}", args, checks.first_call, kwargs={"seed": seed})
    yield Case(f"the same call again (seed={seed}): the same scores", args, checks.same_seed, kwargs={"seed": seed})
    yield Case(f"seed={other}: other scores", args, checks.other_seed, kwargs={"seed": other})


NOTEBOOK = '02_v_composition'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='02.1', function='ov_matrix', title='The OV circuit as one matrix',
             difficulty=1, importance=4, minutes=5,
             draw=_cases_ov_matrix,
             statement='``ov_matrix(model, head)`` is the dense ``W_V^{l.h} @ W_O^{l.h}``.',
             success="matches W_V @ W_O (float64) for every head of the bundled and a random model"),
    exercise(id='02.2', function='composed_ov', title='The composed OV circuit of a virtual head',
             difficulty=1, importance=5, minutes=5,
             draw=_cases_composed_ov,
             statement='``composed_ov(model, sender, receiver)`` is ``W_OV^{sender} @ W_OV^{receiver}``.',
             success="matches W_OV^sender @ W_OV^receiver for every pair of the bundled and a random model"),
    exercise(id='02.3', function='numerical_rank', title='Numerical rank',
             difficulty=2, importance=3, minutes=10,
             draw=_cases_numerical_rank,
             statement='``numerical_rank(M, rtol=1e-5)`` counts singular values above ``rtol`` times the largest.',
             success="right rank for matrices of known rank, the zero matrix, a custom rtol and a composed OV circuit"),
    exercise(id='02.4', function='composition_score', title='The composition score of one pair',
             difficulty=1, importance=5, minutes=5,
             draw=_cases_composition_score,
             statement='``composition_score(A, B)`` is ``||A B||_F / (||A||_F ||B||_F)``.',
             success="matches ||AB||_F / (||A||_F ||B||_F) on random, orthogonal, identical and model matrices"),
    exercise(id='02.5', function='random_baseline', title='The random baseline',
             difficulty=2, importance=4, minutes=15,
             draw=_cases_random_baseline,
             statement='``random_baseline(d_model, d_head, n_samples, seed)`` samples scores of random low-rank pairs.',
             success="right shape, scores in [0, 1], mean and spread agree with mechlib.composition_baseline within "
                     "sampling noise, and the seed fixes the scores"),
)
