"""Training the bundled models from their recipes.

``induction-2l`` learns to predict the second copy of a repeated segment, which only a real
induction circuit can do (Chapter 1, Beyond One Layer); its snapshots along the way show
the circuit forming (The Circuit Forms, in chapter 5). ``relay-2l`` learns the relay task of
:mod:`mechlib.relay`, which no single head can do and which it solves through
V-composition (Chapter 2, V-Composition). Both use the same
loop; ``scripts/train_model.py`` runs it to write the shipped checkpoints.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from transformer_lens.model_bridge import TransformerBridge

from mechlib.data import induction_training_batch
from mechlib.models.bundled import InductionConfig, RelayConfig, build_model
from mechlib.models.checkpoints import weights
from mechlib.models.info import model_info


def train_induction_model(
    seed: int = 0,
    config: InductionConfig | None = None,
    progress: bool = True,
    save_steps: Sequence[int] = (),
    stop_after: int | None = None,
) -> TransformerBridge:
    """Train ``induction-2l`` from scratch and return it in eval mode.

    Minimises the next-token cross-entropy on the predictable positions only
    (the second copy of a repeated segment; see
    :func:`mechlib.data.induction_training_batch`) with AdamW. Everything random
    (initial weights, every batch) is drawn from generators seeded by ``seed``,
    so the same seed and config give the same weights on the same machine.
    The training loss of every step is kept in ``model_info(model).training_log`` as
    ``(step, loss)`` pairs, step ``s`` being the loss of the batch that the
    ``s``-th update (counting from 0) was computed from.

    ``save_steps`` lists steps at which a copy of the weights is kept, in
    ``model_info(model).snapshots`` (``{step: state_dict}``): step ``N`` is the model
    after ``N`` updates (``0`` is the initialisation, ``config.steps`` the final model).
    Copying the weights changes nothing in the training itself. The shipped
    snapshots (The Circuit Forms, in chapter 5) use :data:`mechlib.models.CHECKPOINT_STEPS`.

    ``stop_after``: stop after that many updates, with the recipe's learning-rate schedule
    unchanged (it is set by ``config.steps``), so the model, the log and the snapshots up to
    that step are those of the full run: a quick way to reproduce the start of training.
    """
    config = dataclasses.replace(config or InductionConfig(), seed=seed)

    def batch(gen: torch.Generator):
        return induction_training_batch(config.batch, config.n_ctx, config.d_vocab, gen, config.lengths,
                                        config.max_gap)

    return _train(config, batch, progress, save_steps, stop_after)


def train_relay_model(
    seed: int = 0,
    config: RelayConfig | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> TransformerBridge:
    """Train ``relay-2l`` from scratch and return it in eval mode.

    The loop, the optimiser, the schedule and the seeding are those of
    :func:`train_induction_model`; the data are :func:`mechlib.relay.relay_training_batch`
    (one scored prediction per sequence: the token after the recall token ``R``). The
    training loss of every step is kept in ``model_info(model).training_log``.
    Chapter 2, V-Composition.
    """
    from mechlib.relay import relay_training_batch

    config = dataclasses.replace(config or RelayConfig(), seed=seed)

    def batch(gen: torch.Generator):
        return relay_training_batch(config.batch, config.n_ctx, config.d_vocab, gen, config.max_markers)

    return _train(config, batch, progress, (), stop_after)


def _train(config, batch, progress: bool, save_steps: Sequence[int], stop_after: int | None) -> TransformerBridge:
    """AdamW on the next-token cross-entropy of the masked predictions of ``batch(generator)``.

    Weights from ``torch.manual_seed(config.seed)``, batches from a generator seeded with
    ``config.seed + 1``; linear warm-up over 200 steps, then a cosine decay to zero at
    ``config.steps``.
    """
    seed = config.seed
    torch.manual_seed(seed)
    model = build_model(config)
    inner = model.original_model
    inner.train()
    params = [p for p in inner.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: min(1.0, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * step / config.steps))
    )
    gen = torch.Generator().manual_seed(seed + 1)
    save = _check_save_steps(save_steps, config.steps)
    last = config.steps if stop_after is None else _check_stop_after(stop_after, config.steps)
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    log: list[tuple[int, float]] = []
    bar = _progress(last, f"training {config.name}", progress)
    running = None
    for step in range(last):
        if step in save:
            snapshots[step] = weights(model)
        tokens, mask = batch(gen)
        logits = inner(tokens)[:, :-1]
        loss = F.cross_entropy(logits[mask], tokens[:, 1:][mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        log.append((step, loss.item()))
        if bar is not None and (step % 50 == 0 or step == last - 1):
            bar.set_postfix(loss=f"{running:.3f}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if last in save:
        snapshots[last] = weights(model)
    inner.eval()
    model.eval()
    info = model_info(model)
    info.training_log, info.snapshots = log, snapshots
    return model


def _check_save_steps(save_steps: Sequence[int], total: int) -> set[int]:
    steps = set()
    for s in save_steps:
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"save_steps must hold integers; got {s!r} ({type(s).__name__})")
        if not 0 <= s <= total:
            raise ValueError(f"save_steps must lie in 0..{total} (the number of training steps); got {s}")
        steps.add(s)
    return steps


def _check_stop_after(stop_after: int, total: int) -> int:
    if isinstance(stop_after, bool) or not isinstance(stop_after, int):
        raise TypeError(f"stop_after must be an int; got {stop_after!r} ({type(stop_after).__name__})")
    if not 1 <= stop_after <= total:
        raise ValueError(f"stop_after must lie in 1..{total} (the recipe's number of steps); got {stop_after}")
    return stop_after


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, mininterval=1.0)
