"""Building, training, saving and loading models.

The default model everywhere in the book is ``induction-2l``: a 2-layer,
attention-only TransformerLens 4 model (no LayerNorm, additive positional
embeddings) that this module trains from a recorded seed and config and whose
checkpoint ships inside the package.

The bundled model is introduced in Chapter 1, Beyond One Layer; its weights and hooks
by name in Chapter 8, TransformerLens Vocabulary.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import time
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import transformer_lens.model_bridge.sources.native  # noqa: F401  (attaches boot_native)
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from mechlib._validate import check_device
from mechlib.data import induction_training_batch

BUNDLED_MODEL = "induction-2l"
CHECKPOINT_DIR = "checkpoints"


class ModelUnavailableError(RuntimeError):
    """A hub model was asked for, but the Hugging Face hub cannot be reached."""


@dataclass(frozen=True)
class InductionConfig:
    """Architecture and training recipe of ``induction-2l``.

    The segment lengths leave out 7 and 10 on purpose: the evaluation uses
    them, so the circuit is shown on repeats it never saw in training.
    """

    seed: int = 0
    d_vocab: int = 32
    n_ctx: int = 32
    d_model: int = 64
    n_heads: int = 4
    d_head: int = 16
    n_layers: int = 2
    steps: int = 4000
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    lengths: tuple[int, ...] = (3, 4, 5, 6, 8, 9, 11, 12)
    max_gap: int = 6

    def bridge_config(self) -> TransformerBridgeConfig:
        return TransformerBridgeConfig(
            d_model=self.d_model,
            d_head=self.d_head,
            n_heads=self.n_heads,
            n_layers=self.n_layers,
            n_ctx=self.n_ctx,
            d_vocab=self.d_vocab,
            attn_only=True,
            normalization_type=None,
            positional_embedding_type="standard",
            seed=self.seed,
            act_fn="gelu",
            model_name=BUNDLED_MODEL,
        )

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lengths"] = list(self.lengths)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "InductionConfig":
        d = dict(d)
        d["lengths"] = tuple(d["lengths"])
        return cls(**d)


def sinusoidal_positions(n_ctx: int, d_model: int) -> torch.Tensor:
    """Fixed sinusoidal position table ``P[p, 2i] = sin(p / 10000^{2i/d})``, ``P[p, 2i+1] = cos(...)``."""
    pos = torch.arange(n_ctx, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.zeros(n_ctx, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table.float()


def build_model(config: InductionConfig) -> TransformerBridge:
    """A freshly initialised (untrained) model with ``config``'s shape, seeded by ``config.seed``."""
    model = TransformerBridge.boot_native(config.bridge_config())
    inner = model.original_model
    with torch.no_grad():
        inner.pos.weight.copy_(sinusoidal_positions(config.n_ctx, config.d_model))
    inner.pos.weight.requires_grad_(False)
    return model.eval()


def random_model(
    n_layers: int = 3,
    n_heads: int = 3,
    d_model: int = 32,
    d_head: int = 8,
    d_vocab: int = 20,
    n_ctx: int = 16,
    seed: int = 7,
    bias_std: float = 0.1,
) -> TransformerBridge:
    """An untrained model of any shape whose attention biases are all non-zero (``N(0, bias_std^2)``).

    Tests and exercise checks run on it besides the bundled model, so that code which
    hard-codes the bundled model's sizes, or forgets a bias path (``b_Q``, ``b_K``,
    ``b_V``, ``b_O``), is caught. The weights are fixed by ``seed``; each bias is drawn
    from a generator seeded by the CRC-32 of its parameter name, so every bias differs
    from every other and the model is the same on every machine. (These models have no
    unembedding bias: ``b_U`` is zero.)
    """
    config = InductionConfig(seed=seed, n_layers=n_layers, d_model=d_model, n_heads=n_heads,
                             d_head=d_head, d_vocab=d_vocab, n_ctx=n_ctx)
    model = build_model(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, bias_std, generator=torch.Generator().manual_seed(zlib.crc32(name.encode())))
    return model.requires_grad_(False)


def train_induction_model(
    seed: int = 0,
    config: InductionConfig | None = None,
    progress: bool = True,
) -> TransformerBridge:
    """Train ``induction-2l`` from scratch and return it in eval mode.

    Minimises the next-token cross-entropy on the predictable positions only
    (the second copy of a repeated segment; see
    :func:`mechlib.data.induction_training_batch`) with AdamW. Everything random
    (initial weights, every batch) is drawn from generators seeded by ``seed``,
    so the same seed and config give the same weights on the same machine.
    The training loss curve is kept in ``model.training_log``.
    """
    config = dataclasses.replace(config or InductionConfig(), seed=seed)
    torch.manual_seed(seed)
    model = build_model(config)
    inner = model.original_model
    inner.train()
    params = [p for p in inner.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: min(1.0, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * step / config.steps))
    )
    gen = torch.Generator().manual_seed(seed + 1)
    log: list[tuple[int, float]] = []
    bar = _progress(config.steps, "training induction-2l", progress)
    running = None
    for step in range(config.steps):
        tokens, mask = induction_training_batch(
            config.batch, config.n_ctx, config.d_vocab, gen, config.lengths, config.max_gap
        )
        logits = inner(tokens)[:, :-1]
        loss = F.cross_entropy(logits[mask], tokens[:, 1:][mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0 or step == config.steps - 1:
            log.append((step, loss.item()))
            if bar is not None:
                bar.set_postfix(loss=f"{running:.3f}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    inner.eval()
    model.eval()
    model.training_log = log  # type: ignore[attr-defined]
    model.induction_config = config  # type: ignore[attr-defined]
    return model


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, mininterval=1.0)


def save_model(model: TransformerBridge, path: str | os.PathLike) -> Path:
    """Write ``model``'s weights (``path``.pt) and recipe (``path``.json) for :func:`load_model`."""
    path = Path(path)
    config: InductionConfig = model.induction_config  # type: ignore[attr-defined]
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, path.with_suffix(".pt"))
    meta = {"config": config.to_json(), "training_log": getattr(model, "training_log", [])}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    return path.with_suffix(".pt")


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> TransformerBridge:
    """Load a model written by :func:`save_model`, onto ``device``."""
    device = check_device(device)
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    config = InductionConfig.from_json(meta["config"])
    model = build_model(config)
    state = torch.load(path.with_suffix(".pt"), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.induction_config = config  # type: ignore[attr-defined]
    model.training_log = meta.get("training_log", [])  # type: ignore[attr-defined]
    # an analysis model: no autograd graphs in outputs (call requires_grad_(True) to fine-tune)
    model.requires_grad_(False)
    if device.type != "cpu":
        model.to(device, print_details=False)
    return model.eval()


def bundled_checkpoint() -> Path:
    """Path of the shipped ``induction-2l`` checkpoint (``.pt``; its recipe is the ``.json`` beside it)."""
    return Path(str(resources.files("mechlib") / CHECKPOINT_DIR / f"{BUNDLED_MODEL}.pt"))


def _hub_reachable(timeout: float) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":")[0]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_model(
    name: str = BUNDLED_MODEL, *, device: str | torch.device = "cpu", hub_timeout: float = 3.0
) -> TransformerBridge:
    """Load a model by name, in eval mode, onto ``device``.

    ``"induction-2l"`` (the default) is the bundled checkpoint and needs no network.
    Any other name is resolved as a TransformerLens model name or alias
    (``"attn-only-2l"``, ``"gpt2-small"``, …) and downloaded from the Hugging Face
    hub; when the hub cannot be reached within ``hub_timeout`` seconds this raises
    :class:`ModelUnavailableError` instead of hanging.

    ``device`` is ``"cpu"`` (the default, and what the book's pages were computed on),
    ``"cuda"`` or ``"mps"``; every mechlib function then computes there and takes tokens
    from any device. See the README ("Devices") for where results come back.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name string; got {type(name).__name__}")
    device = check_device(device)
    if name == BUNDLED_MODEL:
        return load_checkpoint(bundled_checkpoint(), device=device)
    from transformer_lens.supported_models import get_official_model_name

    try:
        official = get_official_model_name(name)
    except ValueError:
        raise ValueError(
            f"unknown model name {name!r}: use {BUNDLED_MODEL!r} (bundled, offline) or a "
            "TransformerLens model name such as 'attn-only-2l' or 'gpt2-small'"
        ) from None
    start = time.monotonic()
    if not _hub_reachable(hub_timeout):
        raise ModelUnavailableError(
            f"model {name!r} ({official}) must be downloaded from the Hugging Face hub, which "
            f"could not be reached (checked for {time.monotonic() - start:.1f} s). Use the bundled "
            f"{BUNDLED_MODEL!r} model offline, or run where the network is available (e.g. Colab)."
        )
    from transformer_lens.model_bridge.sources import tl_legacy

    if official.startswith(tl_legacy.TL_LEGACY_PREFIXES):
        model = tl_legacy.boot(official, device=device)
    else:
        model = TransformerBridge.boot_transformers(official, device=device)
    return model.eval()
