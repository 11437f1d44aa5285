"""Every public function on every device: the CPU always, CUDA and MPS where present.

The rule (README, "Devices"; :mod:`mechlib.validate`): tokens may come from any device
(``repeated_tokens`` makes them on the CPU); activations (logits, patterns, expansion
terms) stay on the model's device; summaries (score tables, losses, attributions, the
widgets' state) come back on the CPU; functions of tensors alone answer on their input's
device. Each case below runs one public function on a model on ``device`` with tokens
on the CPU; the tests check where the answer lives and compare it with the float64
reference of :mod:`mechlib.teaching.reference`, computed on the CPU.

On a machine without a GPU the CUDA cases are skipped (the reason is shown with
``pytest -rs``). What the CPU can still check: ``test_no_tensor_made_on_the_default_device``
runs every case with torch's default device set to ``meta``, so any tensor the library
makes without naming its device -- which on a GPU would land on the CPU beside CUDA
weights -- fails there. Some CPU operations quietly accept a meta operand (a matmul, a
``gather`` index) and return garbage instead of raising; the exact comparison with the
plain CPU run (``atol=0, rtol=0``, same operations, one thread) is what catches those, so
it must stay exact.
"""
from __future__ import annotations

import math

import pytest
import torch
from transformer_lens import FactoredMatrix

import mechlib
from mechlib.teaching import reference

CUDA = torch.cuda.is_available()
MPS = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine")),
    pytest.param("mps", marks=pytest.mark.skipif(not MPS, reason="no MPS device on this machine")),
]

S, R = (0, 1), (1, 2)  # a sender and a receiver (valid in every model below)


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


def _cases(model, batch) -> dict:
    """name -> (result, where it must live: "model", "cpu", "float" or "hooks").

    Every call takes ``batch.tokens`` on the CPU, whatever the model's device.
    """
    t = batch.tokens
    logits = model(t.to(_device_of(model)))
    names = ["blocks.0.attn.hook_z", "blocks.1.hook_resid_pre", "blocks.1.attn.hook_z"]
    _, cache = model.run_with_cache(t.to(logits.device), names_filter=lambda n: n in names)
    patterns = mechlib.attention_patterns(model, t)
    expansion = mechlib.path_expansion(model, t)
    relay = mechlib.relay_batch(model, batch=4)  # CPU tokens, as the book makes them
    out = {
        "attention_patterns": (patterns, "model"),
        "prev_token_scores": (mechlib.prev_token_scores(model, t), "cpu"),
        "attention_by_offset": (mechlib.attention_by_offset(model, t, 3), "cpu"),
        "head_roles": ({mechlib.head_label(hd): [r.score, r.induction, *r.by_offset]
                        for hd, r in mechlib.head_roles(model, batch).items()}, "float"),
        "induction_scores": (mechlib.induction_scores(model, t), "cpu"),
        "next_token_scores": (mechlib.next_token_scores(model, t), "cpu"),
        "duplicate_token_scores": (mechlib.duplicate_token_scores(model, t), "cpu"),
        "induction_scores_from_patterns": (mechlib.induction_scores_from_patterns(patterns, t), "model"),
        "per_token_loss": (mechlib.per_token_loss(logits, t), "model"),
        "repeat_loss": (mechlib.repeat_loss(logits, t, batch.half_len, batch.prefix_len), "float"),
        "RepeatedBatch.loss": (batch.loss(logits), "float"),
        "RelayBatch.loss": (relay.loss(model(relay.tokens.to(logits.device))), "float"),
        "ov_circuit": (mechlib.ov_circuit(model, S), "model"),
        "qk_circuit": (mechlib.qk_circuit(model, R), "model"),
        "receiver_circuit": (mechlib.receiver_circuit(model, R, "K"), "model"),
        "full_ov_circuit": (mechlib.full_ov_circuit(model, S), "model"),
        "full_qk_circuit": (mechlib.full_qk_circuit(model, R), "model"),
        "virtual_ov": (mechlib.virtual_ov(model, S, R), "model"),
        "composition_score": (mechlib.composition_score(mechlib.ov_circuit(model, S),
                                                        mechlib.receiver_circuit(model, R, "K")), "float"),
        "composition_scores": (mechlib.composition_scores(model, "K"), "cpu"),
        "composition_null": (mechlib.composition_null(model, "Q", seed=1), "cpu"),
        "pair_composition_score": (mechlib.pair_composition_score(model, S, R, "Q"), "float"),
        "run_with_ablation": (mechlib.run_with_ablation(model, t, [S, (0, 0)]), "model"),
        "run_with_ablation mean": (mechlib.run_with_ablation(model, t, [S], mode="mean"), "model"),
        "path_ablation": (mechlib.path_ablation(model, t, S, R, "K"), "model"),
        "path_ablation mean": (mechlib.path_ablation(model, t, [S], [R], "V", mode="mean"), "model"),
        "path_ablation_losses": (mechlib.path_ablation_losses(model, batch, S, R), "float"),
        "path_ablation freeze_ln": (mechlib.path_ablation(model, t, S, R, "K", freeze_ln=True), "model"),
        "attention_patterns fwd_hooks": (mechlib.attention_patterns(
            model, t, fwd_hooks=mechlib.path_ablation_hooks(model, t, S, R, "K", freeze_ln=True)), "model"),
        "path_ablation_hooks": (model.run_with_hooks(
            t.to(logits.device), fwd_hooks=mechlib.path_ablation_hooks(model, t, S, R, "Q")), "model"),
        "ablation_hooks": (model.run_with_hooks(
            t.to(logits.device), fwd_hooks=mechlib.ablation_hooks(model, [S])), "model"),
        "head_output": (mechlib.head_output(model, cache, S), "model"),
        "path_expansion": (expansion.total(), "model"),
        "attention_score_terms": (mechlib.attention_score_terms(model, t, R).terms, "model"),
        "AttentionScoreTerms.margins": (mechlib.attention_score_terms(model, t, R).margins(
            list(range(10, 17)), list(range(4, 11))), "float"),
        "PathExpansion.sizes": (expansion.sizes(), "float"),
        "correct_token_attribution": (mechlib.correct_token_attribution(expansion, batch.mask), "float"),
        "correct_token_attribution all": (mechlib.correct_token_attribution(expansion), "float"),
        "path_expansion float32": (mechlib.path_expansion(model, t, dtype=torch.float32).total(), "model"),
        "PathExpansion.by_kind": (expansion.by_kind(), "model"),
        "composition_from_cache": (mechlib.composition_from_cache(model, cache, "V"), "cpu"),
        "composition_from_cache Q": (mechlib.composition_from_cache(model, cache, "Q"), "cpu"),
        "composition_from_cache cpu": (mechlib.composition_from_cache(model, cache.to("cpu"), "K"), "cpu"),
        "head_output cpu": (mechlib.head_output(model, cache.to("cpu"), R), "cpu"),
    }
    toggle = mechlib.HeadToggleState(model, t, batch.half_len, batch.prefix_len)
    on = [hd for hd in mechlib.all_heads(model) if hd != S]
    out["HeadToggleState"] = (toggle.update(on), "cpu")
    out["HeadToggleState default"] = (mechlib.HeadToggleState(model).clean, "cpu")
    explorer = mechlib.CompositionExplorerState(model, n_baseline=50)
    out["CompositionExplorerState"] = (explorer.update(S, R, "K"), "cpu")
    return out


#: public names with no model and no tensor computation to place on a device
DEVICE_FREE = {
    "Head", "head_label", "parse_head", "chain_label", "all_heads", "layer_heads",
    "count_virtual_heads", "enumerate_virtual_heads", "check_expandable",
    "BUNDLED_MODEL", "InductionConfig", "ModelUnavailableError",
    # CPU by design: seeded data and baselines are the same on every machine
    "repeated_tokens", "repeat_mask", "repeated_batch", "RepeatedBatch", "composition_baseline",
    "random_model", "train_induction_model", "relay_batch", "RelayBatch", "RELAY_MODEL", "RelayConfig",
    "train_relay_model",
    # the hooks themselves, and the tables the cases return (exercised through them)
    "zero_ablation_hook", "mean_ablation_hook", "PathExpansion", "AttentionScoreTerms",
    # models: the device tests below
    "load_model", "load_checkpoint", "save_model",
    # flags and a folder path read off a model or the installed package: no tensors
    "MINILM", "minilm_folder", "lm_head_trained", "is_causal", "ModelInfo", "model_info",
    # the yardstick: a constant and functions of tensors alone (answer on their input's device)
    "ABOVE_BASELINE_SD", "baseline_sd", "percentile_within",
    # needs a model with LayerNorm (test_ln_fold: tiny BERT and GPT-2); float64 on the CPU by design
    "folded_composition_scores",
    # score-table helpers: test_head_helpers_take_tables_from_any_device
    "ranked_heads", "top_head", "heads_above", "top_pair",
    # roles: a dataclass, and a filter over head_roles' result
    "HeadRole", "heads_with_role",
    # the circuit forming: a list of steps, a dataclass, a function of one curve (numbers, not
    # a model), and training_dynamics, which loads the bundled checkpoints itself on the CPU
    # (the book's numbers) and returns CPU tensors
    "checkpoint_steps", "TrainingDynamics", "halfway_step", "training_dynamics",
}


def _tensors(x):
    """Every tensor inside a result (a tensor, FactoredMatrix, dict, list or float)."""
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, FactoredMatrix):
        yield x.A
        yield x.B
    elif isinstance(x, dict):
        for v in x.values():
            yield from _tensors(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _tensors(v)


def _numbers(x):
    """A result as one float64 CPU vector, for comparing results across devices."""
    if isinstance(x, FactoredMatrix):
        return x.AB.detach().cpu().double().flatten()
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().flatten()
    if isinstance(x, (int, float)):
        return torch.tensor([float(x)], dtype=torch.float64)
    if isinstance(x, dict):
        parts = [_numbers(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))]
        return torch.cat([p for p in parts if p is not None]) if parts else None
    if isinstance(x, (list, tuple)):
        parts = [_numbers(v) for v in x]
        parts = [p for p in parts if p is not None]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
    return None


@pytest.fixture(scope="module", params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(scope="module")
def bundled_on(device):
    return mechlib.load_model(device=device)


@pytest.fixture(scope="module")
def random_on(device):
    """A 3-layer untrained model with every bias non-zero, moved to ``device``."""
    return mechlib.random_model(n_layers=3).to(device, print_details=False)


@pytest.fixture(scope="module")
def batch():
    return mechlib.repeated_batch(mechlib.load_model(), batch=8, half_len=7, prefix_len=3, seed=5)


@pytest.fixture(scope="module")
def cases(bundled_on, batch):
    return _cases(bundled_on, batch)


@pytest.fixture(scope="module")
def cpu_cases(model, batch):
    return _cases(model, batch)


def test_cases_cover_every_public_function(cases):
    """Each public name is run by the cases or listed (with its reason) as device-free."""
    covered = {name.split(" ")[0].split(".")[0] for name in cases}
    missing = set(mechlib.__all__) - covered - DEVICE_FREE
    assert not missing, f"public names with no device case: {sorted(missing)}"


def test_load_model_puts_weights_on_the_device(bundled_on, device):
    devices = {p.device.type for p in bundled_on.parameters()}
    assert devices == {device.type}
    assert torch.device(bundled_on.cfg.device).type == device.type


def test_each_result_lives_where_the_rule_says(cases, device):
    wrong = {}
    for name, (result, where) in cases.items():
        if where == "float":
            values = result.values() if isinstance(result, dict) else [result]
            if not all(isinstance(v, float) for v in values if not isinstance(v, list)):
                wrong[name] = "not Python floats"
            continue
        expected = device.type if where == "model" else "cpu"
        places = {x.device.type for x in _tensors(result)}
        if places != {expected}:
            wrong[name] = f"on {sorted(places)}, expected {expected}"
    assert not wrong, wrong


def test_results_agree_across_devices(cases, cpu_cases, device):
    """The same numbers on every device (float32 arithmetic: to 1e-4)."""
    for name, (result, _) in cases.items():
        torch.testing.assert_close(_numbers(result), _numbers(cpu_cases[name][0]), atol=1e-4, rtol=1e-4,
                                   msg=lambda m, name=name: f"{name} on {device}: {m}")


def test_forward_results_match_the_float64_reference(bundled_on, batch):
    """Clean and ablated logits and patterns, from a model on the device, against the float64 CPU loops."""
    t = batch.tokens
    ref_logits, ref_patterns = reference.forward(bundled_on, t, return_patterns=True)
    torch.testing.assert_close(mechlib.attention_patterns(bundled_on, t).cpu().double(), ref_patterns,
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mechlib.run_with_ablation(bundled_on, t, [S]).cpu().double(),
                               reference.forward(bundled_on, t, zero_heads=[S]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mechlib.path_ablation(bundled_on, t, S, R, "K").cpu().double(),
                               reference.forward(bundled_on, t, remove=([S], [R], "K")), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mechlib.induction_scores(bundled_on, t).double(),
                               reference.induction_score_brute_force(ref_patterns, t), atol=1e-5, rtol=1e-4)
    assert math.isclose(batch.loss(bundled_on(t.to(_device_of(bundled_on)))), batch.loss(ref_logits), abs_tol=1e-4)


@pytest.mark.parametrize("kind", ["Q", "K", "V"])
def test_composition_scores_match_the_float64_reference(random_on, kind):
    torch.testing.assert_close(mechlib.composition_scores(random_on, kind).double(),
                               reference.composition_scores64(random_on, kind), atol=1e-5, rtol=1e-4)


def test_expansion_sums_to_the_logits_on_the_device(random_on):
    """The path expansion of a 3-layer model with biases adds up to its own logits, on its device."""
    t = mechlib.repeated_tokens(random_on.cfg.d_vocab, 4, 5, seed=1, prefix_len=2)
    expansion = mechlib.path_expansion(random_on, t)
    logits = reference.forward(random_on, t)
    # float64 terms from float32 attention patterns: the sum agrees to float32 precision
    torch.testing.assert_close(expansion.total().cpu().double(), logits, atol=1e-6, rtol=1e-5)


def test_the_widgets_take_a_model_on_the_device(bundled_on, batch):
    """The live widgets, built from a model on the device: in the page, and asking the kernel."""
    from mechlib.views import live
    from mechlib.views.live import kernel

    t = batch.tokens
    html = live.head_toggle(bundled_on, t[0], half_len=batch.half_len, prefix_len=batch.prefix_len, assets="site")
    assert live.spec_of(html.data)["widget"] == "headToggle"
    reply, buffers = kernel.kernel_run(bundled_on, {"type": "run", "id": 1, "tokens": t[0].tolist(), "heads_off": ["0.0"]})
    assert reply["n"] == t.shape[1] and len(buffers) == 2
    assert live.composition_explorer(bundled_on, n_baseline=50) is not None


def test_the_diagrams_take_a_model_on_the_device(bundled_on, batch):
    """The diagrams compute their labels, weights and prediction on the model's device."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mechlib.views import diagrams

    ax = diagrams.draw_residual_stream(bundled_on, (0, 3), (1, 1))
    plt.close(ax.figure)
    ax = diagrams.draw_induction_circuit(bundled_on, batch.tokens[0], query=batch.boundaries[1])
    assert any(t.get_gid() == "prediction" for t in ax.texts)
    plt.close(ax.figure)


def test_head_helpers_take_tables_from_any_device(cases, device):
    scores = cases["induction_scores"][0].to(device)
    ref = cases["induction_scores"][0]
    assert mechlib.top_head(scores) == mechlib.top_head(ref)
    assert mechlib.ranked_heads(scores) == mechlib.ranked_heads(ref)
    assert mechlib.heads_above(scores, 0.3) == mechlib.heads_above(ref, 0.3)
    table = cases["composition_scores"][0]
    assert mechlib.top_pair(table.to(device)) == mechlib.top_pair(table)


def test_save_and_load_round_trip_from_the_device(bundled_on, device, tmp_path_factory):
    path = mechlib.save_model(bundled_on, tmp_path_factory.mktemp("ckpt") / "m")
    saved = torch.load(path, weights_only=True)
    assert {v.device.type for v in saved.values()} == {"cpu"}  # a checkpoint loads anywhere
    again = mechlib.load_checkpoint(path, device=device)
    for (n, a), (_, b) in zip(bundled_on.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), n


def test_a_training_checkpoint_loads_onto_the_device(device):
    on_cpu = mechlib.load_model(step=500)
    there = mechlib.load_model(step=500, device=device)
    assert there.W_K.device.type == device.type
    for (n, a), (_, b) in zip(on_cpu.state_dict().items(), there.state_dict().items()):
        assert torch.equal(a, b.cpu()), n


def test_no_tensor_made_on_the_default_device(model, batch, cpu_cases):
    """Run every case with torch's default device set to ``meta``: a tensor that the library
    makes without naming its device lands there and meets the CPU weights, which fails --
    on a GPU the same tensor would be made on the CPU beside CUDA weights."""
    with torch.device("meta"):
        meta_cases = _cases(model, batch)
    for name, (result, _) in meta_cases.items():
        assert all(x.device.type != "meta" for x in _tensors(result)), name
        torch.testing.assert_close(_numbers(result), _numbers(cpu_cases[name][0]), atol=0, rtol=0)


@pytest.mark.parametrize("bad,err,match", [
    ("gpu", ValueError, "is not a device"),
    (3.5, TypeError, "device must be"),
    (f"cuda:{torch.cuda.device_count()}" if CUDA else "cuda", ValueError, "CUDA"),
    ("xla", ValueError, "supports 'cpu', 'cuda' and 'mps'"),
])
def test_load_model_rejects_a_device_it_cannot_use(bad, err, match):
    with pytest.raises(err, match=match):
        mechlib.load_model(device=bad)
