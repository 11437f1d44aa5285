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


# --------------------------------------------------------------------------- the head toggle's HTML


def test_head_toggle_starts_on_the_first_evaluation_sequence_whose_segment_has_no_repeat(model):
    book = mechlib.repeated_batch(model)
    config = live.head_toggle_config(model)
    first = None
    for row in book.tokens.tolist():  # brute force: the first row whose segment tokens are distinct
        segment = row[book.prefix_len:book.prefix_len + book.half_len]
        if all(segment.count(t) == 1 for t in segment):
            first = row
            break
    assert config["tokens"] == first
    assert (config["prefix_len"], config["half_len"]) == (book.prefix_len, book.half_len)


def test_head_toggle_shows_the_strongest_induction_head_first(model):
    scores = mechlib.induction_scores(model, mechlib.repeated_batch(model).tokens)
    assert live.head_toggle_config(model)["pattern_head"] == f"1.{int(scores[1].argmax())}"


def test_site_assets_are_loaded_from_the_book_and_inline_assets_are_carried(model):
    site = live.head_toggle(model, prefix="a", assets="site").data
    inline = live.head_toggle(model, prefix="a", assets="inline").data
    weights = WEIGHTS.read_text()
    assert weights not in site and live.spec_of(site)["site_dir"] == "_static/live"
    assert all("text" not in a for a in live.spec_of(site)["assets"])
    carried = {a["file"]: a["text"] for a in live.spec_of(inline)["assets"]}
    own = ["model.js", "ui.js", "live.css", "heatmap.js", "model-view.js", "predict.js", "head-toggle.js"]  # in order
    assert list(carried) == [WEIGHTS.name] + own
    assert carried == {f.name: f.read_text() for f in [WEIGHTS] + [live.asset_dir() / f for f in own]}


@pytest.mark.parametrize("kwargs, message", [
    ({"prefix": "1bad"}, "prefix must start with a letter"),
    ({"assets": "cdn"}, "assets must be 'auto', 'site'"),
    ({"pattern_head": "2.0"}, "layer"),
    ({"half_len": 15}, r"prefix_len \+ 2 \* half_len <= n_ctx = 32"),
    ({"tokens": [[1, 2], [3, 4]]}, "one sequence"),
])
def test_head_toggle_refuses_bad_arguments(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        live.head_toggle(model, **kwargs)


@pytest.mark.parametrize("env, expected", [(None, "inline"), ("site", "site"), ("inline", "inline")])
def test_auto_assets_are_inline_in_a_notebook_and_from_the_site_in_the_book(monkeypatch, env, expected):
    if env is None:
        monkeypatch.delenv(live.ASSETS_ENV, raising=False)
    else:
        monkeypatch.setenv(live.ASSETS_ENV, env)
    assert live.resolve_assets("auto") == expected
    assert live.resolve_assets("site") == "site" and live.resolve_assets("inline") == "inline"


def test_a_bad_assets_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv(live.ASSETS_ENV, "cdn")
    with pytest.raises(ValueError, match="MECHLIB_LIVE_ASSETS must be 'site' or 'inline'"):
        live.resolve_assets("auto")


def test_path_ablation_ticks_what_it_is_given(model):
    html = live.path_ablation(model, senders=(0, 3), receivers=["1.2", (1, 0)], kinds="KQ", prefix="p").data
    assert live.spec_of(html)["config"]["cut"] == {"senders": ["0.3"], "receivers": ["1.0", "1.2"], "kinds": ["K", "Q"]}


@pytest.mark.parametrize("kwargs, message", [
    ({"kinds": "X"}, "kinds must be a string of distinct 'Q', 'K', 'V'"),
    ({"kinds": "KK"}, "kinds must be a string of distinct"),
    ({"senders": ["0.7"]}, r"senders\[0\]=\(0, 7\): head 7 does not exist"),
    ({"receivers": ["one"]}, r"receivers\[0\] must be a head name"),
])
def test_path_ablation_refuses_bad_arguments(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        live.path_ablation(model, **kwargs)


def test_composition_explorer_carries_every_pair_and_kind(model):
    html = live.composition_explorer(model, n_baseline=50, prefix="c").data
    config = live.spec_of(html)["config"]
    assert sorted(config["pairs"]) == [f"0.{s}>1.{r}" for s in range(4) for r in range(4)]
    one = config["pairs"]["0.3>1.1"]["K"]
    assert one["score"] == pytest.approx(mechlib.pair_composition_score(model, (0, 3), (1, 1), "K"), abs=1e-5)
    assert len(one["sv"]) == model.cfg.d_head


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "O"}, "kind must be 'Q', 'K' or 'V'"),
    ({"sender": "0.1"}, "give both sender and receiver"),
    ({"sender": "1.1", "receiver": "0.1"}, "must be in a later layer"),
])
def test_composition_explorer_refuses_bad_arguments(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        live.composition_explorer(model, n_baseline=20, **kwargs)


def test_calculator_refuses_bad_sizes():
    with pytest.raises(ValueError, match="n_layers must be at most 96"):
        live.virtual_head_calculator(n_layers=97)
    with pytest.raises(ValueError, match="n_heads"):
        live.virtual_head_calculator(n_heads=0)


def test_term_picker_refuses_unknown_terms(model):
    with pytest.raises(ValueError, match=r"terms_off: unknown term\(s\) \['0.3->0.1'\]"):
        live.term_picker(model, terms_off=["0.3->0.1"])
    assert live.spec_of(live.term_picker(model, terms_off="0.3->1.1").data)["config"]["terms_off"] == ["0.3->1.1"]


# --------------------------------------------------------------------------- which model the page runs


def test_the_bundled_model_is_recognised_by_its_weights_and_loads_the_shipped_file(model):
    spec = live.spec_of(live.head_toggle(model, prefix="b", assets="site").data)
    assert spec["config"]["model"] == mechlib.BUNDLED_MODEL
    assert spec["assets"][0] == {"file": live.weights_file(mechlib.BUNDLED_MODEL)}


@pytest.mark.parametrize("entry", ["head_toggle", "path_ablation", "term_picker"])
def test_another_model_travels_with_its_widget_and_is_the_one_the_page_runs(random_model, entry):
    spec = live.spec_of(getattr(live, entry)(random_model, prefix="r", assets="site").data)
    name = spec["config"]["model"]
    assert name.startswith("model-") and spec["assets"][0]["file"] == live.weights_file(name)
    header, tensors = live.read_weights_js(spec["assets"][0]["text"])
    assert header["config"]["n_layers"] == 3 and header["config"]["d_vocab"] == 20
    for t in live.TENSORS:  # the given model's weights, as float32, not the bundled ones
        assert np.array_equal(tensors[t], getattr(random_model, t).detach().numpy().astype("<f4")), t


def test_a_training_checkpoint_of_the_bundled_model_is_not_taken_for_it():
    early = mechlib.load_model(step=460)  # same architecture, other weights
    assert live.page_weights(early)[0] != mechlib.BUNDLED_MODEL


def _changed(model, **cfg):
    """A stand-in for a model the page cannot run: ``model``'s config with ``cfg`` changed."""
    import copy
    from types import SimpleNamespace

    new = copy.copy(model.cfg)
    for k, v in cfg.items():
        setattr(new, k, v)
    return SimpleNamespace(cfg=new, **{t: getattr(model, t) for t in live.TENSORS})


@pytest.mark.parametrize("cfg, why", [
    ({"attn_only": False}, "it has MLP layers"),
    ({"normalization_type": "LN"}, "it has LayerNorm"),
    ({"positional_embedding_type": "rotary"}, "its positions are 'rotary'"),
])
@pytest.mark.parametrize("entry, kwargs", [("head_toggle", {"backend": "page"}), ("path_ablation", {"backend": "page"}),
                                           ("term_picker", {"backend": "page"})])
def test_a_model_the_page_cannot_run_is_refused_naming_the_argument(model, cfg, why, entry, kwargs):
    # (their default backend asks the kernel instead: tests/views/test_live_kernel.py)
    with pytest.raises(ValueError, match=rf"^model: the page cannot run this model, because {why}.*attention-only models"):
        getattr(live, entry)(_changed(model, **cfg), **kwargs)


def test_a_model_too_big_for_the_page_is_refused(model):
    from types import SimpleNamespace

    big = _changed(model)
    big.W_E = SimpleNamespace(shape=(50257, 768))  # GPT-2's embedding alone
    with pytest.raises(ValueError, match=r"model: .* it has [\d,]+ parameters; the page runs at most 2,000,000"):
        live.head_toggle(big, backend="page")
