"""The state behind the widgets (head toggle, composition explorer), checked without any
display against independent computations."""
import pytest
import torch

import mechlib
from mechlib import toggle
from mechlib.teaching import reference

HALF, PREFIX = toggle.DEFAULT_HALF_LEN, toggle.DEFAULT_PREFIX_LEN


@pytest.fixture(scope="module")
def head_state(model, toggle_tokens):
    return toggle.HeadToggleState(model, toggle_tokens, HALF, PREFIX)


@pytest.mark.parametrize("off", [[], [(0, 0), (0, 3)], [(1, 2)], [(0, 1), (1, 0), (1, 3)]])
def test_head_toggle_loss_equals_run_with_ablation(model, toggle_tokens, head_state, off):
    on = [hd for hd in toggle.all_heads(model) if hd not in off]
    expected = mechlib.repeat_loss(mechlib.run_with_ablation(model, toggle_tokens, off), toggle_tokens, HALF, PREFIX)
    assert head_state.update(on)["loss"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("off", [[(0, 0), (0, 3)], [(0, 2), (1, 1)]])
def test_head_toggle_scores_and_patterns_match_float64_reference(model, toggle_tokens, head_state, off):
    on = [hd for hd in toggle.all_heads(model) if hd not in off]
    result = head_state.update(on)
    _, patterns = reference.forward(model, toggle_tokens, zero_heads=off, return_patterns=True)
    torch.testing.assert_close(result["induction"].double(), reference.induction_score_brute_force(patterns, toggle_tokens), atol=1e-5, rtol=0)
    torch.testing.assert_close(result["patterns"].double(), patterns[:, 0], atol=1e-5, rtol=0)


def test_head_toggle_with_all_heads_on_matches_induction_scores(model, toggle_tokens, head_state):
    torch.testing.assert_close(head_state.clean["induction"], mechlib.induction_scores(model, toggle_tokens), atol=1e-6, rtol=0)


def test_head_toggle_rejects_bad_input(model, toggle_tokens):
    with pytest.raises(ValueError, match="prefix_len"):
        toggle.HeadToggleState(model, toggle_tokens, HALF, PREFIX + 1)
    with pytest.raises(ValueError, match="example"):
        toggle.HeadToggleState(model, toggle_tokens, HALF, PREFIX, example=32)
    with pytest.raises(ValueError, match="layer 2 does not exist"):
        toggle.HeadToggleState(model, toggle_tokens, HALF, PREFIX).update([(2, 0)])


@pytest.fixture(scope="module")
def comp_state(model):
    return mechlib.CompositionExplorerState(model, n_baseline=200)


def dense64(model, kind, sender, receiver):
    """Sender OV and the receiver matrix of ``kind``, dense float64 from the raw weights."""
    right = {"Q": reference.qk64(model, receiver), "K": reference.qk64(model, receiver).T,
             "V": reference.ov64(model, receiver)}[kind]
    return reference.ov64(model, sender), right


@pytest.mark.parametrize("kind", ["Q", "K", "V"])
@pytest.mark.parametrize("pair", [((0, 0), (1, 0)), ((0, 3), (1, 2))])
def test_composition_state_matches_dense_float64(model, comp_state, kind, pair):
    r = comp_state.update(*pair, kind)
    ov, right = dense64(model, kind, *pair)
    assert r["score"] == pytest.approx(((ov @ right).norm() / (ov.norm() * right.norm())).item(), abs=1e-5)
    sv = torch.linalg.svdvals(ov @ right)
    torch.testing.assert_close(r["singular_values"][:16], sv[:16], rtol=1e-4, atol=1e-6)
    assert r["singular_values"].shape == (model.cfg.d_model,)
    assert r["rank"] <= model.cfg.d_head and r["singular_values"][16:].max() < 1e-5 * sv[0]
    assert r["z"] == pytest.approx((r["score"] - comp_state.baseline.mean().item()) / comp_state.baseline.std().item())


def test_composition_state_offers_only_later_receivers(comp_state):
    assert comp_state.senders == [(0, h) for h in range(4)]
    assert comp_state.receivers_for((0, 2)) == [(1, h) for h in range(4)]
    with pytest.raises(ValueError, match="earlier layer"):
        comp_state.update((1, 0), (1, 1), "K")
    with pytest.raises(ValueError, match="kind"):
        comp_state.update((0, 0), (1, 1), "X")
