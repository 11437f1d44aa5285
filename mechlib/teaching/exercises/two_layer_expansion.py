"""The exercises of Chapter 6, The Two-Layer Expansion (``06_two_layer_expansion.ipynb``)."""
from __future__ import annotations

import functools
from typing import Iterator

import torch

import mechlib
from mechlib.heads import chain_label, head_label
from mechlib.teaching import scored as fd
from mechlib.teaching.comparisons import Mismatch, compare_tensor
from mechlib.teaching.exercise import Case, Exercise
from mechlib.teaching.inputs import bundled, check_model, head_pairs, model_desc, repeat_tokens_for


def _expansion(model, tokens):
    return mechlib.path_expansion(model, tokens)


def _cases_direct() -> Iterator[Case]:
    for model in (bundled(), check_model(2)):
        tokens, _, _ = repeat_tokens_for(model, 4, seed=13)
        pe = _expansion(model, tokens)
        alts = ((pe.terms["direct"] + pe.terms["bias unembed"],
                 "you added b_U; in this expansion the unembedding bias is a separate bias term"),)
        yield Case(f"repeated tokens {tuple(tokens.shape)} on {model_desc(model)}", (model, tokens),
                   functools.partial(compare_tensor, expected=pe.terms["direct"], rtol=1e-4, atol=1e-4,
                                     alternatives=alts))


def _cases_single() -> Iterator[Case]:
    for model in (bundled(), check_model(2)):
        tokens, _, _ = repeat_tokens_for(model, 4, seed=14)
        pe = _expansion(model, tokens)
        L, H = model.cfg.n_layers, model.cfg.n_heads
        for head in [(l, h) for l in range(L) for h in range(H)]:
            yield Case(f"head {head_label(head)} of {model_desc(model)}", (model, tokens, head),
                       functools.partial(compare_tensor, expected=pe.terms[head_label(head)], rtol=1e-4, atol=1e-4))


def _cases_virtual() -> Iterator[Case]:
    for model in (bundled(), check_model(2)):
        tokens, _, _ = repeat_tokens_for(model, 4, seed=15)
        pe = _expansion(model, tokens)
        for s, r in head_pairs(model):
            yield Case(f"sender {head_label(s)}, receiver {head_label(r)} of {model_desc(model)}", (model, tokens, s, r),
                       functools.partial(compare_tensor, expected=pe.terms[chain_label((s, r), sep="->")],
                                         rtol=1e-4, atol=1e-4))


def _cases_expanded() -> Iterator[Case]:
    for model in (bundled(), check_model(2)):
        tokens, _, _ = repeat_tokens_for(model, 4, seed=16)
        logits = model(tokens).detach()
        pe = _expansion(model, tokens)
        kinds = pe.by_kind()
        alts = ((logits - kinds["virtual"], "the virtual-head (composition) terms are missing"),
                (logits - kinds["bias"], "the bias terms are missing"),
                (logits - kinds["single"], "the single-head terms are missing"))
        yield Case(f"repeated tokens {tuple(tokens.shape)} on {model_desc(model)} (compared with model(tokens))",
                   (model, tokens), functools.partial(compare_tensor, expected=logits, rtol=1e-4, atol=2e-4,
                                                      alternatives=alts))


# --- investigation 05-08: which term of the expansion carries the answer (06.5)


def _credits(model, tokens, mask) -> dict[str, dict[str, float]]:
    """Each term's credit for the correct token (logit minus mean logit, mean over ``mask``), and the
    versions of the mistakes: no mean subtracted, every position, and each term's size."""
    pe = mechlib.path_expansion(model, tokens)
    target = tokens[:, 1:]
    everywhere = torch.ones_like(mask)
    out = {"credit": mechlib.correct_token_attribution(pe, mask),
           "credit_all": mechlib.correct_token_attribution(pe, everywhere), "raw": {}, "size": pe.sizes()}
    for name, T in pe.terms.items():
        out["raw"][name] = float(T[:, :-1].double().gather(-1, target[..., None])[..., 0][mask].mean())
    return out


def _share(credit: dict[str, float]) -> tuple[str, float]:
    best = max(credit, key=credit.get)
    return best, credit[best] / sum(credit.values())


def _compare_carrier(got, c: dict) -> None:
    name, share = fd.as_pair(got, 2, "the result (term, share)")
    if not isinstance(name, str) or name not in c["credit"]:
        raise Mismatch(f"the term must be the name of a term of mechlib.path_expansion (a str such as 'direct', "
                       f"'1.0' or '0.0->1.0'); got {name!r}"[:300])
    share = fd.as_float(share, "the share")
    best, expected = _share(c["credit"])
    if name != best:
        hints = [h for key, h in (
            ("size", "that term is the largest in size (root-mean-square), but size says nothing about helping "
                     "the right token; rank the terms by their credit"),
            ("raw", "you ranked by the correct token's logit without subtracting the term's mean logit, which the "
                    "softmax ignores"),
            ("credit_all", "you averaged over every position; score only the predictions where mask is True"))
            if max(c[key], key=c[key].get) == name]
        raise Mismatch(f"expected term {best!r} (credit {fd.fmt_number(c['credit'][best])} logits), got {name!r} "
                       f"(credit {fd.fmt_number(c['credit'][name])})" + (f". Hint: {hints[0]}" if len(hints) == 1 else ""))
    # float32 answers agree to about 1e-6; leaving out the bias terms moves the share by 1e-4 to 1e-2
    rtol, atol = SHARE_TOL
    if fd.close(share, expected, rtol, atol):
        return
    msg = fd.number_message("the share", share, expected, rtol, atol)
    no_bias = {k: v for k, v in c["credit"].items() if not k.startswith("bias")}
    if fd.close(share, 100 * expected, 0.01, 0.5):
        msg += ". Hint: a share is a fraction between 0 and 1, not a percentage"
    elif fd.close(share, _share(c["raw"])[1], rtol, atol) or fd.close(share, c["raw"][best] / sum(c["raw"].values()), rtol, atol):
        msg += ". Hint: subtract each term's mean logit over the vocabulary before you compare"
    elif fd.close(share, c["credit"][best] / sum(abs(v) for v in c["credit"].values()), rtol, atol):
        msg += ". Hint: divide by the plain sum of all credits (the model's own margin), not the sum of their sizes"
    elif fd.close(share, c["credit"][best] / sum(no_bias.values()), rtol, atol):
        msg += (". Hint: the bias terms are terms too: the share is of the credit of every term together, which is "
                "the model's own margin")
    raise Mismatch(msg)


#: the share's tolerance (rtol, atol)
SHARE_TOL = (1e-3, 1e-4)


def _cases_carrier() -> Iterator[Case]:
    for k, (name, model) in enumerate(fd.relay_models() + fd.induction_models()):
        tokens, mask, _ = fd.scored_batch(name, model, seed=65 + k, size=16)
        yield Case(fd.batch_desc(name, tokens), (model, tokens, mask.clone()),
                   functools.partial(_compare_carrier, c=_credits(model, tokens, mask)))


NOTEBOOK = '06_two_layer_expansion'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='06.1', function='direct_path_logits', title='The direct path',
             difficulty=1, importance=4, minutes=5,
             draw=_cases_direct,
             statement='``direct_path_logits(model, tokens)`` is ``(W_E[tokens] + W_pos) W_U``.',
             success="matches the direct term of mechlib.path_expansion"),
    exercise(id='06.2', function='single_head_logits', title='Single-head terms',
             difficulty=2, importance=5, minutes=15,
             draw=_cases_single,
             statement='``single_head_logits(model, tokens, head)`` is ``A^{h} x0 W_OV^{h} W_U``.',
             success="matches every single-head term of mechlib.path_expansion"),
    exercise(id='06.3', function='virtual_head_logits', title='Virtual-head terms',
             difficulty=3, importance=5, minutes=15,
             draw=_cases_virtual,
             statement='``virtual_head_logits(model, tokens, sender, receiver)`` is ``A^{r} A^{s} x0 W_OV^{s} W_OV^{r} W_U``.',
             success="matches every virtual-head term of mechlib.path_expansion"),
    exercise(id='06.4', function='expanded_logits', title='The expansion adds up to the logits',
             difficulty=2, importance=4, minutes=10,
             draw=_cases_expanded,
             statement="``expanded_logits(model, tokens)``: the sum of all terms equals the model's logits.",
             success="the sum of your terms equals model(tokens) to float32 precision"),
    # --- investigation 05-08
    exercise(id='06.5', function='carrying_term', title='Investigate: which route carries the answer?',
             difficulty=2, importance=5, minutes=20,
             draw=_cases_carrier,
             statement="``carrying_term(model, tokens, mask)`` -> ``(name, share)``: the path-expansion term with the "
                       "most credit for the correct token on the scored predictions, and its share of all terms' credit.",
             success="found the carrying term on the relay and the induction model: a virtual head in one, a single "
                     "head in the other"),
)
