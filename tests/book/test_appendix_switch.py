"""The appendix's switch to GPT-2 small is the same cells, not a copy: run the whole chapter,
offline, on a randomly initialised GPT-2 saved as a local Hugging Face folder (with a small
byte-level tokenizer trained on the spot). The findings are MiniLM's and are not checked here
(the page's checks run only on MiniLM); what is checked is that every cell runs on a causal,
pre-LayerNorm model with a trained (tied) unembedding."""
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

# runs the appendix notebook on a random local GPT-2 (a minute): make test, not make check
pytestmark = pytest.mark.slow

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "chapters" / "A1_real_transformer.ipynb"
SWITCH = "MODEL = mechlib.MINILM"


def random_gpt2_folder(folder: Path) -> Path:
    """A random GPT-2 and a byte-level tokenizer (every text fits: at most one token per byte)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["the heads of a transformer"], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                                eos_token="<|endoftext|>")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=3, n_head=4, n_embd=32, n_positions=512, vocab_size=len(fast),
                                     bos_token_id=0, eos_token_id=0)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_the_appendix_runs_on_a_random_local_gpt2(tmp_path):
    nb = nbformat.read(CHAPTER, as_version=4)
    switch = [c for c in nb.cells if c.cell_type == "code" and SWITCH in c.source]
    assert len(switch) == 1, "the chapter has one model switch"
    folder = random_gpt2_folder(tmp_path / "gpt2")
    switch[0].source = switch[0].source.replace(SWITCH, f"MODEL = {str(folder)!r}")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "3 layers x 4 heads" in printed
    assert "causal: True   trained unembedding: True" in printed
    assert "induction score: clean" in printed  # the path ablation read the causal model's behaviour
