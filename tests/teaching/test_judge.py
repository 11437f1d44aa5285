"""The verdict (:mod:`mechlib.teaching.grading.judge`), alone: hidden cases drawn in the
grader's process, outcomes judged there, and nothing of a reference on the kernel side."""
from __future__ import annotations

import threading

import numpy as np
import torch

from mechlib.teaching.grading import judge

SMALL = "07_combinatorial_richness"



def test_messages_quoting_a_huge_result_are_cut():
    results = judge.grade_in_process(SMALL, {"count_pairs": lambda L, H: "x" * 100_000}, 2)
    assert results["07.1"]["status"] == "failed" and len(results["07.1"]["message"]) <= judge.MAX_MESSAGE


def test_a_result_that_breaks_the_comparison_fails_only_its_exercise():
    def count_pairs(L, H):
        return H * H * (L * (L - 1) // 2)

    def enumerate_pairs(L, H):
        return [((float("inf"), 0), (1, 0))]

    results = judge.grade_in_process(SMALL, {"count_pairs": count_pairs, "enumerate_pairs": enumerate_pairs}, 5)
    assert results["07.1"]["status"] == "passed"
    assert results["07.2"]["status"] == "failed" and "could not be compared" in results["07.2"]["message"]


def test_hidden_cases_drawn_in_two_threads_at_once_equal_those_drawn_alone():
    """The grader grades two notebooks at once; their cases run path ablations (hooks) on the same models."""
    def expected(cases):
        return [c.compare.keywords["expected"] for c in cases["04.3"]]

    alone = {seed: expected(judge.hidden_inputs("04_q_composition", seed)) for seed in (1, 2)}
    together, errors = {}, []

    def draw(seed):
        try:
            together[seed] = expected(judge.hidden_inputs("04_q_composition", seed))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=draw, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for seed in (1, 2):
        assert all(torch.equal(a, b) for a, b in zip(alone[seed], together[seed], strict=True))


def test_the_kernel_side_builds_no_case_and_holds_no_reference(tmp_path, monkeypatch):
    """What reaches the sandbox is the cases' inputs: the kernel side runs with the check's case
    machinery broken, and nothing on its stack has a comparison to steal."""
    import sys as _sys

    from mechlib.teaching import exercise, inputs
    from mechlib.teaching.grading import kernel_side, transport

    cases = judge.hidden_inputs("05_virtual_attention_heads", seed=3)
    doc, npz = transport.encode_calls(cases, inputs.model_spec)
    (tmp_path / "inputs.json").write_text(doc)
    (tmp_path / "inputs.npz").write_bytes(npz)
    expected = [c.compare.keywords["expected"] for cs in cases.values() for c in cs
                if isinstance(getattr(c.compare, "keywords", {}).get("expected"), torch.Tensor)]
    del cases

    def no_cases(*a, **k):
        raise AssertionError("a check case was built on the kernel side")

    monkeypatch.setattr(exercise.Case, "__init__", no_cases)
    stolen = []

    def thief(pattern, *args, **kwargs):  # walk up the stack looking for a case or an expected value
        frame = _sys._getframe(1)
        while frame is not None:
            for v in frame.f_locals.values():
                if hasattr(v, "compare") or (isinstance(v, dict) and "expected" in v):
                    stolen.append(v)
            frame = frame.f_back
        return pattern.double().mean(dim=(0, 2))

    kernel_side.collect("05_virtual_attention_heads", {"prev_token_score": thief}, str(tmp_path),
                        str(tmp_path / "out"))
    assert stolen == []
    arrays = list(np.load(tmp_path / "inputs.npz").values())
    assert expected and not any(a.shape == tuple(e.shape) and np.allclose(a, e.numpy()) for a in arrays for e in expected)
