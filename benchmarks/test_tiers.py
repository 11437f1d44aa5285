"""How long the two tiers of tests take: `make check` and a fresh-clone `make test`.

    python benchmarks/test_tiers.py            # both: a clone of HEAD into a temporary folder
    python benchmarks/test_tiers.py --check    # make check only, in this checkout (needs .venv)

The fresh clone measures what CI measures: `make test` from nothing but Python 3.11 (both
virtual environments set up, Debian's chromium and bubblewrap already present or installed),
then `make check` in the same clone, now set up. Prints wall-clock seconds of each. The issue's
targets (issue 19): `make check` within 2 minutes after set-up, a fresh `make test` within 15.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path, log: Path) -> tuple[float, int]:
    start = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT).returncode
    return time.monotonic() - start, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only `make check`, in this checkout")
    args = parser.parse_args()
    python = shutil.which("python3.11") or sys.executable
    if args.check:
        seconds, code = timed(["make", "check", f"PYTHON={python}"], REPO, Path(tempfile.gettempdir()) / "make-check.log")
        print(f"make check: {seconds:.0f} s (exit {code})")
        return code
    with tempfile.TemporaryDirectory(prefix="mechlib-tiers-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        results = []
        for target in ("test", "check"):
            log = Path(tmp) / f"make-{target}.log"
            seconds, code = timed(["make", target, f"PYTHON={python}"], clone, log)
            results.append((target, seconds, code))
            print(f"make {target} (fresh clone{', set up' if target == 'check' else ''}): {seconds:.0f} s "
                  f"= {seconds / 60:.1f} min (exit {code})", flush=True)
            if code:
                print(log.read_text()[-3000:])
                return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
