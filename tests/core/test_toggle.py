"""The head toggle's state and its table of every subset of heads, against float64 references."""
import pytest
import torch

import mechlib
from mechlib import toggle
from mechlib._threads import single_thread
from mechlib.models import InductionConfig, build_model
from mechlib.teaching import reference

HALF, PREFIX = 10, 5
PREV_TOKEN_OFF = 0b11110110  # every head on except 0.0 and 0.3


def heads_off(model, mask):
    return [hd for hd in toggle.all_heads(model) if hd not in toggle.mask_to_heads(model, mask)]


def test_mask_roundtrip(model):
    heads = [(0, 1), (1, 3)]
    mask = toggle.heads_to_mask(model, heads)
    assert mask == 2 ** 1 + 2 ** 7
    assert toggle.mask_to_heads(model, mask) == heads
    with pytest.raises(ValueError, match="mask"):
        toggle.mask_to_heads(model, 256)


@pytest.mark.parametrize("mask", [0, 255, PREV_TOKEN_OFF, 0b11111101, 0b10111111, 0b01011010])
def test_precomputed_loss_matches_run_with_ablation(model, toggle_tokens, toggle_table, mask):
    logits = mechlib.run_with_ablation(model, toggle_tokens, heads_off(model, mask))
    assert toggle_table.loss[mask].item() == pytest.approx(mechlib.repeat_loss(logits, toggle_tokens, HALF, PREFIX), abs=1e-5)


@pytest.mark.parametrize("mask", [0, 255, PREV_TOKEN_OFF, 0b01011010])
def test_precomputed_induction_and_patterns_match_float64_reference(model, toggle_tokens, toggle_table, mask):
    _, patterns = reference.forward(model, toggle_tokens, zero_heads=heads_off(model, mask), return_patterns=True)
    torch.testing.assert_close(toggle_table.induction[mask].double(), reference.induction_score_brute_force(patterns, toggle_tokens), atol=1e-5, rtol=0)
    for l, h in toggle.all_heads(model):
        torch.testing.assert_close(toggle_table.pattern((l, h), mask).double(), patterns[l, 0, h], atol=1e-5, rtol=0)


def test_previous_token_heads_off_breaks_induction_in_table(toggle_table):
    assert toggle_table.loss[255] < 0.5 < 2.0 < toggle_table.loss[PREV_TOKEN_OFF]
    assert toggle_table.induction[255, 1].min() > 0.6 > 0.3 > toggle_table.induction[PREV_TOKEN_OFF, 1].max()


def test_patterns_of_a_deeper_model_are_keyed_by_earlier_heads(random_model):
    """3 layers x 3 heads: a layer-2 pattern depends on the 6 heads of layers 0 and 1."""
    tokens = mechlib.repeated_tokens(20, 3, 4, seed=2, prefix_len=2)
    table = toggle.precompute_head_toggle(random_model, tokens, 4, 2)
    assert table.patterns[(2, 1)].shape[0] == 2 ** 6 and table.patterns[(0, 0)].shape[0] == 1
    for mask in [0, 0b101010101, 0b011001110, 2 ** 9 - 1]:
        off = heads_off(random_model, mask)
        logits, patterns = reference.forward(random_model, tokens, zero_heads=off, return_patterns=True)
        for l, h in toggle.all_heads(random_model):
            torch.testing.assert_close(table.pattern((l, h), mask).double(), patterns[l, 0, h], atol=1e-5, rtol=0)
        loss = mechlib.per_token_loss(logits, tokens)[:, 2 + 4:].mean().item()
        assert table.loss[mask].item() == pytest.approx(loss, abs=1e-5)


def test_precompute_rejects_mismatched_lengths_and_big_models(model, toggle_tokens):
    with pytest.raises(ValueError, match="prefix_len"):
        toggle.precompute_head_toggle(model, toggle_tokens, HALF + 1, PREFIX)
    big = build_model(InductionConfig(n_layers=3, n_heads=4, d_model=16, d_head=4))
    with pytest.raises(ValueError, match="at most"):
        toggle.precompute_head_toggle(big, toggle.default_tokens(big))


def test_single_thread_restores_thread_count():
    before = torch.get_num_threads()
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
