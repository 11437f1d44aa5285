"""The weights of a model for the forward pass in the page (``model.js``), and which model a
page can run.

A weights asset is JavaScript that registers one weight set in ``window.mechlibLiveWeights``
under its name: float32, little-endian, base85-encoded (RFC 1924 alphabet, as Python's
``base64.b85encode``), with a JSON header naming each tensor and its shape (TransformerLens
conventions: ``W_Q[l, h]`` is ``[d_model, d_head]``, ``W_O[l, h]`` is ``[d_head, d_model]``).
The bundled models' ship as ``induction-2l.weights.js`` and ``relay-2l.weights.js``
(:data:`SHIPPED_MODELS`; ``python scripts/export_live_weights.py``); any other model the page
can run travels inline with its widget (:func:`page_weights`).

Shown in Chapter 5, Virtual Attention Heads (the head toggle).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

#: order and names of the exported tensors (TransformerLens attribute names)
TENSORS = ("W_E", "W_pos", "W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O", "W_U", "b_U")
#: the models whose weights ship as assets (``<name>.weights.js``, scripts/export_live_weights.py)
SHIPPED_MODELS = ("induction-2l", "relay-2l")
#: the config fields the forward pass needs
CONFIG_FIELDS = ("n_layers", "n_heads", "d_model", "d_head", "d_vocab", "n_ctx")
#: the most parameters a model may have to run in the page (its weights travel with the widget:
#: 4 bytes each, 5/4 as much as base85 text)
MAX_PAGE_PARAMS = 2_000_000


def weights_file(name: str = "induction-2l") -> str:
    """File name of the weights asset of model ``name``: ``<name>.weights.js``."""
    return f"{name}.weights.js"


def weights_js(model: Any, name: str = "induction-2l", source: str = "") -> str:
    """The weights asset of ``model`` as JavaScript text (deterministic: same weights, same text).

    ``window.mechlibLiveWeights[name] = {format, name, source, config, tensors, sha256, data}``
    where ``tensors`` lists ``[tensor name, shape]`` in :data:`TENSORS` order, ``data`` is the
    base85 text of all of them concatenated as float32 little-endian, and ``sha256`` is the
    hash of those bytes. ``source`` names where the weights came from (for the reader).
    Only attention-only models without LayerNorm can be exported: the forward pass in the
    page has no MLP and no norm.
    """
    cfg = model.cfg
    if not getattr(cfg, "attn_only", False) or getattr(cfg, "normalization_type", None) is not None:
        raise ValueError("weights_js needs an attention-only model without LayerNorm "
                         "(cfg.attn_only=True, cfg.normalization_type=None)")
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"name must be letters, digits, - and _ (a file name); got {name!r}")
    arrays, shapes = [], []
    for t in TENSORS:
        a = getattr(model, t).detach().cpu().numpy().astype("<f4")
        arrays.append(a.ravel())
        shapes.append([t, list(a.shape)])
    raw = np.concatenate(arrays).tobytes()
    header = {
        "format": "float32-le-base85",
        "name": name,
        "source": source,
        "config": {f: int(getattr(cfg, f)) for f in CONFIG_FIELDS},
        "attn_scale": float(np.sqrt(cfg.d_head)),
        "tensors": shapes,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    body = json.dumps(header, separators=(",", ":"))[:-1] + ',"data":"' + base64.b85encode(raw).decode("ascii") + '"}'
    return (f"// Weights of {name} for model.js, written by scripts/export_live_weights.py"
            f"{' from ' + source if source else ''}. Do not edit.\n"
            f"(window.mechlibLiveWeights = window.mechlibLiveWeights || {{}})[{json.dumps(name)}] = {body};\n")


def read_weights_js(text: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Parse a weights asset written by :func:`weights_js`: ``(header, {tensor name: float32 array})``."""
    start = text.index("] = {") + len("] = ")
    header = json.loads(text[start:text.rindex(";")])
    raw = base64.b85decode(header.pop("data"))
    flat = np.frombuffer(raw, dtype="<f4")
    out, i = {}, 0
    for t, shape in header["tensors"]:
        n = int(np.prod(shape))
        out[t] = flat[i:i + n].reshape(shape)
        i += n
    if i != flat.size:
        raise ValueError(f"weights asset holds {flat.size} floats, its header names {i}")
    return header, out




def page_model_problem(model: Any) -> str | None:
    """Why the forward pass of ``model.js`` cannot run ``model`` (``None`` when it can).

    The page runs attention-only transformers without LayerNorm, with learned absolute
    positions, one key and value per query head, and at most :data:`MAX_PAGE_PARAMS` parameters.
    """
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        return f"it is not a TransformerLens model (no .cfg); got {type(model).__name__}"
    if not getattr(cfg, "attn_only", False):
        return "it has MLP layers (cfg.attn_only is False)"
    if getattr(cfg, "normalization_type", None) is not None:
        return f"it has LayerNorm (cfg.normalization_type = {cfg.normalization_type!r})"
    if getattr(cfg, "positional_embedding_type", "standard") != "standard":
        return f"its positions are {cfg.positional_embedding_type!r}, not learned absolute ('standard')"
    if getattr(cfg, "n_key_value_heads", None) not in (None, cfg.n_heads):
        return "it shares keys and values between heads (cfg.n_key_value_heads)"
    n = sum(int(np.prod(getattr(model, t).shape)) for t in TENSORS)
    if n > MAX_PAGE_PARAMS:
        return f"it has {n:,} parameters; the page runs at most {MAX_PAGE_PARAMS:,}"
    return None


@functools.lru_cache(maxsize=None)
def shipped_sha256(name: str) -> str | None:
    """The hash in the header of the weights asset shipped for ``name`` (None if none ships)."""
    path = Path(str(resources.files("mechlib.views.live"))) / weights_file(name)
    if not path.exists():
        return None
    text = path.read_text()
    return json.loads(text[text.index("] = {") + 4:text.index(',"data":"')] + "}")["sha256"]


def page_weights(model: Any, argname: str = "model") -> tuple[str, str | None]:
    """The weight set the page runs for ``model``: ``(name, weights asset text or None)``.

    ``None`` means the asset ships with the package (a bundled model, ``induction-2l`` or
    ``relay-2l``, recognised by the hash of its weights, so a retrained or fine-tuned copy is
    not mistaken for it; a page loads only the weights of the models its widgets run); otherwise the
    text of :func:`weights_js` travels with the widget, under the name ``model-<hash>``. A
    model the page cannot run (:func:`page_model_problem`) raises ``ValueError`` naming
    ``argname``: the page never runs other weights in its place.
    """
    from mechlib import BUNDLED_MODEL

    problem = page_model_problem(model)
    if problem is not None:
        raise ValueError(
            f"{argname}: the page cannot run this model, because {problem}. Live widgets run "
            f"attention-only models without LayerNorm, with learned positions and at most "
            f"{MAX_PAGE_PARAMS:,} parameters (such as the bundled {BUNDLED_MODEL!r}, "
            f"mechlib.load_model()). For any other model, live.head_toggle(model) asks the kernel "
            f"instead, and the plots of mechlib.views.plots show it")
    raw = np.concatenate([getattr(model, t).detach().cpu().numpy().astype("<f4").ravel() for t in TENSORS]).tobytes()
    sha = hashlib.sha256(raw).hexdigest()
    for shipped in SHIPPED_MODELS:
        if sha == shipped_sha256(shipped):
            return shipped, None
    name = f"model-{sha[:12]}"
    return name, weights_js(model, name, source="a model given in a notebook")
