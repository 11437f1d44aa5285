"""Watching the induction circuit form: the bundled model's measurements at every checkpoint.

``induction-2l`` ships its weights at the steps of :func:`mechlib.checkpoint_steps`
(``mechlib.load_model("induction-2l", step=N)``). :func:`training_dynamics` loads each
one and measures, on one evaluation batch (:func:`mechlib.repeated_batch`):

* the loss on the predictable targets (the second copy, its first token excluded) and on
  the rest (the prefix and the first copy, which no model can predict);
* every head's attention by offset (:func:`mechlib.attention_by_offset`: offset 1 is the
  previous-token score, offset 2 the two-back score) and induction score;
* the Q-, K- and V-composition scores of every head pair (:func:`mechlib.composition_scores`);
* the loss on the predictable targets with the senders (by default the final model's
  previous-token heads) cut from the keys of the receivers (its induction heads), by path
  ablation (:func:`mechlib.path_ablation_losses`);
* for the first sequence of the batch: every head's attention pattern and the loss at
  every position (what the page's checkpoint slider shows).

:func:`halfway_step` turns one curve into one step: where it has gone half of the way
from its first value to its last, for good.

Taught in The Circuit Forms, in chapter 5.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from jaxtyping import Float

from mechlib.heads import Head, parse_head
from mechlib.roles import head_roles, heads_with_role
from mechlib.scores import attention_patterns, induction_scores_from_patterns, per_token_loss
from mechlib.validate import check_heads

KINDS = "QKV"


@dataclass(frozen=True)
class TrainingDynamics:
    """What :func:`training_dynamics` measured, one row per checkpoint step (all on the CPU).

    ``composition[kind][i, l1, h1, l2, h2]`` is the ``kind``-composition score from head
    ``(l1, h1)`` into ``(l2, h2)`` at ``steps[i]``; ``k_cut_loss[i]`` is ``loss_repeat[i]``
    with ``senders`` removed from the keys of ``receivers``. ``example_patterns`` and
    ``example_loss`` belong to the first sequence of the batch.
    """

    steps: list[int]
    loss_repeat: Float[torch.Tensor, "step"]
    loss_rest: Float[torch.Tensor, "step"]
    by_offset: Float[torch.Tensor, "step layer head offset"]
    induction: Float[torch.Tensor, "step layer head"]
    composition: dict[str, Float[torch.Tensor, "step sender_layer sender_head receiver_layer receiver_head"]]
    senders: list[Head]
    receivers: list[Head]
    k_cut_loss: Float[torch.Tensor, "step"]
    example_patterns: Float[torch.Tensor, "step layer head dest src"]
    example_loss: Float[torch.Tensor, "step seq_minus_1"]
    batch_size: int

    def pair_composition(self, kind: str, sender: Any, receiver: Any) -> Float[torch.Tensor, "step"]:
        """The ``kind``-composition score of one pair at every step."""
        if kind not in KINDS or not isinstance(kind, str) or len(kind) != 1:
            raise ValueError(f"kind must be 'Q', 'K' or 'V'; got {kind!r}")
        (l1, h1), (l2, h2) = _as_head(sender, "sender"), _as_head(receiver, "receiver")
        return self.composition[kind][:, l1, h1, l2, h2]

    def mean_composition(self, kind: str) -> Float[torch.Tensor, "step"]:
        """The ``kind``-composition score averaged over every (sender, receiver) pair of
        ``senders`` x ``receivers``, at every step."""
        return torch.stack([self.pair_composition(kind, s, r) for s in self.senders
                            for r in self.receivers]).mean(0)


def _as_head(head: Any, name: str) -> Head:
    if isinstance(head, str):
        return parse_head(head, name)
    if (not isinstance(head, (tuple, list)) or len(head) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in head)):
        raise ValueError(f"{name} must be a (layer, head) pair of ints or a name like '0.3'; got {head!r}")
    return (head[0], head[1])


def _default_heads(model: Any, batch: Any) -> tuple[list[Head], list[Head]]:
    roles = head_roles(model, batch)
    return heads_with_role(roles, "previous-token", layer=0), heads_with_role(roles, "induction", layer=1)


def training_dynamics(
    batch: Any = None,
    steps: Sequence[int] | None = None,
    senders: Sequence[Any] | None = None,
    receivers: Sequence[Any] | None = None,
    max_offset: int = 2,
) -> TrainingDynamics:
    """Measure ``induction-2l`` at each checkpoint step (module docstring says what).

    ``batch``: a :class:`mechlib.RepeatedBatch` (default ``repeated_batch(model)``, the book's
    evaluation batch). ``steps``: some of :func:`mechlib.checkpoint_steps` (default all).
    ``senders`` / ``receivers``: the heads of the K-path cut and of :meth:`~TrainingDynamics.mean_composition`
    (default: the final model's previous-token heads in layer 0 and induction heads in
    layer 1, by :func:`mechlib.head_roles` on ``batch``). On the CPU, all 41 checkpoints
    take a few seconds.
    """
    from mechlib.ablation import path_ablation_losses
    from mechlib.composition import composition_scores
    from mechlib.data import RepeatedBatch, repeated_batch
    from mechlib.validate import check_nonnegative_int
    from mechlib.models import checkpoint_steps, load_model
    from mechlib.models.checkpoints import snapshot_state

    check_nonnegative_int(max_offset, "max_offset")

    available = checkpoint_steps()
    if steps is None:
        steps = available
    steps = [int(s) if not isinstance(s, bool) and isinstance(s, int) else s for s in steps]
    bad = [s for s in steps if s not in available]
    if bad or not steps:
        raise ValueError(f"steps must be a non-empty list of checkpoint steps {available}; got {list(steps)}")
    final = load_model()
    if batch is None:
        batch = repeated_batch(final)
    if not isinstance(batch, RepeatedBatch):
        raise TypeError(f"batch must be a mechlib.RepeatedBatch (mechlib.repeated_batch); got {type(batch).__name__}")
    if senders is None or receivers is None:
        default_s, default_r = _default_heads(final, batch)
        senders = default_s if senders is None else senders
        receivers = default_r if receivers is None else receivers
    senders = check_heads(final, senders, "senders")
    receivers = check_heads(final, receivers, "receivers")
    rest = slice(0, batch.prefix_len + batch.half_len)  # targets of the prefix and the first copy
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in
                                           ("rep", "rest", "off", "ind", "Q", "K", "V", "cut", "pat", "ex")}
    model = final  # one model, its weights replaced step by step (building one is slow)
    for step in steps:
        model.load_state_dict(snapshot_state(step), strict=True)
        with torch.no_grad():
            logits = model(batch.tokens)
        losses = per_token_loss(logits, batch.tokens)
        A = attention_patterns(model, batch.tokens)
        rows["rep"].append(torch.tensor(batch.loss(logits)))
        rows["rest"].append(losses[:, rest].mean())
        # attention_by_offset(model, tokens, max_offset), from the patterns at hand
        rows["off"].append(torch.stack([A.diagonal(offset=-k, dim1=-2, dim2=-1).mean(dim=(1, -1))
                                        for k in range(max_offset + 1)], dim=-1).cpu())
        rows["ind"].append(induction_scores_from_patterns(A, batch.tokens).cpu())
        for kind in KINDS:
            rows[kind].append(composition_scores(model, kind))
        rows["cut"].append(torch.tensor(path_ablation_losses(model, batch, senders, receivers, kinds="K")["K"]))
        rows["pat"].append(A[:, 0].cpu())
        rows["ex"].append(losses[0].cpu())
    stack = {k: torch.stack(v).float() for k, v in rows.items()}
    return TrainingDynamics(
        steps=list(steps), loss_repeat=stack["rep"], loss_rest=stack["rest"], by_offset=stack["off"],
        induction=stack["ind"], composition={k: stack[k] for k in KINDS}, senders=senders,
        receivers=receivers, k_cut_loss=stack["cut"], example_patterns=stack["pat"], example_loss=stack["ex"],
        batch_size=int(batch.tokens.shape[0]),
    )


def halfway_step(steps: Sequence[int], values: Any) -> int:
    """The first step from which a curve stays at least half of the way from its first value to its last.

    With ``v_0`` the first and ``v_end`` the last value, position ``i`` is past half-way when
    ``(v_i - v_0) / (v_end - v_0) >= 1/2``; the answer is ``steps[i]`` for the smallest ``i``
    such that every ``j >= i`` is past half-way. It works for rising curves (scores) and
    falling ones (losses) alike; for a score that starts near 0 it is the step at which the
    score crosses half of its final value, and stays above it. Raises ``ValueError`` for a
    flat curve (``v_end == v_0``) or when ``steps`` is not increasing. The Circuit Forms,
    in chapter 5.
    """
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    steps = list(steps)
    if len(steps) != len(values) or len(steps) < 2:
        raise ValueError(f"steps and values must have the same length, at least 2; got {len(steps)} and {len(values)}")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError("steps must be strictly increasing")
    span = values[-1] - values[0]
    if span == 0:
        raise ValueError("values is flat (its first and last values are equal): it has no half-way point")
    past = (values - values[0]) / span >= 0.5
    i = len(steps) - 1
    while i > 0 and past[i - 1]:
        i -= 1
    return int(steps[i])
