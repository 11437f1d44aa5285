"""Grade a folder of submitted exercise notebooks: ``mechlib-grade SUBMISSIONS --out OUT``.

``SUBMISSIONS`` holds one folder per student, each with any of the exercise notebooks
under their original names (``02_v_composition.ipynb`` ...). For every notebook the
grader

1. copies it into a fresh scratch folder (the student's files are never touched),
2. runs it top to bottom in a fresh kernel, in a separate worker process, with a time
   limit per cell and per notebook and a cap on the output it keeps; errors in cells do
   not stop the run (later cells may still define functions),
3. then runs one more cell that it appends itself: it re-imports :mod:`mechlib.teaching` from disk
   (undoing any tampering with the checks) and runs the check of every exercise of that
   notebook on the functions the notebook defined, each check with its own time limit,
4. and reads the results only from that cell's output, from a line that starts with a
   random nonce the notebook's own code never saw. Printing fake results earns nothing.

A notebook that raises, hangs, kills its kernel, calls ``sys.exit``, deletes files or
prints without end costs only its own points; a missing notebook scores 0. Results go
to ``OUT/grades.csv`` (one row per student, one column per exercise, and ``total``) and
``OUT/feedback/<student>.md`` (each exercise's points and its check's message).
"""
from __future__ import annotations

import sys

if __name__ == "__main__" and sys.path and sys.path[0] == __file__.rsplit("/", 1)[0]:
    # run as a script (the worker, see grade_notebook): the package folder must not shadow other modules
    sys.path.pop(0)

import argparse
import csv
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The worker process runs this file as a script and must start fast, so this module imports
# mechlib.teaching.registry (and with it torch) only inside the functions that need the exercise list.
PASSED = "passed"

DEFAULT_CELL_TIMEOUT = 120
DEFAULT_NOTEBOOK_TIMEOUT = 900
DEFAULT_MAX_OUTPUT = 1_000_000  # bytes of cell output kept per notebook

GRADING_CELL = """\
# appended by mechlib-grade: not part of the submission
import builtins as _mg_builtins, json as _mg_json, sys as _mg_sys
for _mg_name in [_m for _m in _mg_sys.modules if _m.startswith("mechlib.teaching")]:
    del _mg_sys.modules[_mg_name]  # re-import every check from disk, not the notebook's copies
import mechlib.teaching.kernel_side as _mg_checks
_mg_builtins.print({nonce!r} + _mg_json.dumps(_mg_checks.grade_namespace({notebook!r}, globals(), time_limit={limit!r})))
"""


@dataclass
class NotebookGrade:
    """Outcome of one student's notebook: one result per exercise, and notes on what went wrong."""

    notebook: str
    results: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    missing: bool = False

    def points(self, exercise_id: str) -> int:
        return int(self.results.get(exercise_id, {}).get("status") == PASSED)


@dataclass
class StudentGrade:
    student: str
    notebooks: dict[str, NotebookGrade]
    ignored: list[str] = field(default_factory=list)

    def points(self) -> dict[str, int]:
        from mechlib.teaching.registry import ALL_EXERCISES

        return {ex.column: self.notebooks[ex.notebook].points(ex.id) for ex in ALL_EXERCISES}

    def total(self) -> int:
        return sum(self.points().values())


# --------------------------------------------------------------------------- the worker (one notebook)


def _kernel_spec_dir(root: Path) -> Path:
    """A kernelspec that runs this very Python, whatever kernels the machine has installed."""
    d = root / "kernels" / "mechlib-grade"
    d.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "mechlib-grade", "language": "python"}
    (d / "kernel.json").write_text(json.dumps(spec))
    return root / "kernels"


def _run_worker(spec: dict[str, Any]) -> None:
    """Execute one notebook plus the grading cell; write ``{"results", "notes"}`` to ``spec["result"]``."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    notes: list[str] = []
    results: dict[str, Any] | None = None
    result_path = Path(spec["result"])
    work = Path(spec["notebook"]).parent

    def finish() -> None:
        result_path.write_text(json.dumps({"results": results, "notes": notes}))

    try:
        nb = nbformat.read(spec["notebook"], as_version=4)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is the submission's problem
        notes.append(f"the file is not a readable notebook ({type(exc).__name__}: {str(exc)[:200]})")
        return finish()
    n_learner = len(nb.cells)
    nonce = secrets.token_hex(16)
    n_checks = int(spec["n_checks"])
    nb.cells.append(nbformat.v4.new_code_cell(
        GRADING_CELL.format(nonce=nonce, notebook=spec["name"], limit=float(spec["cell_timeout"]))))
    grading_timeout = int(spec["cell_timeout"] * n_checks + 60)
    kernel_dirs = _kernel_spec_dir(Path(spec["scratch"]))
    max_output = int(spec["max_output"])

    class Client(NotebookClient):
        dropped = 0
        kept = {"learner": 0, "grading": 0}  # separate budgets: the notebook's cells, the grading cell
        timed_out_cells: list[int] = []

        async def _async_handle_timeout(self, timeout, cell=None):
            if cell is not None:
                Client.timed_out_cells.append(self.nb.cells.index(cell))
            return await super()._async_handle_timeout(timeout, cell)

        def create_kernel_manager(self):
            self.km = AsyncKernelManager(kernel_name="mechlib-grade",
                                         kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dirs)]))
            return self.km

        def output(self, outs, msg, display_id, cell_index):
            budget = "learner" if cell_index < n_learner else "grading"
            size = len(json.dumps(msg.get("content", {}), default=str))
            if Client.kept[budget] + size > max_output:
                Client.dropped += size
                return None
            Client.kept[budget] += size
            return super().output(outs, msg, display_id, cell_index)

    kernel_pid: list[int] = []

    def on_start(notebook=None, **_):
        prov = getattr(client.km, "provisioner", None)
        pid = getattr(prov, "pgid", None) or getattr(prov, "pid", None)
        if pid:
            kernel_pid.append(pid)
            Path(spec["kernel_pid"]).write_text(str(pid))

    client = Client(
        nb, timeout=int(spec["cell_timeout"]), allow_errors=True, interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeoutError",
                          "evalue": f"the cell ran longer than {spec['cell_timeout']} s and was interrupted",
                          "traceback": []},
        timeout_func=lambda cell: grading_timeout if "_mg_checks" in cell.source else int(spec["cell_timeout"]),
        record_timing=False, store_widget_state=False, startup_timeout=120,
        resources={"metadata": {"path": str(work)}}, on_notebook_start=on_start,
    )
    timed_out = threading.Event()

    def watchdog() -> None:
        timed_out.set()
        for pid in kernel_pid:
            _kill_group(pid)

    timer = threading.Timer(float(spec["notebook_timeout"]), watchdog)
    timer.daemon = True
    timer.start()
    try:
        client.execute()
    except DeadKernelError:
        notes.append(f"the notebook ran longer than its time limit of {spec['notebook_timeout']} s and was stopped"
                     if timed_out.is_set() else
                     "the kernel died (os._exit, exit(), a crash or running out of memory), so the "
                     "exercises could not be checked")
    except CellTimeoutError as exc:
        notes.append(f"a cell did not finish in time and could not be interrupted ({str(exc)[:200]})")
    except Exception as exc:  # noqa: BLE001 -- report, never crash the grader
        notes.append(f"running the notebook failed: {type(exc).__name__}: {str(exc)[:300]}")
    finally:
        timer.cancel()
        for pid in kernel_pid:
            _kill_group(pid)
    code_number = {i: n for n, i in enumerate(i for i, c in enumerate(nb.cells) if c.cell_type == "code")}
    for i in Client.timed_out_cells:
        what = f"code cell {code_number[i] + 1}" if i < n_learner else "the grading cell"
        notes.append(f"{what} ran longer than {spec['cell_timeout']:g} s and was interrupted")
    for i, cell in enumerate(nb.cells[:n_learner]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                notes.append(f"code cell {code_number[i] + 1} raised {out.get('ename')}: "
                             f"{str(out.get('evalue'))[:200]}")
    if Client.dropped:
        notes.append(f"the notebook printed more than {max_output} bytes; the rest of its output was dropped")
    for out in nb.cells[-1].get("outputs", []):
        if out.get("output_type") == "stream":
            for line in out.get("text", "").splitlines():
                if line.startswith(nonce):
                    results = json.loads(line[len(nonce):])
    if results is None and not any("kernel died" in n or "time limit" in n for n in notes):
        notes.append("the exercises could not be checked (the grading cell produced no result)")
    finish()


def _kill_group(pid: int) -> None:
    """Kill the process group led by ``pid`` (a kernel or a worker started in its own session)."""
    if pid <= 1:  # never signal init or "every process"
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- the grader


def grade_notebook(path: Path, name: str, cell_timeout: float, notebook_timeout: float,
                   max_output: int = DEFAULT_MAX_OUTPUT) -> NotebookGrade:
    """Grade one submitted notebook in a scratch copy, in a worker process."""
    from mechlib.teaching.registry import EXERCISES

    grade = NotebookGrade(notebook=name)
    scratch = Path(tempfile.mkdtemp(prefix="mechlib-grade-"))
    work = scratch / "work"
    work.mkdir()
    shutil.copyfile(path, work / f"{name}.ipynb")
    spec = {"notebook": str(work / f"{name}.ipynb"), "name": name, "scratch": str(scratch),
            "result": str(scratch / "result.json"), "kernel_pid": str(scratch / "kernel.pid"),
            "cell_timeout": cell_timeout, "notebook_timeout": notebook_timeout, "max_output": max_output,
            "n_checks": len(EXERCISES[name])}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    log = scratch / "worker.log"
    try:
        with open(log, "wb") as fh:
            # run this file as a script: `-m mechlib.teaching.grading` would import the whole package (torch) first
            proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                                    stdout=fh, stderr=fh, stdin=subprocess.DEVNULL, cwd=scratch, env=env,
                                    start_new_session=True)
            try:
                proc.wait(timeout=notebook_timeout + 120)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait()
                grade.notes.append(f"the notebook ran longer than its time limit of {notebook_timeout:g} s")
        pid_file = scratch / "kernel.pid"
        if pid_file.exists():  # whatever happened, leave no kernel behind
            text = pid_file.read_text().strip()
            if text.isdigit():
                _kill_group(int(text))
        result_file = scratch / "result.json"
        if result_file.exists():
            data = json.loads(result_file.read_text())
            grade.results = data.get("results") or {}
            grade.notes.extend(data.get("notes", []))
        elif not grade.notes:
            tail = log.read_bytes()[-600:].decode(errors="replace")
            grade.notes.append(f"the grader could not run this notebook: {tail.strip()}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for ex in EXERCISES[name]:
        grade.results.setdefault(ex.id, {"exercise": ex.id, "function": ex.function, "status": "failed",
                                         "message": "not checked (see the notes on this notebook)"})
    return grade


def grade_student(folder: Path, cell_timeout: float, notebook_timeout: float, max_output: int,
                  progress: Any = None) -> StudentGrade:
    from mechlib.teaching.registry import NOTEBOOKS

    notebooks: dict[str, NotebookGrade] = {}
    for name in NOTEBOOKS:
        path = folder / f"{name}.ipynb"
        if path.is_file():
            try:
                notebooks[name] = grade_notebook(path, name, cell_timeout, notebook_timeout, max_output)
            except Exception as exc:  # noqa: BLE001 -- one broken notebook must not stop the others
                notebooks[name] = NotebookGrade(name, notes=[f"grading failed: {type(exc).__name__}: {exc}"])
        else:
            notebooks[name] = NotebookGrade(name, missing=True, notes=["not submitted"])
        if progress is not None:
            progress.update(1)
    ignored = sorted(p.name for p in folder.iterdir() if p.suffix == ".ipynb" and p.stem not in NOTEBOOKS)
    return StudentGrade(folder.name, notebooks, ignored)


def grade(submissions: str | os.PathLike, out: str | os.PathLike, cell_timeout: float = DEFAULT_CELL_TIMEOUT,
          notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT, jobs: int = 2,
          max_output: int = DEFAULT_MAX_OUTPUT, progress: bool = True) -> list[StudentGrade]:
    """Grade every student folder in ``submissions``; write ``out/grades.csv`` and ``out/feedback/``."""
    from tqdm.auto import tqdm

    from mechlib.teaching.registry import NOTEBOOKS

    submissions, out = Path(submissions), Path(out)
    if not submissions.is_dir():
        raise ValueError(f"SUBMISSIONS must be a folder with one folder per student; got {submissions}")
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1; got {jobs}")
    folders = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    bar = tqdm(total=len(folders) * len(NOTEBOOKS), desc="grading", unit="notebook", file=sys.stderr,
               disable=not progress)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {f: pool.submit(grade_student, f, cell_timeout, notebook_timeout, max_output, bar) for f in folders}
        grades = []
        for folder, fut in futures.items():
            try:
                grades.append(fut.result())
            except Exception as exc:  # noqa: BLE001 -- keep the CSV complete
                nbs = {n: NotebookGrade(n, notes=[f"grading failed: {type(exc).__name__}: {exc}"]) for n in NOTEBOOKS}
                grades.append(StudentGrade(folder.name, nbs))
    bar.close()
    write_outputs(grades, out)
    return grades


def write_outputs(grades: list[StudentGrade], out: Path) -> None:
    from mechlib.teaching.registry import ALL_EXERCISES

    out.mkdir(parents=True, exist_ok=True)
    columns = ["student"] + [ex.column for ex in ALL_EXERCISES] + ["total"]
    with open(out / "grades.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for g in grades:
            writer.writerow({"student": g.student, **g.points(), "total": g.total()})
    (out / "feedback").mkdir(exist_ok=True)
    for g in grades:
        (out / "feedback" / f"{g.student}.md").write_text(feedback(g))


def feedback(g: StudentGrade) -> str:
    """The feedback page of one student, in Markdown."""
    from mechlib.teaching.registry import ALL_EXERCISES, EXERCISES, NOTEBOOKS

    lines = [f"# Feedback for {g.student}", "", f"**Total: {g.total()} / {len(ALL_EXERCISES)} points.**", ""]
    for name in NOTEBOOKS:
        nb = g.notebooks[name]
        got = sum(nb.points(ex.id) for ex in EXERCISES[name])
        lines += [f"## {name}.ipynb: {got} / {len(EXERCISES[name])}", ""]
        if nb.missing:
            lines += ["Not submitted: 0 points.", ""]
            continue
        for ex in EXERCISES[name]:
            r = nb.results.get(ex.id, {})
            pts = nb.points(ex.id)
            lines.append(f"- **{ex.id} `{ex.function}`** ({pts} point{'s' if pts != 1 else ''}): "
                         f"{r.get('status', 'failed')}. {r.get('message', '')}")
        if nb.notes:
            lines += ["", "Notes on this notebook:"] + [f"- {n}" for n in nb.notes]
        lines.append("")
    if g.ignored:
        lines += ["Ignored (not an exercise notebook): " + ", ".join(g.ignored), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _run_worker(json.loads(argv[1]))
        return 0
    parser = argparse.ArgumentParser(
        prog="mechlib-grade",
        description="Grade a folder of submitted exercise notebooks (one folder per student) into a CSV "
                    "and one feedback file per student.")
    parser.add_argument("submissions", help="folder with one sub-folder per student")
    parser.add_argument("--out", required=True, help="output folder: grades.csv and feedback/<student>.md")
    parser.add_argument("--timeout", type=float, default=DEFAULT_CELL_TIMEOUT,
                        help=f"seconds allowed per cell, and per check (default {DEFAULT_CELL_TIMEOUT})")
    parser.add_argument("--notebook-timeout", type=float, default=DEFAULT_NOTEBOOK_TIMEOUT,
                        help=f"seconds allowed per notebook (default {DEFAULT_NOTEBOOK_TIMEOUT})")
    parser.add_argument("--jobs", type=int, default=2, help="students graded in parallel (default 2)")
    parser.add_argument("--max-output", type=int, default=DEFAULT_MAX_OUTPUT,
                        help=f"bytes of output kept per notebook (default {DEFAULT_MAX_OUTPUT})")
    args = parser.parse_args(argv)
    try:
        grades = grade(args.submissions, args.out, args.timeout, args.notebook_timeout, args.jobs, args.max_output)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"graded {len(grades)} student(s): {Path(args.out) / 'grades.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
