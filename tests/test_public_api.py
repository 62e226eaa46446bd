"""``labloom/__init__.py`` names its public API lazily (issue 21): every name of ``__all__``
comes from one table, each is what its module defines, and ``import labloom`` alone (or a Dask
worker unpickling a chunk, which imports ``labloom.executors...``) loads neither the engine
nor the store."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import labloom

INIT = Path(labloom.__file__)


def _fresh(code: str, **env: str) -> str:
    """``code``'s output in a new interpreter (this process has imported everything), with
    ``env`` set besides the path."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
        env={"PYTHONPATH": str(INIT.parents[1]), "PATH": "", **env},
    ).stdout.strip()


def _type_checking_imports() -> dict[str, tuple[str, ...]]:
    """What the ``if TYPE_CHECKING:`` block imports, as ``_ORIGINS`` writes it."""
    tree = ast.parse(INIT.read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    found: dict[str, tuple[str, ...]] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.dump(node)
        module = "." + (node.module or "")
        found[module] = found.get(module, ()) + tuple(alias.name for alias in node.names)
    return found


def test_the_table_the_type_checking_imports_and_all_name_the_same() -> None:
    table = {module: tuple(sorted(names)) for module, names in labloom._ORIGINS.items()}
    read = {module: tuple(sorted(names)) for module, names in _type_checking_imports().items()}
    assert read == table
    named = [name for names in table.values() for name in names]
    assert len(named) == len(set(named)), "a name in two modules"
    assert sorted(labloom.__all__) == sorted([*named, "load_ipython_extension"])


def test_every_public_name_is_its_modules_own() -> None:
    for module, names in labloom._ORIGINS.items():
        for name in names:
            expected = (importlib.import_module(f"labloom.{name}") if module == "."
                        else getattr(importlib.import_module(module, "labloom"), name))
            assert getattr(labloom, name) is expected, name


def test_from_labloom_import_each_name_in_a_fresh_process() -> None:
    out = _fresh(
        "import labloom\n"
        "for name in labloom.__all__:\n"
        "    exec(f'from labloom import {name}')\n"
        "from labloom import *\n"
        "missing = [n for n in labloom.__all__ if n not in dir(labloom) or n not in globals()]\n"
        "print(missing)\n"
    )
    assert out == "[]"


def test_an_unknown_name_is_an_attribute_error() -> None:
    out = _fresh(
        "import labloom\n"
        "try:\n"
        "    labloom.nope\n"
        "except AttributeError as exc:\n"
        "    print(exc)\n"
    )
    assert out == "module 'labloom' has no attribute 'nope'"


# Every hook of the engine's seams is the one ``defaults.install`` sets (each has a default
# of its own in ``core/hooks.py``, so "is set" would prove nothing), and the store observes runs.
_WIRED = (
    "from dataclasses import fields\n"
    "from labloom import defaults\n"
    "from labloom.core.hooks import hooks\n"
    "from labloom.core.observers import run_observers\n"
    "unwired = [f.name for f in fields(hooks)"
    " if getattr(getattr(hooks, f.name), '__module__', None) != 'labloom.defaults']\n"
    "wired = (unwired, defaults.attach_default_observers in run_observers())\n"
)


def test_import_labloom_loads_no_engine_nor_store_and_wires_the_defaults() -> None:
    out = _fresh(
        "import sys, labloom\n"
        "heavy = [m for m in sys.modules if m.startswith(('labloom.core.engine',"
        " 'labloom.core.flow_run', 'labloom.store', 'labloom.cli', 'labloom.executors'))]\n"
        + _WIRED + "print(heavy, wired)\n"
    )
    assert out == "[] ([], True)"


@pytest.mark.parametrize("entry", ["labloom.cli", "labloom.executors.dask_outcomes",
                                   "labloom.notebook.magics", "labloom.server_extension"])
def test_every_way_in_wires_the_defaults(entry: str) -> None:
    # The CLI, a Dask worker's first chunk, %load_ext, Jupyter's server extension.
    assert _fresh(f"import {entry}\n" + _WIRED + "print(wired)\n") == "([], True)"


def test_the_first_public_name_imports_the_engine_so_the_first_run_does_not() -> None:
    # Where ``import labloom`` used to: a first run's time holds no import of the engine.
    out = _fresh(
        "import sys\n"
        "from labloom import task\n"
        "print(all(m in sys.modules for m in ('labloom.core.engine', 'labloom.core.flow_run',"
        " 'labloom.store.experiments', 'labloom.limits')), 'distributed' in sys.modules)\n"
    )
    assert out == "True False"


# A process's first run, recorded: what it imports counts in its time (issue 21 §2).
_FIRST_RUN = (
    "import sys\n"
    "from labloom import flow, task\n"
    "@task\n"
    "def one(x):\n"
    "    return x\n"
    "@flow\n"
    "def wide(n):\n"
    "    one.map(range(n))\n"
    "before = set(sys.modules)\n"
    "wide.run(n=3)\n"
    "print(sorted(m for m in set(sys.modules) - before if m.startswith('labloom')),"
    " 'labloom.store.writer' in before)\n"
)


def test_a_first_run_imports_no_module_of_labloom(tmp_path: Path) -> None:
    # The store's writer, rows, recorder and cancel watcher came in inside the first run:
    # 1.5 ms of a run of 1,000 task runs. The first public name imports them now.
    out = _fresh(_FIRST_RUN, LABLOOM_HOME=str(tmp_path), LABLOOM_PROGRESS="0")
    assert out == "[] True"


def test_nor_with_the_terminal_progress(tmp_path: Path) -> None:
    assert _fresh(_FIRST_RUN, LABLOOM_HOME=str(tmp_path), LABLOOM_PROGRESS="1") == "[] True"


def test_with_the_store_off_the_first_public_name_imports_no_writer(tmp_path: Path) -> None:
    out = _fresh(_FIRST_RUN, LABLOOM_HOME=str(tmp_path), LABLOOM_PROGRESS="0",
                 LABLOOM_STORE="0")
    assert out == "[] False"


def test_a_dask_workers_entry_loads_no_engine_nor_store() -> None:
    # What a worker imports to run a chunk (``run_chunk``) or a single call.
    out = _fresh(
        "import sys\n"
        "import labloom.executors.dask_outcomes\n"
        "heavy = [m for m in sys.modules if m.startswith(('labloom.core.engine',"
        " 'labloom.core.flow_run', 'labloom.core.flows', 'labloom.store', 'labloom.cli'))]\n"
        "print(heavy)\n"
    )
    assert out == "[]"


def test_load_ext_imports_the_engine_so_the_first_flow_cell_does_not() -> None:
    # ``%load_ext labloom`` then ``%%tasks`` and ``%%flow``: a notebook that names no public
    # name still runs flows, and its first ``%%flow`` cell must not import the engine and the
    # store in its own time, as it did not before the names were imported at first use.
    out = _fresh(
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "from traitlets.config import Config\n"
        "config = Config()\n"
        "config.HistoryManager.enabled = False\n"
        "InteractiveShell.instance(config=config).run_line_magic('load_ext', 'labloom')\n"
        "import labloom\n"
        "bound = [n for n in labloom.__all__ if n != 'DaskExecutor' and n not in vars(labloom)]\n"
        "print(all(m in sys.modules for m in ('labloom.core.engine', 'labloom.core.flow_run',"
        " 'labloom.store.experiments')), bound, 'distributed' in sys.modules)\n"
    )
    assert out == "True [] False"


# A module of the public API whose import fails with an AttributeError (a dependency that
# dropped a name): Python takes an AttributeError out of the module's ``__getattr__`` for a
# missing name, so ``from labloom import task`` would only say "cannot import name 'task'".
_BROKEN_SECRETS = (
    "import importlib.abc, importlib.machinery, sys\n"
    "class Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):\n"
    "    def find_spec(self, name, path, target=None):\n"
    "        if name == 'labloom.core.secrets':\n"
    "            return importlib.machinery.ModuleSpec(name, self)\n"
    "    def create_module(self, spec):\n"
    "        return None\n"
    "    def exec_module(self, module):\n"
    "        raise AttributeError(\"module 'somedep' has no attribute 'old_api'\")\n"
    "sys.meta_path.insert(0, Broken())\n"
    "import labloom\n"
)


def test_a_failing_import_of_the_api_is_not_taken_for_a_missing_name() -> None:
    out = _fresh(
        _BROKEN_SECRETS
        + "def cause(how):\n"
        "    try:\n"
        "        exec(how, {'labloom': labloom})\n"
        "    except BaseException as exc:\n"
        "        chain = []\n"
        "        while exc is not None:\n"
        "            chain.append(str(exc))\n"
        "            exc = exc.__cause__ or exc.__context__\n"
        "        return any('old_api' in text for text in chain)\n"
        "    return 'no error'\n"
        "print(cause('from labloom import task'), cause('hasattr(labloom, \"flow\") or 1/0'),"
        " cause('labloom.Flow'))\n"
    )
    assert out == "True True True"
