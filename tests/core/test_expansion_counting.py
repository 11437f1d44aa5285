import itertools
import math

import pytest
import torch
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

import mechlib
from mechlib.teaching.reference import weights64


def test_expansion_terms_sum_to_logits(model, rep_tokens):
    e = mechlib.path_expansion(model, rep_tokens)
    err = (e.total().float() - model(rep_tokens).detach()).abs().max().item()
    assert err < 1e-4


def test_expansion_terms_sum_to_logits_for_three_layers(random_model):
    tokens = torch.randint(0, 20, (3, 16), generator=torch.Generator().manual_seed(1))
    e = mechlib.path_expansion(random_model, tokens)
    assert (e.total().float() - random_model(tokens).detach()).abs().max().item() < 1e-4
    # 1 direct + 9 single + 27 two-head + 27 three-head chains
    counts = {k: sum(v == k for v in e.kinds.values()) for k in ("direct", "single", "virtual")}
    assert counts == {"direct": 1, "single": 9, "virtual": 27 + 27}


def test_expansion_has_the_two_layer_terms(model, rep_tokens):
    e = mechlib.path_expansion(model, rep_tokens)
    names = set(e.terms)
    assert "direct" in names
    assert {f"{l}.{h}" for l in range(2) for h in range(4)} <= names
    assert {f"0.{a}->1.{b}" for a in range(4) for b in range(4)} <= names
    assert sum(k == "virtual" for k in e.kinds.values()) == 16
    assert set(e.by_kind()) == {"direct", "single", "virtual", "bias"}


def test_virtual_term_matches_dense_computation(model, rep_tokens):
    w = weights64(model)
    A = mechlib.attention_patterns(model, rep_tokens).double()
    x0 = w["W_E"][rep_tokens] + w["W_pos"][: rep_tokens.shape[1]]
    s, r = (0, 3), (1, 1)
    OV = lambda l, h: w["W_V"][l, h] @ w["W_O"][l, h]  # noqa: E731
    expected = A[1, :, r[1]] @ A[0, :, s[1]] @ x0 @ OV(*s) @ OV(*r) @ w["W_U"]
    got = mechlib.path_expansion(model, rep_tokens).terms["0.3->1.1"]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    direct = mechlib.path_expansion(model, rep_tokens).terms["direct"]
    torch.testing.assert_close(direct, x0 @ w["W_U"], atol=1e-6, rtol=1e-6)


def test_expansion_with_given_patterns_equals_a_pass_with_those_patterns_patched_in(model, rep_tokens):
    """Frozen patterns: the layer-1 patterns of a pass without head 0.3, everything else clean."""
    patterns = mechlib.attention_patterns(model, rep_tokens)
    patterns[1] = mechlib.attention_patterns(model, rep_tokens, fwd_hooks=mechlib.ablation_hooks(model, [(0, 3)]))[1]

    def patch(pattern, hook):
        return patterns[1]

    patched = model.run_with_hooks(rep_tokens, fwd_hooks=[("blocks.1.attn.hook_pattern", patch)]).detach()
    got = mechlib.path_expansion(model, rep_tokens, patterns=patterns).total().float()
    assert (got - patched).abs().max().item() < 1e-4
    assert (got - model(rep_tokens).detach()).abs().max().item() > 0.1  # the patterns did change something


def test_expansion_rejects_patterns_of_the_wrong_shape(model, rep_tokens):
    with pytest.raises(ValueError, match="patterns must be a tensor of shape"):
        mechlib.path_expansion(model, rep_tokens, patterns=torch.zeros(2, 1, 4, 3, 3))


def _booted(**kw):
    import transformer_lens.model_bridge.sources.native  # noqa: F401

    base = dict(d_model=16, d_head=4, n_heads=2, n_layers=2, n_ctx=8, d_vocab=10, seed=0, act_fn="gelu",
                positional_embedding_type="standard")
    base.update(kw)
    return TransformerBridge.boot_native(TransformerBridgeConfig(**base))


def test_expansion_rejects_models_with_mlps_or_layernorm():
    t = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="MLP"):
        mechlib.path_expansion(_booted(attn_only=False, normalization_type=None), t)
    with pytest.raises(ValueError, match="LayerNorm"):
        mechlib.path_expansion(_booted(attn_only=True, normalization_type="LN"), t)


def test_expansion_total_rejects_unknown_term(model, rep_tokens):
    with pytest.raises(ValueError, match="unknown term"):
        mechlib.path_expansion(model, rep_tokens).total(["direct", "9.9"])


def test_count_matches_formula_and_enumeration():
    assert mechlib.count_virtual_heads(12, 12) == 12 * 12 * math.comb(12, 2) == 9504
    for L, H, k in [(12, 12, 2), (4, 3, 3), (3, 2, 1), (5, 2, 4), (2, 5, 3)]:
        brute = sum(
            1
            for chain in itertools.product(itertools.product(range(L), range(H)), repeat=k)
            if all(chain[i][0] < chain[i + 1][0] for i in range(k - 1))
        )
        assert mechlib.count_virtual_heads(L, H, k) == brute
        chains = list(mechlib.enumerate_virtual_heads(L, H, k))
        assert len(chains) == brute == len(set(chains))
        assert all(all(c[i][0] < c[i + 1][0] for i in range(k - 1)) for c in chains)


@pytest.mark.parametrize("args,err", [((0, 12), ValueError), ((12, -1), ValueError), ((12, 12, 0), ValueError), ((12.0, 12), TypeError)])
def test_count_rejects_bad_sizes(args, err):
    with pytest.raises(err, match="n_layers|n_heads|length"):
        mechlib.count_virtual_heads(*args)
    with pytest.raises(err, match="n_layers|n_heads|length"):
        list(mechlib.enumerate_virtual_heads(*args))
