"""The checkpoint slider (a live widget): the training dynamics it carries to the page.

What the page draws from them is checked in Chromium by tests/book/test_live_model.py."""
import base64
import math
import re

import pytest
import torch

import mechlib
from mechlib.views import live

STEPS = [0, 460, 4000]


@pytest.fixture(scope="module")
def batch(model):
    return mechlib.repeated_batch(model, batch=8)


@pytest.fixture(scope="module")
def dynamics(batch):
    return mechlib.training_dynamics(batch, steps=STEPS)


@pytest.fixture(scope="module")
def static_html(dynamics, batch):
    return live.checkpoint_slider(dynamics, batch, prefix="testslider", assets="site").data


def _payload(html):
    return live.spec_of(html)["config"]


def test_payload_holds_each_steps_lower_triangle_within_half_a_step(static_html, batch, model):
    payload = _payload(static_html)
    n = batch.tokens.shape[1]
    rows, cols = torch.tril_indices(n, n)
    for i, step in enumerate(STEPS):
        A = mechlib.attention_patterns(mechlib.load_model(step=step), batch.tokens[:1])[:, 0]  # [layer, head, q, k]
        raw = torch.frombuffer(bytearray(base64.b64decode(payload["patterns"][i])), dtype=torch.uint8)
        decoded = raw.float().reshape(model.cfg.n_layers, model.cfg.n_heads, -1) / 255
        assert (decoded - A[:, :, rows, cols]).abs().max() <= 0.5 / 255 + 1e-5
    assert payload["steps"] == STEPS and payload["heads"][5] == "1.1"


def test_payload_losses_are_the_measured_ones_rounded(static_html, dynamics, batch):
    payload = _payload(static_html)
    assert payload["loss"] == [round(float(x), 3) for x in dynamics.loss_repeat]
    assert len(payload["example_loss"][1]) == batch.tokens.shape[1] - 1
    assert payload["uniform"] == round(math.log(32), 3)
    assert payload["batch"] == 8 and payload["boundaries"] == batch.boundaries


def test_the_slider_starts_at_the_last_step_unless_told(static_html, dynamics, batch):
    assert _payload(static_html)["start"] == len(STEPS) - 1
    assert _payload(live.checkpoint_slider(dynamics, batch, start_step=460).data)["start"] == 1


def test_the_widget_is_the_live_widgets_and_loads_no_weights(static_html):
    spec = live.spec_of(static_html)
    assert spec["widget"] == "checkpointSlider" and spec["id"] == "testslider-root"
    assert [a["file"] for a in spec["assets"]] == ["model.js", "ui.js", "live.css", "checkpoint-slider.js"]
    assert not re.search(r"https?://", static_html)
    assert len(static_html.encode()) < 60_000  # 3 steps here; the 41 of the chapter are about 150 kB


def test_bad_arguments_are_rejected(dynamics, batch):
    with pytest.raises(ValueError, match="start_step must be one of the measured steps"):
        live.checkpoint_slider(dynamics, batch, start_step=500)
    with pytest.raises(ValueError, match="prefix"):
        live.checkpoint_slider(dynamics, batch, prefix="1bad")
