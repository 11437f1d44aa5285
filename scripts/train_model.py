"""Retrain a bundled checkpoint from its recorded recipe.

    python scripts/train_model.py                    # induction-2l: writes mechlib/checkpoints/induction-2l.{pt,json}
                                                     # and the training snapshots induction-2l-steps.pt
    python scripts/train_model.py --model relay-2l   # relay-2l: writes mechlib/checkpoints/relay-2l.{pt,json}
    python scripts/train_model.py --seed 3 --out /tmp/other

Each model has one recipe (``mechlib.InductionConfig``, ``mechlib.RelayConfig``), recorded in
its ``.json`` with the loss of every step. For induction-2l the snapshots are taken at
``mechlib.models.CHECKPOINT_STEPS`` (float16, the final step left out: it is the ``.pt``).
The same seed gives the same weights on the same software; on other machines they agree
up to float rounding (tests/core/test_models.py and tests/core/test_relay_model.py check the
figures of every checkpoint).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import mechlib
from mechlib.models import (BUNDLED_MODEL, CHECKPOINT_STEPS, RELAY_MODEL, InductionConfig, RelayConfig,
                            bundled_checkpoint, save_model, save_snapshots)

#: each bundled model's recipe (its default seed) and trainer
RECIPES = {
    BUNDLED_MODEL: (InductionConfig, lambda seed: mechlib.train_induction_model(seed=seed, save_steps=CHECKPOINT_STEPS)),
    RELAY_MODEL: (RelayConfig, lambda seed: mechlib.train_relay_model(seed=seed)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(RECIPES), default=BUNDLED_MODEL)
    parser.add_argument("--seed", type=int, default=None, help="default: the recipe's seed")
    parser.add_argument("--out", type=Path, default=None, help="default: the shipped checkpoint's path")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (default 2; use 1 on a machine busy with other work)")
    args = parser.parse_args()
    config_class, train = RECIPES[args.model]
    seed = config_class().seed if args.seed is None else args.seed
    out = bundled_checkpoint(args.model).with_suffix("") if args.out is None else args.out
    torch.set_num_threads(args.threads)
    model = train(seed)
    path = save_model(model, out)
    print(f"wrote {path} (final training loss {mechlib.model_info(model).training_log[-1][1]:.3f})")
    if args.model == BUNDLED_MODEL:
        steps = save_snapshots(model, out.with_name(out.name + "-steps.pt"))
        print(f"wrote {steps}")


if __name__ == "__main__":
    main()
