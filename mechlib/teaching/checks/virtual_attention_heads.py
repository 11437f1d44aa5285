"""Checks of the exercises of Chapter 5, Virtual Attention Heads (``05_virtual_attention_heads.ipynb``)."""
from __future__ import annotations

import functools
from typing import Any, Iterator

import torch

import mechlib
from mechlib.teaching import reference as ref
from mechlib.teaching.checking import (
    Case,
    CheckResult,
    bundled,
    check_model,
    compare_scalar,
    compare_tensor,
    generator,
    model_desc,
    repeat_tokens_for,
    run_check,
)


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


def check_prev_token_score(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 05.1: ``prev_token_score(pattern)``: mean of ``A[b, h, q, q - 1]`` over b and q >= 1."""
    return run_check("05.1", "prev_token_score", fn, _cases_prev_token, verbose,
                     success="matches the mean attention to the previous position on random and model patterns")


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


def check_induction_score(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 05.2: ``induction_score(pattern, half_len, prefix_len)``: mean attention from each token
    of the second copy to the token after its first occurrence."""
    return run_check("05.2", "induction_score", fn, _cases_induction, verbose,
                     success="matches the mean attention from the second copy to 'the token after' on random and model patterns")


def _hook_cases(mode: str) -> Iterator[Case]:
    for shape, head, seed in [((4, 6, 3, 5), 1, 9), ((2, 7, 4, 16), 3, 10), ((5, 3, 4, 2), 0, 11)]:
        z = torch.randn(*shape, generator=generator(seed))
        exp = z.clone().double()
        if mode == "zero":
            exp[:, :, head] = 0.0
        else:
            exp[:, :, head] = exp[:, :, head].mean(dim=0, keepdim=True)
        alts = ((_alt_mean_all(z, head), "you averaged over positions as well; average over the batch only, "
                 "position by position (keepdim so it broadcasts)"),) if mode == "mean" else ()
        alts += ((_zero_all(z), "you changed every head; only z[:, :, head] should change"),)
        # a hook may edit the activation in place and return nothing, as TransformerLens allows
        yield Case(f"a random hook_z activation of shape {shape} with head={head}", (z.clone(), None),
                   functools.partial(compare_tensor, expected=exp, rtol=1e-5, atol=1e-6,
                                     what="the returned (or edited) activation", alternatives=alts),
                   kwargs={"head": head}, edited=0)


def _alt_mean_all(z: torch.Tensor, head: int) -> torch.Tensor:
    out = z.clone().double()
    out[:, :, head] = out[:, :, head].mean(dim=(0, 1), keepdim=True)
    return out


def _zero_all(z: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(z, dtype=torch.float64)


def check_zero_ablation_hook(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 05.3: ``zero_ablation_hook(z, hook, head)`` zeroes one head's ``hook_z``."""
    return run_check("05.3", "zero_ablation_hook", fn, lambda: _hook_cases("zero"), verbose,
                     none_is_placeholder=False,
                     success="zeroes exactly z[:, :, head] and leaves the other heads alone")


def check_mean_ablation_hook(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 05.4: ``mean_ablation_hook(z, hook, head)`` replaces one head's ``hook_z`` by its batch mean."""
    return run_check("05.4", "mean_ablation_hook", fn, lambda: _hook_cases("mean"), verbose,
                     none_is_placeholder=False,
                     success="replaces z[:, :, head] by its batch mean at each position, other heads untouched")


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


def check_ablated_repeat_loss(fn: Any, verbose: bool = True) -> CheckResult:
    """Exercise 05.5: ``ablated_repeat_loss(model, tokens, heads, half_len, prefix_len, mode)``."""
    return run_check("05.5", "ablated_repeat_loss", fn, _cases_ablated_loss, verbose,
                     success="matches repeat_loss(run_with_ablation(...)) for zero and mean ablation of several head sets")
