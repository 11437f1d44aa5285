"""Every notebook opens in Colab: its first code cell installs mechlib there, from the
repository and ref that ``_config.yml`` names (the one home of the repository URL)."""
import importlib.util
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p for folder in ("chapters", "exercises", "solutions") for p in (ROOT / folder).glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
URL, REF = CONFIG["repository"]["url"], CONFIG["repository"]["branch"]


def _load_script(root=ROOT):
    spec = importlib.util.spec_from_file_location("set_repository", root / "scripts" / "set_repository.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 8 + 7 + 7


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_first_code_cell_is_the_colab_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    source = first.source
    assert f'REPO = "{URL}"' in source and f'REF = "{REF}"' in source
    # the learner's install: the views and the real model, never the dev extra; ranges only, so
    # Colab keeps its own torch and ipywidgets
    assert '%pip install -q "mechlib[views,real] @ git+{REPO}@{REF}"' in source
    # installs only in Colab, and only once: a second run finds mechlib and installs nothing
    assert 'if IN_COLAB and importlib.util.find_spec("mechlib") is None:' in source
    assert max(len(line) for line in source.splitlines()) <= 79


def test_readme_colab_links_name_the_configured_repository():
    owner_repo = URL.removeprefix("https://github.com/")
    text = (ROOT / "README.md").read_text()
    assert f"https://colab.research.google.com/github/{owner_repo}/blob/{REF}/" in text
    assert _load_script().disagreements(URL, REF) == []


def test_set_repository_rewrites_every_home_from_the_config(tmp_path):
    """On a copy of the repository: one command moves every notebook and the README to a fork."""
    copy = tmp_path / "repo"
    for part in ("chapters", "exercises", "solutions", "scripts"):
        shutil.copytree(ROOT / part, copy / part)
    for name in ("_config.yml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    script = _load_script(copy)
    assert script.main(["--url", "https://github.com/someone/fork", "--ref", "v2.0"]) == 0
    config = yaml.safe_load((copy / "_config.yml").read_text())["repository"]
    assert config == {**CONFIG["repository"], "url": "https://github.com/someone/fork", "branch": "v2.0"}
    assert script.main(["--check"]) == 0
    assert "https://colab.research.google.com/github/someone/fork/blob/v2.0/" in (copy / "README.md").read_text()
    first = next(c for c in nbformat.read(copy / "chapters" / NOTEBOOKS[0].name, as_version=4).cells
                 if c.cell_type == "code")
    assert 'REPO = "https://github.com/someone/fork"' in first.source and 'REF = "v2.0"' in first.source
    # an exercise page's "open this notebook in Colab" link follows too
    page = nbformat.read(copy / "exercises" / "03_k_composition.ipynb", as_version=4)
    links = [c.source for c in page.cells if c.cell_type == "markdown" and "colab.research.google.com" in c.source]
    assert links and all("colab.research.google.com/github/someone/fork/blob/v2.0/" in t for t in links)


def test_set_repository_inserts_the_setup_cell_into_a_new_notebook(tmp_path):
    copy = tmp_path / "repo"
    for part in ("chapters", "exercises", "solutions", "scripts"):
        (copy / part).mkdir(parents=True)
    shutil.copytree(ROOT / "scripts", copy / "scripts", dirs_exist_ok=True)
    for name in ("_config.yml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    new = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A new chapter"),
                                          nbformat.v4.new_code_cell("import mechlib")])
    nbformat.write(new, copy / "chapters" / "10_new.ipynb")
    script = _load_script(copy)
    assert script.main([]) == 0
    cells = nbformat.read(copy / "chapters" / "10_new.ipynb", as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "code", "code"]
    assert cells[1].source == script.setup_cell(URL, REF) and cells[2].source == "import mechlib"
    assert script.main(["--check"]) == 0
