"""The model itself in the page: a JavaScript forward pass of ``induction-2l`` and the
kernel-free widgets built on it.

Two static assets ship in this folder (package data) and are copied into the built book
at ``_static/live/`` by :mod:`mechlib.views.live.book_ext`:

* ``mechlib-live.js`` -- the forward pass (no framework, no network). It defines
  ``window.mechlibLive.run(tokens, options)``, which returns ``{logits, patterns}``:
  ``logits[position][token]`` and ``patterns[layer][head][query][key]``, for a run with
  ``options.heads_off`` (head names ``"l.h"``, zero-ablated as in
  :func:`mechlib.run_with_ablation`) and ``options.paths_off`` (``[sender, receiver,
  kind]`` triples, kind ``"Q"``, ``"K"`` or ``"V"``: the sender's output is removed from
  that one input of the receiver, as in :func:`mechlib.path_ablation`).
* ``<model>.weights.js`` -- the model's weights, written by :func:`weights_js`
  (``python scripts/export_live_weights.py``) from the shipped checkpoint: float32,
  little-endian, base85-encoded (RFC 1924 alphabet, as Python's ``base64.b85encode``), with
  a JSON header naming each tensor and its shape (TransformerLens conventions:
  ``W_Q[l, h]`` is ``[d_model, d_head]``, ``W_O[l, h]`` is ``[d_head, d_model]``). A
  weights file registers itself under its name in ``window.mechlibLiveWeights``, so
  another weight set (another model, a training checkpoint) can be added beside it.

Both are plain ``<script>`` files, so the widgets also work when the built book is opened
from disk (``file://``), where ``fetch`` of a binary file would be refused.

Shown in Chapter 5, Virtual Attention Heads (the head toggle).
"""
from __future__ import annotations

import base64
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

#: the JavaScript forward pass
MODULE_FILE = "mechlib-live.js"
#: where the assets land in the built book, relative to its root
SITE_DIR = "_static/live"
#: order and names of the exported tensors (TransformerLens attribute names)
TENSORS = ("W_E", "W_pos", "W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O", "W_U", "b_U")
#: the config fields the forward pass needs
CONFIG_FIELDS = ("n_layers", "n_heads", "d_model", "d_head", "d_vocab", "n_ctx")


def asset_dir() -> Path:
    """The folder holding ``mechlib-live.js`` and the weights files (inside the installed package)."""
    return Path(str(resources.files("mechlib.views.live")))


def weights_file(name: str = "induction-2l") -> str:
    """File name of the weights asset of model ``name``: ``<name>.weights.js``."""
    return f"{name}.weights.js"


def asset_files(name: str = "induction-2l") -> list[Path]:
    """The files a page with a live widget loads: the forward pass and ``name``'s weights."""
    return [asset_dir() / weights_file(name), asset_dir() / MODULE_FILE]


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
    return (f"// Weights of {name} for {MODULE_FILE}, written by scripts/export_live_weights.py"
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
