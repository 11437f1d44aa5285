"""The exercises of Chapter 8, TransformerLens Vocabulary (``08_transformerlens_vocabulary.ipynb``)."""
from __future__ import annotations

import functools
import math
from typing import Iterator

import torch

import mechlib
from mechlib.teaching import scored as fd
from mechlib.teaching import reference as ref
from mechlib.teaching.comparisons import Mismatch, compare_tensor
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.inputs import bundled, check_model, model_desc, repeat_tokens_for, unseen


def _cases_get_weight() -> Iterator[Case]:
    for model in (bundled(), check_model()):
        L = model.cfg.n_layers
        names = {
            "embed.W_E": model.W_E, "unembed.W_U": model.W_U, "pos_embed.W_pos": model.W_pos,
            "blocks.0.attn.W_Q": model.W_Q[0], f"blocks.{L - 1}.attn.W_K": model.W_K[L - 1],
            "blocks.1.attn.W_V": model.W_V[1], "blocks.0.attn.W_O": model.W_O[0],
            "blocks.1.attn.b_Q": model.b_Q[1], "unembed.b_U": model.b_U,
        }
        for name, exp in names.items():
            yield Case(f"{name!r} on {model_desc(model)}", (model, name),
                       functools.partial(compare_tensor, expected=exp.detach(), rtol=0, atol=0))


def _cases_attention_scores() -> Iterator[Case]:
    for model in (bundled(), check_model()):
        tokens, _, _ = repeat_tokens_for(model, 3, seed=17)
        expected = ref.attention_scores64(model, tokens.cpu())
        P = mechlib.attention_patterns(model, tokens).detach().cpu().double()
        scale = math.sqrt(model.cfg.d_head)
        for l in range(model.cfg.n_layers):
            alts = ((P[l], "this is the attention pattern, after the softmax (rows sum to 1): on TransformerLens "
                           "4.3's bridge hook_attn_scores holds the pattern too; compute the scores from hook_q "
                           "and hook_k"),
                    (expected[l] * scale, "divide q . k by sqrt(d_head), as the model does before the softmax"),
                    (expected[l].transpose(-1, -2), "the query position is the third axis and the key position "
                                                    "the fourth: [batch, head, query, key]"))
            yield Case(f"layer {l} of {model_desc(model)}", (model, tokens, l),
                       functools.partial(compare_tensor, expected=expected[l], rtol=1e-4, atol=1e-4,
                                         alternatives=alts))


def _cases_capture() -> Iterator[Case]:
    for model in (bundled(), check_model()):
        tokens, _, _ = repeat_tokens_for(model, 3, seed=18)
        names = ["hook_embed", "blocks.0.attn.hook_z", "blocks.1.hook_resid_pre", "blocks.1.attn.hook_pattern"]
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
        for name in names:
            yield Case(f"hook {name!r} on {model_desc(model)}", (model, tokens, name),
                       functools.partial(compare_tensor, expected=cache[name].detach(), rtol=1e-5, atol=1e-6),
                       after=_no_hooks_left)


def _no_hooks_left(effects: dict) -> None:
    left = effects.get("hooks_left") or []
    if left:
        raise Mismatch(
            f"a hook is still attached to {left[0]} after the call: use model.run_with_hooks "
            "(it removes its hooks when the run ends) instead of adding hooks by hand"
        )


def _cases_head_outputs() -> Iterator[Case]:
    for model in (bundled(), check_model()):
        tokens, _, _ = repeat_tokens_for(model, 3, seed=19)
        _, cache = model.run_with_cache(tokens)
        H = model.cfg.n_heads
        for l in range(model.cfg.n_layers):
            exp = torch.stack([mechlib.head_output(model, cache, (l, h)) for h in range(H)], dim=2)
            alts = ((exp + model.b_O[l].detach() / H, "leave b_O out: it belongs to the layer, not to a head"),
                    (exp + model.b_O[l].detach(), "leave b_O out: it belongs to the layer, not to a head"))
            yield Case(f"layer {l} of {model_desc(model)}", (model, cache, l),
                       functools.partial(compare_tensor, expected=exp, rtol=1e-4, atol=1e-5, alternatives=alts))


# --- investigation 05-08: the head that writes the answer, read through hooks (08.5)


#: the least a case of induction-bu lets adding b_U move a credit (the check's tolerance is about 0.005)
B_U_SHIFT = 0.05


def _b_U_shift(model, tokens, mask) -> float:
    """What adding ``b_U`` adds to every head's direct credit: ``mean over mask of b_U[target] - mean(b_U)``."""
    b_U = model.b_U.double()
    return float((b_U[tokens[:, 1:]] - b_U.mean())[mask].mean())


def _direct_attribution(model, tokens, mask) -> dict[str, dict]:
    """Each head's direct credit: ``z^{l.h} W_O^{l.h} W_U`` at the correct token minus its mean over the
    vocabulary, mean over ``mask``; and the versions of the mistakes (no mean subtracted, every
    position, the layer's ``b_O`` added, the single-head term of the path expansion)."""
    _, cache = model.run_with_cache(tokens)
    target = tokens[:, 1:, None]
    out: dict[str, dict] = {"credit": {}, "raw": {}, "all": {}, "b_O": {}}
    everywhere = torch.ones_like(mask)
    for l in range(model.cfg.n_layers):
        z = cache[f"blocks.{l}.attn.hook_z"].double()
        for h in range(model.cfg.n_heads):
            written = z[:, :, h] @ model.W_O[l, h].double()
            for key, extra, msk in (("credit", 0.0, mask), ("all", 0.0, everywhere), ("b_O", model.b_O[l].double(), mask)):
                lg = ((written + extra) @ model.W_U.double())[:, :-1]
                out[key][(l, h)] = float((lg.gather(-1, target)[..., 0] - lg.mean(-1))[msk].mean())
            lg = (written @ model.W_U.double())[:, :-1]
            out["raw"][(l, h)] = float(lg.gather(-1, target)[..., 0][mask].mean())
    shift = _b_U_shift(model, tokens, mask)
    out["b_U"] = {hd: v + shift for hd, v in out["credit"].items()}
    pe = mechlib.correct_token_attribution(mechlib.path_expansion(model, tokens), mask)
    out["single"] = {hd: pe[mechlib.head_label(hd)] for hd in out["credit"]}
    return out


def _compare_direct(got, d: dict) -> None:
    head, value = fd.as_pair(got, 2, "the result (head, credit)")
    head, value = fd.as_head(head, "the head"), fd.as_float(value, "the credit")
    credit = d["credit"]
    best = max(credit, key=credit.get)
    if head != best:
        hints = [h for key, h in (
            ("single", "that head has the largest single-head term of the path expansion (chapter 6); a head's "
                       "direct credit counts everything its output writes, the virtual paths through it included"),
            ("raw", "you ranked by the correct token's logit without subtracting the mean logit"),
            ("all", "you averaged over every position; score only the predictions where mask is True"))
            if max(d[key], key=d[key].get) == head]
        if not hints and head == min(credit, key=credit.get):  # with two heads every wrong head is the smallest
            hints.append("that head's credit is the smallest; the question asks for the largest")
        raise Mismatch(f"expected head {mechlib.head_label(best)} {best} (credit {fd.fmt_number(credit[best])}), got "
                       f"{mechlib.head_label(head) if head in credit else head} {head}"
                       + (f". Hint: {hints[0]}" if len(hints) == 1 else ""))
    if fd.close(value, credit[best], 1e-3, 1e-3):
        return
    msg = fd.number_message("the credit", value, credit[best], 1e-3, 1e-3)
    hints = [h for key, h in (
        ("raw", "subtract the mean of the head's logits over the vocabulary (the softmax ignores a shared shift)"),
        ("b_O", "you added the layer's b_O: it belongs to the layer, not to any head"),
        ("b_U", "you added the unembedding bias b_U (model.unembed adds it): it belongs to no head; multiply by "
                "W_U alone"),
        ("all", "you averaged over every position; score only the predictions where mask is True"),
        ("single", "that is the head's single-head term of the path expansion; read what the head writes, "
                   "hook_z times W_O"))
        if fd.close(value, d[key][best], 1e-3, 1e-3)]
    raise Mismatch(msg + (f". Hint: {hints[0]}" if len(hints) == 1 else ""))


def _cases_direct() -> Iterator[Case]:
    # induction-bu: b_U is 0 in every trained model, where adding it (model.unembed does) changes nothing
    biased = [("induction-bu", unseen("induction-bu"))]
    for k, (name, model) in enumerate(fd.induction_models() + fd.relay_models() + biased):
        # 64 relay sequences: the single-head terms of 0.0 and 1.0 are both small, and fewer could swap them
        tokens, mask, _ = fd.scored_batch(name, model, seed=85 + k, size=64 if name.startswith("relay") else 16)
        for retry in range(1, 20 if name in dict(biased) else 1):  # a batch on which adding b_U moves the credit
            if abs(_b_U_shift(model, tokens, mask)) > B_U_SHIFT:
                break
            tokens, mask, _ = fd.scored_batch(name, model, seed=85 + k + 1000 * retry, size=16)
        yield Case(fd.batch_desc(name, tokens), (model, tokens, mask.clone()),
                   functools.partial(_compare_direct, d=_direct_attribution(model, tokens, mask)))


NOTEBOOK = '08_transformerlens_vocabulary'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='08.1', function='get_weight', title='Weights by name',
             difficulty=1, importance=3, minutes=5,
             draw=_cases_get_weight,
             statement='``get_weight(model, name)`` resolves a dotted TransformerLens weight name.',
             success="resolves embedding, positional, unembedding and per-layer attention weights"),
    exercise(id='08.2', function='attention_scores', title='Raw scores from the cache',
             difficulty=2, importance=4, minutes=10,
             draw=_cases_attention_scores,
             statement='``attention_scores(model, tokens, layer)`` is ``q_i . k_j / sqrt(d_head)`` of every head, '
                       'from ``hook_q`` and ``hook_k``: ``[batch, head, query, key]``, before the softmax.',
             success="matches the float64 raw scores of every layer (not the pattern that hook_attn_scores holds "
                     "on this bridge)"),
    exercise(id='08.3', function='capture_activation', title='A hook that records',
             difficulty=2, importance=4, minutes=10,
             draw=_cases_capture,
             statement='``capture_activation(model, tokens, hook_name)`` stores an activation with a hook.',
             success="captures the same activations that run_with_cache stores"),
    exercise(id='08.4', function='head_outputs', title='What each head writes',
             difficulty=2, importance=4, minutes=10,
             draw=_cases_head_outputs,
             statement="``head_outputs(model, cache, layer)``: every head's ``z W_O``, ``[batch, pos, head, d_model]``.",
             success="matches z^{l.h} @ W_O^{l.h} for every head and layer"),
    # --- investigation 05-08
    exercise(id='08.5', function='top_direct_head', title='Investigate: which head writes the answer?',
             difficulty=3, importance=4, minutes=20,
             draw=_cases_direct,
             statement="``top_direct_head(model, tokens, mask)`` -> ``((layer, head), credit)``: the head whose output "
                       "``z W_O`` raises the correct token's logit most (minus the mean logit), read through hooks.",
             success="found the head that writes the answer, with its direct credit, on the induction and relay models"),
)
