"""The live widgets' assets (mechlib.views.live): the shipped weights are the checkpoint's."""
import base64
import hashlib

import numpy as np
import pytest
import torch

import mechlib
from mechlib.views import live

WEIGHTS = live.asset_dir() / live.weights_file(mechlib.BUNDLED_MODEL)
SOURCE = f"mechlib/checkpoints/{mechlib.BUNDLED_MODEL}.pt"


def test_shipped_weights_are_what_the_export_script_writes_today(model):
    # fails when the checkpoint changes without `python scripts/export_live_weights.py`
    assert WEIGHTS.read_text() == live.weights_js(model, mechlib.BUNDLED_MODEL, source=SOURCE)


def test_shipped_weights_decode_to_the_checkpoint_tensors_exactly():
    # decoded here with the standard library alone, compared with the raw state dict
    state = torch.load(mechlib.models.bundled_checkpoint(), weights_only=True)
    header, tensors = live.read_weights_js(WEIGHTS.read_text())
    cfg = header["config"]
    L, H, D, dh = cfg["n_layers"], cfg["n_heads"], cfg["d_model"], cfg["d_head"]
    assert np.array_equal(tensors["W_E"], state["embed.weight"].numpy())
    assert np.array_equal(tensors["W_pos"], state["pos_embed.weight"].numpy())
    assert np.array_equal(tensors["W_U"], state["unembed.weight"].numpy().T)
    for l in range(L):
        for c in "qkv":
            w = state[f"blocks.{l}.attn.{c}.weight"].numpy()  # nn.Linear: [out = head * d_head, in]
            assert np.array_equal(tensors[f"W_{c.upper()}"][l], w.reshape(H, dh, D).transpose(0, 2, 1))
            assert np.array_equal(tensors[f"b_{c.upper()}"][l], state[f"blocks.{l}.attn.{c}.bias"].numpy().reshape(H, dh))
        w_o = state[f"blocks.{l}.attn.o.weight"].numpy()  # [d_model, head * d_head]
        assert np.array_equal(tensors["W_O"][l], w_o.T.reshape(H, dh, D))


def test_header_hash_is_the_hash_of_the_data():
    text = WEIGHTS.read_text()
    data = text[text.index('"data":"') + 8: text.rindex('"}')]
    assert hashlib.sha256(base64.b85decode(data)).hexdigest() == live.read_weights_js(text)[0]["sha256"]


def test_the_assets_stay_small():
    assert WEIGHTS.stat().st_size <= 200_000
    assert sum(f.stat().st_size for f in live.asset_files()) <= 500_000


def test_export_refuses_a_model_with_layernorm(model):
    class Fake:
        cfg = type("cfg", (), {"attn_only": True, "normalization_type": "LN"})()

    with pytest.raises(ValueError, match="without LayerNorm"):
        live.weights_js(Fake())
    with pytest.raises(ValueError, match="name must be"):
        live.weights_js(model, name="a/b")
