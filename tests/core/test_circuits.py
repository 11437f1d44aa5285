import pytest
import torch

import mechlib
from mechlib.teaching import reference


def dense(M):
    """A FactoredMatrix (or a tensor) as a dense float64 matrix."""
    return M.A.double() @ M.B.double() if hasattr(M, "AB") else M.double()


def test_qk_and_ov_circuits_match_dense_float64(model):
    for head in [(0, 0), (1, 3)]:
        torch.testing.assert_close(dense(mechlib.qk_circuit(model, head)), reference.qk64(model, head),
                                   rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(dense(mechlib.ov_circuit(model, head)), reference.ov64(model, head),
                                   rtol=1e-5, atol=1e-6)


def test_full_circuits_go_through_embedding_and_unembedding(model):
    WE, WU = model.W_E.detach().double(), model.W_U.detach().double()
    WQ, WK, WV, WO = (getattr(model, n)[1, 2].detach().double() for n in ["W_Q", "W_K", "W_V", "W_O"])
    qk = mechlib.full_qk_circuit(model, (1, 2))
    ov = mechlib.full_ov_circuit(model, (1, 2))
    assert qk.shape == ov.shape == (model.cfg.d_vocab, model.cfg.d_vocab)
    torch.testing.assert_close(dense(qk), WE @ WQ @ WK.T @ WE.T, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(dense(ov), WE @ WV @ WO @ WU, rtol=1e-4, atol=1e-5)


def test_virtual_ov_is_sender_then_receiver(model):
    s, r = (0, 3), (1, 1)
    expected = reference.ov64(model, s) @ reference.ov64(model, r)
    torch.testing.assert_close(dense(mechlib.virtual_ov(model, s, r)), expected, rtol=1e-4, atol=1e-6)


def test_virtual_ov_rank_is_at_most_d_head(model):
    M = dense(mechlib.virtual_ov(model, (0, 0), (1, 0)))
    sv = torch.linalg.svdvals(M)
    d_head = model.cfg.d_head
    assert sv[d_head:].max() < 1e-10 * sv[0]
    assert sv[d_head - 1] > 1e-6 * sv[0]


@pytest.mark.parametrize("fn", [mechlib.qk_circuit, mechlib.ov_circuit, mechlib.full_qk_circuit, mechlib.full_ov_circuit])
@pytest.mark.parametrize("bad,err", [((2, 0), ValueError), ((0, 4), ValueError), ((0,), TypeError), ("0.1", TypeError), ((0.0, 1), TypeError)])
def test_bad_head_is_rejected_with_clear_message(model, fn, bad, err):
    with pytest.raises(err, match="head"):
        fn(model, bad)


def test_virtual_ov_rejects_sender_not_earlier(model):
    with pytest.raises(ValueError, match="earlier layer"):
        mechlib.virtual_ov(model, (1, 0), (1, 1))
    with pytest.raises(ValueError, match="earlier layer"):
        mechlib.virtual_ov(model, (1, 0), (0, 1))


def test_receiver_circuit_is_the_side_the_sender_enters(model):
    WQ, WK, WV, WO = (getattr(model, n)[1, 2].detach().double() for n in ["W_Q", "W_K", "W_V", "W_O"])
    expected = {"Q": WQ @ WK.T, "K": WK @ WQ.T, "V": WV @ WO}
    for kind, M in expected.items():
        torch.testing.assert_close(dense(mechlib.receiver_circuit(model, (1, 2), kind)), M, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="kind"):
        mechlib.receiver_circuit(model, (1, 2), "O")
