"""The exercise notebooks, their generator and the self-checks.

The notebooks themselves are executed by nbval (``pytest --nbval solutions exercises``);
here we check how they are made and that every self-check tells a right answer, a
placeholder and each kind of wrong answer apart, with a message that says what is wrong.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
import torch

import mechlib
from mechlib.teaching import checks, registry
from mechlib.teaching.inputs import bundled

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = [
    "01_beyond_one_layer", "02_v_composition", "03_k_composition", "04_q_composition", "05_virtual_attention_heads",
    "05b_circuit_forms", "06_two_layer_expansion", "07_combinatorial_richness", "08_transformerlens_vocabulary",
    "A1_real_transformer", "C1_find_the_induction_circuit",
]
def _make_exercises():
    spec = importlib.util.spec_from_file_location("make_exercises", ROOT / "scripts" / "make_exercises.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(folder: str, name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / folder / f"{name}.ipynb", as_version=4)


# --------------------------------------------------------------------------- notebooks


def test_chapters_1_to_8_and_the_appendix_have_an_exercise_and_a_solution_notebook():
    assert sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb")) == NOTEBOOKS
    assert sorted(p.stem for p in (ROOT / "exercises").glob("*.ipynb")) == NOTEBOOKS
    assert list(registry.NOTEBOOKS) == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_exercises_are_generated_from_solutions_without_drift(name):
    make = _make_exercises()
    generated = make.generate_exercise(_read("solutions", name))
    stored = _read("exercises", name)
    assert make.comparable(stored) == make.comparable(generated), (
        f"exercises/{name}.ipynb differs from what solutions/{name}.ipynb generates: "
        "run python scripts/make_exercises.py"
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_exercise_notebooks_hold_placeholders_not_solutions(name):
    nb = _read("exercises", name)
    text = "\n".join(c.source for c in nb.cells)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    for ex in registry.EXERCISES[name]:
        cell = next(c for c in nb.cells if c.cell_type == "code" and f"def {ex.function}(" in c.source)
        assert "raise NotImplementedError()" in cell.source, ex.id


def test_there_are_at_least_20_exercises_each_rated():
    assert len(registry.ALL_EXERCISES) >= 20
    ids = [ex.id for ex in registry.ALL_EXERCISES]
    assert len(set(ids)) == len(ids)
    for ex in registry.ALL_EXERCISES:
        assert 1 <= ex.difficulty <= 5 and 1 <= ex.importance <= 5 and ex.minutes > 0, ex.id


def test_an_exercise_is_named_in_one_place():
    """Its id appears once in the package: in its declaration, in its notebook's module of
    mechlib/teaching/exercises (the registry and the checks are derived from there)."""
    package = ROOT / "mechlib" / "teaching"
    sources = {p.relative_to(package): p.read_text() for p in package.rglob("*.py")}
    for ex in registry.ALL_EXERCISES:
        where = {p: n for p, text in sources.items() if (n := text.count(f"'{ex.id}'") + text.count(f'"{ex.id}"'))}
        assert list(where.values()) == [1] and next(iter(where)).parent.name == "exercises", (ex.id, where)


def test_the_checks_are_derived_from_the_registry():
    assert checks.__all__ == [f"check_{ex.function}" for ex in registry.ALL_EXERCISES]
    for ex in registry.ALL_EXERCISES:
        check = getattr(checks, f"check_{ex.function}")
        assert check.__name__ == f"check_{ex.function}" and ex.id in check.__doc__


@pytest.mark.parametrize("folder", ["solutions", "exercises"])
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_exercise_has_its_ratings_a_hint_and_a_check_in_the_notebook(folder, name):
    cells = _read(folder, name).cells
    for ex in registry.EXERCISES[name]:
        start = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and f"Exercise {ex.id}" in c.source)
        assert ex.header() in cells[start].source, f"{ex.id}: ratings line differs from mechlib.teaching.registry"
        end = next((i for i, c in enumerate(cells[start + 1:], start + 1)
                    if c.cell_type == "markdown" and "## Exercise" in c.source), len(cells))
        section = cells[start:end]
        assert any(c.cell_type == "markdown" and "<details><summary>Hint" in c.source for c in section), ex.id
        # the capstone's checks also take the learner's model: check_f(f, model=model)
        assert any(c.cell_type == "code" and re.search(rf"checks\.check_{ex.function}\({ex.function}[,)]", c.source)
                   for c in section), ex.id


@pytest.mark.parametrize("name", ["03_k_composition", "05_virtual_attention_heads", "06_two_layer_expansion"])
def test_widget_cell_is_last_under_a_play_heading_and_hides_no_failure(name):
    # a live widget, called plainly: a crash fails the notebook's run, and nbval compares its output
    cells = _read("exercises", name).cells
    assert cells[-2].cell_type == "markdown" and "## Play" in cells[-2].source
    assert cells[-1].cell_type == "code" and "from mechlib.views import live" in cells[-1].source
    assert "except" not in cells[-1].source and "nbval-ignore-output" not in cells[-1].metadata.get("tags", [])


# --------------------------------------------------------------------------- the checks

def _stub(*args, **kwargs):
    raise NotImplementedError()


def _patterns_prev(pattern):
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def _induction(pattern, half_len, prefix_len):
    q = torch.arange(prefix_len + half_len, prefix_len + 2 * half_len)
    return pattern[:, :, q, q - half_len + 1].mean(dim=(0, -1))


def _term(model, tokens, name):
    return mechlib.path_expansion(model, tokens).terms[name].float()


def _order(first, second, tolerance):
    return "with" if abs(first - second) <= tolerance else ("before" if first < second else "after")


def _repeat_rise(m, batch, s, r):
    return mechlib.path_ablation_losses(m, batch, s, r, "K", freeze_ln=True)["K"] - batch.loss(m(batch.tokens))


def _circuit(m, prev, ind):
    k = mechlib.composition_scores(m, "K")
    pairs = [(max((s for s in prev if s[0] < r[0]), key=lambda s: float(k[s][r])), r)
             for r in ind if any(s[0] < r[0] for s in prev)]
    return {"previous_token": prev, "induction": ind, "k_composition": pairs}


# Library-based answers, written independently of the solution notebooks: each check must pass them.
# --- investigation 01-04: library answers to the investigation exercises (findings, not formulas)


def _inv_loss(logits, tokens, mask):
    return mechlib.per_token_loss(logits, tokens)[mask].double().mean().item()


def _inv_best(rise: dict):
    best = max(rise, key=rise.get)
    return best, rise[best]


def _inv_writer(m, t):
    _, cache = m.run_with_cache(t)
    tok = cache["hook_embed"].norm(dim=-1).mean()
    return _inv_best({h: (mechlib.head_output(m, cache, h).norm(dim=-1).mean() / tok).item()
                      for h in mechlib.layer_heads(m, 0)})


def _inv_collapse(m, t):
    clean = mechlib.induction_scores(m, t)
    head = mechlib.top_head(clean, layer=m.cfg.n_layers - 1)
    off = mechlib.induction_scores(m, t, fwd_hooks=mechlib.ablation_hooks(m, mechlib.layer_heads(m, 0)))
    return head, clean[head].item(), off[head].item()


def _inv_cut(m, t, mask, senders, kind):
    clean = _inv_loss(m(t), t, mask)
    return _inv_loss(mechlib.path_ablation(m, t, senders, mechlib.layer_heads(m, 1), kind), t, mask) - clean


def _inv_top(m, t, mask):
    L0, L1 = mechlib.layer_heads(m, 0), mechlib.layer_heads(m, 1)
    runs = (mechlib.path_ablation(m, t, L0, L1, "K"), mechlib.run_with_ablation(m, t, L0))
    return tuple(x[:, :-1].softmax(-1)[mask].max(-1).values.mean().item() for x in runs)


INVESTIGATION_REFERENCE = {
    "01.1": _inv_writer,
    "01.2": _inv_collapse,
    "02.6": lambda m, t, mask: _inv_best({k: _inv_cut(m, t, mask, mechlib.layer_heads(m, 0), k) for k in "QKV"}),
    "03.5": lambda m, t, mask: _inv_best({s: _inv_cut(m, t, mask, [s], "K") for s in mechlib.layer_heads(m, 0)}),
    "03.6": _inv_top,
    "04.4": lambda m, t, mask: _inv_best({s: _inv_cut(m, t, mask, [s], "Q") for s in mechlib.layer_heads(m, 0)}),
}
# --- end of investigation 01-04


REFERENCE = {
    "02.1": lambda m, h: mechlib.ov_circuit(m, h).AB,
    "02.2": lambda m, s, r: mechlib.virtual_ov(m, s, r).AB,
    "02.3": lambda M, rtol=1e-5: int(torch.linalg.matrix_rank(M.double(), rtol=rtol)) if M.abs().max() > 0 else 0,
    "02.4": lambda A, B: float(mechlib.composition_score(A, B)),
    "02.5": lambda d_model, d_head, n_samples=1000, seed=0: mechlib.composition_baseline(
        d_model, d_head, n_samples=n_samples, seed=seed + 99),
    "03.1": lambda m, s, r: mechlib.pair_composition_score(m, s, r, "K"),
    "03.2": lambda m, kind: mechlib.composition_scores(m, kind),
    "03.3": lambda m, t, s, r: mechlib.path_ablation(m, t, s, r, "K"),
    "03.4": lambda m, t, s, r: mechlib.attention_score_terms(m, t, r).terms["embed", mechlib.head_label(s)].float(),
    "04.1": lambda m, s, r: mechlib.pair_composition_score(m, s, r, "Q"),
    "04.2": lambda m, s, r, side: (mechlib.ov_circuit(m, s) @ mechlib.qk_circuit(m, r)).AB if side == "Q"
    else (mechlib.qk_circuit(m, r) @ mechlib.ov_circuit(m, s).T).AB,
    "04.3": lambda m, t, s, r, kind: mechlib.path_ablation(m, t, s, r, kind),
    "05.1": _patterns_prev,
    "05.2": _induction,
    "05.3": mechlib.zero_ablation_hook,
    "05.4": mechlib.mean_ablation_hook,
    "05.5": lambda m, t, heads, half_len, prefix_len=0, mode="zero": mechlib.repeat_loss(
        mechlib.run_with_ablation(m, t, heads, mode) if heads else m(t), t, half_len, prefix_len),
    "06.1": lambda m, t: _term(m, t, "direct"),
    "06.2": lambda m, t, h: _term(m, t, mechlib.head_label(h)),
    "06.3": lambda m, t, s, r: _term(m, t, mechlib.chain_label((s, r), sep="->")),
    "06.4": lambda m, t: mechlib.path_expansion(m, t).total().float(),
    "07.1": lambda L, H: mechlib.count_virtual_heads(L, H, 2),
    "07.2": lambda L, H: list(mechlib.enumerate_virtual_heads(L, H, 2)),
    "07.3": lambda L, H, k: mechlib.count_virtual_heads(L, H, k),
    "07.4": lambda L, H: (1 + H) ** L,
    "05b.1": lambda steps, values: mechlib.halfway_step(steps, values),
    "05b.2": lambda steps, a, b, tol: _order(mechlib.halfway_step(steps, a), mechlib.halfway_step(steps, b), tol),
    "08.1": lambda m, name: eval("m." + re.sub(r"\.(\d+)", r"[\1]", name)),  # noqa: S307 -- fixed names
    "08.2": lambda m, t, layer: torch.stack([mechlib.attention_score_terms(m, t, (layer, h)).total()
                                             for h in range(m.cfg.n_heads)], 1),
    "08.3": lambda m, t, name: m.run_with_cache(t)[1][name],
    "08.4": lambda m, cache, layer: torch.stack(
        [mechlib.head_output(m, cache, (layer, h)) for h in range(m.cfg.n_heads)], dim=2),
    "A1.1": lambda m, t: mechlib.top_head(mechlib.prev_token_scores(m, t)),
    "A1.2": lambda m, s, n: mechlib.ranked_heads(mechlib.composition_scores(m, "K")[s])[:n],
    "A1.3": lambda m, t, s, r: mechlib.attention_patterns(
        m, t, fwd_hooks=mechlib.path_ablation_hooks(m, t, s, r, "K", freeze_ln=True))[r[0], :, r[1]],
    **INVESTIGATION_REFERENCE,
    "C1.1": lambda m, t, th: mechlib.heads_above(mechlib.prev_token_scores(m, t), th),
    "C1.2": lambda m, t, th: mechlib.heads_above(mechlib.induction_scores(m, t), th),
    "C1.3": lambda m, r, n: mechlib.ranked_heads(mechlib.composition_scores(m, "K")[: r[0], :, r[0], r[1]])[:n],
    "C1.4": lambda m, t, s, r: _repeat_rise(m, mechlib.RepeatedBatch(t, t.shape[1] // 2, 0), s, r),
    "C1.5": lambda m, t, rep, a, b: _circuit(m, mechlib.heads_above(mechlib.prev_token_scores(m, t), a),
                                             mechlib.heads_above(mechlib.induction_scores(m, rep), b)),
}


# --- investigation 05-08: library-based answers of the investigation exercises of chapters 5 to 8


class _Scored:
    def __init__(self, tokens, mask):
        self.tokens, self.mask = tokens, mask

    def loss(self, logits):
        return mechlib.per_token_loss(logits, self.tokens)[self.mask].mean().item()


def _route(m, t, mask):
    b = _Scored(t, mask)
    cuts = mechlib.path_ablation_losses(m, b, mechlib.layer_heads(m, 0), mechlib.layer_heads(m, 1))
    kind = max(cuts, key=cuts.get)
    return kind, cuts[kind] - b.loss(m(t))


def _hedging(m, t, mask, heads):
    b = _Scored(t, mask)
    out = []
    for logits in (m(t), mechlib.run_with_ablation(m, t, heads)):
        out.append((b.loss(logits), logits[:, :-1].softmax(-1).max(-1).values[mask].mean().item()))
    return out[1][0] - out[0][0], out[1][1] - out[0][1]


def _carrier(m, t, mask):
    credit = mechlib.correct_token_attribution(mechlib.path_expansion(m, t), mask)
    best = max(credit, key=credit.get)
    return best, credit[best] / sum(credit.values())


def _costliest_pair(m, t, mask, kind="K"):
    b = _Scored(t, mask)
    pairs = mechlib.enumerate_virtual_heads(m.cfg.n_layers, m.cfg.n_heads)
    return max(pairs, key=lambda p: mechlib.path_ablation_losses(m, b, [p[0]], [p[1]], kinds=kind)[kind])


def _top_direct(m, t, mask):
    _, cache = m.run_with_cache(t)
    credit = {}
    for head in mechlib.all_heads(m):
        lg = (mechlib.head_output(m, cache, head) @ m.W_U)[:, :-1]
        credit[head] = (lg.gather(-1, t[:, 1:, None])[..., 0] - lg.mean(-1))[mask].mean().item()
    best = max(credit, key=credit.get)
    return best, credit[best]


REFERENCE.update({"05.6": _route, "05.7": _hedging, "06.5": _carrier, "07.5": _costliest_pair, "08.5": _top_direct})


def test_every_exercise_has_a_reference_answer_here():
    assert set(REFERENCE) == {ex.id for ex in registry.ALL_EXERCISES}


@pytest.mark.parametrize("ex", registry.ALL_EXERCISES, ids=lambda ex: ex.id)
def test_check_passes_the_library_answer(ex, capsys):
    result = ex.check(REFERENCE[ex.id])
    assert result.status == "passed", result.message
    assert capsys.readouterr().out.strip() == str(result)


@pytest.mark.parametrize("ex", registry.ALL_EXERCISES, ids=lambda ex: ex.id)
def test_check_reports_a_placeholder_as_not_attempted(ex, capsys):
    result = ex.check(_stub)
    assert result.status == "not attempted"
    assert "NotImplementedError" in result.message
    assert "not attempted" in capsys.readouterr().out


@pytest.mark.parametrize("ex", registry.ALL_EXERCISES, ids=lambda ex: ex.id)
def test_check_reports_an_exception_without_a_stack_trace(ex):
    def broken(*args, **kwargs):
        raise KeyError("oops")

    result = ex.check(broken, verbose=False)
    assert result.status == "failed"
    assert "raised KeyError: 'oops'" in result.message and "Traceback" not in result.message


def test_a_capstone_check_also_runs_on_the_learners_model():
    model = bundled()
    assert checks.check_previous_token_heads(REFERENCE["C1.1"], verbose=False, model=model).status == "passed"
    result = checks.check_induction_heads(lambda m, t, th: [(0, 0)], verbose=False, model=model)
    assert result.status == "failed"
    with pytest.raises(TypeError, match="takes no model"):
        checks.check_count_pairs(REFERENCE["07.1"], verbose=False, model=model)


def test_check_result_is_structured():
    r = checks.check_count_pairs(REFERENCE["07.1"], verbose=False)
    assert (r.exercise, r.function, r.status, r.passed) == ("07.1", "count_pairs", "passed", True)
    assert r.to_dict() == {"exercise": "07.1", "function": "count_pairs", "status": "passed", "message": r.message}


def test_wrong_type_is_named():
    r = checks.check_ov_matrix(lambda m, h: mechlib.ov_circuit(m, h), verbose=False)
    assert r.status == "failed"
    assert "wrong type: expected a torch.Tensor, got a FactoredMatrix" in r.message
    r = checks.check_count_pairs(lambda L, H: float(H * H * L * (L - 1) / 2), verbose=False)
    assert "wrong type: expected an int, got float" in r.message


def test_wrong_shape_gives_expected_and_got():
    r = checks.check_ov_matrix(lambda m, h: m.W_V[h[0], h[1]], verbose=False)
    assert r.status == "failed"
    assert "wrong shape: expected (64, 64), got (64, 16)" in r.message
    assert "head 0.0 of the bundled induction-2l model" in r.message


def test_differing_values_give_index_expected_got_and_tolerance():
    def off_by_one_entry(m, h):
        M = mechlib.ov_circuit(m, h).AB.clone()
        M[3, 5] += 1.0
        return M

    r = checks.check_ov_matrix(off_by_one_entry, verbose=False)
    assert r.status == "failed"
    expected = mechlib.ov_circuit(bundled(), (0, 0)).AB[3, 5].item()
    assert f"values differ at index (3, 5): expected {expected:.6g}, got {expected + 1:.6g}" in r.message
    assert "tolerance |got - expected| <= 1e-05 + 0.0001 * |expected|" in r.message
    assert "1 of 4096 entries differ" in r.message


def test_common_mistakes_get_a_hint():
    reversed_order = checks.check_composed_ov(
        lambda m, s, r: (mechlib.ov_circuit(m, r) @ mechlib.ov_circuit(m, s)).AB, verbose=False)
    assert "the sender acts first" in reversed_order.message
    q_for_k = checks.check_k_composition_score(
        lambda m, s, r: mechlib.pair_composition_score(m, s, r, "Q"), verbose=False)
    assert "this is the Q-composition score" in q_for_k.message
    duplicate = checks.check_induction_score(_shifted_induction, verbose=False)
    assert "duplicate-token score" in duplicate.message
    everywhere = checks.check_mean_ablation_hook(_mean_over_positions_too, verbose=False)
    assert "averaged over positions as well" in everywhere.message


def _k_term(mistake):
    """A learner's k_composition_term with one mistake, written with TransformerLens's cache."""
    def term(m, tokens, s, r):
        (l1, h1), (l2, h2) = s, r
        _, cache = m.run_with_cache(tokens)
        out = cache[f"blocks.{l1}.attn.hook_z"][:, :, h1] @ m.W_O[l1, h1]
        if mistake == "no value bias":
            out = out - m.b_V[l1, h1] @ m.W_O[l1, h1]
        embed = m.W_E[tokens]
        q, k = (out @ m.W_Q[l2, h2], embed @ m.W_K[l2, h2]) if mistake == "transposed" else \
            (embed @ m.W_Q[l2, h2], out @ m.W_K[l2, h2])
        scale = 1.0 if mistake == "no scale" else m.cfg.d_head ** 0.5
        return q @ k.transpose(-1, -2) / scale
    return term


@pytest.mark.parametrize("mistake, hint", [
    ("transposed", "a Q-composition term"),
    ("no scale", "divides q . k by sqrt(d_head)"),
    ("no value bias", "includes its value bias"),
])
def test_k_term_mistakes_get_their_hint(mistake, hint):
    result = checks.check_k_composition_term(_k_term(mistake), verbose=False)
    assert result.status == "failed" and hint in result.message, result.message
    assert checks.check_k_composition_term(_k_term(None), verbose=False).passed


def test_raw_scores_check_tells_the_hook_that_holds_the_pattern():
    """08.2: on TransformerLens 4.3's bridge hook_attn_scores holds the pattern, so reading it must fail."""
    def wrong_hook(m, tokens, layer):
        return m.run_with_cache(tokens)[1][f"blocks.{layer}.attn.hook_attn_scores"]

    def from_q_and_k(m, tokens, layer):
        _, cache = m.run_with_cache(tokens)
        q, k = cache[f"blocks.{layer}.attn.hook_q"], cache[f"blocks.{layer}.attn.hook_k"]
        return torch.einsum("bihd,bjhd->bhij", q, k) / m.cfg.d_head ** 0.5

    result = checks.check_attention_scores(wrong_hook, verbose=False)
    assert result.status == "failed" and "hook_attn_scores holds the pattern" in result.message, result.message
    assert checks.check_attention_scores(from_q_and_k, verbose=False).passed


def _shifted_induction(pattern, half_len, prefix_len):
    q = torch.arange(prefix_len + half_len, prefix_len + 2 * half_len)
    return pattern[:, :, q, q - half_len].mean(dim=(0, -1))


def _mean_over_positions_too(z, hook, head):
    z[:, :, head] = z[:, :, head].mean(dim=(0, 1), keepdim=True)
    return z


def test_a_hook_may_edit_in_place_and_return_nothing():
    def in_place(z, hook, head):
        z[:, :, head] = 0.0

    assert checks.check_zero_ablation_hook(in_place, verbose=False).passed
    assert not checks.check_zero_ablation_hook(lambda z, hook, head: None, verbose=False).passed


def test_returning_none_is_not_attempted():
    r = checks.check_count_pairs(lambda L, H: None, verbose=False)
    assert r.status == "not attempted" and "placeholder" in r.message


def test_a_learners_mistake_in_the_random_model_cases_is_caught():
    # hard-coding the bundled model's sizes passes the bundled cases and must still fail
    def hard_coded(m, cache, layer):
        z = cache[f"blocks.{layer}.attn.hook_z"]
        return torch.einsum("bphd,hdm->bphm", z, m.W_O[layer]).reshape(*z.shape[:2], 4, 64)

    r = checks.check_head_outputs(hard_coded, verbose=False)
    assert r.status == "failed" and "random 3-layer model" in r.message


def test_baseline_check_rejects_the_wrong_distribution():
    def uniform_entries(d_model, d_head, n_samples=1000, seed=0):
        g = torch.Generator().manual_seed(seed)

        def sample():
            return torch.rand(d_model, d_head, generator=g) @ torch.rand(d_head, d_model, generator=g)

        return torch.tensor([float(mechlib.composition_score(sample(), sample())) for _ in range(n_samples)])

    r = checks.check_random_baseline(uniform_entries, verbose=False)
    assert r.status == "failed" and "on average" in r.message


def test_capture_check_catches_a_hook_left_attached():
    def leaky(m, tokens, name):
        stored = {}
        m.add_hook(name, lambda act, hook: stored.update(a=act.clone()))
        m(tokens)
        return stored["a"]

    r = checks.check_capture_activation(leaky, verbose=False)
    assert r.status == "failed" and "still attached" in r.message
    assert not any(hp._forward_hooks for hp in bundled().hook_dict.values())  # removed after the call


def _record_then_judge(namespace: dict, time_limit: float, seed: int = 7) -> dict:
    """The two halves of grading in one process: call in the 'kernel', judge in the 'grader'."""
    from mechlib.teaching.grading import judge

    return judge.grade_in_process("07_combinatorial_richness", namespace, seed, time_limit)


def test_recording_survives_loops_and_exits():
    def loops(L, H):
        while True:
            pass

    def exits(L, H):
        raise SystemExit(3)

    # 5 s: the limit is per exercise, and count_chains needs room on a busy machine
    results = _record_then_judge(
        {"count_pairs": loops, "enumerate_pairs": exits, "count_chains": REFERENCE["07.3"]}, time_limit=5.0)
    assert results["07.1"]["status"] == "failed" and "did not finish within 5 s" in results["07.1"]["message"]
    assert results["07.2"]["status"] == "failed" and "SystemExit" in results["07.2"]["message"]
    assert results["07.3"]["status"] == "passed"
    assert results["07.4"]["status"] == "not attempted"


def test_recording_swallows_the_learners_printing(capsys):
    def chatty(L, H):
        print("x" * 100_000)
        return H * H * (L * (L - 1) // 2)

    results = _record_then_judge({"count_pairs": chatty}, time_limit=30)
    assert results["07.1"]["status"] == "passed"
    assert len(capsys.readouterr().out) < 1000


def test_hidden_cases_differ_from_the_self_check_and_from_each_other():
    def inputs(seed):
        def describe(x):
            if hasattr(x, "cfg"):
                return (x.cfg.d_model, x.cfg.n_heads, x.W_Q.sum().item())
            return tuple(x.shape) if hasattr(x, "shape") else x

        return [[tuple(describe(a) for a in case.args) for case in registry.EXERCISE_BY_ID[i].cases(seed)]
                for i in ("07.1", "03.1")]

    own, a, b = inputs(None), inputs(1), inputs(2)
    assert inputs(1) == a  # the same seed gives the same cases
    for x, y in [(own, a), (a, b)]:
        assert x[0] != y[0] and x[1] != y[1]


def test_grading_judges_outputs_an_in_place_edit_included_and_a_model_left_changed():
    def in_place(z, hook, head):
        z[:, :, head] = 0.0

    def leaky(m, tokens, name):
        stored = {}
        m.add_hook(name, lambda act, hook: stored.update(a=act.clone()))
        m(tokens)
        return stored["a"]

    from mechlib.teaching.grading import judge

    results = judge.grade_in_process("05_virtual_attention_heads", {"zero_ablation_hook": in_place}, seed=4)
    assert results["05.3"]["status"] == "passed"
    # a hook left on the model is reported by the kernel side's call, as an input changed in place is:
    # a notebook could hide either, but only to pass what it could pass by removing its hook
    results = judge.grade_in_process("08_transformerlens_vocabulary", {"capture_activation": leaky}, seed=4)
    assert results["08.3"]["status"] == "failed" and "a hook is still attached" in results["08.3"]["message"]


def test_hidden_cases_are_per_thread():
    """The grader judges two notebooks at once: each thread must see its own hidden seed."""
    import threading

    from mechlib.teaching import inputs

    seen = {}
    barrier = threading.Barrier(2)

    def judge(seed):
        with inputs.hidden_cases(seed):
            barrier.wait()
            seen[seed] = inputs.hidden_seed()
            barrier.wait()

    threads = [threading.Thread(target=judge, args=(s,)) for s in (11, 22)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {11: 11, 22: 22} and inputs.hidden_seed() is None
