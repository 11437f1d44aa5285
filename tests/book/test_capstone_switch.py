"""The capstone's model switch is the same cells, not a copy: run the whole solution notebook,
offline, on a randomly initialised GPT-2 saved as a local Hugging Face folder (a causal,
pre-LayerNorm model with a trained, tied unembedding, as GPT-2 small is). Its findings are
noise and are not checked (the notebook asserts its claims only on induction-2l); what is
checked is that every cell runs, the self-checks included, which then also run each function
on this model (``check_...(fn, model=model)``)."""
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

# runs the capstone on a random local GPT-2 (a minute or two): make test, not make check
pytestmark = pytest.mark.slow

transformers = pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "solutions" / "C1_find_the_induction_circuit.ipynb"
SWITCH = 'MODEL = "gpt2-small" if IN_COLAB else "induction-2l"'


def random_gpt2_folder(folder: Path) -> Path:
    """A random GPT-2 (3 layers of 4 heads) in a local folder; the notebook needs no tokenizer."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=3, n_head=4, n_embd=32, n_positions=64, vocab_size=50)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_the_capstone_runs_on_a_random_local_gpt2(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    switch = [c for c in nb.cells if c.cell_type == "code" and SWITCH in c.source]
    assert len(switch) == 1, "the notebook has one model switch"
    folder = random_gpt2_folder(tmp_path / "gpt2")
    switch[0].source = switch[0].source.replace(SWITCH, f"MODEL = {str(folder)!r}")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "3 layers x 4 heads" in printed
    assert printed.count("-- passed") == 5, printed  # every self-check, on the check models and on this one
    assert "cut from the keys of" in printed and "K-composition:" in printed


def test_a_bidirectional_model_is_refused_by_name():
    import mechlib
    from mechlib.teaching import checks
    from transformer_lens.model_bridge import TransformerBridge

    import transformer_lens.model_bridge.sources.native  # noqa: F401  (attaches boot_native)
    from transformer_lens.config import TransformerBridgeConfig

    cfg = TransformerBridgeConfig(d_model=16, d_head=4, n_heads=2, n_layers=2, n_ctx=8, d_vocab=10, attn_only=True,
                                  normalization_type=None, positional_embedding_type="standard",
                                  attention_dir="bidirectional", act_fn="gelu")
    model = mechlib.load_model(TransformerBridge.boot_native(cfg))
    with pytest.raises(ValueError, match="model: this model is bidirectional"):
        checks.check_previous_token_heads(lambda m, t, th: [], model=model)
