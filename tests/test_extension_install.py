"""`pip install .` and `pip install -e .` give a working JupyterLab extension: Jupyter lists
labloom's prebuilt labextension and its server extension as enabled and OK, and the installed
package carries the one DAG renderer (js/src/dag.js) as the cell widget's ES module.

The install goes into a fresh virtual environment that sees the packages of the environment
running the tests (so only labloom itself is installed), with its own Jupyter folders; the
JavaScript is built from js/ by JupyterLab's toolchain during the install unless an earlier build
is there. The tests may run in the system Python, a venv or a conda environment:
`--system-site-packages` alone would see the base interpreter's packages, not a venv's, so the
new environment is pointed at this one's site folders by a .pth file.
"""

from __future__ import annotations

import importlib.util
import os
import re
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def make_venv_seeing_this_environment(venv: Path) -> str:
    """A venv whose interpreter also imports what this environment has (after its own)."""
    # Without a pip of its own where this environment has one: the venv's `python -m pip` is
    # then this environment's pip, found through the .pth below, and installs into the venv
    # all the same; ensurepip's install of a pip took seconds of CPU per test.
    own_pip = [] if importlib.util.find_spec("pip") is None else ["--without-pip"]
    subprocess.run([sys.executable, "-m", "venv", *own_pip, str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    own = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    # addsitedir also reads those folders' .pth files (editable installs, conda's own paths).
    folders = [*site.getsitepackages(), site.getusersitepackages()]
    (Path(own) / "_outer_environment.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({f!r})" for f in folders) + "\n"
    )
    return python


@pytest.mark.timeout(900)
@pytest.mark.parametrize("editable", [True, False], ids=["pip install -e .", "pip install ."])
def test_install_enables_both_extensions(tmp_path: Path, editable: bool) -> None:
    venv = tmp_path / "venv"
    python = make_venv_seeing_this_environment(venv)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": ""}
    done = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         *(["-e"] if editable else []), str(ROOT)],
        env=env, capture_output=True, text=True, timeout=800,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    def listing(module: str) -> str:
        out = subprocess.run(
            [python, "-c", f"from {module} import main; main()", "list"],
            env=env, capture_output=True, text=True, timeout=120,
        )
        return ANSI.sub("", out.stdout + out.stderr)

    labextensions = listing("jupyterlab.labextensions")
    assert re.search(r"labloom v\S+ enabled OK \(python, labloom\)", labextensions), labextensions
    assert str(venv / "share" / "jupyter" / "labextensions") in labextensions
    server = listing("jupyter_server.extension.serverextension")
    assert re.search(r"labloom enabled\s+- Validating labloom...\s+labloom \S+ OK", server), server

    # The cell widget's ES module is the renderer the Lab run view bundles (js/src/dag.js with
    # its charting library, bundled by the JS build): inside the installed package, or the
    # build output in the source folder for an editable install.
    found = subprocess.run(
        [python, "-c", "from labloom.notebook.widget.anywidget import asset; "
         "from labloom.notebook.widget.palette import light_marks, stylesheet; "
         "print(asset('widget.js')); print(asset('widget.css')); print(stylesheet()); "
         "print(len(light_marks()))"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    module, style, palette, states = found.stdout.split()
    module, style = Path(module), Path(style)
    # The static summary's colours come from the stylesheet the package carries.
    assert (Path(palette), states) == (style, "9"), found.stdout + found.stderr
    built = ROOT / "src" / "labloom" / "notebook" / "widget" / "static" / "widget.js"
    assert module.read_bytes() == built.read_bytes()
    text = module.read_text()
    assert "labloom-timeline" in text and "labloom-cancel" in text and "import " not in text
    assert style.read_bytes() == (ROOT / "js" / "style" / "dag.css").read_bytes()
    if editable:
        assert module == built
    else:
        assert str(venv) in str(module) and not module.is_symlink()
