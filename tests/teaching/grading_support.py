"""Helpers shared by the ``test_grading_*`` modules (not a test module itself): the small
exercise notebook and variants of it, a TCP listener, the package digest, reading
``grades.csv``, and :func:`require_sandbox`.

Notebooks that attack the grader (the hostile, hungry and looping ones) are only ever run
inside the sandbox: without bubblewrap their tests are skipped, or fail where
``MECHLIB_REQUIRE_SANDBOX=1`` (``make test``) says a sandbox must be there.
"""
from __future__ import annotations

import ast
import csv
import hashlib
import os
import socket
import sys
import threading
from pathlib import Path

import nbformat
import pytest

import mechlib
from mechlib.teaching import registry
from mechlib.teaching.grading import sandbox

ROOT = Path(__file__).resolve().parents[2]
SMALL = "07_combinatorial_richness"
SMALL_IDS = [ex.id for ex in registry.EXERCISES[SMALL]]
ALL_COLUMNS = [ex.column for ex in registry.ALL_EXERCISES]
PACKAGE = Path(mechlib.__file__).resolve().parent
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


def solution(name: str = SMALL) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "solutions" / f"{name}.ipynb", as_version=4)


def blank(name: str = SMALL) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "exercises" / f"{name}.ipynb", as_version=4)


def functions_of(nb: nbformat.NotebookNode, name: str = SMALL) -> list[str]:
    """The cells of ``nb`` that define notebook ``name``'s exercise functions, alone: what a
    submission needs to be graded, without the chapter's own cells (imports of torch and
    TransformerLens, the model, the figures), so that a graded submission takes seconds.
    Each cell first imports what the exercises' functions use: math, torch, mechlib, and the
    standard-library modules the notebook imports (the kernel side has loaded torch and
    mechlib already, so this costs nothing); annotations are not evaluated."""
    stdlib = [line for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines()
              if line.startswith("import ") and line.split()[1].split(".")[0] in sys.stdlib_module_names
              and line.split()[1] not in ("math", "sys", "importlib.util")]
    prefix = ("from __future__ import annotations\nimport math\n" + "".join(f"{line}\n" for line in dict.fromkeys(stdlib))
              + "\nimport torch\n\nimport mechlib\n")
    return [prefix + next(c.source for c in nb.cells if c.cell_type == "code" and f"def {ex.function}(" in c.source)
            for ex in registry.EXERCISES[name]]


def placeholders(name: str = SMALL, extra: list[str] | None = None) -> nbformat.NotebookNode:
    """The untouched exercise functions of notebook ``name`` (worth 0), plus ``extra`` cells."""
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in functions_of(blank(name), name)
                                           + (extra or [])])


def exercise(*cells: str) -> nbformat.NotebookNode:
    """The small notebook's untouched exercise functions (worth 0) with extra code cells at the end."""
    return placeholders(SMALL, list(cells))


def with_cell(source: str, at: str = "end", replace_def: str | None = None,
              quick: bool = False) -> nbformat.NotebookNode:
    """The small notebook's solved functions (``quick``: its counting ones only, :func:`quick_functions`)
    with one extra code cell: at the end, at the start (``at="start"``), or in place of the cell that
    defines ``replace_def``."""
    nb = quick_functions() if quick else only_functions()
    cell = nbformat.v4.new_code_cell(source)
    if replace_def is not None:
        i = next(i for i, c in enumerate(nb.cells) if f"def {replace_def}(" in c.source)
        nb.cells[i] = cell
    elif at == "end":
        nb.cells.append(cell)
    else:
        nb.cells.insert(0, cell)
    return nb


def only_functions(extra: list[str] | None = None) -> nbformat.NotebookNode:
    """The small notebook's solved functions alone (no mechlib import: fast), plus ``extra`` cells."""
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in functions_of(solution())
                                           + (extra or [])])


def _takes_a_model(cell: str, function: str) -> bool:
    fn = next(n for n in ast.walk(ast.parse(cell.replace("from __future__ import annotations\n", "")))
              if isinstance(n, ast.FunctionDef) and n.name == function)
    return any(a.arg == "model" for a in fn.args.args + fn.args.kwonlyargs)


# the small notebook's counting exercises: whole numbers in, whole numbers out, no model to build
QUICK_IDS = [ex.id for ex, cell in zip(registry.EXERCISES[SMALL], functions_of(solution(SMALL)))
             if not _takes_a_model(cell, ex.function)]
QUICK_SOLVED = {i: int(i in QUICK_IDS) for i in SMALL_IDS}  # the points of quick_functions()


def quick_functions() -> nbformat.NotebookNode:
    """The small notebook's solved counting functions alone (:data:`QUICK_IDS`; its exercise on a
    model is left out): graded in seconds, for tests of the grader's own mechanics."""
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for ex, c in
                                           zip(registry.EXERCISES[SMALL], functions_of(solution(SMALL)))
                                           if ex.id in QUICK_IDS])


def write(folder: Path, name: str, nb: nbformat.NotebookNode) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "grades.csv", newline="") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


def small_points(run: dict, student: str) -> dict[str, int]:
    row = run["rows"][student]
    return {ex.id: int(row[ex.column]) for ex in registry.EXERCISES[SMALL]}


def package_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(PACKAGE.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p).encode() + p.read_bytes())
    return h.hexdigest()


def marked_processes(marker: str) -> list[str]:
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and marker in (d / "cmdline").read_bytes().decode(errors="replace"):
                found.append(d.name)
        except OSError:
            pass
    return found


class Listener:
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


def package_rewriter() -> nbformat.NotebookNode:
    """Rewrites and deletes installed package files (the checks, the kernel side, the registry)."""
    return exercise(
        "import pathlib, mechlib\nroot = pathlib.Path(mechlib.__file__).parent\nerrors = []\n"
        "for p in list(root.rglob('*.py')):\n"
        "    try:\n        p.write_text('raise SystemExit')\n    except OSError as e:\n        errors.append(e)\n"
        "    try:\n        p.unlink()\n    except OSError as e:\n        errors.append(e)\n"
        "print(len(errors), 'writes refused')")
