"""The static checkpoint slider: training dynamics as a kernel-free HTML widget."""
import base64
import json
import math
import re

import pytest
import torch

import mechlib
from mechlib.views import static_slider

STEPS = [0, 460, 4000]


@pytest.fixture(scope="module")
def batch(model):
    return mechlib.repeated_batch(model, batch=8)


@pytest.fixture(scope="module")
def dynamics(batch):
    return mechlib.training_dynamics(batch, steps=STEPS)


@pytest.fixture(scope="module")
def static_html(dynamics, batch):
    return static_slider.static_checkpoint_slider(dynamics, batch, prefix="testslider").data


def _payload(html):
    data = re.search(r'<script type="application/json" id="testslider-data">(.*?)</script>', html, re.S)
    return json.loads(data.group(1))


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


def test_slider_is_keyboard_usable_and_labelled(static_html):
    assert re.search(r'<input type="range" id="testslider-range" min="0" max="2" step="1" value="2"', static_html)
    assert '<label for="testslider-range">' in static_html and 'aria-valuetext="step 4000"' in static_html
    assert static_html.count('aria-label="attention pattern of head') == 8


def test_static_html_is_self_contained_small_and_prefixed(static_html):
    assert not re.search(r"https?://", static_html) and "<script src" not in static_html
    assert len(static_html.encode()) < 60_000  # 3 steps here; the 41 of the chapter are about 150 kB
    ids = re.findall(r'id="([^"]+)"', static_html)
    assert len(ids) > 10 and all(i.startswith("testslider-") for i in ids)


def test_bad_arguments_are_rejected(dynamics, batch):
    with pytest.raises(ValueError, match="start_step must be one of the measured steps"):
        static_slider.static_checkpoint_slider(dynamics, batch, start_step=500)
    with pytest.raises(ValueError, match="prefix"):
        static_slider.static_checkpoint_slider(dynamics, batch, prefix="1bad")
