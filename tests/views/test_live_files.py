"""The live widgets' JavaScript is split one view per file (mechlib.views.live.page.WIDGET_FILES):
every file ships, each view registers itself in the last of its files, and no file or
function grows past the size the README promises (about 250 lines a file, 40 a function)."""
import re

import pytest

from mechlib.views import live

MAX_FILE_LINES, MAX_FUNCTION_LINES = 250, 40
#: not views: the weights (one line of data, generated) and the forward pass (model.js, its own
#: idea, tested against mechlib in tests/book/test_live_model.py)
NOT_VIEWS = {"induction-2l.weights.js", "relay-2l.weights.js", "model.js"}


def view_files():
    return sorted(f for f in live.asset_dir().glob("*.js") if f.name not in NOT_VIEWS)


def test_every_code_file_ships_and_every_shipped_file_is_used():
    on_disk = {f.name for f in live.asset_dir().glob("*.js")} | {f.name for f in live.asset_dir().glob("*.css")}
    listed = set(live.CODE_FILES) | {"loader.js", "kernel.js"} | {live.weights_file(m) for m in live.SHIPPED_MODELS}
    assert on_disk == listed


@pytest.mark.parametrize("widget", sorted(live.WIDGET_FILES))
def test_each_view_registers_itself_in_its_last_file(widget):
    files = live.code_files(widget)
    assert files[:3] == ("model.js", "ui.js", "live.css")
    last = (live.asset_dir() / files[-1]).read_text()
    assert re.search(rf"api\.widgets\.{widget} = function", last), f"{files[-1]} does not register {widget}"
    for f in files[3:-1]:  # the parts before it register no view
        assert not re.search(r"api\.widgets\.\w+ = function", (live.asset_dir() / f).read_text()), f


def test_an_unknown_view_is_named():
    with pytest.raises(ValueError, match="widget must be one of .*'headToggle'.*; got 'slider'"):
        live.code_files("slider")


@pytest.mark.parametrize("path", view_files(), ids=lambda p: p.name)
def test_no_file_and_no_function_is_long(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_FILE_LINES, f"{path.name}: {len(lines)} lines"
    # a named function declared at the start of a line ends at the first "}" line with its indentation
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(?:[\w.]+ = )?function (\w+)\s*\(", line)
        if not m or line.rstrip().endswith("}") or line.rstrip().endswith("};"):
            continue
        end = next(j for j in range(i + 1, len(lines)) if re.match(rf"^{m.group(1)}}}", lines[j]))
        assert end - i + 1 <= MAX_FUNCTION_LINES, f"{path.name}: function {m.group(2)} is {end - i + 1} lines"
