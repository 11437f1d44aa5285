"""A model handed to a learner's function must come back as it went in: same weights, no hooks.

An exercise that takes a model (the investigations, the capstone, chapter 8) hands the learner
the check's own model, which :mod:`mechlib.teaching.inputs` caches for every later check. A
function that silences a head by zeroing its weights in place (``W.zero_()``) and never puts
them back, or that adds a hook with ``model.add_hook`` and never removes it, gets its own
first answer right and leaves the model broken: in the notebook every later cell and check
that uses it runs an ablated model, and a correct answer checked next fails for no reason the
learner can see. :func:`snapshot` records the model before the call; :func:`changes` says
after it what changed (naming the first changed weight or the hook point), puts the weights
back and removes the hooks the call added.

A small model's weights are kept whole (exact, and restorable). A model over
:data:`COPY_LIMIT` parameters (GPT-2 small in the capstone, MiniLM in the appendix) is only
fingerprinted: each tensor's sum and sum of absolute values, in float64; a change is reported but
cannot be undone (the message says to reload the model).
"""
from __future__ import annotations

from typing import Any

import torch

#: models up to this many parameters and buffers are copied whole before a call
COPY_LIMIT = 5_000_000


def is_model(x: Any) -> bool:
    """A TransformerLens model (``HookedTransformer`` or ``TransformerBridge``): has ``cfg``,
    ``state_dict`` and a ``hook_dict`` of hook points."""
    return hasattr(x, "cfg") and hasattr(x, "hook_dict") and callable(getattr(x, "state_dict", None))


def _hooked(model) -> set[str]:
    return {name for name, hp in model.hook_dict.items() if len(getattr(hp, "_forward_hooks", {})) > 0
            or len(getattr(hp, "_backward_hooks", {})) > 0}


def _fingerprint(t: torch.Tensor) -> tuple[float, float]:
    """The sum and the sum of absolute values, accumulated in float64 (no float64 copy of the tensor)."""
    d = t.detach()
    d = d.to(torch.uint8) if d.dtype == torch.bool else d
    return d.sum(dtype=torch.float64).item(), d.abs().sum(dtype=torch.float64).item()


def snapshot(model) -> dict:
    """What :func:`changes` compares with: the weights (or their fingerprints) and the hooked points."""
    state = model.state_dict()
    whole = sum(t.numel() for t in state.values()) <= COPY_LIMIT
    weights = {k: (t.detach().clone() if whole else _fingerprint(t)) for k, t in state.items()}
    return {"whole": whole, "weights": weights, "hooks": _hooked(model)}


def _changed_weights(model, snap: dict) -> list[str]:
    state = model.state_dict()
    changed = []
    for k, old in snap["weights"].items():
        t = state.get(k)
        if t is None:
            continue
        if snap["whole"]:
            same = t.shape == old.shape and torch.equal(t.detach().nan_to_num(), old.nan_to_num())
        else:
            same = _fingerprint(t) == old
        if not same:
            changed.append(k)
    return changed


def _restore(model, snap: dict, changed: list[str]) -> None:
    new_hooks = _hooked(model) - snap["hooks"]
    for name in new_hooks:
        hp = model.hook_dict[name]
        for d in (getattr(hp, "_forward_hooks", {}), getattr(hp, "_backward_hooks", {})):
            d.clear()
    if changed and snap["whole"]:
        state = model.state_dict()
        with torch.no_grad():
            for k in changed:
                state[k].copy_(snap["weights"][k])


def changes(values: tuple, snaps: list[tuple[int, dict]], names: list[str]) -> str:
    """The message for the first model among ``values`` whose weights or hooks the call changed
    ('' when none); every such model is put back (weights restored where they were copied,
    hooks added by the call removed)."""
    message = ""
    for i, snap in snaps:
        model = values[i]
        changed = _changed_weights(model, snap)
        hooks = sorted(_hooked(model) - snap["hooks"])
        _restore(model, snap, changed)
        if message:
            continue
        if changed:
            undo = ("the check has put them back" if snap["whole"] else
                    "reload the model (mechlib.load_model) before you go on")
            message = (f"{names[i]} (the model) had its weights changed in place ({changed[0]}"
                       f"{f' and {len(changed) - 1} more' if len(changed) > 1 else ''}); {undo}. Switch heads off "
                       "with hooks (mechlib.run_with_ablation, model.run_with_hooks), not by editing the weights, "
                       "or save the weights first and put them back before you return")
        elif hooks:
            message = (f"{names[i]} (the model): a hook is still attached to {hooks[0]} after the call, so every "
                       "later run of this model is changed; use model.run_with_hooks (it removes its hooks when "
                       "the run ends) instead of adding hooks by hand, or call model.reset_hooks() before you return")
    return message


def restore_all(values: tuple, snaps: list[tuple[int, dict]]) -> dict:
    """After a call that raised: put every model back as :func:`changes` does; returns ``{}``."""
    changes(values, snaps, [""] * len(values))
    return {}
