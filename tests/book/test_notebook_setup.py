"""Every notebook of the book opens in Colab: its first code cell installs mechlib there."""
from pathlib import Path

import nbformat
import pytest

SETUP_CELL = '''# Setup: in Google Colab this installs mechlib; elsewhere it does nothing.
import sys

IN_COLAB = "google.colab" in sys.modules
REPO = "https://github.com/composition-textbook/composition-virtual-heads"
if IN_COLAB:
    %pip install -q "mechlib @ git+{REPO}"'''

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p for folder in ("chapters", "exercises", "solutions") for p in (ROOT / folder).glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 8 + 7 + 7


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_first_code_cell_is_the_colab_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source.strip() == SETUP_CELL.strip()
    assert max(len(line) for line in first.source.splitlines()) <= 79
