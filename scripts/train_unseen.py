"""Retrain the trained unseen models of the hidden cases (mechlib/teaching/unseen.py) from their recipes.

    python scripts/train_unseen.py                     # every variant, into mechlib/checkpoints/unseen/
    python scripts/train_unseen.py --only relay-s2     # one of them
    python scripts/train_unseen.py --out /tmp/unseen   # elsewhere

One torch thread by default, so that the same seed gives the same weights (up to float16
rounding of the shipped copy) on a busy machine as on an idle one.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import mechlib
from mechlib.models.bundled import RelayConfig
from mechlib.teaching.unseen import TRAINED, save_unseen, unseen_path


def train(name: str):
    config = TRAINED[name]
    if isinstance(config, RelayConfig):
        return mechlib.train_relay_model(seed=config.seed, config=config, progress=False)
    return mechlib.train_induction_model(seed=config.seed, config=config, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(TRAINED), action="append", default=None)
    parser.add_argument("--out", type=Path, default=None, help="default: mechlib/checkpoints/unseen/")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.only or list(TRAINED):
        start = time.time()
        model = train(name)
        out = unseen_path(name) if args.out is None else args.out / f"{name}.pt"
        out.parent.mkdir(parents=True, exist_ok=True)
        path = save_unseen(model, out.with_suffix(""))
        loss = mechlib.model_info(model).training_log[-1][1]
        print(f"wrote {path} (final training loss {loss:.3f}, {time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
