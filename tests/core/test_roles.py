"""Head roles: attention by offset and induction, against loops over the float64 reference patterns."""
import pytest
import torch

import mechlib
from mechlib.teaching import reference


def test_attention_by_offset_matches_loops(random_model):
    t = mechlib.repeated_tokens(random_model.cfg.d_vocab, 5, 6, seed=3, prefix_len=2)
    _, A = reference.forward(random_model, t, return_patterns=True)  # [layer, batch, head, q, k]
    L, B, H, S, _ = A.shape
    expected = torch.zeros(L, H, 4, dtype=torch.float64)
    for l in range(L):
        for h in range(H):
            for k in range(4):
                vals = [A[l, b, h, q, q - k].item() for b in range(B) for q in range(k, S)]
                expected[l, h, k] = sum(vals) / len(vals)
    torch.testing.assert_close(mechlib.attention_by_offset(random_model, t, 3).double(), expected,
                               atol=1e-5, rtol=1e-4)


def test_each_role_is_the_largest_measurement(random_model):
    batch = mechlib.repeated_tokens(random_model.cfg.d_vocab, 8, 6, seed=4, prefix_len=2)
    roles = mechlib.head_roles(random_model, batch, max_offset=3, threshold=0.0)
    names = ["self", "previous-token", "two-back", "3-back", "induction"]
    for hd, r in roles.items():
        values = [*r.by_offset, r.induction]
        assert r.score == max(values) and r.role == names[values.index(max(values))], r


def test_a_score_below_the_threshold_is_other(random_model):
    roles = mechlib.head_roles(random_model, mechlib.repeated_tokens(20, 4, 6, seed=1), threshold=1.0)
    assert {r.role for r in roles.values()} == {"other"}


def test_the_bundled_models_roles(model):
    """The story the book tells: three previous-token heads, one two-back head, four induction heads."""
    roles = mechlib.head_roles(model)
    assert mechlib.heads_with_role(roles, "previous-token") == [(0, 0), (0, 2), (0, 3)]
    assert mechlib.heads_with_role(roles, "two-back") == [(0, 1)]
    assert mechlib.heads_with_role(roles, "induction") == [(1, 0), (1, 1), (1, 2), (1, 3)]
    assert "0.1: two-back" in str(roles[(0, 1)])


@pytest.mark.parametrize("kwargs,err,match", [
    ({"threshold": 2}, ValueError, "threshold"),
    ({"max_offset": -1}, ValueError, "max_offset"),
    ({"max_offset": 99}, ValueError, "max_offset must be <"),
    ({"batch": torch.full((2, 5), 99)}, ValueError, "batch must lie in"),
])
def test_bad_arguments_are_named(model, kwargs, err, match):
    with pytest.raises(err, match=match):
        mechlib.head_roles(model, **kwargs)


def test_heads_with_role_rejects_an_unknown_role(model):
    with pytest.raises(ValueError, match="unknown role 'prev'"):
        mechlib.heads_with_role(mechlib.head_roles(model), "prev")
