"""Retrain the bundled ``induction-2l`` checkpoint from its recorded recipe.

    python scripts/train_model.py            # writes mechlib/checkpoints/induction-2l.{pt,json}
                                             # and the training snapshots induction-2l-steps.pt
    python scripts/train_model.py --seed 3 --out /tmp/other

The snapshots are taken at ``mechlib.models.CHECKPOINT_STEPS`` (float16, the final step
left out: it is the ``.pt``); the ``.json`` keeps the recipe and the loss of every step.
The same seed gives the same weights on the same software; on other machines they agree
up to float rounding (tests/core/test_models.py checks the figures of every checkpoint).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import mechlib
from mechlib.models import CHECKPOINT_STEPS, InductionConfig, bundled_checkpoint, save_model, save_snapshots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=InductionConfig().seed)
    parser.add_argument("--out", type=Path, default=bundled_checkpoint().with_suffix(""))
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = mechlib.train_induction_model(seed=args.seed, save_steps=CHECKPOINT_STEPS)
    path = save_model(model, args.out)
    steps = save_snapshots(model, args.out.with_name(args.out.name + "-steps.pt"))
    print(f"wrote {path} (final training loss {mechlib.model_info(model).training_log[-1][1]:.3f}) and {steps}")


if __name__ == "__main__":
    main()
