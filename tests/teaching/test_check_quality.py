"""Do the checks tell right from wrong? Answers as students write them (``check_answers``):
every wrong answer fails the notebook's self-check and the grader's hidden cases, and every
correct alternative passes both.

The self-check's cases are drawn once per exercise and each answer gets fresh copies of their
tensors (an answer that changes its input in place must not spoil the next one). The
grader's side goes the way ``mechlib-grade`` goes, without the notebook and the sandbox: the
hidden cases drawn for a seed, their inputs sent through the transport (fresh objects for
every answer), the function called as the kernel side calls it, its outcomes sent back and
judged (:mod:`mechlib.teaching.grading`). ``make check`` tries the first wrong answer and the first
alternative of each exercise, ``make test`` every one; both try one hidden seed;
``MECHLIB_MORE_SEEDS=1 make test`` six more (about 8 minutes on two cores; the grader draws one
in ``[0, 2**31)``).
"""
from __future__ import annotations

import functools
import os

import pytest
import torch

from check_answers import RIGHT, WRONG
from mechlib.teaching.registry import ALL_EXERCISES, EXERCISE_BY_ID

SEED = 2**31 - 1
MORE_SEEDS = (1, 2, 3, 77, 12345, 987654321)
more_seeds = pytest.mark.skipif(os.environ.get("MECHLIB_MORE_SEEDS", "") != "1",
                                reason="six more hidden seeds take minutes: MECHLIB_MORE_SEEDS=1 runs them")


@functools.lru_cache(maxsize=None)
def _own(ex_id: str) -> list:
    return list(EXERCISE_BY_ID[ex_id].cases())


@functools.lru_cache(maxsize=None)
def _hidden(ex_id: str, seed: int) -> list:
    return EXERCISE_BY_ID[ex_id].cases(seed)


def _fresh(x):
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, (list, tuple)):
        return type(x)(_fresh(v) for v in x)
    return x  # models, caches, numbers: never changed by these answers


def self_checked(ex_id: str, fn) -> dict:
    """The notebook's self-check of ``fn`` (:meth:`Exercise.check`) on fresh copies of its cases."""
    import dataclasses

    cases = [dataclasses.replace(c, args=_fresh(c.args), kwargs={k: _fresh(v) for k, v in c.kwargs.items()})
             for c in _own(ex_id)]
    return EXERCISE_BY_ID[ex_id].check(fn, verbose=False, cases=cases).to_dict()


def graded(ex_id: str, fn, seed: int) -> dict:
    """The grader's verdict on ``fn`` for hidden ``seed``, as in ``mechlib-grade``."""
    from mechlib.teaching.grading import judge, kernel_side
    from mechlib.teaching.grading.transport import decode_calls, decode_outcomes, encode_calls, encode_outcomes
    from mechlib.teaching.inputs import build_model, model_spec

    ex = EXERCISE_BY_ID[ex_id]
    cases = {ex_id: _hidden(ex_id, seed)}
    calls = decode_calls(*encode_calls(cases, model_spec), build_model)
    records = kernel_side.record_namespace(ex.notebook, {ex.function: fn}, calls, time_limit=120)
    return judge.judge(ex.notebook, decode_outcomes(*encode_outcomes(records)), cases)[ex_id]


def _params(answers: dict, marks=()) -> list:
    return [pytest.param(ex_id, name, fn, id=f"{ex_id}-{name}", marks=marks) for ex_id, named in answers.items()
            for name, fn in named.items()]


def _tiered(answers: dict) -> list:
    """Every answer; ``make check`` (not slow) tries the first of each exercise, ``make test`` all."""
    return [pytest.param(ex_id, name, fn, id=f"{ex_id}-{name}", marks=() if i == 0 else pytest.mark.slow)
            for ex_id, named in answers.items() for i, (name, fn) in enumerate(named.items())]


def test_every_exercise_has_wrong_answers_and_alternatives():
    ids = {ex.id for ex in ALL_EXERCISES}
    assert set(WRONG) == ids and set(RIGHT) == ids
    assert all(len(WRONG[i]) >= 3 for i in ids), {i: len(WRONG[i]) for i in ids if len(WRONG[i]) < 3}
    assert all(len(RIGHT[i]) >= 2 for i in ids), {i: len(RIGHT[i]) for i in ids if len(RIGHT[i]) < 2}


@pytest.mark.parametrize("ex_id, name, fn", _tiered(WRONG))
def test_a_wrong_answer_fails_the_self_check_and_the_hidden_cases(ex_id, name, fn):
    result = self_checked(ex_id, fn)
    assert result["status"] == "failed", f"self-check accepted {name!r}: {result['message']}"
    verdict = graded(ex_id, fn, SEED)
    assert verdict["status"] == "failed", f"seed {SEED} accepted {name!r}: {verdict['message']}"


@pytest.mark.parametrize("ex_id, name, fn", _tiered(RIGHT))
def test_a_correct_alternative_passes_the_self_check_and_the_hidden_cases(ex_id, name, fn):
    result = self_checked(ex_id, fn)
    assert result["status"] == "passed", f"self-check refused {name!r}: {result['message']}"
    verdict = graded(ex_id, fn, SEED)
    assert verdict["status"] == "passed", f"seed {SEED} refused {name!r}: {verdict['message']}"


@pytest.mark.slow
@more_seeds
@pytest.mark.parametrize("seed", MORE_SEEDS)
@pytest.mark.parametrize("ex_id, name, fn", _params(WRONG))
def test_a_wrong_answer_fails_on_more_seeds(ex_id, name, fn, seed):
    verdict = graded(ex_id, fn, seed)
    assert verdict["status"] == "failed", f"seed {seed} accepted {name!r}: {verdict['message']}"


@pytest.mark.slow
@more_seeds
@pytest.mark.parametrize("seed", MORE_SEEDS)
@pytest.mark.parametrize("ex_id, name, fn", _params(RIGHT))
def test_a_correct_alternative_passes_on_more_seeds(ex_id, name, fn, seed):
    verdict = graded(ex_id, fn, seed)
    assert verdict["status"] == "passed", f"seed {seed} refused {name!r}: {verdict['message']}"


#: wrong answers whose self-check message must name the mistake (a hint, or what was changed)
NAMED = {
    ("02.3", "absolute tolerance"): "the tolerance is relative",
    ("02.3", "relative to the Frobenius norm"): "Frobenius norm",
    ("02.3", "input scaled in place"): "changed in place",
    ("02.4", "inputs normalised in place"): "changed in place",
    ("02.5", "no d_head bottleneck"): "d_head bottleneck",
    ("02.5", "unseeded"): "same seed gave different scores",
    ("02.5", "seed hard-coded"): "another seed gave the same scores",
    ("04.3", "late-binding closure"): "late-binding closure",
    ("04.3", "first sender only (no sum over senders)"): "remove the sum of every sender's output",
    ("05.1", "input changed in place"): "changed in place",
    ("05.4", "mean over positions only"): "you averaged over positions (dim 1)",
    ("06.1", "b_U added"): "you added b_U",
    # --- investigation 01-04
    ("01.1", "norm of the mean vector"): "norm of the mean vector",
    ("01.2", "layer 1 ablated"): "zeroing layer 1's outputs",
    ("02.6", "loss after the cut, not the rise"): "that is the loss after the cut",
    ("03.5", "queries, not keys"): "cut from the Q input",
    ("03.6", "probability of the right token"): "probability of the right token",
    ("01.1", "mean of the per-position ratios"): "mean of each position's ratio",
    ("06.5", "bias terms left out of the total"): "the bias terms are terms too",
    ("01.2", "layer 0's whole output zeroed, b_O included"): "its bias b_O included",
    ("08.5", "b_U added (through model.unembed)"): "you added the unembedding bias b_U",
    # --- side effects on what the function was given
    ("01.2", "weights zeroed in place, never put back"): "weights changed in place (blocks.0.attn.o.weight)",
    ("02.6", "a hook left on the model"): "a hook is still attached to blocks.0.attn.hook_z",
    ("05.7", "the caller's heads list emptied"): "argument 4 was changed in place",
    ("08.3", "the recording hook left attached"): "a hook is still attached",
}


@pytest.mark.parametrize("ex_id, name", list(NAMED), ids=[f"{i}-{n}" for i, n in NAMED])
def test_the_message_names_the_mistake(ex_id, name):
    result = self_checked(ex_id, WRONG[ex_id][name])
    assert result["status"] == "failed" and NAMED[ex_id, name] in result["message"], result["message"]


def test_no_helper_of_the_answers_is_defined_twice():
    """A helper defined again further down replaces the first for every answer that calls it."""
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).parent / "check_answers.py").read_text())
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert sorted({n for n in names if names.count(n) > 1}) == []
