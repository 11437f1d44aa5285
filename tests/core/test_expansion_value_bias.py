"""path_expansion(split_value_bias=True): each head's value-bias term under its own name, against float64 by hand."""
import pytest
import torch

import mechlib


@pytest.fixture(scope="module")
def small():
    """A 2-layer untrained model with every bias non-zero."""
    return mechlib.random_model(n_layers=2)


@pytest.fixture(scope="module")
def tokens(small):
    return torch.randint(0, small.cfg.d_vocab, (2, 7), generator=torch.Generator().manual_seed(3))


def weights(model):
    return {n: getattr(model, n).detach().double() for n in ("W_V", "W_O", "b_V", "b_O", "W_U")}


def test_each_heads_value_bias_term_is_b_V_W_O_W_U(small, tokens):
    W = weights(small)
    e = mechlib.path_expansion(small, tokens, split_value_bias=True)
    for l in range(2):
        torch.testing.assert_close(e.terms[f"bias {l}"][0, 0], W["b_O"][l] @ W["W_U"], atol=1e-10, rtol=0)
        for h in range(small.cfg.n_heads):
            expected = W["b_V"][l, h] @ W["W_O"][l, h] @ W["W_U"]
            torch.testing.assert_close(e.terms[f"bias {l}.{h}"][1, 4], expected, atol=1e-10, rtol=0)
            assert e.kinds[f"bias {l}.{h}"] == "bias"
    # through a later head: a constant vector is moved unchanged (attention rows sum to 1)
    expected = W["b_V"][0, 1] @ W["W_O"][0, 1] @ W["W_V"][1, 2] @ W["W_O"][1, 2] @ W["W_U"]
    torch.testing.assert_close(e.terms["bias 0.1->1.2"][0, 3], expected, atol=1e-10, rtol=0)


def test_split_terms_add_up_to_the_lumped_layer_bias_and_to_the_logits(small, tokens):
    lumped = mechlib.path_expansion(small, tokens)
    split = mechlib.path_expansion(small, tokens, split_value_bias=True)
    H = small.cfg.n_heads
    for l in range(2):
        parts = split.total([f"bias {l}"] + [f"bias {l}.{h}" for h in range(H)])
        torch.testing.assert_close(parts, lumped.terms[f"bias {l}"], atol=1e-10, rtol=0)
    # every non-bias term is the same in both
    assert all(torch.equal(split.terms[n], t) for n, t in lumped.terms.items() if lumped.kinds[n] != "bias")
    assert (split.total().float() - small(tokens).detach()).abs().max().item() < 1e-4
    # the default keeps one bias term per layer
    assert not any(n.startswith("bias 0.") for n in lumped.terms)


def test_split_value_bias_must_be_a_bool(small, tokens):
    with pytest.raises(TypeError, match="split_value_bias"):
        mechlib.path_expansion(small, tokens, split_value_bias="yes")
