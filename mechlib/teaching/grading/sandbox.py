"""The sandbox a submitted notebook runs in: Linux's bubblewrap (``bwrap``).

What the notebook's processes see and may do:

* a read-only view of the system (``/usr``, ``/etc``), of the Python installation and
  of the installed ``mechlib`` package -- nothing else of the host: not the other
  students' folders, not the solutions, not the grader's output folder, not ``/root``
  or ``/home``;
* one writable folder, ``/grading`` (a size-limited tmpfs that vanishes with the
  sandbox), which holds the copy of the notebook and its working directory, and a
  private ``/tmp``;
* their own PID namespace (no other process of the machine is visible through
  ``/proc``), no network (a network namespace with loopback only), ``--die-with-parent``;
  when the notebook's runner ends, every process it started is killed with the namespace;
* resource limits: address space (``--memory``), processes, file size and CPU time per
  process, and one budget per notebook (:mod:`~mechlib.teaching.grading.processes`: the
  memory and tasks of all its processes together);
* no way out of these rules: bubblewrap itself starts with a minimal environment (nothing
  of the grader's, so ``/proc/1/environ`` holds nothing to leak); no user namespace can be
  made inside (a seccomp filter, :mod:`~mechlib.teaching.grading.seccomp`, refuses
  ``unshare``/``clone`` with ``CLONE_NEWUSER``; as an ordinary user also ``--disable-userns``):
  no ``unshare -Urm`` to mount an uncapped tmpfs; ``/dev`` is read-only and ``/dev/shm``
  private and capped. As root, the notebook runs under a fresh user id per notebook, so
  the process limit counts only its own processes. The submission and the hidden inputs
  are copied in from file descriptors (nothing of the grader's scratch folder is bound).
"""
from __future__ import annotations

import os
import shutil
import site
import sys
from dataclasses import dataclass
from pathlib import Path

GiB = 2**30


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create a sandbox on this machine."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed notebook (each process; the process count per sandbox)."""

    memory: int = 4 * GiB  # address space of each process (RLIMIT_AS)
    processes: int = 256  # processes and threads (RLIMIT_NPROC)
    file_size: int = 256 * 2**20  # largest file it may write (RLIMIT_FSIZE)
    cpu_seconds: int = 1800  # CPU time of each process (RLIMIT_CPU)
    scratch: int = 1 * GiB  # size of each of the two writable tmpfs folders, /grading and /tmp
    shm: int = 64 * 2**20  # size of the private /dev/shm


# what bubblewrap itself is started with: nothing of the grader's environment (its secrets)
LAUNCH_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


SANDBOX_ROOT = "/grading"


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _read_only_paths() -> list[Path]:
    """What the sandbox must see: the system, this Python and its packages, and mechlib itself."""
    import mechlib

    paths = [Path(p) for p in ("/usr", "/etc")]
    paths += [Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix)]
    paths += [Path(p) for p in site.getsitepackages() + [site.getusersitepackages()]]
    paths.append(Path(mechlib.__file__).resolve().parent)  # an editable install lives outside site-packages
    paths.append(Path(sys.executable).resolve().parent)
    # PYTHONPATH entries are not bound whole (a course checkout there holds the solutions):
    # the mechlib package folder above is all the kernel needs of them
    seen: list[Path] = []
    for p in sorted({p.resolve() for p in paths if p.exists()}, key=lambda p: len(p.parts)):
        if p == Path("/"):
            continue
        if not any(p == s or s in p.parents for s in seen):
            seen.append(p)
    return seen


def _tasks_of_this_user() -> int:
    """Processes and threads the current user runs now (what RLIMIT_NPROC counts)."""
    uid, total = os.getuid(), 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = dict(line.split(":", 1) for line in (d / "status").read_text().splitlines() if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                total += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return total


def command(argv: list[str], inputs: dict[str, int], limits: Limits, env: dict[str, str],
            uid: int | None = None, seccomp_fd: int | None = None) -> list[str]:
    """The command line that runs ``argv`` in the sandbox; start it with :data:`LAUNCH_ENV`
    as its environment, and ``pass_fds`` the values of ``inputs`` and ``seccomp_fd``.

    ``inputs`` maps a path inside the sandbox to an open file descriptor whose content is
    copied there, read-only. ``env`` is the whole environment inside. ``uid``: run as this
    (unprivileged) user id; needs root. ``seccomp_fd``: a compiled seccomp filter
    (:func:`mechlib.teaching.grading.seccomp.no_user_namespaces`).
    """
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
    cmd = [bwrap]
    made: set[str] = set()

    def dirs_for(target: Path) -> None:
        for parent in reversed(target.parents):
            s = str(parent)
            if s != "/" and s not in made:
                made.add(s)
                cmd.extend(["--perms", "0755", "--dir", s])

    # the private /tmp first: a read-only bind below it (a virtualenv in /tmp) must land on top of it
    cmd += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.shm), "--tmpfs", "/dev/shm",
            "--chmod", "1777", "/dev/shm", "--remount-ro", "/dev",
            "--size", str(limits.scratch), "--tmpfs", "/tmp", "--chmod", "1777", "/tmp"]
    made.add("/tmp")
    for p in _read_only_paths():
        dirs_for(p)
        cmd.extend(["--ro-bind", str(p), str(p)])
        made.add(str(p))
    for name in ("lib", "lib32", "lib64", "bin", "sbin"):  # merged /usr: links; otherwise the folders
        top = Path("/", name)
        if top.is_symlink():
            cmd.extend(["--symlink", os.readlink(top), str(top)])
        elif top.is_dir():
            cmd.extend(["--ro-bind", str(top), str(top)])
    cmd += ["--size", str(limits.scratch), "--tmpfs", SANDBOX_ROOT, "--chmod", "1777", SANDBOX_ROOT]
    for dest, fd in inputs.items():
        dirs_for(Path(dest))
        cmd.extend(["--perms", "0444", "--ro-bind-data", str(int(fd)), dest])
    cmd += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--chdir", SANDBOX_ROOT, "--clearenv"]
    if seccomp_fd is not None:
        cmd += ["--seccomp", str(int(seccomp_fd))]
    for k, v in env.items():
        cmd.extend(["--setenv", k, v])
    # RLIMIT_NPROC counts every task of the real user: a sandbox with its own uid starts from 0; one
    # that runs as the instructor (not root) gets its allowance on top of what that user runs already
    nproc = limits.processes if uid is not None else limits.processes + _tasks_of_this_user()
    rlimits = ["prlimit", f"--as={limits.memory}", f"--nproc={nproc}",
               f"--fsize={limits.file_size}", f"--cpu={limits.cpu_seconds}", "--core=0", "--"]
    if uid is not None:
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]
        cmd += rlimits + ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                          "--inh-caps=-all", "--bounding-set=-all", "--"]
    else:
        cmd += ["--unshare-user", "--disable-userns", "--"] + rlimits
    return cmd + list(argv)


def available() -> tuple[bool, str]:
    """Whether a sandbox can be made here, and if not, why."""
    if not sys.platform.startswith("linux"):
        return False, f"the sandbox needs Linux's bubblewrap; this is {sys.platform}"
    if bwrap_path() is None:
        return False, "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    for tool in ("prlimit", "setpriv"):
        if shutil.which(tool) is None:
            return False, f"{tool} (util-linux) is not installed"
    return True, ""


def uses_own_uid() -> bool:
    """Run each sandbox under its own unprivileged user id (possible as root only)."""
    return os.geteuid() == 0
