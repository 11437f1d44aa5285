"""Models the formulas do not cover meet a clear error, raised before any TransformerLens
internals are touched; the formulas that do cover them keep working.

Small random models of each kind, built offline with ``TransformerBridge.boot_native``:
rotary positions (no ``W_pos``: the exact expansion has no positional path to expand) and
LayerNorm (the residual stream is no longer a sum of separate paths).
"""
import pytest
import torch

import mechlib

import transformer_lens.model_bridge.sources.native  # noqa: E402,F401  (attaches boot_native)
from transformer_lens.config import TransformerBridgeConfig  # noqa: E402
from transformer_lens.model_bridge import TransformerBridge  # noqa: E402


def booted(**kw):
    base = dict(d_model=16, d_head=4, n_heads=2, n_layers=2, n_ctx=32, d_vocab=10, seed=0, act_fn="gelu",
                attn_only=True, normalization_type=None, positional_embedding_type="standard")
    base.update(kw)
    return mechlib.load_model(TransformerBridge.boot_native(TransformerBridgeConfig(**base)))


def untouchable(model):
    """``model`` with its forward passes replaced by a failure: a check must come first."""
    def touched(*args, **kwargs):
        raise AssertionError("TransformerLens was run before the model was checked")

    for name in ("run_with_cache", "run_with_hooks", "forward"):
        setattr(model, name, touched)
    return model


@pytest.fixture(scope="module")
def rotary():
    return booted(positional_embedding_type="rotary")


@pytest.fixture(scope="module")
def layernorm():
    return booted(normalization_type="LN")


TOKENS = torch.randint(0, 10, (2, 12), generator=torch.Generator().manual_seed(0))


def test_expansion_of_a_rotary_model_names_the_argument_what_it_has_and_what_is_allowed(rotary):
    with pytest.raises(ValueError) as err:
        mechlib.path_expansion(untouchable(booted(positional_embedding_type="rotary")), TOKENS)
    message = str(err.value)
    assert message.startswith("model: path_expansion")
    assert "cfg.positional_embedding_type='rotary'" in message and "allowed: 'standard'" in message
    assert "W_pos" in message


def test_expansion_of_a_layernorm_model_names_the_norm_and_what_is_allowed():
    with pytest.raises(ValueError) as err:
        mechlib.path_expansion(untouchable(booted(normalization_type="LN")), TOKENS)
    message = str(err.value)
    assert message.startswith("model: path_expansion")
    assert "cfg.normalization_type='LN' (allowed: None" in message
    assert "positional_embedding_type" not in message  # only what is wrong with this model


def test_expansion_lists_every_problem_of_a_model():
    with pytest.raises(ValueError) as err:
        mechlib.check_expandable(booted(normalization_type="LN", positional_embedding_type="rotary",
                                        attn_only=False, d_mlp=32))
    message = str(err.value)
    assert "cfg.attn_only=False" in message and "'LN'" in message and "'rotary'" in message


@pytest.mark.parametrize("kind", ["Q", "K", "V"])
def test_path_ablation_of_a_layernorm_model_names_freeze_ln_and_what_is_allowed(kind):
    with pytest.raises(ValueError) as err:
        mechlib.path_ablation_hooks(untouchable(booted(normalization_type="LN")), TOKENS, (0, 0), (1, 1), kind)
    message = str(err.value)
    assert message.startswith("model: ") and "cfg.normalization_type='LN'" in message
    assert "freeze_ln=False" in message and "freeze_ln=True" in message and "normalization_type=None" in message


def test_path_ablation_of_a_rotary_model_is_exact(rotary):
    """Rotary positions act after ``hook_k``, so removing the sender from the receiver's key input
    is still exact: the receiver's pattern equals a run whose key projection input (for the whole
    layer) is the residual stream minus the sender's output, ``z^{s} W_O^{s}``."""
    (ls, hs), (lr, hr) = (0, 1), (1, 0)
    _, cache = rotary.run_with_cache(TOKENS)
    sender_out = cache[f"blocks.{ls}.attn.hook_z"][:, :, hs] @ rotary.W_O[ls, hs]

    seen = {}

    def without_sender(x, hook):
        return x - sender_out

    def keep(pattern, hook):
        seen["pattern"] = pattern.detach().clone()

    rotary.run_with_hooks(TOKENS, fwd_hooks=[(f"blocks.{lr}.attn.k.hook_in", without_sender),
                                             (f"blocks.{lr}.attn.hook_pattern", keep)])
    expected = seen["pattern"][:, hr]
    got = mechlib.attention_patterns(
        rotary, TOKENS, fwd_hooks=mechlib.path_ablation_hooks(rotary, TOKENS, (ls, hs), (lr, hr), "K"))[lr, :, hr]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert (got - cache[f"blocks.{lr}.attn.hook_pattern"][:, hr]).abs().max() > 1e-3  # the cut changed something
