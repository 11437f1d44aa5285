"""mechlib.top_pair: the strongest (sender, receiver) pair of a [L, H, L, H] score table."""
import pytest
import torch

import mechlib
from mechlib.teaching.reference import composition_score64, ov64, receiver64


def brute_force_ranking(model, kind):
    """Every (sender, receiver) pair with sender in an earlier layer, best float64 score first."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    heads = [(l, h) for l in range(L) for h in range(H)]
    scored = [(composition_score64(ov64(model, s), receiver64(model, r, kind)), s, r)
              for s in heads for r in heads if s[0] < r[0]]
    return sorted(scored, key=lambda t: -t[0])


@pytest.mark.parametrize("which", ["model", "random_model"])
@pytest.mark.parametrize("kind", "QKV")
def test_top_pair_is_the_best_pair_by_dense_float64_scores(request, which, kind):
    model = request.getfixturevalue(which)
    ranking = brute_force_ranking(model, kind)
    (best, s, r), (second, _, _) = ranking[0], ranking[1]
    assert best - second > 1e-5, "the float32 table could not tell the top two apart"
    assert mechlib.top_pair(mechlib.composition_scores(model, kind)) == (s, r)


def test_top_pair_on_a_small_table_with_ties():
    scores = torch.zeros(3, 2, 3, 2)
    assert mechlib.top_pair(scores) == ((0, 0), (0, 0))  # all tied: the first pair
    scores[1, 1, 2, 0] = 0.5
    scores[0, 1, 2, 1] = 0.5  # same score, earlier sender: wins the tie
    assert mechlib.top_pair(scores) == ((0, 1), (2, 1))
    scores[1, 0, 2, 1] = 0.7
    pair = mechlib.top_pair(scores)
    assert pair == ((1, 0), (2, 1))
    assert all(isinstance(x, int) for head in pair for x in head)


def test_top_pair_rejects_a_table_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"scores must be a \[layer, head, layer, head\] tensor"):
        mechlib.top_pair(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="scores must be"):
        mechlib.top_pair([[[[0.1]]]])
