"""Every notebook of the book opens in Colab: its first code cell installs mechlib there."""
from pathlib import Path

import nbformat
import pytest

from test_exercises import SETUP_CELL

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for folder in ("chapters", "exercises", "solutions") for p in (ROOT / folder).glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 8 + 7 + 7


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_first_code_cell_is_the_colab_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source.strip() == SETUP_CELL.strip()
    assert max(len(line) for line in first.source.splitlines()) <= 79
