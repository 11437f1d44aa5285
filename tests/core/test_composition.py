import itertools

import pytest
import torch
from transformer_lens import FactoredMatrix

import mechlib
from mechlib.teaching import reference


@pytest.mark.parametrize("kind", ["Q", "K", "V"])
def test_composition_scores_match_dense_float64(random_model, kind):
    got = mechlib.composition_scores(random_model, kind)
    assert got.shape == (3, 3, 3, 3)
    torch.testing.assert_close(got.double(), reference.composition_scores64(random_model, kind), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["Q", "K", "V"])
def test_composition_scores_match_transformerlens(model, kind):
    ours = mechlib.composition_scores(model, kind)
    theirs = model.all_composition_scores(kind).scores
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_composition_scores_are_zero_unless_sender_is_earlier(random_model):
    S = mechlib.composition_scores(random_model, "K")
    for l1, l2 in itertools.product(range(3), range(3)):
        if l1 >= l2:
            assert (S[l1, :, l2, :] == 0).all()
        else:
            assert (S[l1, :, l2, :] > 0).all()


def test_composition_score_of_one_pair_matches_definition():
    g = torch.Generator().manual_seed(0)
    A, B = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    expected = (torch.linalg.norm(A @ B) / (torch.linalg.norm(A) * torch.linalg.norm(B))).item()
    assert mechlib.composition_score(A, B) == pytest.approx(expected, rel=1e-12)
    fa = FactoredMatrix(torch.randn(6, 2, generator=g), torch.randn(2, 6, generator=g))
    fb = FactoredMatrix(torch.randn(6, 3, generator=g), torch.randn(3, 4, generator=g))
    Ad, Bd = fa.AB.double(), fb.AB.double()
    expected = (torch.linalg.norm(Ad @ Bd) / (torch.linalg.norm(Ad) * torch.linalg.norm(Bd))).item()
    assert mechlib.composition_score(fa, fb) == pytest.approx(expected, rel=1e-4)


def test_pair_composition_score_agrees_with_all_pairs(model):
    S = mechlib.composition_scores(model, "Q")
    assert mechlib.pair_composition_score(model, (0, 2), (1, 1), "Q") == pytest.approx(S[0, 2, 1, 1].item(), rel=1e-4)


def test_baseline_mean_is_one_over_sqrt_d_model():
    # For Gaussian factors E||AB||^2 / (E||A||^2 E||B||^2) = 1 / d_model, so the
    # score concentrates near d_model ** -0.5 (independent of d_head).
    for d_model, d_head in [(64, 16), (128, 8)]:
        b = mechlib.composition_baseline(d_model, d_head, n_samples=400, seed=1)
        assert b.shape == (400,)
        assert b.mean().item() == pytest.approx(d_model**-0.5, rel=0.05)
        assert 0 < b.min() and b.max() < 1


def test_baseline_is_reproducible_from_seed():
    a = mechlib.composition_baseline(32, 4, n_samples=50, seed=3)
    b = mechlib.composition_baseline(32, 4, n_samples=50, seed=3)
    assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["q", "X", "", 1, None])
def test_unknown_kind_is_rejected(model, kind):
    with pytest.raises(ValueError, match="kind"):
        mechlib.composition_scores(model, kind) if kind != "q" else mechlib.composition_scores(model, "KQ")


def test_lowercase_kind_is_accepted(model):
    torch.testing.assert_close(mechlib.composition_scores(model, "k"), mechlib.composition_scores(model, "K"))


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="columns"):
        mechlib.composition_score(torch.randn(4, 5), torch.randn(4, 5))
    with pytest.raises(TypeError, match="Tensor or FactoredMatrix"):
        mechlib.composition_score([[1.0]], torch.randn(1, 1))
    with pytest.raises(ValueError, match="matrix"):
        mechlib.composition_score(torch.randn(4), torch.randn(4, 4))


@pytest.mark.parametrize("args,err", [((0, 4), ValueError), ((8, -1), ValueError), ((8, 16), ValueError), ((8.0, 2), TypeError)])
def test_bad_baseline_shapes_are_rejected(args, err):
    with pytest.raises(err, match="d_model|d_head"):
        mechlib.composition_baseline(*args)


def test_pair_score_rejects_sender_not_earlier(model):
    with pytest.raises(ValueError, match="earlier layer"):
        mechlib.pair_composition_score(model, (1, 0), (0, 0), "K")


@pytest.mark.parametrize("kind", ["Q", "K", "V"])
def test_composition_null_is_the_score_of_coordinate_shuffled_senders(random_model, kind):
    """Brute force on weights whose every sender W_O has its columns permuted as documented."""
    from mechlib.composition import shuffled_sender_permutations

    L, H = random_model.cfg.n_layers, random_model.cfg.n_heads
    perm = shuffled_sender_permutations(L, H, random_model.cfg.d_model, seed=3)

    expected = reference.composition_scores64(random_model, kind)
    for l1, h1 in itertools.product(range(L), range(H)):
        W_O_s = reference.weight64(random_model, "W_O")[l1, h1][:, perm[l1, h1]]
        ov = reference.weight64(random_model, "W_V")[l1, h1] @ W_O_s
        for l2, h2 in itertools.product(range(l1 + 1, L), range(H)):
            expected[l1, h1, l2, h2] = reference.composition_score64(ov, reference.receiver64(random_model, (l2, h2), kind))
    torch.testing.assert_close(mechlib.composition_null(random_model, kind, seed=3).double(), expected,
                               atol=1e-5, rtol=0)


def test_composition_null_is_seeded():
    m = mechlib.random_model(n_layers=2)
    assert torch.equal(mechlib.composition_null(m, "K", seed=0), mechlib.composition_null(m, "K", seed=0))
    assert not torch.equal(mechlib.composition_null(m, "K", seed=0), mechlib.composition_null(m, "K", seed=1))
