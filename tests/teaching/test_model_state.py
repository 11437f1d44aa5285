"""A model handed to a learner's function comes back as it went in (``mechlib.teaching.model_state``,
through ``exercise.call``): weights changed in place or hooks left behind are reported, named, and undone."""
from __future__ import annotations

import pytest
import torch

import mechlib
from mechlib.teaching import model_state
from mechlib.teaching.exercise import INPUT_CHANGED, call


@pytest.fixture(scope="module")
def setup():
    model = mechlib.load_model()
    tokens = mechlib.repeated_batch(model, batch=2).tokens
    with torch.no_grad():
        clean = model(tokens).clone()
    return model, tokens, clean


def zeroes_layer0(model, tokens):
    with torch.no_grad():
        model.blocks[0].attn.o.weight.zero_()
    return 0.0


def leaves_hook(model, tokens):
    model.add_hook("blocks.0.attn.hook_z", lambda z, hook: z * 0)
    return 0.0


def puts_back(model, tokens):
    w = model.blocks[0].attn.o.weight
    saved = w.detach().clone()
    with torch.no_grad():
        w.zero_()
        w.copy_(saved)
    return 0.0


def test_weights_changed_in_place_are_named_and_put_back(setup):
    model, tokens, clean = setup
    outcome, _ = call(zeroes_layer0, (model, tokens), {}, None)
    assert outcome[:2] == ("raised", INPUT_CHANGED)
    assert "weights changed in place (blocks.0.attn.o.weight)" in outcome[2] and "put them back" in outcome[2]
    with torch.no_grad():
        assert torch.equal(model(tokens), clean)


def test_a_hook_left_behind_is_named_and_removed(setup):
    model, tokens, clean = setup
    outcome, _ = call(leaves_hook, (model, tokens), {}, None)
    assert outcome[:2] == ("raised", INPUT_CHANGED) and "hook is still attached to blocks.0.attn.hook_z" in outcome[2]
    with torch.no_grad():
        assert torch.equal(model(tokens), clean)


def test_weights_saved_and_put_back_pass(setup):
    model, tokens, _ = setup
    assert call(puts_back, (model, tokens), {}, None)[0] == ("value", 0.0)


def test_a_raising_function_still_leaves_the_model_as_it_was(setup):
    model, tokens, clean = setup

    def breaks_then_raises(model, tokens):
        leaves_hook(model, tokens)
        zeroes_layer0(model, tokens)
        raise RuntimeError("oops")

    assert call(breaks_then_raises, (model, tokens), {}, None)[0] == ("raised", "RuntimeError", "oops")
    with torch.no_grad():
        assert torch.equal(model(tokens), clean)


def test_a_large_model_is_fingerprinted_and_reported(setup, monkeypatch):
    model, tokens, clean = setup
    monkeypatch.setattr(model_state, "COPY_LIMIT", 10)
    saved = model.blocks[0].attn.o.weight.detach().clone()
    try:
        outcome, _ = call(zeroes_layer0, (model, tokens), {}, None)
        assert outcome[:2] == ("raised", INPUT_CHANGED) and "reload the model" in outcome[2]
    finally:
        with torch.no_grad():
            model.blocks[0].attn.o.weight.copy_(saved)


def test_a_list_argument_emptied_is_reported():
    def pops(heads):
        while heads:
            heads.pop()
        return 0.0

    heads = [(0, 1), (0, 2)]
    outcome, _ = call(pops, (heads,), {}, None)
    assert outcome[:2] == ("raised", INPUT_CHANGED) and "argument 1 was changed in place" in outcome[2]
    assert call(lambda heads: float(len(heads)), ([(0, 1)],), {}, None)[0] == ("value", 1.0)
