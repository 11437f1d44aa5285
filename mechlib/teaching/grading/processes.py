"""Process handling for the grader: start a notebook's run in its own session, keep at most
so much of what it prints, hold all its processes together to one budget of memory and
tasks (:class:`Budget`), and make sure that every process it started ends with it.

The budget is watched from here, every :data:`POLL` seconds, over the run's whole process
tree (``/proc``: the proportional set size of each process, ``Pss``, so shared libraries
count once, and its threads): no cgroup is needed, so it holds wherever the grader runs.
Between two looks a process can grow by at most its own address-space limit.

:data:`RUNNING` holds the runs in flight, so that an interrupted grader (Ctrl-C) kills them
all; :data:`STOPPING` tells the workers that what is in flight must not be recorded.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

POLL = 0.25  # seconds between two looks at a run's budget

RUNNING: set[subprocess.Popen] = set()
RUNNING_LOCK = threading.Lock()
STOPPING = threading.Event()  # set when a run is interrupted: what is in flight is not recorded


def kill_group(pid: int) -> None:
    """Kill the process group led by ``pid`` (a kernel, or a sandbox started in its own session)."""
    if pid <= 1:  # never signal init or "every process"
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass(frozen=True)
class Budget:
    """What all processes of one run may use together: resident memory (bytes) and tasks."""

    memory: int
    tasks: int


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(d.name))
    return tree


def _memory_and_tasks(pid: int) -> tuple[int, int]:
    proc = Path("/proc", str(pid))
    tasks = 1
    try:
        for line in (proc / "status").read_text().splitlines():
            if line.startswith("Threads:"):
                tasks = int(line.split()[1])
    except (OSError, ValueError):
        return 0, 0
    try:
        for line in (proc / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024, tasks
    except (OSError, ValueError):
        pass
    try:  # no smaps_rollup: the resident set, shared pages counted in each process
        return int((proc / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE"), tasks
    except (OSError, ValueError, IndexError):
        return 0, tasks


def usage(pid: int) -> tuple[int, int]:
    """``(bytes, tasks)`` that the process ``pid`` and all its descendants hold now."""
    tree, todo, memory, tasks = _children(), [pid], 0, 0
    seen: set[int] = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        m, t = _memory_and_tasks(p)
        memory, tasks = memory + m, tasks + t
        todo.extend(tree.get(p, []))
    return memory, tasks


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all its descendants (those in other sessions too)."""
    tree, todo, seen = _children(), [pid], set()
    while todo:
        p = todo.pop()
        if p in seen or p <= 1:
            continue
        seen.add(p)
        todo.extend(tree.get(p, []))
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def kill_user(uid: int) -> None:
    """SIGKILL every process of user ``uid`` (a fresh uid that ran one notebook: a daemon that left
    the process tree is caught too). Never root's, never this process's own user's."""
    if uid <= 0 or uid == os.geteuid():
        return
    for _ in range(3):  # a process may fork while the first pass kills
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and d.stat().st_uid == uid:
                    os.kill(int(d.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue


def kill_running() -> None:
    """Kill every run in flight (and everything it started)."""
    with RUNNING_LOCK:
        for proc in list(RUNNING):
            kill_group(proc.pid)


def run_capped(cmd: list[str], *, cwd: str, env: dict[str, str] | None, timeout: float, log: Path,
               cap: int, pass_fds: tuple[int, ...] = (), budget: Budget | None = None) -> tuple[bytes, bool, str]:
    """Run ``cmd`` in a new session; return ``(stdout, timed_out, over_budget)``.

    Of its standard output at most ``cap`` bytes are kept (whatever it prints); its standard
    error goes to ``log``. After ``timeout`` seconds, when its processes together go over
    ``budget`` (``over_budget`` then says how), or when it ends, its whole process group and
    every process it started is killed.
    """
    timed_out, over = False, ""
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd,
                                env=env, start_new_session=True, pass_fds=pass_fds)
        with RUNNING_LOCK:
            RUNNING.add(proc)
        chunks: list[bytes] = []

        def read() -> None:
            size = 0
            while block := proc.stdout.read(1 << 16):
                if size < cap:
                    chunks.append(block)
                size += len(block)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    proc.wait(timeout=min(POLL, max(deadline - time.monotonic(), 0)))
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() >= deadline:
                        timed_out = True
                        break
                if budget is not None:
                    memory, tasks = usage(proc.pid)
                    if memory > budget.memory:
                        over = f"its processes together used more than {budget.memory / 2**30:g} GiB of memory"
                    elif tasks > budget.tasks:
                        over = f"it ran more than {budget.tasks} processes and threads at once"
                    if over:
                        break
        finally:
            kill_tree(proc.pid)
            kill_group(proc.pid)  # the sandbox and everything in it; no-op if it has ended
            proc.wait()
            with RUNNING_LOCK:
                RUNNING.discard(proc)
        reader.join(timeout=10)
    return b"".join(chunks), timed_out, over
