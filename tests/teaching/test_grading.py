"""``mechlib-grade``: grading a folder of submissions, including submissions that misbehave
and submissions that want points they did not earn.

Two grading runs, each shared by the tests that read it:

* the main run, in the sandbox: a student who hands in the solutions, one who hands in
  the untouched exercises, students whose (small) combinatorics notebook crashes, calls
  ``sys.exit``, kills its kernel, deletes the files in its working directory or prints
  50 MB, one who hands in nothing gradeable -- and hostile students (named ``a_*`` so
  they are graded first), each with one cell that tries one way to forge points or to
  harm the grader, followed by an honest student (``z_honest``) whose grade must not
  change;
* a run with a short time limit: an endless loop in a cell and in a function, and a loop
  that ignores interrupts until the notebook's own time limit stops it.

Notebooks that attack the grader (the hostile, hungry and looping ones) are only ever run
inside the sandbox: without bubblewrap their tests are skipped, or fail where
``MECHLIB_REQUIRE_SANDBOX=1`` (``make test``) says a sandbox must be there; a test that
runs everywhere shows that without a sandbox the grader starts nothing. The rooms are
tested alone too: test_judge, test_report, test_sandbox, test_transport.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import nbformat
import pytest
import torch

import mechlib
from mechlib.teaching import registry
from mechlib.teaching.grading import cli, folder, notebook, sandbox

# grades whole notebooks, most of them in the bubblewrap sandbox (minutes): make test, not make check
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SMALL = "07_combinatorial_richness"
SMALL_IDS = [ex.id for ex in registry.EXERCISES[SMALL]]
ALL_COLUMNS = [ex.column for ex in registry.ALL_EXERCISES]
LOOP_TIMEOUT = 8  # seconds per cell and per check in the loop run
PACKAGE = Path(mechlib.__file__).resolve().parent
MARKER = f"mg-daemon-{uuid.uuid4().hex}"
SOLVED = {ex.id: 1 for ex in registry.EXERCISES[SMALL]}
NOTHING = {ex.id: 0 for ex in registry.EXERCISES[SMALL]}

SANDBOXED, NO_SANDBOX_WHY = sandbox.available()


def require_sandbox() -> None:
    """Hostile notebooks run only inside the sandbox: without one, skip here, fail where
    ``MECHLIB_REQUIRE_SANDBOX=1`` says a sandbox must be there (``make test``, CI)."""
    if SANDBOXED:
        return
    why = f"no sandbox here ({NO_SANDBOX_WHY}): notebooks that attack the grader are never run outside one"
    if os.environ.get("MECHLIB_REQUIRE_SANDBOX") == "1":
        pytest.fail(why + "; MECHLIB_REQUIRE_SANDBOX=1 requires it (install bubblewrap: make sandbox)")
    pytest.skip(why)


@pytest.fixture()
def sandboxed():
    """For tests that grade with the sandbox (the default): skipped or failed without one."""
    require_sandbox()


def _exercise(*cells: str) -> nbformat.NotebookNode:
    """The untouched (worth 0) small exercise notebook with extra code cells at the end."""
    nb = nbformat.read(ROOT / "exercises" / f"{SMALL}.ipynb", as_version=4)
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    return nb


def _package_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(PACKAGE.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p).encode() + p.read_bytes())
    return h.hexdigest()


def _marked_processes() -> list[str]:
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and MARKER in (d / "cmdline").read_bytes().decode(errors="replace"):
                found.append(d.name)
        except OSError:
            pass
    return found


class _Listener:
    """A TCP server on the host's loopback that records whether anybody connected."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                pass


def _with_cell(source: str, at: str = "end", replace_def: str | None = None) -> nbformat.NotebookNode:
    """The small solution notebook with one extra code cell (or one definition replaced by it)."""
    nb = nbformat.read(ROOT / "solutions" / f"{SMALL}.ipynb", as_version=4)
    cell = nbformat.v4.new_code_cell(source)
    if replace_def is not None:
        i = next(i for i, c in enumerate(nb.cells) if f"def {replace_def}(" in c.source)
        nb.cells[i] = cell
    elif at == "end":
        nb.cells.append(cell)
    else:  # right after the imports
        i = next(i for i, c in enumerate(nb.cells) if "from mechlib.teaching import checks" in c.source)
        nb.cells.insert(i + 1, cell)
    return nb


def _write(folder: Path, name: str, nb: nbformat.NotebookNode) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "grades.csv", newline="") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


HOSTILE_NOTES = {}


def _hostile(subs: Path, listener: _Listener) -> dict[str, nbformat.NotebookNode]:
    """One notebook per way of wanting points: each is the untouched exercise (worth 0) plus cells."""
    other = subs / "z_honest" / f"{SMALL}.ipynb"
    return {
        # rewrites what its result line says on the way out, and prints a fake result
        "a_print_rewriter": _exercise(
            "import builtins, json\n_p = builtins.print\n"
            "builtins.print = lambda *a, **k: _p(*[str(x).replace('failed', 'passed').replace("
            "'not attempted', 'passed') for x in a], **k)",
            'print(json.dumps({"07.1": {"exercise": "07.1", "function": "count_pairs", "status": "passed", '
            '"message": "fake"}}))'),
        # rewrites and deletes installed package files (the checks, the kernel side, the registry)
        "a_package_rewriter": _exercise(
            "import pathlib, mechlib\nroot = pathlib.Path(mechlib.__file__).parent\nerrors = []\n"
            "for p in list(root.rglob('*.py')):\n"
            "    try:\n        p.write_text('raise SystemExit')\n    except OSError as e:\n        errors.append(e)\n"
            "    try:\n        p.unlink()\n    except OSError as e:\n        errors.append(e)\n"
            "print(len(errors), 'writes refused')"),
        # patches the check framework, the kernel side and torch before the checks run, and
        # reports the self-check's answers for every exercise
        "a_patcher": _exercise(
            "import torch, mechlib.teaching.exercise as E, mechlib.teaching.comparisons as C\n"
            "import mechlib.teaching.grading.kernel_side as K\n"
            "E.Exercise.judge = E.Exercise.check = lambda self, *a, **k: self.result('passed', 'patched')\n"
            "C.compare_int = C.compare_tensor = C.compare_scalar = lambda *a, **k: None\n"
            "torch.allclose = lambda *a, **k: True\ntorch.isclose = lambda a, b, **k: torch.ones_like(a, dtype=bool)\n"
            "import math\n"
            "def count_pairs(L, H):\n    return H * H * math.comb(L, 2) if (L, H) in [(12, 12), (2, 4), (1, 8), "
            "(3, 1), (5, 3), (48, 25)] else 0\n"
            "_rec = K.record_namespace\n"
            "def fake(notebook, namespace, calls, time_limit=60.0):\n"
            "    r = _rec(notebook, namespace, calls, time_limit)\n"
            "    for ex_id in r:\n        r[ex_id]['outcomes'] = [('value', 9504)] * 3\n    return r\n"
            "K.record_namespace = fake"),
        # reads another student's submission and the solutions, and copies their functions
        "a_snooper": _exercise(
            "import nbformat\nstolen = 0\n"
            f"for path in [{str(other)!r}, {str(ROOT / 'solutions' / (SMALL + '.ipynb'))!r}]:\n"
            "    try:\n        nb = nbformat.read(path, as_version=4)\n    except OSError:\n        continue\n"
            "    for c in nb.cells:\n        if c.cell_type == 'code' and 'def ' in c.source:\n"
            "            exec(c.source)\n            stolen += 1\n"
            f"try:\n    open({str(subs / 'z_honest' / 'planted.txt')!r}, 'w').write('x')\nexcept OSError:\n    pass\n"
            "print('stolen', stolen)"),
        # starts processes meant to outlive the kernel: a new session, and a double fork
        "a_daemon": _exercise(
            "import subprocess, sys, os\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {MARKER!r}], "
            "start_new_session=True)\n"
            "if os.fork() == 0:\n    if os.fork() == 0:\n"
            f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(600)', {MARKER!r}])\n"
            "    os._exit(0)\nos.wait()"),
        # returns a FactoredMatrix whose factors do not match: reading it must fail as the notebook's
        # fault (no regrade, so no second draw of the hidden cases), never as the grader's
        "a_reroller": _exercise(
            "import torch\nfrom transformer_lens import FactoredMatrix\n"
            "def count_chains(n_layers, n_heads, length):\n"
            "    fm = FactoredMatrix(torch.ones(2, 2), torch.ones(2, 2))\n    fm.A = torch.ones(2, 3)\n    return fm"),
        # tries the network: the internet, and a server on the grading machine's own loopback
        "a_network": _exercise(
            "import socket, urllib.request\nreached = []\n"
            f"for host, port in [('127.0.0.1', {listener.port}), ('pypi.org', 443), ('1.1.1.1', 80)]:\n"
            "    try:\n        socket.create_connection((host, port), timeout=3).close()\n        reached.append(host)\n"
            "    except OSError:\n        pass\nprint('reached', reached)"),
    }


def _hungry() -> dict[str, nbformat.NotebookNode]:
    """Solutions (worth 4) with one cell that goes over a limit: they must still get their 4."""
    return {
        "a_memory": _with_cell("x = bytearray(16 * 2**30)", at="start"),
        # forks until the process limit refuses (bounded, so a machine without the sandbox survives),
        # then reaps its children, so that its own later cells can run
        "a_forkbomb": _with_cell(
            "import os, time\nforked = 0\nfor _ in range(5000):\n    try:\n        pid = os.fork()\n"
            "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(3)\n        os._exit(0)\n"
            "    forked += 1\nfor _ in range(forked):\n    os.wait()\nassert forked < 5000, 'no process limit'\n"
            "print('forked', forked)", at="start"),
        "a_bigfile": _with_cell(
            "import os\nwritten = 0\ntry:\n    with open('big.bin', 'wb') as f:\n        for _ in range(4096):\n"
            "            f.write(b'0' * 2**20)\n            written += 1\nexcept OSError as e:\n    print(e)\n"
            "assert written < 4096, 'no file-size limit'", at="start"),
    }


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    for name in registry.NOTEBOOKS:
        (subs / "solutions").mkdir(exist_ok=True)
        shutil.copy(ROOT / "solutions" / f"{name}.ipynb", subs / "solutions")
        (subs / "untouched").mkdir(exist_ok=True)
        shutil.copy(ROOT / "exercises" / f"{name}.ipynb", subs / "untouched")
    _write(subs / "crash", SMALL, _with_cell('raise RuntimeError("boom")', replace_def="count_chains"))
    _write(subs / "sys_exit", SMALL, _with_cell("import sys\nsys.exit(3)", at="start"))
    _write(subs / "kernel_kill", SMALL, _with_cell("import os\nos._exit(1)"))
    _write(subs / "deleter", SMALL, _with_cell(
        "import os, shutil\nfor f in os.listdir('.'):\n    shutil.rmtree(f) if os.path.isdir(f) else os.remove(f)"))
    _write(subs / "printer", SMALL, _with_cell('print("x" * 50_000_000)', at="start"))
    _write(subs / "memorizer", SMALL, _memorizer())
    (subs / "missing").mkdir()
    _write(subs / "missing", "my_notes", nbformat.v4.new_notebook())  # not an exercise notebook
    _write(subs / "z_honest", SMALL, nbformat.read(ROOT / "solutions" / f"{SMALL}.ipynb", as_version=4))
    listener = _Listener()
    if SANDBOXED:  # never outside a sandbox: one rewrites the package, one asks for 16 GiB
        for student, nb in {**_hostile(subs, listener), **_hungry()}.items():
            _write(subs / student, SMALL, nb)
    originals = {p: p.read_bytes() for p in subs.rglob("*")if p.is_file()}
    before = _package_digest()
    out = tmp_path_factory.mktemp("out")
    grades = folder.grade(subs, out, cell_timeout=180, notebook_timeout=600, jobs=2, progress=False,
                           sandbox=SANDBOXED, memory_gib=3)
    time.sleep(1)
    listener.stop.set()
    return {"grades": {g.student: g for g in grades}, "rows": _rows(out), "out": out, "subs": subs,
            "originals": originals, "package_before": before, "package_after": _package_digest(),
            "listener": listener, "leftovers": _marked_processes()}


@pytest.fixture(scope="module")
def hostile_run(main_run):
    """The main run's hostile and hungry students: graded only in a sandbox."""
    require_sandbox()
    return main_run


def _memorizer() -> nbformat.NotebookNode:
    """count_pairs as a table of the self-check's answers: passes in the notebook, not in grading."""
    table = {(L, H): H * H * (L * (L - 1) // 2) for L, H in [(12, 12), (2, 4), (1, 8), (3, 1), (5, 3), (48, 25)]}
    return _with_cell(f"def count_pairs(n_layers, n_heads):\n    return {table!r}[(n_layers, n_heads)]",
                      replace_def="count_pairs")


HOSTILE = ["a_print_rewriter", "a_package_rewriter", "a_patcher", "a_snooper", "a_daemon", "a_network", "a_reroller"]
HUNGRY = ["a_memory", "a_forkbomb", "a_bigfile"]


def test_csv_has_one_row_per_student_and_one_column_per_exercise(main_run):
    rows = main_run["rows"]
    assert set(rows) == {"solutions", "untouched", "crash", "sys_exit", "kernel_kill", "deleter", "printer",
                         "memorizer", "missing", "z_honest", *((*HOSTILE, *HUNGRY) if SANDBOXED else ())}
    with open(main_run["out"] / "grades.csv", newline="") as fh:
        assert next(csv.reader(fh)) == ["student"] + ALL_COLUMNS + ["total", "graded", "sandbox"]
    for row in rows.values():
        assert int(row["total"]) == sum(int(row[c]) for c in ALL_COLUMNS)
        assert row["graded"] == "yes"


def test_solutions_get_full_marks(main_run):
    g = main_run["grades"]["solutions"]
    failed = {ex.id: g.notebooks[ex.notebook].results[ex.id] for ex in registry.ALL_EXERCISES
              if g.notebooks[ex.notebook].points(ex.id) != 1}
    assert not failed
    assert main_run["rows"]["solutions"]["total"] == str(len(registry.ALL_EXERCISES))


def test_untouched_exercises_get_zero_and_are_not_attempted(main_run):
    assert main_run["rows"]["untouched"]["total"] == "0"
    g = main_run["grades"]["untouched"]
    assert all(r["status"] == "not attempted" for nb in g.notebooks.values() for r in nb.results.values())


def _small_points(run, student):
    row = run["rows"][student]
    return {ex.id: int(row[ex.column]) for ex in registry.EXERCISES[SMALL]}


def test_a_crashing_cell_costs_only_what_it_breaks(main_run):
    points = _small_points(main_run, "crash")
    assert points == {"07.1": 1, "07.2": 1, "07.3": 0, "07.4": 0}
    nb = main_run["grades"]["crash"].notebooks[SMALL]
    assert any("RuntimeError: boom" in n for n in nb.notes)
    assert nb.results["07.3"]["status"] == "not attempted"


def test_sys_exit_is_caught_and_the_notebook_still_graded(main_run):
    assert _small_points(main_run, "sys_exit") == {i: 1 for i in SMALL_IDS}
    notes = main_run["grades"]["sys_exit"].notebooks[SMALL].notes
    assert any("SystemExit" in n for n in notes)


def test_a_killed_kernel_costs_that_notebook_only(main_run):
    assert _small_points(main_run, "kernel_kill") == {i: 0 for i in SMALL_IDS}
    notes = main_run["grades"]["kernel_kill"].notebooks[SMALL].notes
    assert any("kernel died" in n for n in notes)
    # the other students, graded at the same time, are unaffected
    assert main_run["rows"]["solutions"]["total"] == str(len(registry.ALL_EXERCISES))


def test_deleting_files_in_the_working_directory_harms_nothing(main_run):
    assert _small_points(main_run, "deleter") == {i: 1 for i in SMALL_IDS}
    for path, content in main_run["originals"].items():
        assert path.read_bytes() == content, f"the grader changed or lost the submission {path}"


def test_printing_50_megabytes_is_capped(main_run):
    assert _small_points(main_run, "printer") == {i: 1 for i in SMALL_IDS}
    notes = main_run["grades"]["printer"].notebooks[SMALL].notes
    assert any("printed more than" in n for n in notes)
    assert (main_run["out"] / "feedback" / "printer.md").stat().st_size < 100_000


def test_missing_notebooks_score_zero_and_say_so(main_run):
    assert main_run["rows"]["missing"]["total"] == "0"
    text = (main_run["out"] / "feedback" / "missing.md").read_text()
    assert text.count("Not submitted: 0 points.") == len(registry.NOTEBOOKS)
    assert "my_notes.ipynb" in text
    # a student who submitted one notebook is marked missing for the others
    assert main_run["grades"]["crash"].notebooks["02_v_composition"].missing


def test_feedback_gives_points_and_the_checks_message(main_run):
    text = (main_run["out"] / "feedback" / "crash.md").read_text()
    assert f"**Total: 2 / {len(registry.ALL_EXERCISES)} points.**" in text
    assert "**07.1 `count_pairs`** (1 point): passed." in text
    assert "**07.3 `count_chains`** (0 points): not attempted." in text
    assert "code cell" in text and "RuntimeError: boom" in text


@pytest.mark.parametrize("student", HOSTILE)
def test_a_hostile_cell_earns_nothing(hostile_run, student):
    """Each hostile notebook is the untouched exercise (worth 0) plus its cell: it still gets 0."""
    assert _small_points(hostile_run, student) == NOTHING, hostile_run["grades"][student].notebooks[SMALL].results
    assert hostile_run["rows"][student]["total"] == "0"


@pytest.mark.parametrize("student", HUNGRY)
def test_a_cell_over_a_resource_limit_costs_nothing_else(hostile_run, student):
    """Solutions plus one cell over the memory, process or file-size limit: still every point."""
    assert _small_points(hostile_run, student) == SOLVED, hostile_run["grades"][student].notebooks[SMALL].notes


def test_the_limits_stopped_the_hungry_cells(hostile_run):
    notes = {s: " ".join(hostile_run["grades"][s].notebooks[SMALL].notes) for s in HUNGRY}
    assert "MemoryError" in notes["a_memory"]
    assert "no process limit" not in notes["a_forkbomb"]
    assert "no file-size limit" not in notes["a_bigfile"]


def test_honest_students_graded_after_the_hostile_ones_are_unchanged(hostile_run):
    assert _small_points(hostile_run, "z_honest") == SOLVED
    assert hostile_run["rows"]["solutions"]["total"] == str(registry.MAX_POINTS)


def test_nothing_outside_the_sandbox_changed(hostile_run):
    assert hostile_run["package_after"] == hostile_run["package_before"], "an installed package file changed"
    for path, content in hostile_run["originals"].items():
        assert path.read_bytes() == content, f"a submission changed: {path}"
    now = {p for p in hostile_run["subs"].rglob("*") if p.is_file()}
    assert now == set(hostile_run["originals"]), f"files appeared: {now - set(hostile_run['originals'])}"
    assert not list(hostile_run["out"].rglob("*.bin")), "a notebook wrote into the output folder"


def test_no_process_outlives_its_sandbox(hostile_run):
    assert hostile_run["leftovers"] == [], "processes started by a notebook are still running"


def test_the_network_is_out_of_reach(hostile_run):
    assert hostile_run["listener"].connections == 0


def test_answers_memorised_from_the_self_check_fail_the_hidden_cases(main_run):
    """A table of the self-check's answers passes the notebook's own check but not grading."""
    nb = nbformat.read(main_run["subs"] / "memorizer" / f"{SMALL}.ipynb", as_version=4)
    namespace: dict = {}
    exec(next(c.source for c in nb.cells if "def count_pairs(" in c.source), namespace)
    from mechlib.teaching import checks

    assert checks.check_count_pairs(namespace["count_pairs"], verbose=False).passed
    assert _small_points(main_run, "memorizer")["07.1"] == 0
    message = main_run["grades"]["memorizer"].notebooks[SMALL].results["07.1"]["message"]
    assert "KeyError" in message


def test_summary_counts_each_exercise_and_draws_the_totals(main_run):
    text = (main_run["out"] / "summary.md").read_text()
    n = len(main_run["rows"])
    passed = sum(int(r[registry.EXERCISES[SMALL][0].column]) for r in main_run["rows"].values())
    assert f"{n} students; {registry.MAX_POINTS} points in all." in text
    assert f"| 07.1 `count_pairs` | 1 | {passed} |" in text
    assert "## Totals" in text and f"{registry.MAX_POINTS:>4} | " in text


def test_records_are_written_per_notebook(main_run):
    records = list((main_run["out"] / "records").rglob("*.json"))
    submitted = [p for p in main_run["subs"].rglob("*.ipynb") if p.stem in registry.NOTEBOOKS]
    assert len(records) == len(submitted)
    rec = json.loads((main_run["out"] / "records" / "z_honest" / f"{SMALL}.json").read_text())
    assert rec["sha256"] == hashlib.sha256((main_run["subs"] / "z_honest" / f"{SMALL}.ipynb").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory):
    require_sandbox()  # endless loops, and one that ignores interrupts
    subs = tmp_path_factory.mktemp("loops")
    defs = nbformat.read(ROOT / "solutions" / f"{SMALL}.ipynb", as_version=4)
    solution = {ex.function: next(c.source for c in defs.cells if f"def {ex.function}(" in c.source)
                for ex in registry.EXERCISES[SMALL]}
    # no mechlib import in these notebooks, so their cells are fast even on a busy machine
    looper = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in [
        "import math\n" + solution["count_pairs"], solution["enumerate_pairs"],
        "while True:\n    pass", solution["count_chains"],
        "def count_paths(n_layers, n_heads):\n    while True:\n        pass",
    ]])
    _write(subs / "looper", SMALL, looper)
    stubborn = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in [
        "import math, time\n" + solution["count_pairs"],
        "while True:\n    try:\n        time.sleep(0.1)\n    except KeyboardInterrupt:\n        pass",
    ]])
    _write(subs / "stubborn", SMALL, stubborn)
    out = tmp_path_factory.mktemp("loops-out")
    grades = folder.grade(subs, out, cell_timeout=LOOP_TIMEOUT, notebook_timeout=45, jobs=2, progress=False)
    return {g.student: g for g in grades}, _rows(out)


def test_an_endless_cell_is_interrupted_and_an_endless_function_fails_its_check(loop_run):
    grades, rows = loop_run
    nb = grades["looper"].notebooks[SMALL]
    assert {i: nb.points(i) for i in SMALL_IDS} == {"07.1": 1, "07.2": 1, "07.3": 1, "07.4": 0}
    assert f"did not finish within {LOOP_TIMEOUT} s" in nb.results["07.4"]["message"]
    assert any(f"code cell 3 ran longer than {LOOP_TIMEOUT} s" in n for n in nb.notes)


def test_a_loop_that_ignores_interrupts_is_stopped_by_the_notebook_time_limit(loop_run):
    grades, rows = loop_run
    assert rows["stubborn"]["total"] == "0"
    assert any("time limit" in n for n in grades["stubborn"].notebooks[SMALL].notes)
    assert rows["looper"]["total"] == "3"


def test_command_line_writes_csv_and_feedback(tmp_path, capsys, sandboxed):
    (tmp_path / "subs" / "nobody").mkdir(parents=True)
    assert cli.main([str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    assert (tmp_path / "out" / "grades.csv").exists()
    assert (tmp_path / "out" / "feedback" / "nobody.md").exists()
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "out")])


@pytest.fixture()
def small_class(tmp_path, sandboxed):
    subs = tmp_path / "subs"
    _write(subs / "ann", SMALL, nbformat.read(ROOT / "solutions" / f"{SMALL}.ipynb", as_version=4))
    _write(subs / "bob", SMALL, nbformat.read(ROOT / "exercises" / f"{SMALL}.ipynb", as_version=4))
    _write(subs / "cat", SMALL, nbformat.read(ROOT / "solutions" / f"{SMALL}.ipynb", as_version=4))
    return subs, tmp_path / "out"


def test_a_rerun_skips_what_is_graded_and_regrades_what_changed(small_class, monkeypatch):
    subs, out = small_class
    folder.grade(subs, out, jobs=2, progress=False)
    first = (out / "grades.csv").read_text()
    graded = []
    real = notebook.grade_notebook
    monkeypatch.setattr(notebook, "grade_notebook", lambda path, *a, **k: graded.append(path.parent.name) or real(path, *a, **k))
    folder.grade(subs, out, jobs=2, progress=False)
    assert graded == [] and (out / "grades.csv").read_text() == first
    _write(subs / "bob", SMALL, nbformat.read(ROOT / "solutions" / f"{SMALL}.ipynb", as_version=4))
    folder.grade(subs, out, jobs=2, progress=False)
    assert graded == ["bob"] and _rows(out)["bob"]["total"] == "4"
    folder.grade(subs, out, jobs=2, progress=False, regrade=True)
    assert sorted(graded[1:]) == ["ann", "bob", "cat"]


def test_an_interrupted_run_keeps_what_was_graded_and_a_rerun_finishes(small_class):
    subs, out = small_class
    cmd = [sys.executable, "-m", "mechlib.teaching.grading", str(subs), "--out", str(out), "--jobs", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list((out / "records").rglob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-500:]
    rows = _rows(out)
    assert set(rows) == {"ann", "bob", "cat"}  # the CSV is complete at every moment
    graded = [s for s, r in rows.items() if r["graded"] == "yes"]
    assert 1 <= len(graded) < 3
    for s, r in rows.items():  # and agrees with the feedback
        assert f"**Total: {r['total']} / {registry.MAX_POINTS} points.**" in (out / "feedback" / f"{s}.md").read_text()
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    rows = _rows(out)
    assert {s: r["total"] for s, r in rows.items()} == {"ann": "4", "bob": "0", "cat": "4"}
    assert all(r["graded"] == "yes" for r in rows.values())


def test_without_bwrap_the_grader_refuses_unless_told_no_sandbox(small_class, monkeypatch, capsys):
    subs, out = small_class
    monkeypatch.setattr(sandbox, "available", lambda: (False, "bubblewrap (bwrap) is not installed"))
    with pytest.raises(SystemExit) as exc:
        cli.main([str(subs), "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "bubblewrap (bwrap) is not installed" in err and "--no-sandbox" in err
    for p in (subs / "bob").iterdir():
        p.unlink()
    (subs / "bob").rmdir()
    shutil.rmtree(subs / "cat")
    assert cli.main([str(subs), "--out", str(out), "--no-sandbox"]) == 0
    assert _rows(out)["ann"]["sandbox"] == "no (--no-sandbox)" and _rows(out)["ann"]["total"] == "4"
    assert "graded with `--no-sandbox`" in (out / "feedback" / "ann.md").read_text()


def test_without_a_sandbox_a_hostile_notebook_is_never_run_and_the_package_is_untouched(tmp_path, monkeypatch):
    """Runs everywhere, bubblewrap or not: with the sandbox unavailable, grading a notebook that
    rewrites the package (and leaves a mark when it runs) refuses before running anything."""
    subs, out, mark = tmp_path / "subs", tmp_path / "out", tmp_path / "it-ran"
    rewriter = _hostile(subs, _Listener())["a_package_rewriter"]
    rewriter.cells.insert(0, nbformat.v4.new_code_cell(f"open({str(mark)!r}, 'w').write('ran')"))
    _write(subs / "mallory", SMALL, rewriter)
    monkeypatch.setattr(sandbox, "available", lambda: (False, "bubblewrap (bwrap) is not installed"))
    started = []

    def refuse(cmd, *args, **kwargs):  # a second guard: even a grader bug could not start the notebook
        started.append(cmd)
        raise AssertionError(f"a process was started: {cmd}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    before = _package_digest()
    with pytest.raises(sandbox.SandboxUnavailable):
        folder.grade(subs, out, progress=False)
    with pytest.raises(SystemExit) as exc:
        cli.main([str(subs), "--out", str(out)])
    assert exc.value.code == 2
    assert started == [] and not mark.exists()
    assert _package_digest() == before
    assert not list(out.rglob("records/**/*.json"))


def test_a_notebook_whose_outputs_cannot_be_read_fails_without_a_regrade(hostile_run):
    nb = hostile_run["grades"]["a_reroller"].notebooks[SMALL]
    assert not nb.grader_error and any("unreadable" in n for n in nb.notes)
    assert _small_points(hostile_run, "a_reroller")["07.3"] == 0


def test_symlinked_submissions_are_not_followed(tmp_path, sandboxed):
    subs = tmp_path / "subs"
    (subs / "eve").mkdir(parents=True)
    (subs / "eve" / f"{SMALL}.ipynb").symlink_to(ROOT / "solutions" / f"{SMALL}.ipynb")
    grades = folder.grade(subs, tmp_path / "out", progress=False)
    nb = grades[0].notebooks[SMALL]
    assert grades[0].total() == 0 and "symbolic link" in nb.notes[0]
    assert not list((tmp_path / "out" / "records").rglob("*.json"))  # nothing was run


def test_notebooks_that_reach_for_the_grading_machinery_are_flagged(hostile_run):
    notes = hostile_run["grades"]["a_patcher"].notebooks[SMALL].notes
    assert any(n.startswith("FLAGGED") and "kernel_side" in n for n in notes)
    assert not any(n.startswith("FLAGGED") for n in hostile_run["grades"]["z_honest"].notebooks[SMALL].notes)
    assert "a_patcher/07_combinatorial_richness" in (hostile_run["out"] / "summary.md").read_text()
