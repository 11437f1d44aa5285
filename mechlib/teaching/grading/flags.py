"""What in a submitted notebook deserves a human look: code that reaches for the grading
machinery, the call stack or the processes around it, or imports by a roundabout way. An
honest notebook has no reason to; its points stand either way (the verdict does not depend
on anything the notebook can reach), but the feedback and ``summary.md`` flag it.

Every notebook is scanned whatever its size, and every cell whatever its shape (a
``source`` that is a string, a list of anything, or something else entirely); a file that
is not JSON is scanned as text.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SUSPICIOUS = re.compile(
    r"mechlib\.teaching\.(?:checking|exercise|exercises\.\w+|inputs|comparisons|grading(?:\.\w+)?|"
    r"kernel_side|transport|sandbox|reference|registry|checks\.\w+)"
    r"|\bfrom\s+mechlib(?:\.teaching)?\s+import\s+[^\n]*?\b(?:teaching|grading|reference|registry|inputs|exercise|"
    r"exercises|comparisons|kernel_side|transport|sandbox|checking)\b"
    r"|\b(?:kernel_side|hidden_seed|hidden_cases|Collector|Replayer|_getframe|f_back|f_locals|get_objects|"
    r"currentframe|settrace|setprofile|__import__|pidfd_open|pidfd_getfd|ptrace|process_vm_readv|"
    r"PR_SET_DUMPABLE)\b"
    r"|\bimportlib\.(?:import_module|reload|machinery|_bootstrap)|\bsys\.modules\s*(?:\[|\.(?:get|pop|values|items))"
    r"|\b(?:exec|eval|compile)\s*\(")


def _strings(x: Any, depth: int = 0) -> list[str]:
    """Every string in ``x`` (a cell's source of any shape), at any depth; other scalars as text."""
    if depth > 50:
        return []
    if isinstance(x, str):
        return [x]
    if isinstance(x, list):
        return ["".join(s for v in x for s in _strings(v, depth + 1))]
    if isinstance(x, dict):
        return [s for v in x.values() for s in _strings(v, depth + 1)]
    return [] if x is None else [str(x)]


def code_sources(data: bytes) -> list[str]:
    """The source of each code cell of a notebook file (any shape), or its whole text when it is not
    a notebook that JSON can read."""
    text = data.decode("utf-8", errors="replace")
    try:
        nb = json.loads(text)
    except (ValueError, RecursionError, MemoryError):
        return [text]
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        return [text]
    out = []
    for c in cells:
        if isinstance(c, dict) and c.get("cell_type") == "code":
            out.extend(_strings(c.get("source", "")))
        elif not isinstance(c, dict):
            out.extend(_strings(c))
    return out


def suspicious_code(notebook: bytes | str | Path) -> list[str]:
    """What in a notebook's code cells reaches for the grading machinery or the call stack (for a human look).

    ``notebook``: the file's bytes, or its path."""
    data = notebook if isinstance(notebook, bytes) else Path(notebook).read_bytes()
    return sorted({m.group(0) for src in code_sources(data) for m in SUSPICIOUS.finditer(src)})
