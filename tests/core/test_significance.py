"""The yardstick (mechlib.significance) against plain-Python statistics, independent of torch's."""
import math
import statistics

import pytest
import torch

import mechlib


def _reference_z(value, sample):
    """(value - mean) / sample standard deviation, in Python floats (statistics.stdev: n - 1)."""
    xs = [float(x) for x in sample]
    return (value - statistics.fmean(xs)) / statistics.stdev(xs)


def test_baseline_sd_of_a_float_matches_the_formula():
    baseline = mechlib.composition_baseline(64, 16, n_samples=200, seed=3)
    for value in (0.05, 0.125, 0.261):
        got = mechlib.baseline_sd(value, baseline)
        assert isinstance(got, float)
        assert math.isclose(got, _reference_z(value, baseline.tolist()), rel_tol=1e-9, abs_tol=1e-9)


def test_baseline_sd_of_a_table_keeps_its_shape_and_matches_elementwise():
    baseline = torch.tensor([0.10, 0.12, 0.13, 0.11, 0.14], dtype=torch.float64)
    table = torch.tensor([[0.2, 0.1], [0.125, 0.05]], dtype=torch.float64)
    got = mechlib.baseline_sd(table, baseline)
    assert got.shape == table.shape and got.dtype == torch.float64
    for value, z in zip(table.flatten().tolist(), got.flatten().tolist()):
        assert math.isclose(z, _reference_z(value, baseline.tolist()), rel_tol=1e-12)


def test_baseline_sd_on_the_bundled_k_scores_matches_chapter_3():
    """Chapter 3's table: the previous-token head 0.3 into receiver 1.3, by hand in float64."""
    model = mechlib.load_model()
    baseline = mechlib.composition_baseline(model.cfg.d_model, model.cfg.d_head, n_samples=1000, seed=0)
    k = mechlib.composition_scores(model, "K")
    z = mechlib.baseline_sd(k, baseline)
    expected = _reference_z(k[0, 3, 1, 3].item(), baseline.tolist())
    assert math.isclose(z[0, 3, 1, 3].item(), expected, rel_tol=1e-5)
    assert z[0, 3, 1, 3] > mechlib.ABOVE_BASELINE_SD


def test_percentile_within_counts_strictly_smaller_scores():
    population = torch.tensor([0.3, 0.1, 0.2, 0.4, 0.2])
    assert mechlib.percentile_within(population, 0.2) == pytest.approx(100 * 1 / 5)
    assert mechlib.percentile_within(population, 0.25) == pytest.approx(100 * 3 / 5)
    assert mechlib.percentile_within(population, 1.0) == pytest.approx(100.0)
    assert mechlib.percentile_within(population, torch.tensor(0.0)) == 0.0


def test_the_threshold_is_three_standard_deviations():
    assert mechlib.ABOVE_BASELINE_SD == 3.0


@pytest.mark.parametrize("scores, baseline, error, word", [
    (0.1, [0.1, 0.2], TypeError, "baseline"),
    (0.1, torch.tensor([0.1]), ValueError, "baseline"),
    (0.1, torch.ones(3, 2), ValueError, "baseline"),
    (0.1, torch.ones(5), ValueError, "spread"),
    ("0.1", torch.tensor([0.1, 0.2]), TypeError, "scores"),
])
def test_baseline_sd_rejects_bad_input_by_name(scores, baseline, error, word):
    with pytest.raises(error, match=word):
        mechlib.baseline_sd(scores, baseline)


def test_percentile_within_rejects_bad_input_by_name():
    with pytest.raises(ValueError, match="population"):
        mechlib.percentile_within(torch.tensor([]), 0.1)
    with pytest.raises(TypeError, match="value"):
        mechlib.percentile_within(torch.tensor([0.1]), "high")
