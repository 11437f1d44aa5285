"""The grader's rules that need no notebook run (seconds): what is refused before anything runs,
what is flagged, how hidden seeds are derived, how the run's output is read, which limit a
note names, how numbers are read, and that a killed grader's scratch is cleaned up."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import nbformat
import numpy as np
import pytest
import torch

from grading_support import ROOT, SMALL, blank, solution, write
from mechlib.teaching.grading import flags, folder, notebook, runner
from mechlib.teaching.grading.settings import MIN_MEMORY_GIB


def _no_run(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a notebook was run")

    monkeypatch.setattr(notebook, "grade_notebook", refuse)


@pytest.fixture()
def subs(tmp_path):
    return tmp_path / "subs"


def _only_note(grades) -> str:
    nb = grades[0].notebooks[SMALL]
    assert grades[0].total() == 0
    return " ".join(nb.notes)


def test_a_hard_link_is_refused_unread(subs, tmp_path, monkeypatch):
    """A hard link could be the solutions or a classmate's file: refused, nothing run."""
    outside = tmp_path / "solutions.ipynb"
    shutil.copy(ROOT / "solutions" / f"{SMALL}.ipynb", outside)
    (subs / "eve").mkdir(parents=True)
    os.link(outside, subs / "eve" / f"{SMALL}.ipynb")
    _no_run(monkeypatch)
    grades = folder.grade(subs, tmp_path / "out", progress=False, sandbox=False)
    assert "hard link" in _only_note(grades)


@pytest.mark.parametrize("kind", ["fifo", "folder", "symlinked folder"])
def test_anything_but_a_regular_file_is_refused_unread(subs, tmp_path, monkeypatch, kind):
    (subs / "eve").mkdir(parents=True)
    path = subs / "eve" / f"{SMALL}.ipynb"
    if kind == "fifo":
        os.mkfifo(path)  # reading it would hang the grader
    elif kind == "folder":
        path.mkdir()
    else:
        shutil.rmtree(subs / "eve")
        write(tmp_path / "elsewhere", SMALL, solution())
        (subs / "eve").symlink_to(tmp_path / "elsewhere")
    _no_run(monkeypatch)
    grades = folder.grade(subs, tmp_path / "out", progress=False, sandbox=False)
    assert "not a regular file" in _only_note(grades) or "symbolic link" in _only_note(grades)


def test_memory_too_small_for_torch_is_refused_at_start(subs, tmp_path, monkeypatch):
    (subs / "ann").mkdir(parents=True)
    _no_run(monkeypatch)
    with pytest.raises(ValueError, match="torch"):
        folder.grade(subs, tmp_path / "out", progress=False, sandbox=False, memory_gib=MIN_MEMORY_GIB / 2)


def test_scratch_left_by_a_killed_grader_is_removed_by_the_next_run(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{notebook.SCRATCH_PREFIX}{dead.pid}-abc"
    live = tmp_path / f"{notebook.SCRATCH_PREFIX}{os.getpid()}-def"
    for d in (stale, live):
        d.mkdir()
        (d / "submitted.ipynb").write_text("{}")
    assert notebook.remove_stale_scratch(tmp_path) == [stale]
    assert not stale.exists() and live.exists()


def test_a_killed_grader_leaves_no_scratch_after_the_next_run(tmp_path):
    """SIGKILL while a notebook is graded: its scratch folder stays, and the next run removes it."""
    code = ("import sys, time\nfrom mechlib.teaching.grading import notebook\n"
            "d = notebook.scratch_folder()\n(d / 'submitted.ipynb').write_text('{}')\nprint(d, flush=True)\n"
            "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    scratch = __import__("pathlib").Path(proc.stdout.readline().strip())
    proc.kill()
    proc.wait()
    assert scratch.exists()
    notebook.remove_stale_scratch()
    assert not scratch.exists()


@pytest.mark.parametrize("source", [
    "from mechlib.teaching import reference\nreference.count_pairs",
    "import importlib\nm = importlib.import_module('mechlib.teaching.' + 'refer' + 'ence')",
    "m = __import__('mechlib')",
    "exec('import os')",
])
def test_roundabout_imports_are_flagged(source):
    nb = blank()
    nb.cells.append(nbformat.v4.new_code_cell(source))
    assert flags.suspicious_code(nbformat.writes(nb).encode())


def test_every_notebook_and_every_cell_is_scanned_whatever_its_shape():
    big = blank()
    big.cells.append(nbformat.v4.new_code_cell("x = '" + "a" * 25_000_000 + "'"))
    big.cells.append(nbformat.v4.new_code_cell("import mechlib.teaching.grading.kernel_side"))
    assert "mechlib.teaching.grading.kernel_side" in flags.suspicious_code(nbformat.writes(big).encode())
    doc = json.loads(nbformat.writes(blank()))
    doc["cells"] += [{"cell_type": "code", "source": [1, 2, 3], "metadata": {}, "outputs": []},
                     {"cell_type": "code", "source": {"a": "import mechlib.teaching.inputs"}},
                     "not a cell", {"cell_type": "code", "source": ["from mechlib.teaching ", "import registry"]}]
    found = flags.suspicious_code(json.dumps(doc).encode())  # must not raise
    assert "mechlib.teaching.inputs" in found and any("registry" in f for f in found)
    assert flags.suspicious_code(b"\xff not json mechlib.teaching.grading") == ["mechlib.teaching.grading"]
    honest = [flags.suspicious_code(p) for d in ("solutions", "exercises") for p in (ROOT / d).glob("*.ipynb")]
    assert honest and not any(honest)


def test_hidden_seeds_are_derived_one_way():
    """The seed of a hidden model's recipe (which the notebook sees) is a hash, not the grader's
    seed modulo a million: two grader seeds equal modulo 10**6 give unrelated models."""
    from mechlib.teaching.inputs import _SPECS, check_model, hidden_cases

    def recipe_seed(seed):
        with hidden_cases(seed):
            m = check_model(3)
        return _SPECS[id(m)]["random_model"]["seed"]

    s = 123_456_789
    assert recipe_seed(s) != 1000 + s % 1_000_000
    assert recipe_seed(s) != recipe_seed(s + 10**6)
    assert notebook.SEED_BITS >= 63  # too many to try: a derived seed gives nothing away


@pytest.mark.parametrize("raw", [b"[" * 200_000, b"{" * 200_000, b"\xff\xfe garbage", b"", b"[1, 2]",
                                 b'{"notes": ' + b"[" * 100_000])
def test_whatever_the_run_prints_is_read_without_raising(raw):
    for prefix in (b"", runner.STARTED):
        started, result = notebook.read_run(prefix + raw)
        assert result is None and started == bool(prefix)


def test_the_time_limit_note_names_the_limit_that_applied():
    code_number = {0: 0, 1: 1}
    notes = runner.timeout_notes([1, 2], 2, code_number, 120, runner.grading_cell_timeout(120, 4))
    assert notes == ["code cell 2 ran longer than 120 s and was interrupted",
                     "the grading cell ran longer than 540 s and was interrupted"]


@pytest.mark.parametrize("value", [np.float64(0.25), np.float32(0.25), np.array(0.25), np.array([0.25]),
                                   np.array([[0.25]]), torch.tensor(0.25), torch.tensor([0.25]),
                                   torch.tensor([[0.25]], dtype=torch.float64)])
def test_a_number_reads_the_same_in_every_form(value):
    from mechlib.teaching.comparisons import compare_scalar
    from mechlib.teaching.results import single_number

    assert single_number(value) == 0.25 and type(single_number(value)) is float
    compare_scalar(value, 0.25)


@pytest.mark.parametrize("value", [np.int64(7), np.int32(7), np.array(7), np.array([7]), torch.tensor(7),
                                   torch.tensor([7]), torch.tensor([[7]])])
def test_an_integer_reads_the_same_in_every_form(value):
    from mechlib.teaching.comparisons import compare_int

    compare_int(value, 7)


def test_numpy_returns_get_full_marks_through_the_transport():
    """An honest count_pairs returning np.int64 (and the other functions numpy scalars too) passes grading."""
    import math

    from mechlib.teaching.grading.judge import grade_in_process

    ns = {}
    src = "\n".join(c.source for c in solution().cells if c.cell_type == "code" and "def " in c.source
                    and "checks." not in c.source)
    exec("import math\nimport torch\nimport mechlib\n" + src, ns)
    real = dict(ns)
    ns["count_pairs"] = lambda L, H: np.int64(real["count_pairs"](L, H))
    ns["count_chains"] = lambda *a: torch.tensor([real["count_chains"](*a)])
    ns["count_paths"] = lambda *a: np.array([real["count_paths"](*a)])
    results = grade_in_process(SMALL, ns, seed=2**62 + 7)
    assert all(r["status"] == "passed" for r in results.values()), results
    assert math.comb(4, 2) == 6


def test_the_hidden_cases_of_every_notebook_are_drawn_from_the_largest_seed():
    """The grader draws SEED_BITS-bit seeds: every exercise's hidden cases must accept them."""
    from mechlib.teaching.grading.judge import hidden_inputs
    from mechlib.teaching.registry import NOTEBOOKS

    for name in NOTEBOOKS:
        assert hidden_inputs(name, 2**notebook.SEED_BITS - 1), name
