"""The exercises of Chapter 5, Virtual Attention Heads (``05_virtual_attention_heads.ipynb``)."""
from __future__ import annotations

import functools
from typing import Iterator

import torch

import mechlib
from mechlib.teaching import scored as fd
from mechlib.teaching import reference as ref
from mechlib.teaching.comparisons import Mismatch, compare_scalar, compare_tensor
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.inputs import bundled, check_model, generator, model_desc, repeat_tokens_for


def _random_patterns(batch: int, heads: int, seq: int, seed: int) -> torch.Tensor:
    scores = torch.randn(batch, heads, seq, seq, generator=generator(seed))
    mask = torch.ones(seq, seq, dtype=torch.bool).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


def _cases_prev_token() -> Iterator[Case]:
    A = _random_patterns(3, 5, 9, seed=4)
    yield Case("random causal patterns [batch 3, head 5, 9, 9]", (A.clone(),),
               functools.partial(compare_tensor, expected=ref.prev_token_score64(A), alternatives=(
                   (A.diagonal(dim1=-2, dim2=-1).double().mean(dim=(0, 2)),
                    "this is attention to the position itself (the main diagonal); the previous token is "
                    "one below it, A[q, q - 1]"),)))
    model = bundled()
    tokens, _, _ = repeat_tokens_for(model, 8, seed=5)
    P = mechlib.attention_patterns(model, tokens)
    for l in range(model.cfg.n_layers):
        yield Case(f"layer {l} patterns of the bundled model on repeated tokens", (P[l].clone(),),
                   functools.partial(compare_tensor, expected=ref.prev_token_score64(P[l])))


def _cases_induction() -> Iterator[Case]:
    for half, prefix, seed in [(4, 3, 6), (5, 0, 7)]:
        A = _random_patterns(2, 3, prefix + 2 * half, seed=seed)
        yield Case(f"random causal patterns [2, 3, {prefix + 2 * half}, {prefix + 2 * half}] with half_len={half}, "
                   f"prefix_len={prefix}", (A.clone(), half, prefix),
                   functools.partial(compare_tensor, expected=ref.induction_score64(A, half, prefix), alternatives=(
                       (ref.induction_score64(A, half, prefix, offset=0),
                        "this is attention to the earlier copy of the current token (a duplicate-token score); "
                        "an induction head attends to the token just after it"),)))
    model = bundled()
    tokens, half, prefix = repeat_tokens_for(model, 8, seed=8)
    P = mechlib.attention_patterns(model, tokens)
    for l in range(model.cfg.n_layers):
        yield Case(f"layer {l} patterns of the bundled model (half_len={half}, prefix_len={prefix})",
                   (P[l].clone(), half, prefix),
                   functools.partial(compare_tensor, expected=ref.induction_score64(P[l], half, prefix)))


def _hook_cases(mode: str) -> Iterator[Case]:
    for shape, head, seed in [((4, 6, 3, 5), 1, 9), ((2, 7, 4, 16), 3, 10), ((5, 3, 4, 2), 0, 11)]:
        z = torch.randn(*shape, generator=generator(seed))
        exp = z.clone().double()
        if mode == "zero":
            exp[:, :, head] = 0.0
        else:
            exp[:, :, head] = exp[:, :, head].mean(dim=0, keepdim=True)
        alts = ((_alt_mean(z, head, (0, 1)), "you averaged over positions as well; average over the batch only, "
                 "position by position (keepdim so it broadcasts)"),
                (_alt_mean(z, head, (1,)), "you averaged over positions (dim 1); average over the batch (dim 0), "
                 "separately at each position"),
                (_alt_mean(z, head, (-1,)), "you averaged over d_head (the last dim); average over the batch (dim 0)"),
                ) if mode == "mean" else ()
        alts += ((_zero_all(z), "you changed every head; only z[:, :, head] should change"),)
        # a hook may edit the activation in place and return nothing, as TransformerLens allows
        yield Case(f"a random hook_z activation of shape {shape} with head={head}", (z.clone(), None),
                   functools.partial(compare_tensor, expected=exp, rtol=1e-5, atol=1e-6,
                                     what="the returned (or edited) activation", alternatives=alts),
                   kwargs={"head": head}, edited=0)


def _alt_mean(z: torch.Tensor, head: int, dims: tuple[int, ...]) -> torch.Tensor:
    out = z.clone().double()
    out[:, :, head] = out[:, :, head].mean(dim=dims, keepdim=True)
    return out


def _zero_all(z: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(z, dtype=torch.float64)


def _cases_ablated_loss() -> Iterator[Case]:
    for model in (bundled(), check_model()):
        tokens, half, prefix = repeat_tokens_for(model, 16, seed=12)
        L, H = model.cfg.n_layers, model.cfg.n_heads
        for heads in ([], [(0, 0)], [(0, 0), (0, H - 1)], [(L - 1, h) for h in range(H)]):
            for mode in ("zero", "mean"):
                if not heads and mode == "mean":
                    continue
                logits = mechlib.run_with_ablation(model, tokens, heads, mode) if heads else model(tokens)
                exp = mechlib.repeat_loss(logits, tokens, half, prefix)
                clean = mechlib.repeat_loss(model(tokens), tokens, half, prefix)
                alts = ((clean, "this is the loss with no head ablated: are your hooks passed to run_with_hooks?"),)
                yield Case(f"heads {heads}, mode {mode!r} on {model_desc(model)}",
                           (model, tokens, heads, half, prefix), functools.partial(
                               compare_scalar, expected=exp, rtol=1e-4, atol=1e-5, alternatives=alts),
                           kwargs={"mode": mode})


# --- investigation 05-08: which input carries the circuit (05.6), why ablation helps on random tokens (05.7)

_KINDS = ("Q", "K", "V")


def _route(model, tokens, masks: list, first_layer: int = 0) -> list[dict[str, float]]:
    """For each mask: the scored loss with every head of ``first_layer`` cut from input ``kind`` of every
    head of the next layer, for each kind, and ``"clean"`` (each run once, scored under every mask)."""
    senders, receivers = mechlib.layer_heads(model, first_layer), mechlib.layer_heads(model, first_layer + 1)
    runs = {"clean": model(tokens)}
    runs.update({kind: mechlib.path_ablation(model, tokens, senders, receivers, kind) for kind in _KINDS})
    return [{k: fd.masked_loss(logits, tokens, mask) for k, logits in runs.items()} for mask in masks]


def _compare_route(got, losses: dict[str, float], all_positions: dict[str, float]) -> None:
    kind, rise = fd.as_pair(got, 2, "the result (kind, rise)")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise Mismatch(f"the kind must be one of 'Q', 'K', 'V' (a str); got {kind!r}")
    rise = fd.as_float(rise, "the rise")
    cost = {k: losses[k] - losses["clean"] for k in _KINDS}
    best = max(_KINDS, key=cost.get)
    if kind != best:
        hint = (" Hint: that is the cut that costs least; the route is the input whose cut raises the loss most"
                if kind == min(_KINDS, key=cost.get) else "")
        raise Mismatch(f"expected {best!r}: cutting layer 0 from the {best} input raises the scored loss by "
                       f"{fd.fmt_number(cost[best])} nats, the {kind} input by {fd.fmt_number(cost[kind])}." + hint)
    if fd.close(rise, cost[best], 1e-3, 1e-3):
        return
    msg = fd.number_message("the rise", rise, cost[best], 1e-3, 1e-3)
    if fd.close(rise, losses[best], 1e-3, 1e-3):
        msg += (". Hint: that is the loss with the cut; the rise is that loss minus the clean model's loss")
    elif fd.close(rise, all_positions[best] - all_positions["clean"], 1e-3, 1e-3):
        msg += ". Hint: you averaged over every position; score only the predictions where mask is True"
    raise Mismatch(msg)


def _cases_route() -> Iterator[Case]:
    for k, (name, model) in enumerate(fd.induction_models() + fd.relay_models()):
        tokens, mask, _ = fd.scored_batch(name, model, seed=60 + k)
        losses, everywhere = _route(model, tokens, [mask, torch.ones_like(mask)])
        yield Case(fd.batch_desc(name, tokens), (model, tokens, mask.clone()),
                   functools.partial(_compare_route, losses=losses, all_positions=everywhere))


def first_copy_mask(tokens: torch.Tensor, half_len: int, prefix_len: int) -> torch.Tensor:
    """``[batch, seq - 1]``: True for the predictions of the first copy's tokens (random, unpredictable)."""
    mask = torch.zeros(tokens.shape[0], tokens.shape[1] - 1, dtype=torch.bool)
    mask[:, prefix_len - 1: prefix_len + half_len - 1] = True
    return mask


def _hedging_measures(model, tokens, mask, heads) -> dict[str, tuple[float, float]]:
    """(loss, mean top-1 probability), clean and ablated, and the mistakes' versions of the second number."""
    out = {}
    for name, logits in (("clean", model(tokens)), ("ablated", mechlib.run_with_ablation(model, tokens, heads))):
        logp = logits[:, :-1].double().log_softmax(-1)
        p = logp.exp()
        target = tokens[:, 1:]
        out[name] = {
            "loss": fd.masked_loss(logits, tokens, mask), "top": float(p.max(-1).values[mask].mean()),
            "entropy": float(-(p * logp).sum(-1)[mask].mean()),
            "p_target": float(p.gather(-1, target[..., None])[..., 0][mask].mean()),
            "top_all": float(p.max(-1).values.mean()), "loss_all": fd.masked_loss(logits, tokens, torch.ones_like(mask)),
        }
    return out


def _compare_hedging(got, m: dict) -> None:
    d_loss, d_top = (fd.as_float(x, w) for x, w in zip(fd.as_pair(got, 2, "the result (loss_change, "
                                                                   "confidence_change)"), ("loss_change", "confidence_change")))
    a, c = m["ablated"], m["clean"]
    for got_value, key, what, alts in (
            (d_loss, "loss", "loss_change", (("loss_all", "you averaged over every position; score only the "
                                                          "predictions where mask is True"),)),
            (d_top, "top", "confidence_change", (
                ("entropy", "that is the change of the entropy; the confidence here is the probability of the "
                            "model's top guess, whatever token it is"),
                ("p_target", "that is the change of the probability of the correct token; the confidence here is "
                             "the probability of the model's top guess"),
                ("top_all", "you averaged over every position; score only the predictions where mask is True")))):
        expected = a[key] - c[key]
        if fd.close(got_value, expected, 1e-3, 1e-4):
            continue
        msg = fd.number_message(what, got_value, expected, 1e-3, 1e-4)
        if fd.close(got_value, -expected, 1e-3, 1e-4):
            msg += ". Hint: the sign is flipped: a change is ablated minus clean"
        else:
            hints = [h for k, h in alts if fd.close(got_value, a[k] - c[k], 1e-3, 1e-4)]
            msg += f". Hint: {hints[0]}" if len(hints) == 1 else ""
        raise Mismatch(msg)


def _cases_hedging() -> Iterator[Case]:
    for k, (name, model) in enumerate(fd.induction_models()):
        tokens, mask, batch = fd.scored_batch(name, model, seed=70 + k)
        roles = mechlib.head_roles(model, batch)
        prev = mechlib.heads_with_role(roles, "previous-token", layer=0) or [mechlib.top_head(
            mechlib.prev_token_scores(model, tokens), layer=0)]
        first = first_copy_mask(tokens, batch.half_len, batch.prefix_len)
        for heads, where, msk in ((prev, "the first copy", first), (prev, "the second copy", mask),
                                  (mechlib.layer_heads(model, 0), "the first copy", first)):
            yield Case(f"{fd.batch_desc(name, tokens)}, heads {fd.heads_text(heads)} off, scored on {where}",
                       (model, tokens, msk.clone(), list(heads)),
                       functools.partial(_compare_hedging, m=_hedging_measures(model, tokens, msk, heads)))


NOTEBOOK = '05_virtual_attention_heads'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='05.1', function='prev_token_score', title='Detecting previous-token heads',
             difficulty=1, importance=4, minutes=5,
             draw=_cases_prev_token,
             statement='``prev_token_score(pattern)``: mean of ``A[b, h, q, q - 1]`` over b and q >= 1.',
             success="matches the mean attention to the previous position on random and model patterns"),
    exercise(id='05.2', function='induction_score', title='Detecting induction heads',
             difficulty=2, importance=5, minutes=10,
             draw=_cases_induction,
             statement='``induction_score(pattern, half_len, prefix_len)``: mean attention from each token of the second copy to the token after its first occurrence.',
             success="matches the mean attention from the second copy to 'the token after' on random and model patterns"),
    exercise(id='05.3', function='zero_ablation_hook', title='Zero ablation as a hook',
             difficulty=1, importance=4, minutes=5,
             draw=lambda: _hook_cases("zero"),
             none_is_placeholder=False,
             statement="``zero_ablation_hook(z, hook, head)`` zeroes one head's ``hook_z``.",
             success="zeroes exactly z[:, :, head] and leaves the other heads alone"),
    exercise(id='05.4', function='mean_ablation_hook', title='Mean ablation as a hook',
             difficulty=2, importance=3, minutes=5,
             draw=lambda: _hook_cases("mean"),
             none_is_placeholder=False,
             statement="``mean_ablation_hook(z, hook, head)`` replaces one head's ``hook_z`` by its batch mean.",
             success="replaces z[:, :, head] by its batch mean at each position, other heads untouched"),
    exercise(id='05.5', function='ablated_repeat_loss', title='Breaking the induction circuit',
             difficulty=2, importance=5, minutes=15,
             draw=_cases_ablated_loss,
             statement='``ablated_repeat_loss(model, tokens, heads, half_len, prefix_len, mode)``.',
             success="matches repeat_loss(run_with_ablation(...)) for zero and mean ablation of several head sets"),
    # --- investigation 05-08
    exercise(id='05.6', function='composition_route', title='Investigate: which input carries the circuit?',
             difficulty=2, importance=5, minutes=20,
             draw=_cases_route,
             statement="``composition_route(model, tokens, mask)`` -> ``(kind, rise)``: the input ('Q', 'K' or 'V') "
                       "of the layer-1 heads whose cut from every layer-0 head raises the scored loss most, and by "
                       "how many nats.",
             success="the route and its cost found on the induction and the relay model"),
    exercise(id='05.7', function='hedging', title='Investigate: why does the broken model win on random tokens?',
             difficulty=3, importance=3, minutes=25,
             draw=_cases_hedging,
             statement="``hedging(model, tokens, mask, heads)`` -> ``(loss_change, confidence_change)``: ablated "
                       "minus clean, of the scored loss and of the mean probability of the top guess.",
             success="loss and confidence changes measured on the first and the second copy"),
)
