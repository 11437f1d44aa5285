"""The static head toggle: the precomputed table as a kernel-free HTML widget."""
import base64
import json
import re

import pytest
import torch

from mechlib import toggle
from mechlib.views import static_toggle


@pytest.fixture(scope="module")
def prev_token_off(model):
    """Every head on except the previous-token heads 0.0 and 0.3."""
    return toggle.heads_to_mask(model, [hd for hd in toggle.all_heads(model) if hd not in [(0, 0), (0, 3)]])


@pytest.fixture(scope="module")
def static_html(model, toggle_table):
    return static_toggle.static_head_toggle(model, prefix="testtoggle", table=toggle_table).data


def test_payload_patterns_round_to_within_half_a_step(model, toggle_table, prev_token_off):
    payload = static_toggle.head_toggle_payload(toggle_table, model.cfg.d_vocab)
    n = payload["seq_len"]
    for name, l in [("0.0", 0), ("1.2", 1)]:
        for key, b64 in enumerate(payload["patterns"][name]):
            decoded = torch.frombuffer(bytearray(base64.b64decode(b64)), dtype=torch.uint8).float().reshape(n, n) / 255
            exact = toggle_table.patterns[(l, int(name[-1]))][key]
            assert (decoded - exact).abs().max() <= 0.5 / 255 + 1e-6
    assert payload["loss"][prev_token_off] == round(toggle_table.loss[prev_token_off].item(), 3)
    assert payload["induction"][255][4] == round(toggle_table.induction[255, 1, 0].item(), 3)


def test_static_html_has_no_external_urls_or_scripts(static_html):
    assert not re.search(r"https?://", static_html)
    assert "<script src" not in static_html and "require(" not in static_html
    assert "//cdn" not in static_html.lower()


def test_static_html_payload_is_small(static_html):
    assert len(static_html.encode()) < 1_000_000


def test_static_html_ids_carry_the_prefix(static_html):
    ids = re.findall(r'id="([^"]+)"', static_html)
    assert len(ids) > 20 and all(i.startswith("testtoggle-") for i in ids)
    data = re.search(r'<script type="application/json" id="testtoggle-data">(.*?)</script>', static_html, re.S)
    payload = json.loads(data.group(1))
    assert len(payload["loss"]) == 256 and payload["heads"][3] == "0.3"


def test_two_instances_get_different_prefixes(model, toggle_table):
    a = static_toggle.static_head_toggle(model, table=toggle_table).data
    b = static_toggle.static_head_toggle(model, table=toggle_table).data
    pa, pb = (re.search(r'id="([^"]+)-root"', x).group(1) for x in (a, b))
    assert pa != pb
    assert a.replace(pa, "X") == b.replace(pb, "X")  # otherwise identical: deterministic


def test_bad_prefix_and_head_are_rejected(model):
    with pytest.raises(ValueError, match="prefix"):
        static_toggle.static_head_toggle(model, prefix="1 bad")
    with pytest.raises(ValueError, match="pattern_head"):
        static_toggle.static_head_toggle(model, pattern_head="2.0")


def test_static_toggle_without_table_precomputes_the_same_numbers(model, toggle_table, static_html):
    fresh = static_toggle.static_head_toggle(model, prefix="testtoggle").data
    assert fresh == static_html
