"""The head toggle's state, against float64 references."""
import pytest
import torch

import mechlib
from mechlib import toggle
from mechlib._threads import single_thread
from mechlib.teaching import reference

HALF, PREFIX = 10, 5


def test_previous_token_heads_off_breaks_induction(model, toggle_tokens):
    # the toggle's claim in chapter 5, on the float64 reference forward pass: with the
    # previous-token heads 0.0 and 0.3 off, the loss on the repeat rises and no layer-1 head
    # attends inductively any more
    for off, low in (([], True), ([(0, 0), (0, 3)], False)):
        logits, patterns = reference.forward(model, toggle_tokens, zero_heads=off, return_patterns=True)
        loss = mechlib.per_token_loss(logits, toggle_tokens)[:, PREFIX + HALF:].mean().item()
        induction = reference.induction_score_brute_force(patterns, toggle_tokens)[1]
        state = toggle.HeadToggleState(model, toggle_tokens, HALF, PREFIX).update(
            [hd for hd in mechlib.all_heads(model) if hd not in off])
        assert state["loss"] == pytest.approx(loss, abs=1e-5)
        if low:
            assert loss < 0.5 and induction.min() > 0.6
        else:
            assert loss > 2.0 and induction.max() < 0.3


def test_single_thread_restores_thread_count():
    before = torch.get_num_threads()
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
