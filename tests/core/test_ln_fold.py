"""folded_composition_scores (mechlib.ln_fold) against dense float64 matrices built from the saved tensors.

Tiny random BERT (post-LN) and GPT-2 (pre-LN) folders written by ``transformers``, with
LayerNorm gains moved away from 1; the reference reads every weight from ``model.safetensors``
and multiplies the dense matrices out: sender OV, the norms' P diag(w) on the way, receiver.
"""
import pytest
import torch
from safetensors import safe_open

import mechlib

transformers = pytest.importorskip("transformers")
import transformer_lens.model_bridge.sources.transformers  # noqa: E402,F401
from transformer_lens.model_bridge import TransformerBridge  # noqa: E402

L, H, D, DH, V, CTX = 3, 4, 32, 8, 50, 24


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_fold")
    torch.manual_seed(1)
    bert = transformers.BertModel(transformers.BertConfig(
        num_hidden_layers=L, num_attention_heads=H, hidden_size=D, intermediate_size=2 * D,
        max_position_embeddings=CTX, vocab_size=V))
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=L, n_head=H, n_embd=D, n_positions=CTX, vocab_size=V))
    with torch.no_grad():
        for model in (bert, gpt2):
            for name, p in model.named_parameters():
                if "LayerNorm" in name or ".ln_" in name:
                    p.add_(0.5 * torch.randn_like(p))
    bert.save_pretrained(root / "bert")
    gpt2.save_pretrained(root / "gpt2")
    return root


def stored(folder, prefix=""):
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return {k.removeprefix(prefix): f.get_tensor(k).double() for k in f.keys()}


def bridge(folder):
    return mechlib.load_model(TransformerBridge.boot_transformers(str(folder), device="cpu", dtype=torch.float64))


def norm_map(w):
    """P diag(w) for row vectors, written out entry by entry: (delta_ij - 1/D) w_j."""
    return torch.tensor([[((i == j) - 1 / D) * w[j].item() for j in range(D)] for i in range(D)], dtype=torch.float64)


def score(A, B):
    return (torch.linalg.matrix_norm(A @ B) / (torch.linalg.matrix_norm(A) * torch.linalg.matrix_norm(B))).item()


def head(W, h):
    return W[:, h * DH:(h + 1) * DH]


def test_post_ln_fold_matches_dense_matrices_on_bert(folders):
    W = stored(folders / "bert")
    model = bridge(folders / "bert")
    lay = lambda l, name: W[f"encoder.layer.{l}.{name}"]
    for kind in "QKV":
        got = mechlib.folded_composition_scores(model, kind, "post")
        for (l1, h1), (l2, h2) in [((0, 1), (1, 2)), ((0, 3), (2, 0)), ((1, 0), (2, 3))]:
            ov = head(lay(l1, "attention.self.value.weight").T, h1) @ head(lay(l1, "attention.output.dense.weight"), h1).T
            M = torch.eye(D, dtype=torch.float64)
            for l in range(l1, l2):
                M = M @ norm_map(lay(l, "attention.output.LayerNorm.weight")) @ norm_map(lay(l, "output.LayerNorm.weight"))
            q = head(lay(l2, "attention.self.query.weight").T, h2)
            k = head(lay(l2, "attention.self.key.weight").T, h2)
            v = head(lay(l2, "attention.self.value.weight").T, h2)
            o = head(lay(l2, "attention.output.dense.weight"), h2).T
            receiver = {"Q": q @ k.T, "K": k @ q.T, "V": v @ o}[kind]
            assert got[l1, h1, l2, h2].item() == pytest.approx(score(ov @ M, receiver), abs=1e-10)
        assert (got[2] == 0).all() and (got[1, :, 0] == 0).all()  # no receiver before its sender


def test_pre_ln_fold_uses_the_receivers_ln1_on_gpt2(folders):
    W = stored(folders / "gpt2", "transformer.")
    model = bridge(folders / "gpt2")
    got = mechlib.folded_composition_scores(model, "K", "pre")
    (l1, h1), (l2, h2) = (0, 2), (2, 1)
    c_attn1, c_attn2 = W[f"h.{l1}.attn.c_attn.weight"], W[f"h.{l2}.attn.c_attn.weight"]
    ov = head(c_attn1[:, 2 * D:], h1) @ W[f"h.{l1}.attn.c_proj.weight"][h1 * DH:(h1 + 1) * DH]
    q, k = head(c_attn2[:, :D], h2), head(c_attn2[:, D:2 * D], h2)
    M = norm_map(W[f"h.{l2}.ln_1.weight"])
    assert got[l1, h1, l2, h2].item() == pytest.approx(score(ov @ M, k @ q.T), abs=1e-10)
    # the fold changes the score: the gains are not 1
    raw = mechlib.composition_scores(model, "K")[l1, h1, l2, h2].item()
    assert abs(raw - got[l1, h1, l2, h2].item()) > 1e-4


def test_folding_refuses_what_it_cannot_fold(folders):
    with pytest.raises(ValueError, match="normalization_type"):
        mechlib.folded_composition_scores(mechlib.load_model(), "K", "post")
    with pytest.raises(ValueError, match="norm_position"):
        mechlib.folded_composition_scores(bridge(folders / "bert"), "K", "middle")
