"""The grader's limits and their defaults (``mechlib-grade --help`` shows them)."""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CELL_TIMEOUT = 120  # seconds per cell, and per exercise in the grading cell
DEFAULT_NOTEBOOK_TIMEOUT = 900  # seconds per notebook
DEFAULT_MAX_OUTPUT = 1_000_000  # bytes of cell output kept per notebook
DEFAULT_MEMORY_GIB = 4.0  # address space of each process, and memory of all together, per notebook
MIN_MEMORY_GIB = 2.0  # below this a kernel cannot load torch and TransformerLens (about 1.5 GiB of address space)
MAX_OUTCOMES = 64 * 2**20  # bytes of recorded outcomes read back from a sandbox (honest ones: a few MB)


@dataclass(frozen=True)
class Settings:
    """How one notebook is run: time limits, the output kept, memory, and whether in the sandbox."""

    cell_timeout: float = DEFAULT_CELL_TIMEOUT
    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT
    max_output: int = DEFAULT_MAX_OUTPUT
    memory_gib: float = DEFAULT_MEMORY_GIB
    sandbox: bool = True
    as_user: bool = False  # isolated as an unprivileged user instead of bubblewrap (the Gradescope fallback)

    def verdict_key(self) -> dict:
        """The settings a verdict depends on: a saved result graded under others is graded again."""
        return {"cell_timeout": float(self.cell_timeout), "notebook_timeout": float(self.notebook_timeout),
                "max_output": int(self.max_output), "memory_gib": float(self.memory_gib), "sandbox": bool(self.sandbox),
                "as_user": bool(self.as_user)}
