"""The live head toggle backed by a kernel (mechlib.views.live.kernel): a model the page cannot
run -- here a small random GPT-2, with MLPs and LayerNorm -- gets the same view, whose runs
the kernel answers. The view itself, driven through the same protocol, is checked in
Chromium by tests/book/test_live_model.py."""
import numpy as np
import pytest
import torch

import mechlib
from mechlib.views import live
from mechlib.views.live import kernel

transformers = pytest.importorskip("transformers")
import transformer_lens.model_bridge.sources.transformers  # noqa: E402,F401
from transformer_lens.model_bridge import TransformerBridge  # noqa: E402


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=2, n_head=3, n_embd=24, n_positions=32, vocab_size=40)).save_pretrained(folder)
    return mechlib.load_model(TransformerBridge.boot_transformers(str(folder), device="cpu"))


def test_a_model_the_page_cannot_run_gets_the_kernel_view(gpt2):
    w = live.head_toggle(gpt2, prefix="k")
    assert isinstance(w, kernel.KernelWidget)
    assert w.spec["widget"] == "headToggle" and w.spec["id"] == "k-root"
    info = w.spec["config"]["info"]
    assert info["config"]["n_layers"] == 2 and info["heads"] == [f"{l}.{h}" for l in range(2) for h in range(3)]
    assert "export default" in w._esm and "mechlibLive.widgets" in w._esm


def test_the_page_backend_refuses_it_and_names_why(gpt2):
    with pytest.raises(ValueError, match="model: the page cannot run this model, because it has MLP layers"):
        live.head_toggle(gpt2, backend="page")
    with pytest.raises(ValueError, match="backend must be 'auto', 'page'"):
        live.head_toggle(gpt2, backend="colab")


def test_the_bundled_model_can_ask_the_kernel_too(model):
    assert isinstance(live.head_toggle(model, backend="kernel"), kernel.KernelWidget)
    assert isinstance(live.head_toggle(model, backend="auto").data, str)  # the page runs it


def _reply(model, tokens, heads_off):
    reply, buffers = kernel.kernel_run(model, {"type": "run", "id": 7, "tokens": tokens, "options": {"heads_off": heads_off}})
    n, L, H = len(tokens), model.cfg.n_layers, model.cfg.n_heads
    assert reply == {"type": "result", "id": 7, "n": n, "V": model.cfg.d_vocab, "n_layers": L, "n_heads": H}
    return kernel.floats_of(buffers[0], (n, -1)), kernel.floats_of(buffers[1], (L, H, n, n))


@pytest.mark.parametrize("heads_off", [[], ["0.1"], ["0.0", "1.2"]])
def test_the_kernel_answers_as_run_with_ablation(gpt2, heads_off):
    tokens = [3, 17, 5, 9, 3, 17, 5, 9]
    logits, patterns = _reply(gpt2, tokens, heads_off)
    off = [mechlib.parse_head(h) for h in heads_off]
    t = torch.tensor([tokens])
    ref = mechlib.run_with_ablation(gpt2, t, off)[0].detach().numpy()
    np.testing.assert_allclose(logits, ref, atol=1e-4, rtol=0)
    store = {}
    hooks = mechlib.ablation_hooks(gpt2, off) + [
        (f"blocks.{l}.attn.hook_pattern", lambda a, hook: store.__setitem__(hook.layer(), a[0].detach())) for l in range(2)]
    with torch.no_grad():
        gpt2.run_with_hooks(t, fwd_hooks=hooks)
    np.testing.assert_allclose(patterns, torch.stack([store[0], store[1]]).numpy(), atol=1e-5, rtol=0)


def test_a_bad_request_is_answered_with_an_error_naming_it(gpt2, monkeypatch):
    w = live.head_toggle(gpt2)
    sent = []
    monkeypatch.setattr(w, "send", lambda content, buffers=None: sent.append((content, buffers)))
    w._answer(w, {"type": "run", "id": 1, "tokens": [1, 2], "options": {"heads_off": ["2.0"]}}, [])
    w._answer(w, {"type": "run", "id": 2, "tokens": [1, 99], "options": {"heads_off": []}}, [])
    w._answer(w, {"type": "run", "id": 3, "tokens": [1, 2], "options": {"heads_off": ["1.1"]}}, [])
    assert sent[0][0]["type"] == "error" and sent[0][0]["id"] == 1 and "heads_off[0]" in sent[0][0]["message"]
    assert sent[1][0]["type"] == "error" and "99" in sent[1][0]["message"]
    assert sent[2][0]["type"] == "result" and len(sent[2][1]) == 2


def _run(model, tokens, options):
    reply, buffers = kernel.kernel_run(model, {"type": "run", "id": 1, "tokens": tokens, "options": options})
    n, L, H = len(tokens), model.cfg.n_layers, model.cfg.n_heads
    return kernel.floats_of(buffers[0], (n, -1)), kernel.floats_of(buffers[1], (L, H, n, n))


@pytest.mark.parametrize("kind", ["Q", "K", "V"])
def test_the_kernel_cuts_paths_as_the_float64_reference(model, kind):
    """Senders 0.1 and 0.3 cut from one input of 1.1 and 1.2: the float64 forward pass of
    mechlib.teaching.reference, with the senders' summed output subtracted there."""
    from mechlib.teaching.reference import forward

    tokens = [3, 17, 5, 9, 22, 3, 17, 5, 9, 22]
    paths = [[s, r, kind] for s in ("0.1", "0.3") for r in ("1.1", "1.2")]
    logits, patterns = _run(model, tokens, {"paths_off": paths})
    ref, ref_patterns = forward(model, torch.tensor([tokens]), remove=([(0, 1), (0, 3)], [(1, 1), (1, 2)], kind),
                                return_patterns=True)
    np.testing.assert_allclose(logits, ref[0].cpu().numpy(), atol=2e-4, rtol=0)
    np.testing.assert_allclose(patterns, ref_patterns[:, 0].cpu().numpy(), atol=1e-5, rtol=0)


def test_the_kernel_sums_the_kept_terms_of_the_expansion(model):
    """All terms kept: the clean logits (float64 reference); the direct path alone: E U + b_U."""
    from mechlib.teaching.reference import forward, weights64

    tokens = [4, 8, 15, 16, 23, 4, 8, 15]
    names = list(mechlib.path_expansion(model, torch.tensor([tokens])).terms)
    logits, _ = _run(model, tokens, {"terms": names})
    np.testing.assert_allclose(logits, forward(model, torch.tensor([tokens]))[0].cpu().numpy(), atol=2e-4, rtol=0)
    w = weights64(model)
    direct = (w["W_E"][tokens] + w["W_pos"][: len(tokens)]) @ w["W_U"]
    logits, _ = _run(model, tokens, {"terms": ["direct"]})
    np.testing.assert_allclose(logits, direct.cpu().numpy(), atol=2e-4, rtol=0)


def test_every_view_that_runs_a_model_asks_the_kernel_for_one_the_page_cannot_run(gpt2, model):
    w = live.path_ablation(gpt2, senders=["0.1"], receivers=["1.2"], kinds="K", prefix="pa")
    assert isinstance(w, kernel.KernelWidget) and w.spec["widget"] == "pathAblation"
    assert w.spec["config"]["cut"] == {"senders": ["0.1"], "receivers": ["1.2"], "kinds": ["K"]}
    assert w.spec["config"]["predict"] is False  # predictions live in the page only
    w = live.term_picker(model, backend="kernel", prefix="tp")
    assert isinstance(w, kernel.KernelWidget) and w.spec["widget"] == "termPicker"
    assert "0.3->1.1" in w.spec["config"]["expansion"]["names"]
    # every kernel view's script is in the module, once, before kernel.js
    for name in ("pathAblation", "termPicker", "headToggle"):
        assert f"api.widgets.{name} = function" in w._esm
    # a model the expansion does not cover is refused by name, before any widget is made
    with pytest.raises(ValueError, match="MLP|LayerNorm"):
        live.term_picker(gpt2)


def test_the_kernel_cuts_paths_in_a_model_with_layernorm_with_frozen_norms(gpt2):
    tokens = [3, 17, 5, 9, 3, 17, 5, 9]
    logits, _ = _run(gpt2, tokens, {"paths_off": [["0.1", "1.2", "K"], ["0.0", "1.2", "K"]]})
    ref = mechlib.path_ablation(gpt2, torch.tensor([tokens]), [(0, 1), (0, 0)], (1, 2), "K", freeze_ln=True)
    clean, _ = _run(gpt2, tokens, {})
    # a random GPT-2 barely moves: compare what the cut changed
    np.testing.assert_allclose(logits - clean, ref[0].detach().numpy() - clean, atol=1e-7, rtol=0)
    assert np.abs(logits - clean).max() > 1e-6


@pytest.mark.parametrize("options, message", [
    ({"heads_off": ["0.1"], "paths_off": [["0.1", "1.2", "K"]]}, "one of"),
    ({"paths_off": [["1.1", "0.2", "K"]]}, "earlier layer|later layer|before"),
    ({"paths_off": [["0.1", "1.2", "X"]]}, "kind"),
    ({"paths_off": ["0.1>1.2"]}, r"paths_off\[0\]"),
    ({"terms": ["0.9->1.1"]}, "unknown term"),
    ({"colour": "red"}, "unknown"),
])
def test_bad_options_are_refused_by_name(model, options, message):
    with pytest.raises(ValueError, match=message):
        kernel.kernel_run(model, {"type": "run", "id": 1, "tokens": [1, 2, 3], "options": options})
