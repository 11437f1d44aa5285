"""composition_scores vs TransformerLens's all_composition_scores on a GPT-2-small-shaped model.

    .venv/bin/python benchmarks/composition_speed.py [--repeats 3]

Both run in this one process on the same random weights (12 layers x 12 heads,
d_model 768, d_head 64, from boot_native). Prints the best-of-N time of each, their
ratio, the largest disagreement, and the time of the "floor": one product of the
stacked head factors, (144*64) x 768 @ 768 x (144*64).
"""
from __future__ import annotations

import argparse
import time

import torch

import transformer_lens.model_bridge.sources.native  # noqa: F401
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

import mechlib


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TransformerBridgeConfig(
        d_model=768, d_head=64, n_heads=12, n_layers=12, n_ctx=64, d_vocab=1000, attn_only=True,
        normalization_type=None, positional_embedding_type="standard", seed=0, act_fn="gelu",
    )
    model = TransformerBridge.boot_native(cfg).eval()
    model.requires_grad_(False)
    print(f"model: 12 layers x 12 heads, d_model 768, d_head 64; torch threads {torch.get_num_threads()}")
    with torch.no_grad():
        stacked = model.W_O.reshape(-1, 64, 768).reshape(-1, 768)  # 9216 x 768
        other = model.W_Q.permute(2, 0, 1, 3).reshape(768, -1)  # 768 x 9216
        floor, _ = best_of(lambda: stacked @ other, args.repeats)
    print(f"floor (9216x768 @ 768x9216 matmul): {floor:.3f} s")
    print(f"{'kind':<5}{'TransformerLens':>17}{'mechlib':>10}{'speed-up':>10}{'vs floor':>10}{'max |diff|':>12}")
    for kind in "QKV":
        with torch.no_grad():
            t_tl, tl = best_of(lambda: model.all_composition_scores(kind).scores, args.repeats)
        t_us, us = best_of(lambda: mechlib.composition_scores(model, kind), args.repeats)
        diff = (tl - us).abs().max().item()
        print(f"{kind:<5}{t_tl:>15.3f} s{t_us:>8.3f} s{t_tl / t_us:>9.1f}x{t_us / floor:>9.2f}x{diff:>12.1e}")


if __name__ == "__main__":
    main()
