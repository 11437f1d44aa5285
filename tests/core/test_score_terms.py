"""attention_score_terms against a float64 forward pass written here, term by term and in sum.

The yardstick is a plain loop over layers and heads from the weights in float64 (no hooks,
no mechlib): it returns, for every head, its pre-softmax scores ``q k^T / sqrt(d_head)``
and its output, so that one term can be rebuilt from its definition and the sum compared
with the receiver's scores.
"""
import math

import pytest
import torch

import mechlib
from mechlib.teaching.reference import weights64

import transformer_lens.model_bridge.sources.native  # noqa: E402,F401  (attaches boot_native)
from transformer_lens.config import TransformerBridgeConfig  # noqa: E402
from transformer_lens.model_bridge import TransformerBridge  # noqa: E402


def forward64(model, tokens):
    """``(scores, outputs)``: every head's pre-softmax scores ``[batch, q, k]`` (unmasked) and output
    ``A (x W_V + b_V) W_O`` ``[batch, pos, d_model]``, by head, in float64."""
    w = weights64(model)
    seq = tokens.shape[1]
    x = w["W_E"][tokens] + w["W_pos"][:seq]
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    scores, outputs = {}, {}
    for l in range(model.cfg.n_layers):
        new = torch.zeros_like(x)
        for h in range(model.cfg.n_heads):
            q = x @ w["W_Q"][l, h] + w["b_Q"][l, h]
            k = x @ w["W_K"][l, h] + w["b_K"][l, h]
            s = q @ k.transpose(-1, -2) / math.sqrt(model.cfg.d_head)
            scores[(l, h)] = s
            A = s.masked_fill(~causal, float("-inf")).softmax(-1)
            outputs[(l, h)] = A @ (x @ w["W_V"][l, h] + w["b_V"][l, h]) @ w["W_O"][l, h]
            new = new + outputs[(l, h)]
        x = x + new + w["b_O"][l]
    return scores, outputs


@pytest.fixture(scope="module")
def tokens3():
    return torch.randint(0, 20, (3, 12), generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("receiver", [(1, 1), (1, 2), (0, 3)])
def test_terms_add_up_to_the_float64_scores_of_the_bundled_model(model, rep_tokens, receiver):
    scores, _ = forward64(model, rep_tokens)
    got = mechlib.attention_score_terms(model, rep_tokens, receiver).total()
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, scores[receiver], atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("receiver", [(2, 0), (1, 2), (0, 1)])
def test_terms_add_up_in_a_three_layer_model_with_every_bias(random_model, tokens3, receiver):
    scores, _ = forward64(random_model, tokens3)
    terms = mechlib.attention_score_terms(random_model, tokens3, receiver)
    n_earlier = receiver[0] * random_model.cfg.n_heads
    assert len(terms.sources) == 3 + n_earlier and len(terms.terms) == (3 + n_earlier) ** 2
    torch.testing.assert_close(terms.total(), scores[receiver], atol=1e-9, rtol=1e-9)


def test_softmax_of_the_total_is_the_pattern_the_model_records(model, rep_tokens):
    _, cache = model.run_with_cache(rep_tokens, names_filter=lambda n: n == "blocks.1.attn.hook_pattern")
    recorded = cache["blocks.1.attn.hook_pattern"][:, 1]
    got = mechlib.attention_score_terms(model, rep_tokens, (1, 1)).pattern()
    torch.testing.assert_close(got.float(), recorded, atol=1e-5, rtol=1e-4)
    assert torch.all(got.triu(1) == 0)


def test_one_term_from_its_definition(random_model, tokens3):
    """(embed at the query, head 0.1 at the key) and (head 1.0 at the query, bias at the key) of receiver 2.2."""
    w = weights64(random_model)
    _, outputs = forward64(random_model, tokens3)
    l, h = 2, 2
    scale = math.sqrt(random_model.cfg.d_head)
    q_embed = w["W_E"][tokens3] @ w["W_Q"][l, h]
    k_head = outputs[(0, 1)] @ w["W_K"][l, h]
    terms = mechlib.attention_score_terms(random_model, tokens3, (l, h)).terms
    torch.testing.assert_close(terms[("embed", "0.1")], q_embed @ k_head.transpose(-1, -2) / scale,
                               atol=1e-10, rtol=1e-10)
    q_head = outputs[(1, 0)] @ w["W_Q"][l, h]
    k_bias = (w["b_O"][0] + w["b_O"][1]) @ w["W_K"][l, h] + w["b_K"][l, h]
    expected = (q_head @ k_bias / scale)[:, :, None].expand(-1, -1, tokens3.shape[1])
    torch.testing.assert_close(terms[("1.0", "bias")], expected, atol=1e-10, rtol=1e-10)
    q_pos = w["W_pos"][:12] @ w["W_Q"][l, h]
    k_pos = w["W_pos"][:12] @ w["W_K"][l, h]
    torch.testing.assert_close(terms[("pos", "pos")][1], q_pos @ k_pos.T / scale, atol=1e-10, rtol=1e-10)


def test_total_of_some_terms_and_its_errors(model, rep_tokens):
    t = mechlib.attention_score_terms(model, rep_tokens[:2], (1, 1))
    assert t.sources[:3] == ("embed", "pos", "bias") and t.sources[3:] == ("0.0", "0.1", "0.2", "0.3")
    pair = [("embed", "0.3"), ("pos", "pos")]
    torch.testing.assert_close(t.total(pair), t.terms[pair[0]] + t.terms[pair[1]])
    with pytest.raises(ValueError, match="names: unknown term.*'1.1'"):
        t.total([("embed", "1.1")])
    assert "receiver 1.1" in repr(t) and "scale 4" in repr(t)


def test_bad_receiver_and_tokens_are_named(model, rep_tokens):
    with pytest.raises(ValueError, match="receiver=\\(2, 0\\).*layer 2 does not exist"):
        mechlib.attention_score_terms(model, rep_tokens, (2, 0))
    with pytest.raises(TypeError, match="receiver must be a \\(layer, head\\) pair"):
        mechlib.attention_score_terms(model, rep_tokens, "1.1")
    with pytest.raises(TypeError, match="tokens must hold integers"):
        mechlib.attention_score_terms(model, rep_tokens.float(), (1, 1))


def booted(**kw):
    base = dict(d_model=16, d_head=4, n_heads=2, n_layers=2, n_ctx=32, d_vocab=10, seed=0, act_fn="gelu",
                attn_only=True, normalization_type=None, positional_embedding_type="standard")
    base.update(kw)
    return mechlib.load_model(TransformerBridge.boot_native(TransformerBridgeConfig(**base)))


@pytest.mark.parametrize("kind, expected", [
    (dict(normalization_type="LN"), "cfg.normalization_type='LN' (allowed: None"),
    (dict(positional_embedding_type="rotary"), "cfg.positional_embedding_type='rotary' (allowed: 'standard'"),
    (dict(attn_only=False, d_mlp=32), "cfg.attn_only=False (allowed: True"),
])
def test_models_where_the_split_is_not_exact_are_refused_by_name(kind, expected):
    m = booted(**kind)

    def touched(*args, **kwargs):
        raise AssertionError("the model was run before it was checked")

    m.run_with_cache = m.forward = touched
    with pytest.raises(ValueError) as err:
        mechlib.attention_score_terms(m, torch.zeros(1, 4, dtype=torch.long), (1, 0))
    message = str(err.value)
    assert message.startswith("model: attention_score_terms") and expected in message


def test_margins_by_brute_force_and_they_add_up(random_model, tokens3):
    """Each term's margin, by loops: stripe-like pairs, and a query whose key is itself."""
    terms = mechlib.attention_score_terms(random_model, tokens3, (2, 1))
    queries, keys = [5, 7, 11, 3], [2, 4, 8, 3]
    got = terms.margins(torch.tensor(queries), keys)
    for name in [("embed", "0.2"), ("1.1", "pos"), ("bias", "bias")]:
        T = terms.terms[name]
        values = []
        for b in range(T.shape[0]):
            for i, k in zip(queries, keys):
                others = [T[b, i, j].item() for j in range(i + 1) if j != k]
                values.append(T[b, i, k].item() - sum(others) / len(others))
        assert got[name] == pytest.approx(sum(values) / len(values), abs=1e-12)
    assert got[("bias", "bias")] == pytest.approx(0, abs=1e-12)  # the same for every key
    total = mechlib.attention_score_terms(random_model, tokens3, (2, 1))
    whole = sum(got.values())
    T = total.total()
    direct = sum(T[b, i, k].item() - (T[b, i, : i + 1].sum().item() - T[b, i, k].item()) / i
                 for b in range(T.shape[0]) for i, k in zip(queries, keys)) / (T.shape[0] * len(queries))
    assert whole == pytest.approx(direct, abs=1e-9)


def test_margins_errors_name_the_argument(random_model, tokens3):
    terms = mechlib.attention_score_terms(random_model, tokens3, (1, 0))
    with pytest.raises(ValueError, match="one key per query"):
        terms.margins([3, 4], [1])
    with pytest.raises(ValueError, match="keys: each key must be at or before its query"):
        terms.margins([3], [5])
    with pytest.raises(ValueError, match="positions in 0..11"):
        terms.margins([12], [1])
