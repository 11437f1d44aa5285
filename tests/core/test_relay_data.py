"""The relay task's data: mechlib.relay_batch against a brute-force reading of each sequence."""
import math

import pytest
import torch

import mechlib
from mechlib.relay import relay_sequences, relay_training_batch


def brute_force_reading(row):
    """Read one sequence as a person would: where the markers are, where R is, what must follow R."""
    tokens = row.tolist()
    d_vocab = 32
    marker, recall = d_vocab - 2, d_vocab - 1
    markers = [i for i, t in enumerate(tokens) if t == marker]
    recalls = [i for i, t in enumerate(tokens) if t == recall]
    return markers, recalls


@pytest.mark.parametrize("max_markers", [1, 3])
def test_relay_batch_layout_matches_a_brute_force_reading(model, max_markers):
    batch = mechlib.relay_batch(model, max_markers=max_markers)
    assert batch.tokens.shape == (64, model.cfg.n_ctx) and batch.tokens.dtype == torch.long
    assert batch.mask.shape == (64, model.cfg.n_ctx - 1) and batch.mask.dtype == torch.bool
    counts = set()
    for b in range(64):
        markers, recalls = brute_force_reading(batch.tokens[b])
        assert len(recalls) == 1 and 1 <= len(markers) <= max_markers
        counts.add(len(markers))
        q = recalls[0]
        assert all(p < q for p in markers) and markers[0] >= 1
        # a content token stands before every marker
        assert all(batch.tokens[b, p - 1] < 30 for p in markers)
        # the answer: the token before the last marker
        assert batch.tokens[b, q + 1] == batch.tokens[b, markers[-1] - 1]
        assert int(batch.last_marker[b]) == markers[-1] and int(batch.recall[b]) == q
        assert int(batch.answer_source[b]) == markers[-1] - 1
        # exactly one scored prediction: the one made at R
        assert batch.mask[b].nonzero().flatten().tolist() == [q]
    assert counts == set(range(1, max_markers + 1))


def test_relay_loss_is_the_mean_cross_entropy_at_the_recall_token(model):
    batch = mechlib.relay_batch(model, batch=8, seed=3)
    logits = torch.randn(8, model.cfg.n_ctx, model.cfg.d_vocab, generator=torch.Generator().manual_seed(0))
    expected = 0.0
    for b in range(8):
        q = int(batch.recall[b])
        row = logits[b, q].double()
        expected += -(row[batch.tokens[b, q + 1]] - torch.logsumexp(row, 0)).item() / 8
    assert math.isclose(batch.loss(logits), expected, rel_tol=1e-9)
    # uniform logits: ln(d_vocab)
    assert math.isclose(batch.loss(torch.zeros(8, model.cfg.n_ctx, model.cfg.d_vocab)), math.log(model.cfg.d_vocab),
                        rel_tol=1e-9)


def test_relay_batch_is_seeded_and_sliceable(model):
    a, b = mechlib.relay_batch(model, seed=1), mechlib.relay_batch(model, seed=1)
    assert torch.equal(a.tokens, b.tokens)
    assert not torch.equal(a.tokens, mechlib.relay_batch(model, seed=2).tokens)
    one = a[:1]
    assert one.tokens.shape == (1, model.cfg.n_ctx) and one.mask.shape == (1, model.cfg.n_ctx - 1)
    assert torch.equal(one.mask[0], a.mask[0])
    with pytest.raises(IndexError, match="slice"):
        a[0]


def test_training_batch_marks_the_recall_prediction_only():
    g = torch.Generator().manual_seed(0)
    tokens, mask = relay_training_batch(16, 32, 32, g, 3)
    for b in range(16):
        (q,) = mask[b].nonzero().flatten().tolist()
        assert tokens[b, q] == 31
        markers = (tokens[b, :q] == 30).nonzero().flatten().tolist()
        assert tokens[b, q + 1] == tokens[b, markers[-1] - 1]


def test_relay_batch_errors_name_the_argument(model):
    with pytest.raises(TypeError, match="model must be a TransformerLens model"):
        mechlib.relay_batch("relay-2l")
    with pytest.raises(ValueError, match="batch must be > 0"):
        mechlib.relay_batch(model, batch=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        mechlib.relay_batch(model, seed=1.5)
    with pytest.raises(ValueError, match="n_ctx must be at least"):
        relay_sequences(4, 5, 32, torch.Generator(), max_markers=3)
    with pytest.raises(ValueError, match="d_vocab must be at least 3"):
        relay_sequences(4, 32, 2, torch.Generator())
    batch = mechlib.relay_batch(model, batch=4)
    with pytest.raises(ValueError, match="logits must have shape"):
        batch.loss(torch.zeros(4, 5, model.cfg.d_vocab))
