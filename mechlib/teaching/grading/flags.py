"""What in a submitted notebook deserves a human look: code that reaches for the grading
machinery or the call stack. An honest notebook has no reason to; its points stand either
way (the verdict does not depend on anything the notebook can reach), but the feedback and
``summary.md`` flag it."""
from __future__ import annotations

import json
import re
from pathlib import Path

SUSPICIOUS = re.compile(
    r"mechlib\.teaching\.(?:checking|exercise|exercises\.\w+|inputs|comparisons|grading(?:\.\w+)?|"
    r"kernel_side|transport|sandbox|reference|registry|checks\.\w+)"
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
