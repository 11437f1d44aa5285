"""The unseen models of the hidden cases (mechlib/teaching/unseen.py): each has the figures the
investigation exercises rely on, checked against a float64 forward pass written out here
(attention-only, no LayerNorm), not against mechlib's own scores."""
from __future__ import annotations

import math

import pytest
import torch

import mechlib
from mechlib.teaching.unseen import PERMUTATIONS, TRAINED, UNSEEN, unseen_model, unseen_path


def _w(m):
    names = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O", "W_U", "b_U")
    return {n: getattr(m, n).detach().double() for n in names}


def forward64(m, tokens, cut=None):
    """Logits and patterns ``[layer][batch, head, q, k]`` in float64; ``cut=(kind, senders, receivers)``
    recomputes the receivers' ``kind`` input from the stream without the senders' outputs."""
    w = _w(m)
    n = tokens.shape[1]
    x = w["W_E"][tokens] + w["W_pos"][:n]
    mask = torch.ones(n, n, dtype=torch.bool).tril()
    outs, patterns = {}, []
    for layer in range(m.cfg.n_layers):
        heads = []
        for h in range(m.cfg.n_heads):
            inp = {k: x for k in "QKV"}
            if cut is not None and (layer, h) in cut[2]:
                inp[cut[0]] = x - sum(outs[s] for s in cut[1])
            q = inp["Q"] @ w["W_Q"][layer, h] + w["b_Q"][layer, h]
            k = inp["K"] @ w["W_K"][layer, h] + w["b_K"][layer, h]
            v = inp["V"] @ w["W_V"][layer, h] + w["b_V"][layer, h]
            s = (q @ k.transpose(-1, -2) / math.sqrt(m.cfg.d_head)).masked_fill(~mask, -math.inf)
            A = s.softmax(-1)
            outs[(layer, h)] = A @ v @ w["W_O"][layer, h]
            heads.append(A)
        x = x + sum(outs[(layer, h)] for h in range(m.cfg.n_heads)) + w["b_O"][layer]
        patterns.append(torch.stack(heads, 1))
    return x @ w["W_U"] + w["b_U"], patterns


def repeat_loss64(logits, tokens, start):
    logp = logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
    return -logp[:, start:].mean().item()


def _repeated(m, half=10, prefix=4, batch=32):
    return mechlib.repeated_tokens(m.cfg.d_vocab, batch, half, seed=5, prefix_len=prefix), half, prefix


def _prev_and_induction(patterns, half, prefix):
    """[layer][head] mean attention to the previous token, and from the second copy to the token after the first."""
    prev, ind = [], []
    for A in patterns:
        prev.append(A.diagonal(-1, -2, -1).mean((0, 2)))
        q = torch.arange(prefix + half, prefix + 2 * half)
        ind.append(A[:, :, q, q - half + 1].mean((0, 2)))
    return torch.stack(prev), torch.stack(ind)


def test_every_unseen_model_loads_and_is_cached():
    for name in UNSEEN:
        m = unseen_model(name)
        assert m is unseen_model(name)
        assert not any(p.requires_grad for p in m.parameters())
    with pytest.raises(ValueError, match="name must be an unseen model"):
        unseen_model("induction-2l")


def test_trained_variants_ship_small_in_float16():
    for name in TRAINED:
        state = torch.load(unseen_path(name), weights_only=True)
        assert all(v.dtype == torch.float16 for v in state.values())
        assert unseen_path(name).stat().st_size < 200_000


@pytest.mark.parametrize("name", [n for n, c in TRAINED.items() if isinstance(c, mechlib.InductionConfig)])
def test_induction_variant_has_the_circuit(name):
    m = unseen_model(name)
    c = TRAINED[name]
    assert (m.cfg.n_heads, m.cfg.d_model) == (c.n_heads, c.d_model)
    tokens, half, prefix = _repeated(m)
    logits, patterns = forward64(m, tokens)
    torch.testing.assert_close(logits, m(tokens).double(), rtol=1e-3, atol=1e-3)
    clean = repeat_loss64(logits, tokens, prefix + half)
    assert clean < 0.6  # it predicts the repeat (ln 32 = 3.47 by guessing)
    prev, ind = _prev_and_induction(patterns, half, prefix)
    # previous-token heads in layer 0 (induction-3h's share the job with other offsets), induction heads in layer 1
    assert prev[0].max() > 0.35 and ind[1].max() > 0.6 and ind[0].max() < 0.2
    # the keys carry it: layer 0 cut from layer 1's keys costs far more than from its values
    L0 = [(0, h) for h in range(m.cfg.n_heads)]
    L1 = [(1, h) for h in range(m.cfg.n_heads)]
    k_cut = repeat_loss64(forward64(m, tokens, ("K", L0, L1))[0], tokens, prefix + half)
    v_cut = repeat_loss64(forward64(m, tokens, ("V", L0, L1))[0], tokens, prefix + half)
    assert k_cut - clean > 2.0 and v_cut - clean < 1.0 and k_cut - clean > 4 * (v_cut - clean)


def test_relay_variant_needs_its_values():
    m = unseen_model("relay-s2")
    rb = mechlib.relay_batch(m, batch=64, seed=3)
    at = (torch.arange(64), rb.recall)

    def loss(cut=None):
        logits, _ = forward64(m, rb.tokens, cut)
        logp = logits.log_softmax(-1)[at[0], at[1]]
        return -logp.gather(-1, rb.tokens[at[0], at[1] + 1][:, None]).mean().item()

    clean = loss()
    assert clean < 0.3
    assert loss(("V", [(0, 0)], [(1, 0)])) - clean > 1.0
    assert loss(("K", [(0, 0)], [(1, 0)])) - clean < 0.2


def test_permuted_variant_is_the_bundled_model_renumbered():
    base, m = mechlib.load_model(), unseen_model("induction-perm")
    perm = PERMUTATIONS["induction-perm"]
    wb, wm = _w(base), _w(m)
    for layer, p in enumerate(perm):
        for h, old in enumerate(p):
            for n in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V"):
                assert torch.equal(wm[n][layer, h], wb[n][layer, old]), (n, layer, h)
    tokens, half, prefix = _repeated(m)
    lb, pb = forward64(base, tokens)
    lm, pm = forward64(m, tokens)
    torch.testing.assert_close(lm, lb, rtol=0, atol=1e-9)
    for layer, p in enumerate(perm):
        torch.testing.assert_close(pm[layer], pb[layer][:, list(p)], rtol=0, atol=1e-12)
    # the heads the chapters name have other ids: the top previous-token and induction heads move
    prev_b, ind_b = _prev_and_induction(pb, half, prefix)
    prev_m, ind_m = _prev_and_induction(pm, half, prefix)
    assert int(prev_m[0].argmax()) == perm[0].index(int(prev_b[0].argmax())) != int(prev_b[0].argmax())
    assert int(ind_m[1].argmax()) == perm[1].index(int(ind_b[1].argmax())) != int(ind_b[1].argmax())
