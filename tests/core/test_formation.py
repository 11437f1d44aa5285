import pytest
import torch
import torch.nn.functional as F

import mechlib
from mechlib.teaching import reference as ref

STEPS = [0, 460, 4000]


@pytest.fixture(scope="module")
def batch(model):
    return mechlib.repeated_batch(model, batch=16)


@pytest.fixture(scope="module")
def dynamics(batch):
    return mechlib.training_dynamics(batch, steps=STEPS, senders=[(0, 0), (0, 3)], receivers=[(1, 1), (1, 2)])


@pytest.fixture(scope="module")
def reference_runs(batch):
    """Float64 logits and patterns of each step's model, plain and with the senders cut from the keys."""
    runs = {}
    for step in STEPS:
        m = mechlib.load_model(step=step)
        logits, A = ref.forward(m, batch.tokens, return_patterns=True)
        cut = ref.forward(m, batch.tokens, remove=([(0, 0), (0, 3)], [(1, 1), (1, 2)], "K"))
        runs[step] = (m, logits, A, cut)
    return runs


def _nll(logits, tokens):
    return -F.log_softmax(logits[:, :-1], -1).gather(-1, tokens[:, 1:, None].to(logits.device)).squeeze(-1)


def test_losses_split_the_targets_into_the_predictable_and_the_rest(dynamics, reference_runs, batch):
    start = batch.prefix_len + batch.half_len
    for i, step in enumerate(STEPS):
        nll = _nll(reference_runs[step][1], batch.tokens)
        assert dynamics.loss_repeat[i].item() == pytest.approx(nll[:, start:].mean().item(), abs=1e-4)
        assert dynamics.loss_rest[i].item() == pytest.approx(nll[:, :start].mean().item(), abs=1e-4)


def test_k_cut_loss_matches_the_float64_path_ablation(dynamics, reference_runs, batch):
    start = batch.prefix_len + batch.half_len
    for i, step in enumerate(STEPS):
        nll = _nll(reference_runs[step][3], batch.tokens)
        assert dynamics.k_cut_loss[i].item() == pytest.approx(nll[:, start:].mean().item(), abs=1e-4)


def test_scores_match_brute_force_on_the_patterns(dynamics, reference_runs, batch):
    for i, step in enumerate(STEPS):
        A = reference_runs[step][2]
        torch.testing.assert_close(dynamics.by_offset[i, :, :, 1].double(), ref.prev_token_scores_brute_force(A),
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(dynamics.induction[i].double(),
                                   ref.induction_score_brute_force(A, batch.tokens), atol=1e-5, rtol=0)
        two_back = A.diagonal(offset=-2, dim1=-2, dim2=-1).mean(dim=(1, -1))
        torch.testing.assert_close(dynamics.by_offset[i, :, :, 2].double(), two_back, atol=1e-5, rtol=0)
        torch.testing.assert_close(dynamics.example_patterns[i].double(), A[:, 0], atol=1e-5, rtol=0)
        torch.testing.assert_close(dynamics.example_loss[i].double(), _nll(reference_runs[step][1], batch.tokens)[0],
                                   atol=1e-4, rtol=0)


def test_composition_scores_match_dense_float64(dynamics, reference_runs):
    for i, step in enumerate(STEPS):
        m = reference_runs[step][0]
        for kind in "QKV":
            torch.testing.assert_close(dynamics.composition[kind][i].double(), ref.composition_scores64(m, kind),
                                       atol=1e-4, rtol=0)
    pairs = [((0, 0), (1, 1)), ((0, 0), (1, 2)), ((0, 3), (1, 1)), ((0, 3), (1, 2))]
    mean_k = sum(dynamics.composition["K"][:, s[0], s[1], r[0], r[1]] for s, r in pairs) / 4
    torch.testing.assert_close(dynamics.mean_composition("K"), mean_k)
    assert dynamics.pair_composition("Q", "0.3", (1, 2)).tolist() == dynamics.composition["Q"][:, 0, 3, 1, 2].tolist()


def test_default_heads_are_the_final_models_roles(model, batch):
    d = mechlib.training_dynamics(batch[:4], steps=[4000])
    roles = mechlib.head_roles(model, batch[:4])
    assert d.senders == mechlib.heads_with_role(roles, "previous-token", layer=0)
    assert d.receivers == mechlib.heads_with_role(roles, "induction", layer=1)
    assert d.steps == [4000] and d.loss_repeat.shape == (1,)


def test_bad_arguments_are_rejected(batch):
    with pytest.raises(ValueError, match="steps must be a non-empty list of checkpoint steps"):
        mechlib.training_dynamics(batch, steps=[510])
    with pytest.raises(TypeError, match="batch must be a mechlib.RepeatedBatch"):
        mechlib.training_dynamics(batch.tokens, steps=[0])
    with pytest.raises(ValueError, match="senders"):
        mechlib.training_dynamics(batch, steps=[0], senders=[(0, 9)], receivers=[(1, 1)])


@pytest.mark.parametrize("values", [
    [0.1, 0.1, 0.2, 0.5, 0.9, 1.0],          # rising
    [3.5, 3.4, 2.0, 1.0, 0.2, 0.1],          # falling (a loss)
    [0.0, 0.6, 0.2, 0.7, 0.8, 1.0],          # crosses, falls back, crosses for good
    [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],          # only the last value
    [0.0, 0.5, 0.5, 0.5, 0.5, 1.0],          # exactly half-way counts
    [1.0, -1.0, 0.0, 0.3, 0.2, 0.0],         # the end is below the start
])
def test_halfway_step_matches_brute_force(values):
    steps = [0, 20, 50, 100, 400, 1000]
    assert mechlib.halfway_step(steps, torch.tensor(values)) == ref.halfway_step_brute_force(steps, values)


def test_halfway_step_rejects_flat_or_unordered_input():
    with pytest.raises(ValueError, match="flat"):
        mechlib.halfway_step([0, 1, 2], [1.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="increasing"):
        mechlib.halfway_step([0, 2, 1], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="same length"):
        mechlib.halfway_step([0, 1], [0.0, 1.0, 2.0])
