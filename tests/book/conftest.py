"""What the book's tests share: the headless Chromium they launch, and the book's Sphinx
extensions (book/_ext/, outside the package) importable by name, as _config.yml loads them."""
import os
import shutil
import sys
from pathlib import Path

import pytest

# $CHROMIUM overrides, for a browser installed somewhere else.
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: the book's Sphinx extensions (_config.yml: sphinx.local_extensions)
EXT_DIR = Path(__file__).resolve().parents[2] / "book" / "_ext"
if str(EXT_DIR) not in sys.path:
    sys.path.insert(0, str(EXT_DIR))


@pytest.fixture(scope="session")
def chromium():
    """Keyword arguments for Playwright's ``chromium.launch``; skips (fails in CI) without Chromium."""
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM}: run `make browser` (Debian's chromium package)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="module")
def browser(chromium):
    """One headless Chromium for the module (Playwright allows one sync session at a time)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(**chromium)
        yield b
        b.close()
