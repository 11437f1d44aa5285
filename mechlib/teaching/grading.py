"""Grade a folder of submitted exercise notebooks: ``mechlib-grade SUBMISSIONS --out OUT``.

``SUBMISSIONS`` holds one folder per student, each with any of the exercise notebooks
under their original names (``02_v_composition.ipynb`` ...). For every notebook:

1. **In a sandbox** (:mod:`mechlib.teaching.sandbox`: bubblewrap, a read-only system, no
   network, its own PID namespace, limits on memory, processes, file size and CPU), a
   runner executes a copy of the notebook top to bottom in a fresh kernel, with a time
   limit per cell and per notebook and a cap on the output it keeps. Errors in cells do
   not stop the run.
2. Before that, **in the grader's own process**, the checks of :mod:`mechlib.teaching.checks`
   draw their **hidden cases** from a seed picked now (other random models, tokens and
   sizes than the notebook's self-checks), reference values included. Only the cases'
   *inputs* go into the sandbox, as plain data -- JSON and ``.npz``, never pickle, never
   code (:mod:`~mechlib.teaching.transport`); the seed and the expected values stay here.
3. The runner appends one cell that calls every exercise's function on those inputs and
   sends back what they returned, again as plain data.
4. **In the grader's process** those outputs are compared with the reference values
   (the same cases, fed by a :class:`~mechlib.teaching.checking.Replayer`). Nothing the
   verdict depends on ever exists inside the sandbox, so printing, patching or rewriting
   anything there changes at most the outputs it reports, which earn points only if they
   are right.

Results: ``OUT/records/<student>/<notebook>.json`` as soon as each notebook is graded
(a rerun with the same ``--out`` skips notebooks whose file is unchanged, unless
``--regrade``); ``OUT/grades.csv`` (one row per student, the points of each exercise,
``total``), ``OUT/feedback/<student>.md`` and ``OUT/summary.md``, rewritten after every
notebook so they always agree. Exit status: 0 when every submitted notebook was graded,
1 when some could not be (the grader's fault, not the student's; see the notes), 2 for
bad arguments or a missing sandbox, 130 when interrupted (what was graded is kept).
"""
from __future__ import annotations

import sys

if __name__ == "__main__" and sys.path and sys.path[0] == __file__.rsplit("/", 1)[0]:
    # run as a script (the runner, see _run_notebook): the package folder must not shadow other modules
    sys.path.pop(0)

import argparse
import base64
import csv
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The runner runs this file as a script, inside the sandbox, and must start fast: this module
# imports mechlib.teaching.registry (and with it torch) only inside the functions that need it.
PASSED = "passed"

DEFAULT_CELL_TIMEOUT = 120
DEFAULT_NOTEBOOK_TIMEOUT = 900
DEFAULT_MAX_OUTPUT = 1_000_000  # bytes of cell output kept per notebook
DEFAULT_MEMORY_GIB = 4.0
MAX_OUTCOMES = 64 * 2**20  # bytes of recorded outcomes read back from a sandbox (honest ones: a few MB)
RECORD_VERSION = 3
MAX_MESSAGE = 1000  # characters of one exercise's message kept (it may quote what the notebook returned)

GRADING_CELL = """\
# appended by mechlib-grade: not part of the submission
import mechlib.teaching.kernel_side as _mg_kernel_side
_mg_kernel_side.collect({notebook!r}, globals(), inputs={inputs!r}, out_dir={out!r}, time_limit={limit!r})
"""


@dataclass
class NotebookGrade:
    """Outcome of one student's notebook: one result per exercise, and notes on what went wrong."""

    notebook: str
    results: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    missing: bool = False
    pending: bool = False  # submitted, not graded yet (an interrupted run)
    grader_error: bool = False  # could not be graded through no fault of the notebook
    sandboxed: bool = True

    def passed(self, exercise_id: str) -> bool:
        return self.results.get(exercise_id, {}).get("status") == PASSED

    def points(self, exercise_id: str) -> int:
        from mechlib.teaching.registry import EXERCISE_BY_ID

        return EXERCISE_BY_ID[exercise_id].points if self.passed(exercise_id) else 0


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


@dataclass(frozen=True)
class Settings:
    cell_timeout: float = DEFAULT_CELL_TIMEOUT
    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT
    max_output: int = DEFAULT_MAX_OUTPUT
    memory_gib: float = DEFAULT_MEMORY_GIB
    sandbox: bool = True


# --------------------------------------------------------------------------- the runner (in the sandbox)


def _kernel_spec_dir(root: Path) -> Path:
    """A kernelspec that runs this very Python, whatever kernels the machine has installed."""
    d = root / "kernels" / "mechlib-grade"
    d.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "mechlib-grade", "language": "python"}
    (d / "kernel.json").write_text(json.dumps(spec))
    return root / "kernels"


def _run_notebook(spec: dict[str, Any]) -> None:
    """Execute one notebook plus the grading cell; print ``{"notes", "outcomes", "arrays"}`` as JSON.

    Runs inside the sandbox (or, with ``--no-sandbox``, as a plain subprocess). It decides
    nothing: it passes on what the grading cell recorded, and notes on what went wrong.
    """
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    notes: list[str] = []
    root = Path(spec["root"])
    work, out, runtime = root / "work", root / "out", root / "runtime"
    for d in (work, out, runtime, root / "home"):
        d.mkdir(parents=True, exist_ok=True)
    stdout = sys.stdout

    def finish() -> None:
        result: dict[str, Any] = {"notes": notes, "outcomes": None, "arrays": None}
        doc, npz = out / "outcomes.json", out / "outcomes.npz"
        try:
            if doc.is_file() and npz.is_file() and doc.stat().st_size + npz.stat().st_size <= MAX_OUTCOMES:
                result["outcomes"] = doc.read_text()
                result["arrays"] = base64.b64encode(npz.read_bytes()).decode()
            elif doc.exists():
                notes.append("the recorded outputs were too large to read back")
        except OSError as exc:
            notes.append(f"the recorded outputs could not be read ({exc})")
        stdout.write(json.dumps(result))
        stdout.flush()

    notebook = work / f"{spec['name']}.ipynb"
    try:
        shutil.copyfile(spec["notebook"], notebook)
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is the submission's problem
        notes.append(f"the file is not a readable notebook ({type(exc).__name__}: {str(exc)[:200]})")
        return finish()
    n_learner = len(nb.cells)
    n_checks = int(spec["n_checks"])
    nb.cells.append(nbformat.v4.new_code_cell(GRADING_CELL.format(
        notebook=spec["name"], inputs=str(spec["inputs"]), out=str(out), limit=float(spec["cell_timeout"]))))
    grading_timeout = int(spec["cell_timeout"] * n_checks + 60)
    kernel_dirs = _kernel_spec_dir(runtime)
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
            (runtime / "kernel.pid").write_text(str(pid))

    client = Client(
        nb, timeout=int(spec["cell_timeout"]), allow_errors=True, interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeoutError",
                          "evalue": f"the cell ran longer than {spec['cell_timeout']} s and was interrupted",
                          "traceback": []},
        timeout_func=lambda cell: grading_timeout if "_mg_kernel_side" in cell.source else int(spec["cell_timeout"]),
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
        with open(runtime / "kernel.log", "wb") as log:  # the kernel's own stdout/stderr never reach the grader
            client.execute(stdout=log, stderr=log)
    except DeadKernelError:
        notes.append(f"the notebook ran longer than its time limit of {spec['notebook_timeout']} s and was stopped"
                     if timed_out.is_set() else
                     "the kernel died (os._exit, exit(), a crash or running out of memory), so the "
                     "exercises could not be checked")
    except CellTimeoutError as exc:
        notes.append(f"a cell did not finish in time and could not be interrupted ({str(exc)[:200]})")
    except Exception as exc:  # noqa: BLE001 -- report, never crash
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
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                notes.append(f"code cell {code_number[i] + 1} raised {o.get('ename')}: {str(o.get('evalue'))[:200]}")
    if Client.dropped:
        notes.append(f"the notebook printed more than {max_output} bytes; the rest of its output was dropped")
    finish()


def _kill_group(pid: int) -> None:
    """Kill the process group led by ``pid`` (a kernel, or a sandbox started in its own session)."""
    if pid <= 1:  # never signal init or "every process"
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# what an honest notebook has no reason to touch: the grading machinery, and the call stack
SUSPICIOUS = re.compile(
    r"mechlib\.teaching\.(?:checking|kernel_side|transport|grading|sandbox|reference|registry|checks\.\w+)"
    r"|\b(?:kernel_side|hidden_seed|hidden_cases|Collector|Replayer|_getframe|f_back|f_locals|get_objects|"
    r"currentframe|settrace|setprofile)\b")


def suspicious_code(path: Path, limit: int = 20_000_000) -> list[str]:
    """What in a notebook's code cells reaches for the grading machinery or the call stack (for a human look)."""
    try:
        if path.stat().st_size > limit:
            return []
        nb = json.loads(path.read_text(errors="replace"))
        cells = nb.get("cells", []) if isinstance(nb, dict) else []
        sources = ["".join(c.get("source", "")) if isinstance(c.get("source"), list) else str(c.get("source", ""))
                   for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"]
    except (OSError, ValueError, RecursionError, AttributeError):
        return []
    return sorted({m.group(0) for src in sources for m in SUSPICIOUS.finditer(src)})


# --------------------------------------------------------------------------- the verdict (grader's process)


_CASES_LOCK = threading.Lock()


def hidden_inputs(name: str, seed: int) -> dict[str, list]:
    """The hidden cases of every exercise of notebook ``name`` under ``seed``: ``{exercise id: [Case]}``,
    inputs and reference values. Only the inputs go into the sandbox (:func:`transport.encode_calls`)."""
    from mechlib.teaching.checking import Collector, hidden_cases
    from mechlib.teaching.registry import EXERCISES

    cases = {}
    # one notebook at a time: the cases run the shared check models, and hooks are model state
    # (two threads' path ablations on one model would fire each other's hooks)
    with _CASES_LOCK, hidden_cases(seed):
        for ex in EXERCISES[name]:
            collector = Collector()
            ex.check(collector, verbose=False)
            cases[ex.id] = collector.cases
    return cases


def judge(name: str, records: dict[str, dict], cases: dict[str, list]) -> dict[str, dict[str, str]]:
    """Each exercise's result: the outcomes recorded in the sandbox on the inputs of ``cases``
    (:func:`hidden_inputs`), compared here with the cases' reference values."""
    from mechlib.teaching.checking import Replayer
    from mechlib.teaching.registry import EXERCISES
    from mechlib.teaching.transport import _opaque

    results = {}
    for ex in EXERCISES[name]:
        rec = records.get(ex.id)
        if rec is None:
            result = None
        elif rec.get("status") == "missing":
            result = ex.check(None, verbose=False)
        elif rec.get("status") == "not_callable":
            result = ex.check(_opaque(rec.get("type", "object"), ""), verbose=False)
        else:
            try:
                result = ex.check(Replayer(rec.get("outcomes", []), cases[ex.id], str(rec.get("note", ""))),
                                  verbose=False)
            except Exception as exc:  # noqa: BLE001 -- a result so odd that comparing it failed: this exercise fails
                result = _unchecked(name, f"the result could not be compared with the reference "
                                          f"({type(exc).__name__})")[ex.id]
        if result is not None:
            results[ex.id] = {k: _clean(v)[:MAX_MESSAGE] for k, v in (result if isinstance(result, dict) else
                                                                      result.to_dict()).items()}
    return results


def _grade_in_process(name: str, namespace: dict, seed: int, time_limit: float = 60.0) -> dict[str, dict[str, str]]:
    """Every step of grading in this one process, without the notebook and the sandbox: draw the
    hidden cases, send their inputs through the transport, call the functions in ``namespace`` on
    them, send the outcomes back, judge. For tests."""
    from mechlib.teaching import kernel_side
    from mechlib.teaching.checking import build_model, model_spec
    from mechlib.teaching.transport import decode_calls, decode_outcomes, encode_calls, encode_outcomes

    cases = hidden_inputs(name, seed)
    calls = decode_calls(*encode_calls(cases, model_spec), build_model)
    records = kernel_side.record_namespace(name, namespace, calls, time_limit)
    return judge(name, decode_outcomes(*encode_outcomes(records)), cases)


_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()
_STOPPING = threading.Event()  # set when a run is interrupted: what is in flight is not recorded


def grade_notebook(path: Path, name: str, settings: Settings = Settings()) -> NotebookGrade:
    """Grade one submitted notebook: run it (sandboxed) in a worker process, judge its outputs here."""
    from mechlib.teaching import sandbox
    from mechlib.teaching.checking import model_spec
    from mechlib.teaching.registry import EXERCISES
    from mechlib.teaching.transport import decode_outcomes, encode_calls

    grade = NotebookGrade(notebook=name, sandboxed=settings.sandbox)
    found = suspicious_code(path)
    if found:
        grade.notes.append("FLAGGED for a human look: the code uses grading internals or the call stack ("
                           + ", ".join(found[:8]) + "); the points stand, but check the work by hand")
    scratch = Path(tempfile.mkdtemp(prefix="mechlib-grade-"))
    try:
        submitted = scratch / "submitted.ipynb"
        shutil.copyfile(path, submitted)
        submitted.chmod(0o644)
        try:  # the hidden cases, drawn here: only their inputs are written for the sandbox
            cases = hidden_inputs(name, secrets.randbelow(2**31))
            doc, npz = encode_calls(cases, model_spec)
        except Exception as exc:  # noqa: BLE001 -- a bug of the grader's, not the student's
            grade.grader_error = True
            grade.notes.append(f"the hidden cases could not be prepared ({type(exc).__name__}: {str(exc)[:200]})")
            grade.results = _unchecked(name)
            return grade
        inputs = {"inputs.json": doc.encode(), "inputs.npz": npz}
        for file, data in inputs.items():
            (scratch / file).write_bytes(data)
            (scratch / file).chmod(0o644)
        spec = {"name": name, "cell_timeout": settings.cell_timeout,
                "notebook_timeout": settings.notebook_timeout, "max_output": settings.max_output,
                "n_checks": len(EXERCISES[name])}
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
               "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        runner = [sys.executable, str(Path(__file__).resolve()), "--run-notebook"]
        if settings.sandbox:
            root = sandbox.SANDBOX_ROOT
            spec.update(root=root, notebook="/grading-in/submitted.ipynb", inputs="/grading-in")
            env.update(HOME=f"{root}/home", JUPYTER_RUNTIME_DIR=f"{root}/runtime", MPLCONFIGDIR=f"{root}/home",
                       IPYTHONDIR=f"{root}/home/.ipython", TMPDIR="/tmp")
            if os.environ.get("PYTHONPATH"):  # the kernel must import the same mechlib as the grader
                env["PYTHONPATH"] = os.environ["PYTHONPATH"]
            limits = sandbox.Limits(memory=int(settings.memory_gib * sandbox.GiB))
            uid = 200_000 + secrets.randbelow(800_000) if sandbox.uses_own_uid() else None
            cmd = sandbox.command(runner + [json.dumps(spec)],
                                  {f"/grading-in/{f}": scratch / f for f in ("submitted.ipynb", *inputs)},
                                  limits, env, uid=uid)
            cwd = "/"
        else:
            root = str(scratch / "root")
            spec.update(root=root, notebook=str(submitted), inputs=str(scratch))
            env = dict(os.environ, **env, HOME=f"{root}/home", JUPYTER_RUNTIME_DIR=f"{root}/runtime",
                       MPLCONFIGDIR=f"{root}/home")
            cmd = runner + [json.dumps(spec)]
            cwd = str(scratch)
        log = scratch / "runner.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd,
                                    env=env if not settings.sandbox else None, start_new_session=True)
            with _RUNNING_LOCK:
                _RUNNING.add(proc)
            chunks: list[bytes] = []

            def read() -> None:  # capped: whatever the sandbox prints, the grader keeps at most this much
                size = 0
                while block := proc.stdout.read(1 << 16):
                    if size < MAX_OUTCOMES * 2:
                        chunks.append(block)
                    size += len(block)

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            try:
                proc.wait(timeout=settings.notebook_timeout + 120)
            except subprocess.TimeoutExpired:
                grade.notes.append(f"the notebook ran longer than its time limit of {settings.notebook_timeout:g} s")
            finally:
                _kill_group(proc.pid)  # the sandbox and everything in it; no-op if it has ended
                proc.wait()
                with _RUNNING_LOCK:
                    _RUNNING.discard(proc)
            reader.join(timeout=10)
        if not settings.sandbox:  # without a PID namespace, kill the kernel's group by hand
            pid_file = Path(root) / "runtime" / "kernel.pid"
            if pid_file.exists() and pid_file.read_text().strip().isdigit():
                _kill_group(int(pid_file.read_text().strip()))
        raw = b"".join(chunks)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if isinstance(data, dict):
            grade.notes.extend(_clean(str(n)[:500]) for n in data.get("notes") or [])
            if data.get("outcomes"):
                try:
                    records = decode_outcomes(str(data["outcomes"]), base64.b64decode(data.get("arrays") or ""))
                    grade.results = judge(name, records, cases)
                except Exception as exc:  # noqa: BLE001 -- whatever the sandbox sent that breaks reading or judging
                    # it is the notebook's doing, not the grader's: no regrade (no second draw of hidden cases)
                    grade.results = {}
                    grade.notes.append(f"the recorded outputs were unreadable ({type(exc).__name__}: {str(exc)[:200]})")
            elif not any("kernel died" in n or "time limit" in n for n in grade.notes):
                grade.notes.append("the exercises could not be checked (the grading cell recorded nothing)")
        elif not grade.notes:
            tail = log.read_bytes()[-600:].decode(errors="replace").strip()
            if "bwrap:" in tail or "prlimit:" in tail or "setpriv:" in tail:
                grade.grader_error = True
                grade.notes.append(f"the sandbox could not be started: {tail}")
            else:
                grade.notes.append("the notebook's run ended without a result (its processes were killed or "
                                   f"ran out of memory){': ' + tail[-300:] if tail else ''}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    grade.results = {**_unchecked(name), **grade.results}
    return grade


def _unchecked(name: str, message: str = "not checked (see the notes on this notebook)") -> dict[str, dict]:
    """A failed result, with ``message``, for every exercise of notebook ``name``."""
    from mechlib.teaching.registry import EXERCISES

    return {ex.id: {"exercise": ex.id, "function": ex.function, "status": "failed", "message": message}
            for ex in EXERCISES[name]}


# --------------------------------------------------------------------------- records and outputs


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _record_path(out: Path, student: str, name: str) -> Path:
    return out / "records" / student / f"{name}.json"


def _load_record(out: Path, student: str, name: str, sha: str) -> NotebookGrade | None:
    path = _record_path(out, student, name)
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if rec.get("sha256") != sha or rec.get("version") != RECORD_VERSION or rec.get("grader_error"):
        return None  # changed, from another grader version, or not graded through no fault of its own: again
    return NotebookGrade(name, results=rec["results"], notes=rec["notes"], sandboxed=rec["sandboxed"],
                         grader_error=rec.get("grader_error", False))


def _save_record(out: Path, student: str, g: NotebookGrade, sha: str) -> None:
    rec = {"version": RECORD_VERSION, "sha256": sha, "notebook": g.notebook, "results": g.results,
           "notes": g.notes, "sandboxed": g.sandboxed, "grader_error": g.grader_error}
    _write_atomic(_record_path(out, student, g.notebook), json.dumps(rec, indent=1))


def _student_grades(folders: list[Path], done: dict[tuple[str, str], NotebookGrade]) -> list[StudentGrade]:
    from mechlib.teaching.registry import NOTEBOOKS

    grades = []
    for folder in folders:
        nbs = {}
        for name in NOTEBOOKS:
            if (folder.name, name) in done:
                nbs[name] = done[(folder.name, name)]
            elif (folder / f"{name}.ipynb").is_file():
                nbs[name] = NotebookGrade(name, pending=True, notes=["not graded yet (run again with the same --out)"])
            else:
                nbs[name] = NotebookGrade(name, missing=True, notes=["not submitted"])
        ignored = sorted(p.name for p in folder.iterdir() if p.suffix == ".ipynb" and p.stem not in NOTEBOOKS)
        grades.append(StudentGrade(folder.name, nbs, ignored))
    return grades


def write_outputs(grades: list[StudentGrade], out: Path) -> None:
    """``grades.csv``, ``feedback/<student>.md`` and ``summary.md``, each replaced atomically."""
    from mechlib.teaching.registry import ALL_EXERCISES

    out.mkdir(parents=True, exist_ok=True)
    for g in grades:
        _write_atomic(out / "feedback" / f"{g.student}.md", feedback(g))
    columns = ["student"] + [ex.column for ex in ALL_EXERCISES] + ["total", "graded", "sandbox"]
    tmp = out / f".grades.csv.{os.getpid()}.tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for g in grades:
            nbs = [nb for nb in g.notebooks.values() if not nb.missing]
            graded = "partly" if any(nb.pending or nb.grader_error for nb in nbs) else "yes"
            sandboxed = "no (--no-sandbox)" if any(not nb.sandboxed for nb in nbs if not nb.pending) else "yes"
            writer.writerow({"student": g.student, **g.points(), "total": g.total(), "graded": graded,
                             "sandbox": sandboxed})
    os.replace(tmp, out / "grades.csv")
    _write_atomic(out / "summary.md", summary(grades))


NO_SANDBOX_WARNING = ("**Warning: graded with `--no-sandbox`.** The notebook ran without the sandbox, so it could "
                      "read and change files of the grading machine; treat these points with care.")


def feedback(g: StudentGrade) -> str:
    """The feedback page of one student, in Markdown."""
    from mechlib.teaching.registry import EXERCISES, MAX_POINTS, NOTEBOOKS

    lines = [f"# Feedback for {g.student}", "", f"**Total: {g.total()} / {MAX_POINTS} points.**", ""]
    if any(not nb.sandboxed for nb in g.notebooks.values() if not nb.missing and not nb.pending):
        lines += [NO_SANDBOX_WARNING, ""]
    for name in NOTEBOOKS:
        nb = g.notebooks[name]
        got = sum(nb.points(ex.id) for ex in EXERCISES[name])
        lines += [f"## {name}.ipynb: {got} / {sum(ex.points for ex in EXERCISES[name])}", ""]
        if nb.missing:
            lines += ["Not submitted: 0 points.", ""]
            continue
        if nb.pending:
            lines += ["Not graded yet: the grading run was interrupted (run it again with the same --out).", ""]
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


def summary(grades: list[StudentGrade]) -> str:
    """``summary.md``: per exercise how many passed and the commonest failures; a histogram of totals."""
    from mechlib.teaching.registry import ALL_EXERCISES, MAX_POINTS

    lines = ["# Grading summary", "", f"{len(grades)} students; {MAX_POINTS} points in all.", ""]
    pending = sum(nb.pending for g in grades for nb in g.notebooks.values())
    errors = sum(nb.grader_error for g in grades for nb in g.notebooks.values())
    if pending:
        lines += [f"**{pending} submitted notebooks are not graded yet** (an interrupted run).", ""]
    if errors:
        lines += [f"**{errors} notebooks could not be graded** through no fault of theirs; see their feedback.", ""]
    if any(not nb.sandboxed for g in grades for nb in g.notebooks.values() if not nb.missing and not nb.pending):
        lines += [NO_SANDBOX_WARNING, ""]
    flagged = [f"{g.student}/{nb.notebook}" for g in grades for nb in g.notebooks.values()
               if any(n.startswith("FLAGGED") for n in nb.notes)]
    if flagged:
        lines += ["**Flagged for a human look** (code that reaches for the grading machinery or the call stack; "
                  "see their feedback): " + ", ".join(flagged), ""]
    lines += ["## Exercises", "", "| exercise | points | passed | failed | not attempted | not submitted | "
              "most common failures |", "|---|---|---|---|---|---|---|"]
    for ex in ALL_EXERCISES:
        counts: Counter = Counter()
        messages: Counter = Counter()
        for g in grades:
            nb = g.notebooks[ex.notebook]
            if nb.missing or nb.pending:
                counts["missing"] += 1
                continue
            r = nb.results.get(ex.id, {})
            status = r.get("status", "failed")
            counts[status] += 1
            if status == "failed":
                messages[_gist(r.get("message", ""))] += 1
        common = "; ".join(f"{m} (×{n})" for m, n in messages.most_common(3)) or "–"
        lines.append(f"| {ex.id} `{ex.function}` | {ex.points} | {counts['passed']} | {counts['failed']} | "
                     f"{counts['not attempted']} | {counts['missing']} | {common.replace('|', '/')} |")
    lines += ["", "## Totals", "", "```"]
    totals = Counter(g.total() for g in grades)
    width = max(totals.values(), default=0)
    for t in range(MAX_POINTS + 1):
        if totals[t] or t in (0, MAX_POINTS):
            bar = "#" * round(40 * totals[t] / width) if width else ""
            lines.append(f"{t:>4} | {bar} {totals[t]}")
    lines += ["```", ""]
    return "\n".join(lines)


def _clean(text: Any) -> Any:
    """Student-supplied text made safe for Markdown files read in a terminal: no control
    characters (escape sequences, carriage returns), no line breaks (no injected headings)."""
    if not isinstance(text, str):
        return text
    import re

    return re.sub(r"\s+", " ", re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", "", text)).strip()


def _gist(message: str) -> str:
    """A failure message without the specifics that differ between students (numbers, indices)."""
    import re

    # "[calling ]fn(args) on <case>: <what is wrong>": keep what is wrong, without the numbers
    m = (re.match(r"^calling \w+\(.*?\) on .*? (raised \w+: .*)$", message, flags=re.S)
         or re.match(r"^(?:calling )?\w+\(.*?\) on .*?: (.*)$", message, flags=re.S))
    text = m.group(1) if m else message
    text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", text)
    return text[:100]


# --------------------------------------------------------------------------- the grader


def grade(submissions: str | os.PathLike, out: str | os.PathLike, cell_timeout: float = DEFAULT_CELL_TIMEOUT,
          notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT, jobs: int = 2,
          max_output: int = DEFAULT_MAX_OUTPUT, progress: bool = True, sandbox: bool = True,
          memory_gib: float = DEFAULT_MEMORY_GIB, regrade: bool = False) -> list[StudentGrade]:
    """Grade every student folder in ``submissions`` into ``out`` (see the module docstring)."""
    from tqdm.auto import tqdm

    from mechlib.teaching import sandbox as sb
    from mechlib.teaching.registry import NOTEBOOKS

    submissions, out = Path(submissions), Path(out)
    if not submissions.is_dir():
        raise ValueError(f"SUBMISSIONS must be a folder with one folder per student; got {submissions}")
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1; got {jobs}")
    if memory_gib <= 0:
        raise ValueError(f"--memory must be > 0 GiB; got {memory_gib}")
    if sandbox:
        ok, why = sb.available()
        if not ok:
            raise SandboxUnavailable(
                f"cannot sandbox the notebooks: {why}. Install bubblewrap, or pass --no-sandbox to grade without "
                "it (the notebooks can then read and change this machine's files; the feedback says so)")
    out_resolved = out.resolve()
    if out_resolved == submissions.resolve() or submissions.resolve() in out_resolved.parents:
        raise ValueError("--out must not be inside SUBMISSIONS")
    settings = Settings(cell_timeout, notebook_timeout, max_output, memory_gib, sandbox)
    folders = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    done: dict[tuple[str, str], NotebookGrade] = {}
    tasks = []
    for folder in folders:
        for name in NOTEBOOKS:
            path = folder / f"{name}.ipynb"
            if not (path.is_file() or path.is_symlink()):
                continue
            if folder.is_symlink() or path.is_symlink() or folder.resolve() not in path.resolve().parents:
                # a link could point at a classmate's file or the solutions: never followed
                done[(folder.name, name)] = NotebookGrade(
                    name, results=_unchecked(name, "not graded: the submission is a symbolic link"), sandboxed=sandbox,
                    notes=["the submitted file is a symbolic link, which the grader does not follow"])
                continue
            sha = _sha256(path)
            old = None if regrade else _load_record(out, folder.name, name, sha)
            if old is not None:
                done[(folder.name, name)] = old
            else:
                tasks.append((folder, name, path, sha))
    lock = threading.Lock()
    write_outputs(_student_grades(folders, done), out)
    bar = tqdm(total=len(tasks), desc="grading", unit="notebook", file=sys.stderr, disable=not progress)

    def run(task) -> None:
        folder, name, path, sha = task
        try:
            g = grade_notebook(path, name, settings)
        except Exception as exc:  # noqa: BLE001 -- one broken notebook must not stop the others
            g = NotebookGrade(name, results=_unchecked(name), notes=[f"grading failed: {type(exc).__name__}: {exc}"],
                              grader_error=True, sandboxed=sandbox)
        if _STOPPING.is_set():  # killed by the interrupt, not graded: the next run grades it
            return
        with lock:
            _save_record(out, folder.name, g, sha)
            done[(folder.name, name)] = g
            write_outputs(_student_grades(folders, done), out)
        bar.update(1)

    pool = ThreadPoolExecutor(max_workers=jobs)
    _STOPPING.clear()
    try:
        for f in [pool.submit(run, t) for t in tasks]:
            f.result()
    except BaseException:
        _STOPPING.set()
        pool.shutdown(wait=False, cancel_futures=True)
        with _RUNNING_LOCK:
            for proc in list(_RUNNING):
                _kill_group(proc.pid)
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()
    grades = _student_grades(folders, done)
    write_outputs(grades, out)
    return grades


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be made here and ``--no-sandbox`` was not given."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run-notebook"]:
        _run_notebook(json.loads(argv[1]))
        return 0
    parser = argparse.ArgumentParser(
        prog="mechlib-grade",
        description="Grade a folder of submitted exercise notebooks (one folder per student), each in a sandbox, "
                    "into OUT/grades.csv, OUT/feedback/<student>.md and OUT/summary.md.")
    parser.add_argument("submissions", help="folder with one sub-folder per student")
    parser.add_argument("--out", required=True, help="output folder (also where a rerun resumes from)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_CELL_TIMEOUT,
                        help=f"seconds allowed per cell, and per check (default {DEFAULT_CELL_TIMEOUT})")
    parser.add_argument("--notebook-timeout", type=float, default=DEFAULT_NOTEBOOK_TIMEOUT,
                        help=f"seconds allowed per notebook (default {DEFAULT_NOTEBOOK_TIMEOUT})")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks graded in parallel (default 2)")
    parser.add_argument("--max-output", type=int, default=DEFAULT_MAX_OUTPUT,
                        help=f"bytes of output kept per notebook (default {DEFAULT_MAX_OUTPUT})")
    parser.add_argument("--memory", type=float, default=DEFAULT_MEMORY_GIB,
                        help=f"GiB of memory (address space) per process in the sandbox (default {DEFAULT_MEMORY_GIB:g})")
    parser.add_argument("--regrade", action="store_true",
                        help="grade every notebook again, even those already graded in --out")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run the notebooks without the sandbox (where bubblewrap is missing); UNSAFE: the "
                             "feedback and the CSV say so")
    args = parser.parse_args(argv)
    if threading.current_thread() is not threading.main_thread():
        return _main(args, parser)
    # Ctrl-C, and a polite kill, stop the run cleanly (what was graded is kept) -- even when the
    # grader was started from a shell that ignores SIGINT in background jobs
    old = {sig: signal.signal(sig, signal.default_int_handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _main(args, parser)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.no_sandbox:
        print("warning: --no-sandbox: the notebooks run with this user's rights and can read and change its files",
              file=sys.stderr)
    try:
        grades = grade(args.submissions, args.out, args.timeout, args.notebook_timeout, args.jobs, args.max_output,
                       sandbox=not args.no_sandbox, memory_gib=args.memory, regrade=args.regrade)
    except (ValueError, SandboxUnavailable) as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:
        print(f"interrupted: what was graded is in {args.out}; run the same command to finish", file=sys.stderr)
        return 130
    errors = sum(nb.grader_error for g in grades for nb in g.notebooks.values())
    print(f"graded {len(grades)} student(s): {Path(args.out) / 'grades.csv'}, summary in "
          f"{Path(args.out) / 'summary.md'}")
    if errors:
        print(f"{errors} notebook(s) could not be graded; see their feedback", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
