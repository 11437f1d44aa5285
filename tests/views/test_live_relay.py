"""Chapter 2's composition explorer on relay-2l: one pair, its three scores from the weights."""
import pytest
import torch

import mechlib
from mechlib.views import live


def test_explorer_on_relay_2l_holds_its_one_pair_with_float64_scores():
    relay = mechlib.load_model("relay-2l")
    config = live.spec_of(live.composition_explorer(relay, kind="V", n_baseline=200, assets="site").data)["config"]
    assert list(config["pairs"]) == ["0.0>1.0"] and (config["sender"], config["receiver"]) == ("0.0", "1.0")
    ov_s = relay.W_V[0, 0].double() @ relay.W_O[0, 0].double()
    ov_r = relay.W_V[1, 0].double() @ relay.W_O[1, 0].double()
    v = (torch.linalg.norm(ov_s @ ov_r) / (torch.linalg.norm(ov_s) * torch.linalg.norm(ov_r))).item()
    entry = config["pairs"]["0.0>1.0"]["V"]
    assert abs(entry["score"] - v) < 1e-4
    mean, std = config["baseline"]["mean"], config["baseline"]["std"]
    assert abs(entry["z"] - (v - mean) / std) < 0.01 and entry["z"] > 5
    assert len(entry["sv"]) == relay.cfg.d_head


# --------------------------------------------------------------------------- the model views on relay-2l's batch


def test_relay_views_carry_the_relay_batch_and_load_only_relay_weights():
    relay = mechlib.load_model("relay-2l")
    rb = mechlib.relay_batch(relay)
    for widget in (live.head_toggle(relay, assets="site"), live.path_ablation(relay, senders="0.0", receivers="1.0", assets="site"),
                   live.term_picker(relay, assets="site")):
        spec = live.spec_of(widget.data)
        config = spec["config"]
        assert [a["file"] for a in spec["assets"] if a["file"].endswith(".weights.js")] == ["relay-2l.weights.js"]
        assert config["model"] == "relay-2l" and "text" not in spec["assets"][0]
        assert config["batch"]["tokens"] == rb.tokens.tolist()
        # the mask's scored positions, found here by brute force: q where the row holds R
        R = relay.cfg.d_vocab - 1
        assert config["batch"]["mask"] == [[q for q in range(len(row) - 1) if row[q] == R] for row in rb.tokens.tolist()]
        assert config["batch"]["mask"] == [[int(rb.recall[b])] for b in range(len(rb.tokens))]
        assert config["batch"]["after_token"] == R
        assert config["tokens"] == rb.tokens[0].tolist() and config["row"] == 0


def test_the_induction_views_keep_their_spec_and_take_a_batch_when_given(model):
    assert "batch" not in live.spec_of(live.head_toggle(model, assets="site").data)["config"]
    rb = mechlib.repeated_batch(model, batch=4)
    config = live.spec_of(live.head_toggle(model, batch=rb, assets="site").data)["config"]
    h, p = rb.half_len, rb.prefix_len  # the repeat mask: the second copy, its first token excluded
    assert config["batch"]["mask"] == [list(range(p + h, p + 2 * h - 1))] * 4
    assert config["batch"]["after_token"] is None and config["tokens"] == rb.tokens[0].tolist()


@pytest.mark.parametrize("batch, message", [
    (torch.zeros(3, 5), "batch must have .tokens"),
    (type("B", (), {"tokens": torch.zeros(2, 5, dtype=torch.long), "mask": torch.zeros(2, 5, dtype=torch.bool)})(),
     r"batch.mask must be a bool tensor of shape \[batch, seq - 1\] = \[2, 4\]"),
    (type("B", (), {"tokens": torch.full((2, 5), 99), "mask": torch.zeros(2, 4, dtype=torch.bool)})(),
     r"batch.tokens must be integers in \[0, d_vocab = 32\)"),
])
def test_a_bad_batch_is_refused_naming_it(model, batch, message):
    with pytest.raises(ValueError, match=message):
        live.head_toggle(model, batch=batch, assets="site")


def test_shipped_relay_weights_are_the_checkpoint_and_what_the_export_script_writes():
    # fails when relay-2l's checkpoint changes without `python scripts/export_live_weights.py`
    relay = mechlib.load_model("relay-2l")
    path = live.asset_dir() / live.weights_file("relay-2l")
    assert path.read_text() == live.weights_js(relay, "relay-2l", source="mechlib/checkpoints/relay-2l.pt")
    _, tensors = live.read_weights_js(path.read_text())
    for name in live.TENSORS:
        assert (tensors[name] == getattr(relay, name).detach().numpy()).all(), name
    assert path.stat().st_size <= 150_000
    assert live.page_weights(relay) == ("relay-2l", None)  # recognised by its hash: the shipped file loads
