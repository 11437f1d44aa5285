"""Chapter 2's composition explorer on relay-2l: one pair, its three scores from the weights."""
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
