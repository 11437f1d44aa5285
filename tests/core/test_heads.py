"""Heads and their names: the one convention, and picking heads out of score tables."""
import pytest
import torch

import mechlib


def test_head_label_and_parse_head_are_inverse():
    for head in [(0, 0), (0, 3), (1, 2), (11, 10)]:
        assert mechlib.parse_head(mechlib.head_label(head)) == head
    assert mechlib.head_label((0, 3)) == "0.3"
    assert mechlib.head_label(torch.tensor([1, 2]).tolist()) == "1.2"


@pytest.mark.parametrize("bad", ["0", "0.", ".3", "a.b", "0.3.1", "0,3", 3, (0, 3), None])
def test_parse_head_names_the_argument(bad):
    with pytest.raises(ValueError, match=r"sender must be a head name like '0.3'"):
        mechlib.parse_head(bad, "sender")


def test_all_heads_and_layer_heads(model):
    L, H = model.cfg.n_layers, model.cfg.n_heads
    brute = [(l, h) for l in range(L) for h in range(H)]
    assert mechlib.all_heads(model) == brute
    assert mechlib.layer_heads(model, 1) == [hd for hd in brute if hd[0] == 1]
    assert mechlib.layer_heads(model, -1) == mechlib.layer_heads(model, L - 1)
    for bad in (L, -L - 1, 0.5, True):
        with pytest.raises(ValueError, match="layer must be an int"):
            mechlib.layer_heads(model, bad)


SCORES = torch.tensor([[0.2, 0.9, 0.5], [0.7, 0.1, 0.9]])


def test_ranked_heads_sorts_by_score_with_layer_major_ties():
    # brute force: sort (score, layer, head) tuples
    order = sorted(((-SCORES[l, h].item(), l, h) for l in range(2) for h in range(3)))
    assert mechlib.ranked_heads(SCORES) == [(l, h) for _, l, h in order]
    assert mechlib.ranked_heads(SCORES, layer=0) == [(0, 1), (0, 2), (0, 0)]


def test_top_head_and_heads_above():
    assert mechlib.top_head(SCORES) == (0, 1)  # ties go to the earlier layer
    assert mechlib.top_head(SCORES, layer=1) == (1, 2)
    assert mechlib.heads_above(SCORES, 0.5) == [(0, 1), (1, 2), (1, 0)]
    assert mechlib.heads_above(SCORES, 0.5, layer=0) == [(0, 1)]
    assert mechlib.heads_above(SCORES, 1.0) == []


def test_score_helpers_reject_a_table_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"scores must be a \[layer, head\] tensor"):
        mechlib.top_head(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="scores must be"):
        mechlib.heads_above([[0.1]], 0.0)


def test_chain_label_names_a_chain_sender_first(model):
    assert mechlib.chain_label([(0, 3), (1, 1)]) == "0.3 -> 1.1"
    assert mechlib.chain_label(((0, 3),)) == "0.3"
    assert mechlib.chain_label([(0, 0), (1, 2), (11, 10)], sep="->") == "0.0->1.2->11.10"
    # with sep="->" the labels are the names of path_expansion's virtual-head terms
    tokens = mechlib.repeated_tokens(model.cfg.d_vocab, batch=2, half_len=3)
    expansion = mechlib.path_expansion(model, tokens)
    virtual = [n for n, k in expansion.kinds.items() if k == "virtual"]
    pairs = mechlib.enumerate_virtual_heads(model.cfg.n_layers, model.cfg.n_heads)
    assert sorted(mechlib.chain_label(p, sep="->") for p in pairs) == sorted(virtual)
