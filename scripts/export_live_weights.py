"""Export the bundled models' weights for the in-page forward pass (mechlib/views/live/).

    .venv/bin/python scripts/export_live_weights.py            # writes mechlib/views/live/<model>.weights.js
    .venv/bin/python scripts/export_live_weights.py --check    # exit 1 if a shipped file is stale

For each model of mechlib.views.live.SHIPPED_MODELS (induction-2l, relay-2l), reads
mechlib/checkpoints/<model>.pt (through mechlib.load_model) and writes the
weights as float32 little-endian, base85-encoded, with a JSON header (see
mechlib.views.live.weights_js). The output depends only on the checkpoints, so running it
twice gives the same bytes; tests/views/test_live.py fails when a shipped file drifts.
"""

import argparse
import sys

import mechlib
from mechlib.views import live


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare with the shipped file")
    args = ap.parse_args()
    stale = 0
    for name in live.SHIPPED_MODELS:
        text = live.weights_js(mechlib.load_model(name), name, source=f"mechlib/checkpoints/{name}.pt")
        path = live.asset_dir() / live.weights_file(name)
        if args.check:
            same = path.exists() and path.read_text() == text
            print(f"{path}: {'up to date' if same else 'STALE: run scripts/export_live_weights.py'}")
            stale += not same
            continue
        path.write_text(text)
        print(f"wrote {path} ({len(text.encode()) / 1000:.1f} kB)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
