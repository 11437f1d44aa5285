"""The head toggle's precomputed table and the static HTML view built from it."""
import base64
import json
import re

import pytest
import torch

import mechlib
from mechlib import static_toggle, toggle
from mechlib.models import InductionConfig, build_model

import reference

HALF, PREFIX = 10, 5
PREV_TOKEN_OFF = 0b11110110  # every head on except 0.0 and 0.3


def brute_induction(patterns, tokens):
    """Induction score by loops: mean over destinations q with an earlier copy of their token of
    the attention paid to the positions right after those copies. patterns [L, B, H, q, k]."""
    L, B, H, S, _ = patterns.shape
    total, count = torch.zeros(L, H, dtype=torch.float64), 0
    for b in range(B):
        for q in range(S):
            earlier = [p for p in range(q) if tokens[b, p] == tokens[b, q]]
            if earlier:
                count += 1
                for p in earlier:
                    total += patterns[:, b, :, q, p + 1]
    return total / count


def heads_off(model, mask):
    return [hd for hd in toggle.all_heads(model) if hd not in toggle.mask_to_heads(model, mask)]


@pytest.fixture(scope="module")
def tokens(model):
    return toggle.default_tokens(model)


@pytest.fixture(scope="module")
def table(model, tokens):
    return toggle.precompute_head_toggle(model, tokens, HALF, PREFIX)


@pytest.fixture(scope="module")
def static_html(model, table):
    return static_toggle.static_head_toggle(model, prefix="testtoggle", table=table).data


def test_mask_roundtrip(model):
    heads = [(0, 1), (1, 3)]
    mask = toggle.heads_to_mask(model, heads)
    assert mask == 2 ** 1 + 2 ** 7
    assert toggle.mask_to_heads(model, mask) == heads
    with pytest.raises(ValueError, match="mask"):
        toggle.mask_to_heads(model, 256)


@pytest.mark.parametrize("mask", [0, 255, PREV_TOKEN_OFF, 0b11111101, 0b10111111, 0b01011010])
def test_precomputed_loss_matches_run_with_ablation(model, tokens, table, mask):
    logits = mechlib.run_with_ablation(model, tokens, heads_off(model, mask))
    assert table.loss[mask].item() == pytest.approx(mechlib.repeat_loss(logits, tokens, HALF, PREFIX), abs=1e-5)


@pytest.mark.parametrize("mask", [0, 255, PREV_TOKEN_OFF, 0b01011010])
def test_precomputed_induction_and_patterns_match_float64_reference(model, tokens, table, mask):
    _, patterns = reference.forward(model, tokens, zero_heads=heads_off(model, mask), return_patterns=True)
    torch.testing.assert_close(table.induction[mask].double(), brute_induction(patterns, tokens), atol=1e-5, rtol=0)
    for l, h in toggle.all_heads(model):
        torch.testing.assert_close(table.pattern((l, h), mask).double(), patterns[l, 0, h], atol=1e-5, rtol=0)


def test_previous_token_heads_off_breaks_induction_in_table(table):
    assert table.loss[255] < 0.5 < 2.0 < table.loss[PREV_TOKEN_OFF]
    assert table.induction[255, 1].min() > 0.6 > 0.3 > table.induction[PREV_TOKEN_OFF, 1].max()


def test_patterns_of_a_deeper_model_are_keyed_by_earlier_heads(random_model):
    """3 layers x 3 heads: a layer-2 pattern depends on the 6 heads of layers 0 and 1."""
    tokens = mechlib.repeated_tokens(20, 3, 4, seed=2, prefix_len=2)
    table = toggle.precompute_head_toggle(random_model, tokens, 4, 2)
    assert table.patterns[(2, 1)].shape[0] == 2 ** 6 and table.patterns[(0, 0)].shape[0] == 1
    for mask in [0, 0b101010101, 0b011001110, 2 ** 9 - 1]:
        off = heads_off(random_model, mask)
        logits, patterns = reference.forward(random_model, tokens, zero_heads=off, return_patterns=True)
        for l, h in toggle.all_heads(random_model):
            torch.testing.assert_close(table.pattern((l, h), mask).double(), patterns[l, 0, h], atol=1e-5, rtol=0)
        loss = mechlib.per_token_loss(logits, tokens)[:, 2 + 4:].mean().item()
        assert table.loss[mask].item() == pytest.approx(loss, abs=1e-5)


def test_precompute_rejects_mismatched_lengths_and_big_models(model, tokens):
    with pytest.raises(ValueError, match="prefix_len"):
        toggle.precompute_head_toggle(model, tokens, HALF + 1, PREFIX)
    big = build_model(InductionConfig(n_layers=3, n_heads=4, d_model=16, d_head=4))
    with pytest.raises(ValueError, match="at most"):
        toggle.precompute_head_toggle(big, toggle.default_tokens(big))


def test_single_thread_restores_thread_count():
    before = torch.get_num_threads()
    with toggle.single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_payload_patterns_round_to_within_half_a_step(model, table):
    payload = static_toggle.head_toggle_payload(table, model.cfg.d_vocab)
    n = payload["seq_len"]
    for name, l in [("0.0", 0), ("1.2", 1)]:
        for key, b64 in enumerate(payload["patterns"][name]):
            decoded = torch.frombuffer(bytearray(base64.b64decode(b64)), dtype=torch.uint8).float().reshape(n, n) / 255
            exact = table.patterns[(l, int(name[-1]))][key]
            assert (decoded - exact).abs().max() <= 0.5 / 255 + 1e-6
    assert payload["loss"][PREV_TOKEN_OFF] == round(table.loss[PREV_TOKEN_OFF].item(), 3)
    assert payload["induction"][255][4] == round(table.induction[255, 1, 0].item(), 3)


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


def test_two_instances_get_different_prefixes(model, table):
    a = static_toggle.static_head_toggle(model, table=table).data
    b = static_toggle.static_head_toggle(model, table=table).data
    pa, pb = (re.search(r'id="([^"]+)-root"', x).group(1) for x in (a, b))
    assert pa != pb
    assert a.replace(pa, "X") == b.replace(pb, "X")  # otherwise identical: deterministic


def test_bad_prefix_and_head_are_rejected(model):
    with pytest.raises(ValueError, match="prefix"):
        static_toggle.static_head_toggle(model, prefix="1 bad")
    with pytest.raises(ValueError, match="pattern_head"):
        static_toggle.static_head_toggle(model, pattern_head="2.0")


def test_static_toggle_without_table_precomputes_the_same_numbers(model, table, static_html):
    fresh = static_toggle.static_head_toggle(model, prefix="testtoggle").data
    assert fresh == static_html
