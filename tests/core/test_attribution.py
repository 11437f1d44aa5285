import pytest
import torch

import mechlib
from mechlib.attribution import composition_from_cache, correct_token_attribution
from mechlib.teaching.reference import forward, weights64


def test_correct_token_attribution_matches_loop(model, rep_tokens):
    e = mechlib.path_expansion(model, rep_tokens)
    mask = mechlib.repeat_mask(64, 7, prefix_len=5)
    got = correct_token_attribution(e, mask)
    B, S = rep_tokens.shape
    for name in ["direct", "1.2", "0.3->1.1"]:
        T = e.terms[name]
        vals = [T[b, i, rep_tokens[b, i + 1]] - T[b, i].mean()
                for b in range(B) for i in range(S - 1) if mask[b, i]]
        assert got[name] == pytest.approx(torch.stack(vals).mean().item(), abs=1e-9)


def test_correct_token_attribution_sums_to_model_logit(model, rep_tokens):
    logits = forward(model, rep_tokens)
    mask = mechlib.repeat_mask(64, 7, prefix_len=5)
    t = logits[:, :-1]
    want = (t.gather(-1, rep_tokens[:, 1:, None]).squeeze(-1) - t.mean(-1))[mask].mean().item()
    got = sum(correct_token_attribution(mechlib.path_expansion(model, rep_tokens), mask).values())
    assert got == pytest.approx(want, abs=1e-4)


def test_correct_token_attribution_rejects_bad_mask(model, rep_tokens):
    e = mechlib.path_expansion(model, rep_tokens)
    with pytest.raises(ValueError, match="shape"):
        correct_token_attribution(e, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        correct_token_attribution(e, torch.ones(64, 18))


def test_composition_from_cache_matches_dense_float64(model, rep_tokens):
    _, cache = model.run_with_cache(rep_tokens)
    w = weights64(model)
    got = composition_from_cache(model, cache, "K")
    assert got.shape == (2, 4, 2, 4)
    assert (got[1] == 0).all() and (got[0, :, 0] == 0).all()
    x = cache["blocks.1.hook_resid_pre"].double()
    for s in range(4):
        o = cache["blocks.0.attn.hook_z"][:, :, s].double() @ w["W_O"][0, s]
        for r in range(4):
            want = (o @ w["W_K"][1, r]).norm() / (x @ w["W_K"][1, r]).norm()
            assert got[0, s, 1, r].item() == pytest.approx(want.item(), rel=1e-4)


def test_composition_from_cache_rejects_bad_kind(model, rep_tokens):
    _, cache = model.run_with_cache(rep_tokens)
    with pytest.raises(ValueError, match="kind"):
        composition_from_cache(model, cache, "O")
