"""What runs inside the sandbox: execute one notebook, then the grading cell, and pass on
what the cell recorded.

Started by :mod:`~mechlib.teaching.grading.notebook` as
``python -P -m mechlib.teaching.grading.runner SPEC`` (``-P``: the sandbox's writable working
folder is not put on ``sys.path``), where ``SPEC`` is a JSON object: ``name`` (the exercise
notebook), ``notebook`` (the submitted file), ``inputs`` (the folder with ``inputs.json`` and
``inputs.npz``), ``root`` (a writable folder), ``cell_timeout``, ``notebook_timeout``,
``max_output``, ``n_checks``. It prints :data:`STARTED`, then one JSON object,
``{"notes", "outcomes", "arrays"}``, and decides nothing: the verdict is computed in the
grader's process (:mod:`~mechlib.teaching.grading.judge`).

The kernel runs under the same user id as this runner; the runner makes itself not dumpable
(``PR_SET_DUMPABLE`` 0) before the kernel starts, so the kernel cannot take its file
descriptors (``pidfd_getfd``), trace it or read its ``/proc`` files.
"""
from __future__ import annotations

import base64
import json
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from mechlib.teaching.grading.processes import kill_group
from mechlib.teaching.grading.settings import MAX_OUTCOMES

STARTED = b"mechlib-grade-runner: started\n"  # the sandbox is up: from here on, a failure is the notebook's
PR_SET_DUMPABLE = 4

GRADING_CELL = """\
# appended by mechlib-grade: not part of the submission
import mechlib.teaching.grading.kernel_side as _mg_kernel_side
_mg_kernel_side.collect({notebook!r}, globals(), inputs={inputs!r}, out_dir={out!r}, time_limit={limit!r})
"""


def not_dumpable() -> bool:
    """Make this process not dumpable (Linux), so that a process of the same user cannot attach to it."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def grading_cell_timeout(cell_timeout: float, n_checks: int) -> int:
    """The grading cell's time limit: each exercise's, plus a minute to start and write."""
    return int(cell_timeout * n_checks + 60)


def timeout_notes(timed_out: list[int], n_learner: int, code_number: dict[int, int], cell_timeout: float,
                  grading_timeout: float) -> list[str]:
    """The note for each cell (by index) that ran over its limit, naming the limit it had."""
    notes = []
    for i in timed_out:
        if i < n_learner:
            notes.append(f"code cell {code_number[i] + 1} ran longer than {cell_timeout:g} s and was interrupted")
        else:
            notes.append(f"the grading cell ran longer than {grading_timeout:g} s and was interrupted")
    return notes


def kernel_spec_dir(root: Path) -> Path:
    """A kernelspec that runs this very Python, whatever kernels the machine has installed."""
    d = root / "kernels" / "mechlib-grade"
    d.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "mechlib-grade", "language": "python"}
    (d / "kernel.json").write_text(json.dumps(spec))
    return root / "kernels"


def run(spec: dict[str, Any]) -> None:
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
    grading_cell = nbformat.v4.new_code_cell(GRADING_CELL.format(
        notebook=spec["name"], inputs=str(spec["inputs"]), out=str(out), limit=float(spec["cell_timeout"])))
    nb.cells.append(grading_cell)
    grading_timeout = grading_cell_timeout(spec["cell_timeout"], n_checks)
    kernel_dirs = kernel_spec_dir(runtime)
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
        # the grading cell by identity: a learner's cell that quotes it gets no longer limit
        timeout_func=lambda cell: grading_timeout if cell is grading_cell else int(spec["cell_timeout"]),
        record_timing=False, store_widget_state=False, startup_timeout=120,
        resources={"metadata": {"path": str(work)}}, on_notebook_start=on_start,
    )
    timed_out = threading.Event()

    def watchdog() -> None:
        timed_out.set()
        for pid in kernel_pid:
            kill_group(pid)

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
            kill_group(pid)
    code_number = {i: n for n, i in enumerate(i for i, c in enumerate(nb.cells) if c.cell_type == "code")}
    notes += timeout_notes(Client.timed_out_cells, n_learner, code_number, spec["cell_timeout"], grading_timeout)
    for i, cell in enumerate(nb.cells[:n_learner]):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                notes.append(f"code cell {code_number[i] + 1} raised {o.get('ename')}: {str(o.get('evalue'))[:200]}")
    if Client.dropped:
        notes.append(f"the notebook printed more than {max_output} bytes; the rest of its output was dropped")
    finish()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -P -m mechlib.teaching.grading.runner SPEC_JSON (started by mechlib-grade)",
              file=sys.stderr)
        return 2
    sys.stdout.buffer.write(STARTED)
    sys.stdout.flush()
    not_dumpable()
    run(json.loads(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
