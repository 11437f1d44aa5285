"""The capstone, Find the Induction Circuit (``C1_find_the_induction_circuit.ipynb``).

The learner finds the induction circuit of a causal model on their own: previous-token heads
and induction heads by their attention, the senders of an induction head by K-composition,
the key path confirmed by a path ablation, and the circuit written up as data. Every answer
is a finding about a model, so every case compares it with a computation on that model: the
bundled ``induction-2l``, untrained models of other shapes, a model with a previous-token
head planted by its weights (:func:`mechlib.teaching.inputs.planted_model`) and, in the
hidden cases, ``induction-2l`` at a training step drawn by the grader. ``check_...(fn,
model=model)`` also runs the learner's function on the model they loaded (GPT-2 small in
Colab), compared with the same computation on it.

Head lists are compared by the scores of the heads in them, so that two heads whose scores
tie within float rounding may come in either order; every threshold a case passes lies in a
clear gap between two scores. The measurements and comparisons are in :mod:`._capstone_measures`.
"""
from __future__ import annotations

import functools
import random
from typing import Any, Iterator

import torch

import mechlib
from mechlib.heads import head_label
from mechlib.teaching.comparisons import compare_scalar
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.exercises._capstone_measures import (
    _gap_threshold, _gap_thresholds, _induction_like, _offset_table, _pairs, _telling, _tokens_for,
    check_capstone_model, compare_circuit, compare_heads, compare_top, induction_table, k_scores_into,
    previous_token_table, repeated_for)
from mechlib.teaching.inputs import (bundled, check_model, derive, hidden_seed, model_desc, planted_model, snapshot_model,
                                     unseen)


# --------------------------------------------------------------------------- the cases' models


def _models() -> list[Any]:
    """The self-check's models, or the grader's: trained models the learner has not seen (``induction-3h``,
    and ``induction-2l`` renumbered or at a drawn training step), other random shapes, another planted head."""
    seed = hidden_seed()
    if seed is None:
        return [bundled(), check_model(3), planted_model(n_heads=3, n_ctx=20, seed=11, head=1)]
    rng = random.Random(derive(seed, "capstone models"))
    late = [s for s in mechlib.checkpoint_steps() if 600 <= s < mechlib.checkpoint_steps()[-1]]
    # induction-2l renumbered (same circuit, other head ids) or at a drawn training step
    other = unseen("induction-perm") if rng.random() < 0.5 else snapshot_model(rng.choice(late))
    n_heads = rng.choice((2, 3, 5))
    planted = planted_model(n_layers=3, n_heads=n_heads, d_head=rng.choice((4, 8)), d_model=32,
                            d_vocab=rng.randint(17, 29), n_ctx=rng.randint(16, 24),
                            seed=1000 + derive(seed, "planted") % 1_000_000, head=rng.randrange(n_heads))
    return [unseen("induction-3h"), other, check_model(3), planted]


def _desc(model: Any) -> str:
    from mechlib.teaching.inputs import model_spec

    spec = model_spec(model)
    if "snapshot" in spec:
        return f"induction-2l after {spec['snapshot']} training steps"
    if "planted" in spec:
        c = model.cfg
        return (f"a random {c.n_layers}-layer model with a planted previous-token head ({c.n_heads} heads "
                f"of d_head {c.d_head})")
    return model_desc(model)


# --------------------------------------------------------------------------- C1.1 previous-token heads


def _prev_case(model: Any, tokens: torch.Tensor, desc: str, threshold: float | None = None) -> Case | None:
    A = mechlib.attention_patterns(model, tokens)  # once: a large model takes a while
    scores = previous_token_table(model, tokens, A)
    threshold = _gap_threshold(scores) if threshold is None else threshold
    if threshold is None:
        return None
    expected = mechlib.heads_above(scores, threshold)
    alts = ((mechlib.heads_above(_offset_table(model, tokens, 0, A=A), threshold),
             "these heads attend to their own position (offset 0); the previous token is at q - 1"),
            (mechlib.heads_above(_offset_table(model, tokens, -2, A=A), threshold),
             "these heads attend two tokens back; the previous token is one back"),
            (mechlib.heads_above(_offset_table(model, tokens, -1, slice(0, 1), A=A), threshold),
             "these are the heads of the first sequence alone; average over every sequence of the batch"),
            (expected[:1], "keep every head above the threshold, not only the best"))
    return Case(f"{desc}, threshold {threshold:.3f}", (model, tokens, threshold),
                functools.partial(compare_heads, expected=expected, scores=scores, alternatives=alts))


def _cases_previous_token_heads() -> Iterator[Case]:
    for i, model in enumerate(_models()):
        n, V = min(model.cfg.n_ctx, 16), model.cfg.d_vocab
        tokens = _tokens_for(model, 8, n, 300 + i)
        rows = [torch.full((n,), v) for v in range(min(V, 6))] + [torch.arange(n) % p for p in (2, 3, 5)]
        told = _telling(model, rows + list(tokens), tokens[1:], previous_token_table)
        tokens, threshold = told if told is not None else (tokens, None)
        case = _prev_case(model, tokens, f"{_desc(model)} on {tokens.shape[0]} token sequences", threshold)
        if case is not None:
            yield case


def _loaded_previous_token_heads(model: Any) -> Iterator[Case]:
    check_capstone_model(model)
    tokens = _tokens_for(model, 8, min(model.cfg.n_ctx, 24), 390)
    case = _prev_case(model, tokens, "your model on 8 random sequences")
    return iter([case] if case is not None else [])


# --------------------------------------------------------------------------- C1.2 induction heads


def _induction_case(model: Any, tokens: torch.Tensor, desc: str, threshold: float | None = None) -> Case | None:
    A = mechlib.attention_patterns(model, tokens)
    scores = induction_table(model, tokens, A)
    threshold = _gap_threshold(scores) if threshold is None else threshold
    if threshold is None:
        return None
    expected = mechlib.heads_above(scores, threshold)
    alts = ((mechlib.heads_above(_induction_like(model, tokens, 0, A=A), threshold),
             "these heads attend to the earlier copy of the current token (duplicate-token heads); an induction "
             "head attends to the token just after it, q - n + 1"),
            (mechlib.heads_above(_induction_like(model, tokens, 2, A=A), threshold),
             "these heads attend two past the earlier copy; the induction target is one past it, q - n + 1"),
            (mechlib.heads_above(_induction_like(model, tokens, 1, first_half=True, A=A), threshold),
             "average over the second copy only: in the first copy there is nothing to look back to"),
            (mechlib.heads_above(_induction_like(model, tokens, 1, batch=slice(0, 1), A=A), threshold),
             "these are the heads of the first sequence alone; average over every sequence of the batch"),
            (expected[:1], "keep every head above the threshold, not only the best"))
    return Case(f"{desc}, threshold {threshold:.3f}", (model, tokens, threshold),
                functools.partial(compare_heads, expected=expected, scores=scores, alternatives=alts))


def _cases_induction_heads() -> Iterator[Case]:
    for i, model in enumerate(_models()):
        tokens = repeated_for(model, 24, 8, 400 + i)
        told = _telling(model, list(tokens[7:]), tokens[1:7], induction_table)
        tokens, threshold = told if told is not None else (tokens[:8], None)
        case = _induction_case(model, tokens, f"{_desc(model)} on {tokens.shape[0]} repeated segments", threshold)
        if case is not None:
            yield case


def _loaded_induction_heads(model: Any) -> Iterator[Case]:
    check_capstone_model(model)
    tokens = repeated_for(model, 8, 12, 490)
    case = _induction_case(model, tokens, "your model on 8 repeated segments")
    return iter([case] if case is not None else [])


# --------------------------------------------------------------------------- C1.3 K-composition senders


def _senders_case(model: Any, receiver: tuple[int, int], n: int, desc: str) -> Case:
    tables = {kind: mechlib.composition_scores(model, kind).double() for kind in "KQV"}  # each table once
    l, h = receiver
    scores = tables["K"][:, :, l, h]
    allowed = {(sl, sh) for sl in range(l) for sh in range(model.cfg.n_heads)}

    def top(kind):
        s = tables[kind][:, :, l, h]
        return sorted(allowed, key=lambda hd: -float(s[hd]))[:n]
    out_of = tables["K"][receiver]
    alts = ((top("Q"), "these are the strongest Q-composition senders; the keys read the sender through "
                       "W_QK^T (composition_scores(model, 'K'))"),
            (top("V"), "these are the strongest V-composition senders; the keys are K"),
            (sorted(allowed, key=lambda h: float(scores[h]))[:n], "this is the weakest first; highest score first"),
            (mechlib.ranked_heads(out_of)[:n], "these are the heads the receiver sends to (scores[receiver]); "
                                               "a receiver's senders are scores[:, :, layer, head]"))
    return Case(f"receiver {head_label(receiver)}, n={n} on {desc}", (model, receiver, n),
                functools.partial(compare_top, n=n, scores=scores, allowed=allowed, alternatives=alts))


def _cases_k_composition_senders() -> Iterator[Case]:
    for model in _models():
        L, H = model.cfg.n_layers, model.cfg.n_heads
        for receiver, n in [((L - 1, H - 1), 3), ((1, 0), 2)]:
            yield _senders_case(model, receiver, min(n, H * receiver[0]), _desc(model))


def _loaded_k_composition_senders(model: Any) -> Iterator[Case]:
    check_capstone_model(model)
    repeated = repeated_for(model, 8, 12, 590)
    best = mechlib.top_head(induction_table(model, repeated)[1:])  # the best that has earlier layers
    best = (best[0] + 1, best[1])
    return iter([_senders_case(model, best, min(3, model.cfg.n_heads * best[0]), "your model")])


# --------------------------------------------------------------------------- C1.4 the key path, cut


def _rise_case(model: Any, tokens: torch.Tensor, sender: Any, receiver: Any, desc: str) -> Case:
    n = tokens.shape[1] // 2
    with torch.no_grad():  # each run once (a large model takes a while); every variant is read from them
        clean = mechlib.per_token_loss(model(tokens), tokens)
        cut = {kind: mechlib.per_token_loss(mechlib.path_ablation(model, tokens, sender, receiver, kind,
                                                                  freeze_ln=True), tokens) for kind in "QKV"}
        ablated = mechlib.per_token_loss(mechlib.run_with_ablation(model, tokens, [sender]), tokens)

    def rise(losses, start=n, minus_clean=True):  # the mean over targets start + 1 .., as repeat_loss takes it
        return losses[:, start:].mean().item() - (clean[:, start:].mean().item() if minus_clean else 0.0)
    expected = rise(cut["K"])
    alts = ((rise(cut["Q"]), "this is the rise with the sender cut from the receiver's queries; cut it from its keys"),
            (rise(cut["V"]), "this is the rise with the sender cut from the receiver's values; cut it from its keys"),
            (rise(ablated), "this is a head ablation (the sender removed for every later head); cut it from the "
                            "receiver's keys only"),
            (rise(cut["K"], minus_clean=False), "this is the loss of the cut run itself; subtract the clean loss"),
            (-expected, "this is clean minus cut; the rise is cut minus clean"),
            (rise(cut["K"], start=0), "this averages over every target; average over the second copy's, after its "
                                      "first token"),
            (rise(cut["K"], start=n - 1), "this counts the second copy's first token, which nothing can predict; "
                                          "start one later"))
    return Case(f"sender {head_label(sender)}, receiver {head_label(receiver)} on {desc}",
                (model, tokens, sender, receiver),
                functools.partial(compare_scalar, expected=expected, rtol=1e-4, atol=1e-5, alternatives=alts))


def _cases_key_cut_loss_rise() -> Iterator[Case]:
    models = _models() + [check_model(3, layernorm=True)]
    for i, model in enumerate(models):
        H = model.cfg.n_heads
        tokens = repeated_for(model, 6, 7, 500 + i)
        # a trained 2-layer model: its circuit's pair (top previous-token head, top induction head);
        # a 3-layer one: receivers in two layers
        pairs = ([(mechlib.top_head(previous_token_table(model, tokens)[:1]),
                   (1, mechlib.top_head(induction_table(model, tokens)[1:])[1]))]
                 if model.cfg.n_layers == 2 else [((0, H - 1), (2, 0)), ((1, 1), (2, H - 1))])
        for sender, receiver in pairs[: 1 if i == len(models) - 1 else 2]:
            yield _rise_case(model, tokens, sender, receiver, _desc(model))


def _loaded_key_cut_loss_rise(model: Any) -> Iterator[Case]:
    check_capstone_model(model)
    repeated = repeated_for(model, 8, 12, 690)
    receiver = mechlib.top_head(induction_table(model, repeated)[1:])
    receiver = (receiver[0] + 1, receiver[1])
    sender = mechlib.top_head(k_scores_into(model, receiver)[: receiver[0]])
    return iter([_rise_case(model, repeated, sender, receiver, "your model")])


# --------------------------------------------------------------------------- C1.5 the circuit, as data


def _circuit_case(model: Any, tokens: torch.Tensor, repeated: torch.Tensor, desc: str) -> Case | None:
    prev_scores, ind_scores = previous_token_table(model, tokens), induction_table(model, repeated)
    K, Q = mechlib.composition_scores(model, "K"), mechlib.composition_scores(model, "Q")
    everyone = [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]

    def alternatives(prev, ind, expected):
        overall = _pairs(everyone, [r for r in ind if r[0] > 0], K)
        every = [(s, r) for r in ind for s in prev if s[0] < r[0]]
        return (([(r, s) for s, r in expected], "write each pair as (sender, receiver): the previous-token head first"),
                (_pairs(prev, ind, Q), "these pairs are the strongest by Q-composition; the circuit runs through "
                                       "the keys (K)"),
                (overall, "these are the strongest senders among all earlier heads; the circuit pairs each induction "
                          "head with a previous-token head"),
                (every, "keep one pair per induction head: the previous-token head that K-composes most with it"))

    # thresholds in clear gaps that give a circuit with at least one pair, best where every mistake above differs
    found = []
    for a in _gap_thresholds(prev_scores):
        for b in _gap_thresholds(ind_scores):
            prev, ind = mechlib.heads_above(prev_scores, a), mechlib.heads_above(ind_scores, b)
            expected = {"previous_token": prev, "induction": ind, "k_composition": _pairs(prev, ind, K)}
            if expected["k_composition"]:
                alts = alternatives(prev, ind, expected["k_composition"])
                telling = sum(sorted(alt) != sorted(expected["k_composition"]) for alt, _ in alts)
                found.append((telling, -len(found), a, b, expected, alts))
    if not found:
        return None
    _, _, t_prev, t_ind, expected, alts = max(found, key=lambda f: f[:2])
    return Case(f"{desc}, thresholds {t_prev:.3f} (previous-token) and {t_ind:.3f} (induction)",
                (model, tokens, repeated, t_prev, t_ind),
                functools.partial(compare_circuit, expected=expected, prev_scores=prev_scores, ind_scores=ind_scores,
                                  alternatives=alts))


def _cases_induction_circuit() -> Iterator[Case]:
    for i, model in enumerate(_models()):
        tokens = _tokens_for(model, 8, min(model.cfg.n_ctx, 16), 700 + i)
        repeated = repeated_for(model, 8, 8, 750 + i)
        case = _circuit_case(model, tokens, repeated, _desc(model))
        if case is not None:
            yield case


def _loaded_induction_circuit(model: Any) -> Iterator[Case]:
    check_capstone_model(model)
    tokens = _tokens_for(model, 8, min(model.cfg.n_ctx, 24), 790)
    case = _circuit_case(model, tokens, repeated_for(model, 8, 12, 791), "your model")
    return iter([case] if case is not None else [])


NOTEBOOK = 'C1_find_the_induction_circuit'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='C1.1', function='previous_token_heads', title='Previous-token heads, by their attention',
             difficulty=2, importance=4, minutes=10,
             draw=_cases_previous_token_heads, on_model=_loaded_previous_token_heads,
             statement='``previous_token_heads(model, tokens, threshold)``: every head whose mean attention from '
                       'position q to q - 1 (over the batch and q >= 1) is above ``threshold``, highest first.',
             success="finds the previous-token heads above the threshold, on every model"),
    exercise(id='C1.2', function='induction_heads', title='Induction heads, on a repeated random sequence',
             difficulty=2, importance=5, minutes=15,
             draw=_cases_induction_heads, on_model=_loaded_induction_heads,
             statement='``induction_heads(model, tokens, threshold)``: on ``tokens`` = a segment of n tokens twice, '
                       'every head whose mean attention from q (n <= q < 2n) to q - n + 1 is above ``threshold``, '
                       'highest first.',
             success="finds the induction heads above the threshold, on every model"),
    exercise(id='C1.3', function='k_composition_senders', title='Rank the senders by K-composition',
             difficulty=3, importance=4, minutes=15,
             draw=_cases_k_composition_senders, on_model=_loaded_k_composition_senders,
             statement='``k_composition_senders(model, receiver, n)``: the ``n`` heads of earlier layers with the '
                       'highest K-composition score into ``receiver``, highest first.',
             success="ranks the receiver's senders by K-composition, on every model"),
    exercise(id='C1.4', function='key_cut_loss_rise', title='Confirm it: cut the key path',
             difficulty=3, importance=5, minutes=20,
             draw=_cases_key_cut_loss_rise, on_model=_loaded_key_cut_loss_rise,
             statement='``key_cut_loss_rise(model, tokens, sender, receiver)``: the loss on the second copy with '
                       "the sender cut from the receiver's keys (LayerNorm frozen) minus the clean loss, a float.",
             success="measures the key path's share of the loss, on every model"),
    exercise(id='C1.5', function='induction_circuit', title='Write it up, as data',
             difficulty=3, importance=4, minutes=25,
             draw=_cases_induction_circuit, on_model=_loaded_induction_circuit,
             statement='``induction_circuit(model, tokens, repeated, prev_threshold, induction_threshold)``: '
                       '``{"previous_token": [...], "induction": [...], "k_composition": [(sender, receiver), ...]}``.',
             success="the circuit agrees with the measurements, on every model"),
)
