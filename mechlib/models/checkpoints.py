"""Saving and loading models that mechlib built, and the shipped training snapshots.

A checkpoint is two files: the weights (``.pt``, float32) and the recipe with the training
log (``.json``, which names the recipe's model). The bundled ``induction-2l`` and ``relay-2l``
each ship one in ``mechlib/checkpoints/``; beside ``induction-2l``'s lie its training snapshots (``-steps.pt``, float16), which The Circuit Forms (in
chapter 5) loads with ``load_model("induction-2l", step=N)``.
"""
from __future__ import annotations

import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from mechlib.models.bundled import BUNDLED_MODEL, RECIPES, InductionConfig, RelayConfig, build_model
from mechlib.models.info import model_info
from mechlib.validate import check_device

CHECKPOINT_DIR = "checkpoints"
#: the training steps at which ``induction-2l`` ships a snapshot of its weights (The Circuit Forms,
#: in chapter 5): every 50 steps up to 300, every 20 steps through the phase change
#: (300 to 800), then sparser, and the final model (step 4000).
CHECKPOINT_STEPS: tuple[int, ...] = (
    tuple(range(0, 300, 50))
    + tuple(range(300, 801, 20))
    + (900, 1000, 1250, 1500, 2000, 2500, 3000, 3500, 4000)
)
#: weights that training does not change (the sinusoidal positions): left out of the snapshots
FIXED_WEIGHTS = ("pos_embed.weight",)


def weights(model: TransformerBridge) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s state dict on the CPU (what a checkpoint or a snapshot stores)."""
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def _recipe(model: TransformerBridge, what: str) -> InductionConfig | RelayConfig:
    config = model_info(model).config
    if config is None:
        raise ValueError(f"{what} writes models that mechlib built from a recipe (build_model, random_model, "
                         "train_induction_model, load_model('induction-2l')); this model has none")
    return config


def save_model(model: TransformerBridge, path: str | os.PathLike) -> Path:
    """Write ``model``'s weights (``path``.pt) and recipe (``path``.json) for :func:`load_checkpoint`."""
    path = Path(path)
    info = model_info(model)
    config = _recipe(model, "save_model")
    torch.save(weights(model), path.with_suffix(".pt"))
    meta = {"model": config.name, "config": config.to_json(), "training_log": info.training_log}
    path.with_suffix(".json").write_text(_meta_json(meta))
    return path.with_suffix(".pt")


def _meta_json(meta: dict[str, Any]) -> str:
    # the config readable, the loss log (one pair per step) one pair to a line
    log = meta.get("training_log", [])
    head = json.dumps({k: v for k, v in meta.items() if k != "training_log"}, indent=1)[:-2]
    pairs = ",\n  ".join(json.dumps([int(s), float(v)]) for s, v in log)
    return f'{head},\n "training_log": [\n  {pairs}\n ]\n}}\n'


def save_snapshots(model: TransformerBridge, path: str | os.PathLike, final_step: int | None = None) -> Path:
    """Write the training snapshots of ``model`` (``model_info(model).snapshots`` from
    :func:`mechlib.train_induction_model`) to ``path`` in float16, one stacked tensor per weight.

    The final step (``final_step``, default the config's ``steps``) is left out: it is the
    float32 checkpoint written by :func:`save_model`. The fixed positional table is left out
    too (it is not trained). Float16 keeps about three significant digits of every weight,
    which leaves every number the book prints from the snapshots unchanged (The Circuit Forms,
    in chapter 5; checked by ``tests/core/test_models.py``).
    """
    config = _recipe(model, "save_snapshots")
    final_step = config.steps if final_step is None else final_step
    snaps = {s: w for s, w in sorted(model_info(model).snapshots.items()) if s != final_step}
    if not snaps:
        raise ValueError("model has no snapshots besides the final step: train it with save_steps")
    steps = list(snaps)
    names = [k for k in snaps[steps[0]] if k not in FIXED_WEIGHTS]
    stacked = {k: torch.stack([snaps[s][k] for s in steps]).to(torch.float16).contiguous() for k in names}
    path = Path(path)
    torch.save({"steps": steps, "final_step": final_step, "weights": stacked}, path)
    return path


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> TransformerBridge:
    """Load a model written by :func:`save_model`, onto ``device``, with its recipe and training log."""
    device = check_device(device)
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    # checkpoints written before relay-2l existed name no model: they are induction-2l's
    config = RECIPES[meta.get("model", BUNDLED_MODEL)].from_json(meta["config"])
    model = build_model(config)
    state = torch.load(path.with_suffix(".pt"), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model_info(model).training_log = [(int(s), float(v)) for s, v in meta.get("training_log", [])]
    # an analysis model: no autograd graphs in outputs (call requires_grad_(True) to fine-tune)
    model.requires_grad_(False)
    if device.type != "cpu":
        model.to(device, print_details=False)
    return model.eval()


def bundled_checkpoint(name: str = BUNDLED_MODEL) -> Path:
    """Path of the shipped checkpoint of bundled model ``name`` (``.pt``; its recipe is the ``.json`` beside it)."""
    if name not in RECIPES:
        raise ValueError(f"name must be a bundled model, one of {sorted(RECIPES)}; got {name!r}")
    return Path(str(resources.files("mechlib") / CHECKPOINT_DIR / f"{name}.pt"))


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


def check_step(step: Any) -> int:
    """Return ``step`` if ``induction-2l`` ships a checkpoint at it, or raise."""
    steps = checkpoint_steps()
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"step must be an int, one of the checkpoint steps {steps}; got {step!r}")
    if step not in steps:
        raise ValueError(f"induction-2l has no checkpoint at step {step}; the available steps are {steps}")
    return step


def snapshot_state(step: int) -> dict[str, torch.Tensor]:
    """The state dict (float32, on the CPU) of the bundled model at checkpoint ``step``."""
    step = check_step(step)
    final = torch.load(bundled_checkpoint(), map_location="cpu", weights_only=True)
    data = _snapshot_file()
    if step == int(data["final_step"]):
        return final
    i = [int(s) for s in data["steps"]].index(step)
    for k, w in data["weights"].items():
        final[k] = w[i].to(torch.float32)  # the fixed weights (positions) stay the final model's
    return final


def load_snapshot(step: int, device: torch.device) -> TransformerBridge:
    """The bundled model as it was after ``step`` training steps, onto ``device``."""
    model = load_checkpoint(bundled_checkpoint())  # the recipe, the fixed weights and the log
    model.load_state_dict(snapshot_state(step), strict=True)
    model_info(model).step = step
    if device.type != "cpu":
        model.to(device, print_details=False)
    return model.eval()
