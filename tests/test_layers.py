import subprocess
import sys


def test_core_imports_no_plotting_or_widget_library():
    code = (
        "import sys, mechlib; "
        "bad = [m for m in ('matplotlib', 'ipywidgets', 'IPython') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing mechlib pulled in {out.stdout.strip()}"
