"""Retrain the bundled ``induction-2l`` checkpoint from its recorded recipe.

    python scripts/train_model.py            # writes mechlib/checkpoints/induction-2l.{pt,json}
    python scripts/train_model.py --seed 3 --out /tmp/other
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import mechlib
from mechlib.models import InductionConfig, bundled_checkpoint, save_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=InductionConfig().seed)
    parser.add_argument("--out", type=Path, default=bundled_checkpoint().with_suffix(""))
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = mechlib.train_induction_model(seed=args.seed)
    path = save_model(model, args.out)
    print(f"wrote {path} (final training loss {model.training_log[-1][1]:.3f})")


if __name__ == "__main__":
    main()
