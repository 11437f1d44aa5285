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
import functools
import json
import math
import os
import socket
import time
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
import transformer_lens.model_bridge.sources.native  # noqa: F401  (attaches boot_native)
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from mechlib._validate import check_device
from mechlib.data import induction_training_batch

BUNDLED_MODEL = "induction-2l"
CHECKPOINT_DIR = "checkpoints"
#: the training steps at which ``induction-2l`` ships a snapshot of its weights (Chapter 5b,
#: The Circuit Forms): every 50 steps up to 300, every 20 steps through the phase change
#: (300 to 800), then sparser, and the final model (step 4000).
CHECKPOINT_STEPS: tuple[int, ...] = (
    tuple(range(0, 300, 50))
    + tuple(range(300, 801, 20))
    + (900, 1000, 1250, 1500, 2000, 2500, 3000, 3500, 4000)
)


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
    save_steps: Sequence[int] = (),
) -> TransformerBridge:
    """Train ``induction-2l`` from scratch and return it in eval mode.

    Minimises the next-token cross-entropy on the predictable positions only
    (the second copy of a repeated segment; see
    :func:`mechlib.data.induction_training_batch`) with AdamW. Everything random
    (initial weights, every batch) is drawn from generators seeded by ``seed``,
    so the same seed and config give the same weights on the same machine.
    The training loss of every step is kept in ``model.training_log`` as
    ``(step, loss)`` pairs, step ``s`` being the loss of the batch that the
    ``s``-th update (counting from 0) was computed from.

    ``save_steps`` lists steps at which a copy of the weights is kept, in
    ``model.snapshots`` (``{step: state_dict}``): step ``N`` is the model after
    ``N`` updates (``0`` is the initialisation, ``config.steps`` the final model).
    Copying the weights changes nothing in the training itself. The shipped
    snapshots (Chapter 5b, The Circuit Forms) use :data:`CHECKPOINT_STEPS`.
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
    save = _check_save_steps(save_steps, config.steps)
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    log: list[tuple[int, float]] = []
    bar = _progress(config.steps, "training induction-2l", progress)
    running = None
    for step in range(config.steps):
        if step in save:
            snapshots[step] = _weights(model)
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
        log.append((step, loss.item()))
        if bar is not None and (step % 50 == 0 or step == config.steps - 1):
            bar.set_postfix(loss=f"{running:.3f}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if config.steps in save:
        snapshots[config.steps] = _weights(model)
    inner.eval()
    model.eval()
    model.training_log = log  # type: ignore[attr-defined]
    model.induction_config = config  # type: ignore[attr-defined]
    model.snapshots = snapshots  # type: ignore[attr-defined]
    return model


def _weights(model: TransformerBridge) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def _check_save_steps(save_steps: Sequence[int], total: int) -> set[int]:
    steps = set()
    for s in save_steps:
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"save_steps must hold integers; got {s!r} ({type(s).__name__})")
        if not 0 <= s <= total:
            raise ValueError(f"save_steps must lie in 0..{total} (the number of training steps); got {s}")
        steps.add(s)
    return steps


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, mininterval=1.0)


def save_model(model: TransformerBridge, path: str | os.PathLike) -> Path:
    """Write ``model``'s weights (``path``.pt) and recipe (``path``.json) for :func:`load_model`."""
    path = Path(path)
    config: InductionConfig = model.induction_config  # type: ignore[attr-defined]
    torch.save(_weights(model), path.with_suffix(".pt"))
    meta = {"config": config.to_json(), "training_log": getattr(model, "training_log", [])}
    path.with_suffix(".json").write_text(_meta_json(meta))
    return path.with_suffix(".pt")


def _meta_json(meta: dict[str, Any]) -> str:
    # the config readable, the loss log (one pair per step) one pair to a line
    log = meta.get("training_log", [])
    head = json.dumps({k: v for k, v in meta.items() if k != "training_log"}, indent=1)[:-2]
    pairs = ",\n  ".join(json.dumps([int(s), float(v)]) for s, v in log)
    return f'{head},\n "training_log": [\n  {pairs}\n ]\n}}\n'


def save_snapshots(model: TransformerBridge, path: str | os.PathLike, final_step: int | None = None) -> Path:
    """Write the training snapshots of ``model`` (``model.snapshots`` from
    :func:`train_induction_model`) to ``path`` in float16, one stacked tensor per weight.

    The final step (``final_step``, default the config's ``steps``) is left out: it is the
    float32 checkpoint written by :func:`save_model`. The fixed positional table is left out
    too (it is not trained). Float16 keeps about three significant digits of every weight,
    which leaves every number the book prints from the snapshots unchanged (Chapter 5b,
    The Circuit Forms; checked by ``tests/core/test_models.py``).
    """
    config: InductionConfig = model.induction_config  # type: ignore[attr-defined]
    final_step = config.steps if final_step is None else final_step
    snaps = {s: w for s, w in sorted(model.snapshots.items()) if s != final_step}  # type: ignore[attr-defined]
    if not snaps:
        raise ValueError("model has no snapshots besides the final step: train it with save_steps")
    steps = list(snaps)
    names = [k for k in snaps[steps[0]] if k not in _FIXED_WEIGHTS]
    stacked = {k: torch.stack([snaps[s][k] for s in steps]).to(torch.float16).contiguous() for k in names}
    path = Path(path)
    torch.save({"steps": steps, "final_step": final_step, "weights": stacked}, path)
    return path


_FIXED_WEIGHTS = ("pos_embed.weight",)


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


def bundled_snapshots() -> Path:
    """Path of the shipped training snapshots of ``induction-2l`` (see :func:`save_snapshots`)."""
    return Path(str(resources.files("mechlib") / CHECKPOINT_DIR / f"{BUNDLED_MODEL}-steps.pt"))


@functools.lru_cache(maxsize=1)
def _snapshot_file() -> dict[str, Any]:
    return torch.load(bundled_snapshots(), map_location="cpu", weights_only=True)


def checkpoint_steps() -> list[int]:
    """The training steps at which ``induction-2l`` ships its weights, in increasing order.

    Step ``N`` is the model after ``N`` updates: ``0`` is the initialisation and the last
    one is the final model, the one ``load_model("induction-2l")`` returns. Each of them
    loads with ``load_model("induction-2l", step=N)``. Chapter 5b, The Circuit Forms.
    """
    data = _snapshot_file()
    return [int(s) for s in data["steps"]] + [int(data["final_step"])]


def _check_step(step: Any) -> int:
    steps = checkpoint_steps()
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"step must be an int, one of the checkpoint steps {steps}; got {step!r}")
    if step not in steps:
        raise ValueError(f"induction-2l has no checkpoint at step {step}; the available steps are {steps}")
    return step


def _snapshot_state(step: int) -> dict[str, torch.Tensor]:
    """The state dict (float32, on the CPU) of the bundled model at checkpoint ``step``."""
    step = _check_step(step)
    final = torch.load(bundled_checkpoint(), map_location="cpu", weights_only=True)
    data = _snapshot_file()
    if step == int(data["final_step"]):
        return final
    i = [int(s) for s in data["steps"]].index(step)
    for k, w in data["weights"].items():
        final[k] = w[i].to(torch.float32)  # the fixed weights (positions) stay the final model's
    return final


def _load_snapshot(step: int, device: torch.device) -> TransformerBridge:
    model = load_checkpoint(bundled_checkpoint())  # the recipe, the fixed weights and the log
    model.load_state_dict(_snapshot_state(step), strict=True)
    model.training_step = step  # type: ignore[attr-defined]
    if device.type != "cpu":
        model.to(device, print_details=False)
    return model.eval()


def _hub_reachable(timeout: float) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":")[0]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_model(
    name: str = BUNDLED_MODEL, *, device: str | torch.device = "cpu", hub_timeout: float = 3.0,
    step: int | None = None,
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

    ``step`` (``"induction-2l"`` only) loads the model as it was after that many training
    steps, one of :func:`checkpoint_steps` (Chapter 5b, The Circuit Forms); the last step
    is the final model itself. Snapshots before the last are stored in float16.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name string; got {type(name).__name__}")
    device = check_device(device)
    if step is not None:
        if name != BUNDLED_MODEL:
            raise ValueError(f"step is only available for the bundled {BUNDLED_MODEL!r} model; got name={name!r}")
        if _check_step(step) != checkpoint_steps()[-1]:
            return _load_snapshot(step, device)
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
