import pytest
import torch

import mechlib
from mechlib.teaching import reference
from mechlib.teaching.reference import forward


def test_repeated_tokens_shape_and_repeat():
    t = mechlib.repeated_tokens(50, 3, 6, seed=2, prefix_len=4)
    assert t.shape == (3, 16) and t.dtype == torch.long
    assert torch.equal(t[:, 4:10], t[:, 10:16])
    assert t.min() >= 0 and t.max() < 50
    assert torch.equal(t, mechlib.repeated_tokens(50, 3, 6, seed=2, prefix_len=4))
    assert not torch.equal(t, mechlib.repeated_tokens(50, 3, 6, seed=3, prefix_len=4))


@pytest.mark.parametrize("args,err", [((0, 1, 2), ValueError), ((10, 0, 2), ValueError), ((10, 1, -1), ValueError), ((10, 1, 2.5), TypeError)])
def test_repeated_tokens_rejects_bad_sizes(args, err):
    with pytest.raises(err, match="d_vocab|batch|half_len"):
        mechlib.repeated_tokens(*args)


def test_repeated_tokens_rejects_negative_prefix():
    with pytest.raises(ValueError, match="prefix_len"):
        mechlib.repeated_tokens(10, 1, 3, prefix_len=-1)


def test_patterns_match_reference_forward(model, rep_tokens):
    _, ref = forward(model, rep_tokens, return_patterns=True)
    torch.testing.assert_close(mechlib.attention_patterns(model, rep_tokens).double(), ref, atol=1e-5, rtol=1e-4)


def test_prev_token_scores_match_loops(model, rep_tokens):
    A = mechlib.attention_patterns(model, rep_tokens)
    expected = reference.prev_token_scores_brute_force(A)
    torch.testing.assert_close(mechlib.prev_token_scores(model, rep_tokens).double(), expected, atol=1e-5, rtol=1e-4)


def test_induction_scores_match_loops(model):
    tokens = mechlib.repeated_tokens(32, 6, 7, seed=5, prefix_len=3)
    A = mechlib.attention_patterns(model, tokens)
    expected = reference.induction_score_brute_force(A, tokens)
    torch.testing.assert_close(mechlib.induction_scores(model, tokens).double(), expected, atol=1e-5, rtol=1e-4)


def test_duplicate_token_scores_match_loops(model):
    tokens = mechlib.repeated_tokens(32, 4, 6, seed=8, prefix_len=2)
    A = mechlib.attention_patterns(model, tokens)
    expected = reference.induction_score_brute_force(A, tokens, offset=0)
    torch.testing.assert_close(mechlib.duplicate_token_scores(model, tokens).double(), expected, atol=1e-5, rtol=1e-4)


def test_induction_score_needs_a_repeat(model):
    with pytest.raises(ValueError, match="repeated"):
        mechlib.induction_scores(model, torch.arange(10))


def test_repeat_loss_matches_cross_entropy(model, rep_tokens):
    logits = model(rep_tokens).detach()
    logp = logits.double().log_softmax(-1)
    vals = [-logp[b, i, rep_tokens[b, i + 1]].item() for b in range(rep_tokens.shape[0]) for i in range(5 + 7, 5 + 14 - 1)]
    assert mechlib.repeat_loss(logits, rep_tokens, 7, 5) == pytest.approx(sum(vals) / len(vals), rel=1e-5)
    with pytest.raises(ValueError, match="prefix_len"):
        mechlib.repeat_loss(logits, rep_tokens, 6, 5)


@pytest.mark.parametrize(
    "tokens,err,match",
    [
        (torch.tensor([[0, 1, 32]]), ValueError, r"\[0, 32\)"),
        (torch.tensor([[-1, 1]]), ValueError, r"\[0, 32\)"),
        (torch.zeros(1, 33, dtype=torch.long), ValueError, "n_ctx"),
        (torch.zeros(2, 2, 2, dtype=torch.long), ValueError, "1-D"),
        (torch.zeros(1, 4), TypeError, "integers"),
        ([1, 2, 3], TypeError, "torch.Tensor"),
    ],
)
def test_bad_tokens_are_rejected(model, tokens, err, match):
    for fn in (mechlib.prev_token_scores, mechlib.induction_scores, mechlib.path_expansion):
        with pytest.raises(err, match=match):
            fn(model, tokens)
    with pytest.raises(err, match=match):
        mechlib.run_with_ablation(model, tokens, [(0, 0)])


def test_one_dimensional_tokens_are_a_batch_of_one(model):
    t = mechlib.repeated_tokens(32, 1, 5)
    torch.testing.assert_close(mechlib.prev_token_scores(model, t[0]), mechlib.prev_token_scores(model, t))


def test_repeated_batch_is_repeated_tokens_with_its_layout(model):
    b = mechlib.repeated_batch(model, batch=8, half_len=6, prefix_len=3, seed=4)
    assert torch.equal(b.tokens, mechlib.repeated_tokens(model.cfg.d_vocab, 8, 6, seed=4, prefix_len=3))
    assert (b.half_len, b.prefix_len, b.boundaries) == (6, 3, [3, 9])
    assert torch.equal(b.mask, mechlib.repeat_mask(8, 6, 3))


def test_repeated_batch_loss_is_the_mean_loss_on_the_predictable_targets(model):
    b = mechlib.repeated_batch(model, batch=5, half_len=7, prefix_len=2, seed=1)
    logits = forward(model, b.tokens)
    # brute force: -log softmax of the next token, over targets 2 + 7 + 1 .. end
    logp = logits.log_softmax(-1)
    losses = [-logp[i, p, b.tokens[i, p + 1]].item() for i in range(5) for p in range(2 + 7, 2 + 14 - 1)]
    assert b.loss(model(b.tokens)) == pytest.approx(sum(losses) / len(losses), abs=1e-5)


def test_repeated_batch_slices_stay_batches_and_must_fit_the_context(model):
    b = mechlib.repeated_batch(model)
    first = b[:1]
    assert first.tokens.shape == (1, b.tokens.shape[1]) and first.half_len == b.half_len
    with pytest.raises(IndexError, match="slice"):
        b[0]
    with pytest.raises(ValueError, match="context"):
        mechlib.repeated_batch(model, half_len=model.cfg.n_ctx)
