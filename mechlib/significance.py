"""The book's one yardstick for "significant": distance from the random baseline in standard deviations.

A composition score ``C`` (:mod:`mechlib.composition`) is read against the scores of random
matrices of the same shapes, :func:`mechlib.composition_baseline`. With that sample's mean
``mu`` and standard deviation ``sigma`` (``n - 1`` in the denominator, as ``torch.std``),

    z = (C - mu) / sigma                     (:func:`baseline_sd`)

is the score in *baseline standard deviations*. Every chapter uses this one unit. A score is
*above the baseline* when ``z >= ABOVE_BASELINE_SD`` (3 SD) and *below* it when
``z <= -ABOVE_BASELINE_SD``; in between it is *at the baseline*. Passing the threshold says the
weights line up more than chance would; it does not rank pairs within a model (that is

    percentile(v) = 100 * #{pairs with score < v} / #pairs      (:func:`percentile_within`)

) and it does not say the model uses the path: only a causal test (a path ablation) does.

Taught in Chapter 3, K-Composition, section "How significant is a score?"; used wherever a
chapter calls a score above or below the baseline.
"""
from __future__ import annotations

from typing import Any

import torch

#: the book's threshold: a score is "above the baseline" at this many baseline SDs or more
ABOVE_BASELINE_SD = 3.0


def _baseline_sample(baseline: Any) -> torch.Tensor:
    if not isinstance(baseline, torch.Tensor):
        raise TypeError(
            f"baseline must be a 1-D torch.Tensor of random scores (mechlib.composition_baseline); "
            f"got {type(baseline).__name__}"
        )
    if baseline.ndim != 1 or baseline.numel() < 2:
        raise ValueError(
            f"baseline must be a 1-D tensor of at least 2 random scores; got shape {tuple(baseline.shape)}"
        )
    return baseline


def baseline_sd(scores: Any, baseline: torch.Tensor) -> float | torch.Tensor:
    """``(scores - mean(baseline)) / std(baseline)``: how many baseline standard deviations a score lies above the mean.

    ``scores`` is a float or a tensor of any shape (a whole table of
    :func:`mechlib.composition_scores` at once); ``baseline`` the 1-D sample of
    :func:`mechlib.composition_baseline` for the same ``d_model`` and ``d_head``. A float comes
    back as a float, a tensor as a tensor of the same shape on its device. Negative values lie
    below the baseline mean. Chapter 3, "How significant is a score?".
    """
    baseline = _baseline_sample(baseline)
    sigma = baseline.double().std()
    if not sigma > 0:
        raise ValueError("baseline has no spread (all samples equal); draw it with mechlib.composition_baseline")
    mu = baseline.double().mean()
    if isinstance(scores, torch.Tensor):
        return ((scores.double() - mu.to(scores.device)) / sigma.to(scores.device)).to(
            scores.dtype if scores.is_floating_point() else torch.float64
        )
    if isinstance(scores, (int, float)) and not isinstance(scores, bool):
        return ((scores - mu) / sigma).item()
    raise TypeError(f"scores must be a float or a torch.Tensor; got {type(scores).__name__}")


def percentile_within(population: torch.Tensor, value: float) -> float:
    """``100 * #{x in population : x < value} / #population``: the percentile of ``value`` within a model's own scores.

    ``population`` is any tensor of scores (e.g. every pair of one kind); ``value`` one score.
    A within-model rank: whatever all pairs share (a common spectrum, shared directions) lifts
    the whole population, so it cancels. Appendix, Composition in a Real Transformer; Chapter 3.
    """
    if not isinstance(population, torch.Tensor) or population.numel() == 0:
        raise ValueError("population must be a non-empty torch.Tensor of scores")
    if isinstance(value, torch.Tensor):
        value = value.item()
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"value must be one score (a float); got {type(value).__name__}")
    return 100.0 * (population.flatten() < value).double().mean().item()
