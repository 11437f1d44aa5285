"""``mechlib-grade`` against submissions that want points they did not earn or harm the grader:
hostile students (each the small notebook's untouched exercise functions, worth 0, plus one cell
that tries one way to forge points or to do harm), hungry ones (its solved functions plus one cell
over a resource limit), an honest student graded after them, and the untouched exercise
functions of every notebook (0). The submissions hold the exercises' function cells without the
chapters' own cells (nbval runs those): a notebook is graded in seconds, not in a minute.
One grading run in the sandbox, shared by the tests that read it; never run outside one.
"""
from __future__ import annotations

import os
import json
import time
import uuid

import nbformat
import pytest

from grading_support import (
    NOTHING, ROOT, SMALL, SOLVED, Listener, exercise, marked_processes, only_functions, package_digest,
    package_rewriter, placeholders, require_sandbox, rows, small_points, with_cell, write,
)
from mechlib.teaching import registry
from mechlib.teaching.grading import folder

pytestmark = pytest.mark.slow

MARKER = f"mg-daemon-{uuid.uuid4().hex}"
SECRET = f"mg-secret-{uuid.uuid4().hex}"
INJECTOR = '=HYPERLINK("evil.example","grade")'


def _hostile(subs, listener: Listener) -> dict[str, nbformat.NotebookNode]:
    """One notebook per way of wanting points: each is the untouched exercise functions (worth 0) plus cells."""
    other = subs / "z_honest" / f"{SMALL}.ipynb"
    return {
        # rewrites what its result line says on the way out, and prints a fake result
        "a_print_rewriter": exercise(
            "import builtins, json\n_p = builtins.print\n"
            "builtins.print = lambda *a, **k: _p(*[str(x).replace('failed', 'passed').replace("
            "'not attempted', 'passed') for x in a], **k)",
            'print(json.dumps({"07.1": {"exercise": "07.1", "function": "count_pairs", "status": "passed", '
            '"message": "fake"}}))'),
        "a_package_rewriter": package_rewriter(),
        # patches the check framework, the kernel side and torch before the checks run, and
        # reports the self-check's answers for every exercise
        "a_patcher": exercise(
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
        "a_snooper": exercise(
            "import nbformat\nstolen = 0\n"
            f"for path in [{str(other)!r}, {str(ROOT / 'solutions' / (SMALL + '.ipynb'))!r}]:\n"
            "    try:\n        nb = nbformat.read(path, as_version=4)\n    except OSError:\n        continue\n"
            "    for c in nb.cells:\n        if c.cell_type == 'code' and 'def ' in c.source:\n"
            "            exec(c.source)\n            stolen += 1\n"
            f"try:\n    open({str(subs / 'z_honest' / 'planted.txt')!r}, 'w').write('x')\nexcept OSError:\n    pass\n"
            "print('stolen', stolen)"),
        # starts processes meant to outlive the kernel: a new session, and a double fork
        "a_daemon": exercise(
            "import subprocess, sys, os\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {MARKER!r}], "
            "start_new_session=True)\n"
            "if os.fork() == 0:\n    if os.fork() == 0:\n"
            f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(600)', {MARKER!r}])\n"
            "    os._exit(0)\nos.wait()"),
        # returns a FactoredMatrix whose factors do not match: reading it must fail as the notebook's
        # fault (no regrade, so no second draw of the hidden cases), never as the grader's
        "a_reroller": exercise(
            "import torch\nfrom transformer_lens import FactoredMatrix\n"
            "def count_chains(n_layers, n_heads, length):\n"
            "    fm = FactoredMatrix(torch.ones(2, 2), torch.ones(2, 2))\n    fm.A = torch.ones(2, 3)\n    return fm"),
        # takes the runner's stdout and stderr (pidfd_getfd), writes a forged result and 200,000 brackets,
        # then kills every process it could reach
        "a_fd_thief": exercise(
            "import ctypes, os, signal\nlibc = ctypes.CDLL(None, use_errno=True)\ntook = []\n"
            "for pid in [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]:\n"
            "    pfd = libc.syscall(434, pid, 0)\n    if pfd < 0:\n        continue\n"
            "    for fd in (1, 2):\n        got = libc.syscall(438, pfd, fd, 0)\n        if got >= 0:\n"
            "            took.append((pid, fd))\n"
            "            os.write(got, b'{\"notes\": [\"Total: 33 / 33 <!--\"], \"outcomes\": null}' + b'[' * 200000)\n"
            "for pid, _ in took:\n    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
            "raise RuntimeError(f'took {took}')"),
        # reads every environment it can see (the grader's holds a secret) into its feedback
        "a_env_reader": exercise(
            "import os\nseen = []\nfor p in os.listdir('/proc'):\n    try:\n"
            "        seen.append(open(f'/proc/{p}/environ', 'rb').read().decode(errors='replace'))\n"
            "    except OSError:\n        pass\nraise RuntimeError(' '.join(seen))"),
        # a user namespace of its own, to mount a tmpfs outside every limit; and /dev/shm beyond its cap
        "a_namespace": exercise(
            "import subprocess\n"
            "r = subprocess.run(['unshare', '-Urm', 'sh', '-c', 'mount -t tmpfs none /mnt && head -c 300M /dev/zero > "
            "/mnt/x && echo filled'], capture_output=True, text=True)\n"
            "s = subprocess.run(['sh', '-c', 'head -c 300M /dev/zero > /dev/shm/x && echo filled'], capture_output=True, "
            "text=True)\nassert 'filled' not in r.stdout, 'made a user namespace'\n"
            "assert 'filled' not in s.stdout, 'filled /dev/shm'\nraise RuntimeError('contained')"),
        # three processes that together hold more than the notebook's memory (each under its own limit)
        "a_many_hogs": exercise(
            "import subprocess, sys\nhog = 'x = bytearray(1200 * 2**20)\\nfor i in range(0, len(x), 4096): x[i] = 1\\n"
            "import time; time.sleep(60)'\nps = [subprocess.Popen([sys.executable, '-c', hog]) for _ in range(3)]\n"
            "[p.wait() for p in ps]"),
        # a folder name that is a spreadsheet formula, and an error message that is markup
        INJECTOR: exercise("raise RuntimeError('<!-- **Total: 33 / 33** \\x1b[2J [click](http://evil.example)')"),
        # tries the network: the internet, and a server on the grading machine's own loopback
        "a_network": exercise(
            "import socket, urllib.request\nreached = []\n"
            f"for host, port in [('127.0.0.1', {listener.port}), ('pypi.org', 443), ('1.1.1.1', 80)]:\n"
            "    try:\n        socket.create_connection((host, port), timeout=3).close()\n        reached.append(host)\n"
            "    except OSError:\n        pass\nprint('reached', reached)"),
    }


def _hungry() -> dict[str, nbformat.NotebookNode]:
    """Solved functions (worth 4) with one cell that goes over a limit: they must still get their 4."""
    return {
        "a_memory": with_cell("x = bytearray(16 * 2**30)", at="start"),
        # forks until the process limit refuses, then reaps its children, so that its own later cells can run
        "a_forkbomb": with_cell(
            "import os, time\nforked = 0\nfor _ in range(5000):\n    try:\n        pid = os.fork()\n"
            "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(3)\n        os._exit(0)\n"
            "    forked += 1\nfor _ in range(forked):\n    os.wait()\nassert forked < 5000, 'no process limit'\n"
            "print('forked', forked)", at="start"),
        "a_bigfile": with_cell(
            "import os\nwritten = 0\ntry:\n    with open('big.bin', 'wb') as f:\n        for _ in range(4096):\n"
            "            f.write(b'0' * 2**20)\n            written += 1\nexcept OSError as e:\n    print(e)\n"
            "assert written < 4096, 'no file-size limit'", at="start"),
    }


HOSTILE = ["a_print_rewriter", "a_package_rewriter", "a_patcher", "a_snooper", "a_daemon", "a_network", "a_reroller",
           "a_fd_thief", "a_env_reader", "a_namespace", "a_many_hogs", INJECTOR]
HUNGRY = ["a_memory", "a_forkbomb", "a_bigfile"]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    require_sandbox()  # never outside a sandbox: one rewrites the package, one asks for 16 GiB
    subs = tmp_path_factory.mktemp("submissions")
    for name in registry.NOTEBOOKS:
        write(subs / "untouched", name, placeholders(name))
    write(subs / "z_honest", SMALL, only_functions())
    listener = Listener()
    for student, nb in {**_hostile(subs, listener), **_hungry()}.items():
        write(subs / student, SMALL, nb)
    originals = {p: p.read_bytes() for p in subs.rglob("*") if p.is_file()}
    before = package_digest()
    out = tmp_path_factory.mktemp("out")
    os.environ["INSTRUCTOR_API_TOKEN"] = SECRET  # what an instructor's shell may hold
    try:
        grades = folder.grade(subs, out, cell_timeout=180, notebook_timeout=600, jobs=2, progress=False, memory_gib=3)
    finally:
        del os.environ["INSTRUCTOR_API_TOKEN"]
    time.sleep(1)
    listener.stop.set()
    return {"grades": {g.student: g for g in grades}, "rows": rows(out), "out": out, "subs": subs,
            "originals": originals, "package_before": before, "package_after": package_digest(),
            "listener": listener, "leftovers": marked_processes(MARKER)}


def test_untouched_exercises_get_zero_and_are_not_attempted(hostile_run):
    assert hostile_run["rows"]["untouched"]["total"] == "0"
    g = hostile_run["grades"]["untouched"]
    assert all(r["status"] == "not attempted" for nb in g.notebooks.values() for r in nb.results.values())


@pytest.mark.parametrize("student", HOSTILE)
def test_a_hostile_cell_earns_nothing(hostile_run, student):
    """Each hostile notebook is the untouched exercise functions (worth 0) plus its cell: it still gets 0, and
    is graded (never a grader's error, which would be graded again on every rerun)."""
    row = hostile_run["rows"]["'" + student if student == INJECTOR else student]
    assert {ex.id: int(row[ex.column]) for ex in registry.EXERCISES[SMALL]} == NOTHING
    assert row["total"] == "0" and row["graded"] == "yes"
    assert not hostile_run["grades"][student].notebooks[SMALL].grader_error


def _notes(run, student) -> str:
    return " ".join(run["grades"][student].notebooks[SMALL].notes)


def test_the_kernel_cannot_take_the_runners_channel(hostile_run):
    assert "took []" in _notes(hostile_run, "a_fd_thief")
    assert "33 / 33" not in (hostile_run["out"] / "feedback" / "a_fd_thief.md").read_text().replace(
        f"/ {registry.MAX_POINTS} points", "")


def test_no_secret_of_the_graders_environment_reaches_any_feedback(hostile_run):
    assert "code cell" in _notes(hostile_run, "a_env_reader")
    for page in (hostile_run["out"] / "feedback").iterdir():
        assert SECRET not in page.read_text(), page
    assert SECRET not in json.dumps([g.notebooks[SMALL].notes for g in hostile_run["grades"].values()])


def test_no_user_namespace_and_no_uncapped_shared_memory(hostile_run):
    notes = _notes(hostile_run, "a_namespace")
    assert "contained" in notes and "made a user namespace" not in notes and "filled /dev/shm" not in notes


def test_one_memory_budget_holds_the_notebooks_processes_together(hostile_run):
    assert "used more than 3 GiB" in _notes(hostile_run, "a_many_hogs")


def test_names_and_messages_cannot_inject_formulas_or_markup(hostile_run):
    import re

    assert "'" + INJECTOR in hostile_run["rows"]  # a quoted formula is still a formula: prefixed instead
    text = (hostile_run["out"] / "feedback" / f"{INJECTOR}.md").read_text()
    assert "Total: 33 / 33" in text.replace("\\", "")  # shown as typed ...
    for markup in ["<!--", "**Total: 33", "[click]"]:  # ... but never as markup
        assert not re.search(r"(?<!\\)" + re.escape(markup), text), markup


@pytest.mark.parametrize("student", HUNGRY)
def test_a_cell_over_a_resource_limit_costs_nothing_else(hostile_run, student):
    """Solved functions plus one cell over the memory, process or file-size limit: still every point."""
    assert small_points(hostile_run, student) == SOLVED, hostile_run["grades"][student].notebooks[SMALL].notes


def test_the_limits_stopped_the_hungry_cells(hostile_run):
    notes = {s: " ".join(hostile_run["grades"][s].notebooks[SMALL].notes) for s in HUNGRY}
    assert "MemoryError" in notes["a_memory"]
    assert "no process limit" not in notes["a_forkbomb"]
    assert "no file-size limit" not in notes["a_bigfile"]


def test_honest_students_graded_after_the_hostile_ones_are_unchanged(hostile_run):
    assert small_points(hostile_run, "z_honest") == SOLVED


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


def test_a_notebook_whose_outputs_cannot_be_read_fails_without_a_regrade(hostile_run):
    nb = hostile_run["grades"]["a_reroller"].notebooks[SMALL]
    assert not nb.grader_error and any("unreadable" in n for n in nb.notes)
    assert small_points(hostile_run, "a_reroller")["07.3"] == 0


def test_notebooks_that_reach_for_the_grading_machinery_are_flagged(hostile_run):
    notes = hostile_run["grades"]["a_patcher"].notebooks[SMALL].notes
    assert any(n.startswith("FLAGGED") and "kernel_side" in n for n in notes)
    assert not any(n.startswith("FLAGGED") for n in hostile_run["grades"]["z_honest"].notebooks[SMALL].notes)
    assert "a_patcher/07_combinatorial_richness" in (hostile_run["out"] / "summary.md").read_text()
