"""Notebook to module: ``export_notebook`` (``labloom export``) and ``load_notebook_flow``
(``labloom run notebook.ipynb[:flow]``).

A notebook's imports, ``%%tasks`` cells, task and helper definitions (with the constants they
use) and each ``%%flow`` cell become a module; what only makes sense in a notebook (displays,
plots, shell lines, other magics, top-level side effects) is left out and reported. The module
must import cleanly in a fresh interpreter, or the export fails naming the cell at fault.

    >>> report = export_notebook("sweep.ipynb")          # doctest: +SKIP
    >>> print(report.summary())                         # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..core.errors import ExportError
from .module_writer import HEADER, ExportedFlow, ModuleSource, write_module
from .notebook_cells import SKIP_TAG, LeftOut, read_cells
from .notebook_file import notebook_cells

if TYPE_CHECKING:  # imported at run time inside load_notebook_flow: the engine is not needed
    from ..core.flows import Flow  # to export

__all__ = [
    "ExportError",
    "ExportReport",
    "ExportedFlow",
    "LeftOut",
    "export_notebook",
    "load_notebook_flow",
]


@dataclass(frozen=True)
class ExportReport:
    """What ``export_notebook`` wrote: the module's path, the flows in it, what was left out of
    it (cell and reason) and notes worth reading (names the module uses but lacks)."""

    notebook: Path
    path: Path
    flows: tuple[ExportedFlow, ...]
    left_out: tuple[LeftOut, ...]
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data (for ``labloom export --json``)."""
        return {
            "notebook": str(self.notebook),
            "path": str(self.path),
            "flows": [
                {
                    "name": f.name,
                    "cell": f.cell,
                    "parameters": list(f.parameters),
                    "defaults": f.defaults,
                    "required": f.required,
                    "annotations": f.annotations,
                }
                for f in self.flows
            ],
            "left_out": [
                {"cell": item.cell, "line": item.line, "reason": item.reason}
                for item in self.left_out
            ],
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        lines = [f"wrote {self.path} from {self.notebook}"]
        for f in self.flows:
            lines.append(f"flow {f.signature()}  (cell {f.cell})")
            lines += [
                f"  parameter {p} is required: {why}; pass it with --param {p}=..."
                for p, why in f.required.items()
            ]
        if self.left_out:
            lines.append(f"left out ({len(self.left_out)}):")
            lines += [f"  {item}" for item in self.left_out]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def export_notebook(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    flow: str | None = None,
    *,
    check: bool = True,
    timeout: float = 60.0,
) -> ExportReport:
    """Write the notebook at ``path`` as a module (default: beside it, ``.py`` for
    ``.ipynb``), only flow ``flow`` if given. With ``check`` the module must import in a fresh
    interpreter within ``timeout`` seconds. Raises ``ExportError`` naming the cell at fault.

        >>> export_notebook("sweep.ipynb", "flows/sweep.py", flow="sweep")  # doctest: +SKIP
    """
    notebook = Path(path)
    target = Path(out) if out is not None else notebook.with_suffix(".py")
    if target.is_dir() or str(out).endswith(("/", os.sep)):  # -o flows/: into that folder
        target = target / notebook.with_suffix(".py").name
    if target.suffix != ".py":  # its trial import said "'NoneType' object has no attribute"
        raise ExportError(
            f"[labloom] cannot export {notebook.name} as {target.name}: a module's file name "
            f"ends in .py (Python and `labloom run` import it); pass out= (-o) "
            f"{target.with_suffix('.py').name} or a folder"
        )
    hidden = _module_hidden_by(target)
    if hidden is not None:
        raise ExportError(
            f"[labloom] cannot export {notebook.name} as {target.name}: Python started in its "
            f"folder would import it in place of {hidden} (a script there, `python -m`, and so "
            f"each run that `labloom serve` starts); pass out= (-o) another name, such as "
            f"{target.stem}_flow.py"
        )
    if out is None and target.exists() and not _generated(target):
        raise ExportError(
            f"[labloom] cannot export {notebook.name}: {target} exists and was not written "
            "by labloom export; pass out= (-o) to choose where to write the module"
        )
    with _in_context(notebook):
        module = _build(notebook, flow)
        if check:
            _check_compiles(module, target)
            with tempfile.TemporaryDirectory(prefix="labloom-export-") as tmp:
                trial = Path(tmp) / target.name
                try:
                    trial.write_text(module.text, encoding="utf-8")
                except OSError as exc:
                    raise ExportError(
                        f"[labloom] cannot try the module in {tmp} ({exc.strerror or exc}): "
                        "free some space there, or set TMPDIR to a folder with room"
                    ) from None
                _check_imports(module, trial, notebook.resolve().parent, timeout,
                               search=target.resolve().parent)
    _write_whole(target, module.text)
    left_out = sorted(module.left_out, key=lambda item: (item.cell, item.line or 0))
    return ExportReport(notebook, target, tuple(module.flows), tuple(left_out), tuple(module.notes))


def _write_whole(target: Path, text: str) -> None:
    """The module whole or not at all: a full disk or a read-only folder is one error naming
    the fix, and a module exported there before stays as it was (``write_text`` emptied it
    first, then failed)."""
    from ..core.result_files import write_with

    def write(handle: BinaryIO) -> None:
        handle.write(text.encode("utf-8"))

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_with(str(target.resolve()), write)
    except OSError as exc:
        kept = f"; the {target.name} there is as it was" if target.exists() else ""
        room = "free some space there, or " if exc.errno in (errno.ENOSPC, errno.EFBIG) else ""
        raise ExportError(
            f"[labloom] cannot write {target} ({exc.strerror or exc}){kept}: {room}pass out= "
            "(-o) a path in a folder you can write"
        ) from None


def load_notebook_flow(path: str | os.PathLike[str], flow: str | None = None) -> Flow[..., Any]:
    """Export the notebook to a temporary module, import it here and return its ``Flow``
    (the only one, or the one named ``flow``). The notebook's folder joins ``sys.path``, as
    when the notebook runs in its kernel.

        >>> sweep = load_notebook_flow("sweep.ipynb", "sweep")  # doctest: +SKIP
        >>> sweep.run(n=3).result()                              # doctest: +SKIP
    """
    from ..core.flows import Flow
    from ..core.loading import import_file

    notebook = Path(path)
    with _in_context(notebook):
        module = _build(notebook, flow)
        if flow is None:
            names = [f.name for f in module.flows]
            if not names:
                raise ExportError("the notebook has no %%flow cell to run")
            if len(names) > 1:
                raise ExportError(
                    f"the notebook has {len(names)} flows ({', '.join(names)}); "
                    f"name one: {notebook.name}:NAME"
                )
            flow = names[0]
        folder = Path(tempfile.mkdtemp(prefix="labloom-export-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        file = folder / f"{_identifier(notebook.stem)}.py"
        file.write_text(module.text, encoding="utf-8")
        name = f"labloom_notebook_{_identifier(notebook.stem)}_{id(module):x}"
        try:
            loaded = import_file(file, name, search=notebook.resolve().parent)
        except Exception as e:
            frames = traceback.extract_tb(e.__traceback__)
            lines = [f.lineno for f in frames if f.filename == str(file) and f.lineno]
            raise _import_error(module, _exception_text(e), lines) from e
    found = getattr(loaded, flow)
    assert isinstance(found, Flow), f"{flow} is {found!r}"  # names are checked on export
    # Its runs record the notebook, as a %%flow cell's do, not the temporary module (gone at
    # exit): a retry of them is exported afresh from the notebook too.
    found.notebook = os.path.abspath(notebook)
    return found


def _build(notebook: Path, flow: str | None) -> ModuleSource:
    return write_module(read_cells(notebook_cells(notebook)), notebook.name, flow)


@contextmanager
def _in_context(notebook: Path) -> Iterator[None]:
    """Prefix every ExportError raised inside with the notebook's name."""
    try:
        yield
    except ExportError as e:
        if str(e).startswith("[labloom]"):
            raise
        message = f"[labloom] cannot export {notebook.name}: {e}"
        raise ExportError(message, cell=e.cell, line=e.line) from e.__cause__


# A stdlib module nothing imports unasked: hiding it harms nobody, and test.ipynb is common.
_HARMLESS = frozenset({"test"})


def _module_hidden_by(target: Path) -> str | None:
    """What module ``target`` would shadow: Python puts a script's folder (and the working
    folder of ``python -m``) first on ``sys.path``, so a ``json.py`` there is what ``import
    json`` finds, in labloom itself too: a scheduled run failed before it started."""
    import importlib.util

    name = target.stem
    if not name.isidentifier() or name in _HARMLESS:
        return None  # not importable by that name: it hides nothing
    if name in getattr(sys, "stdlib_module_names", ()):
        return f"Python's own module {name}"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = spec.origin if spec is not None else None
    if origin is None or Path(origin).resolve().parent == target.resolve().parent:
        return None  # none, or found in the target's own folder: this module exported earlier
    return f"the installed module {name} ({origin})"


def _generated(file: Path) -> bool:
    with file.open(encoding="utf-8", errors="replace") as f:
        first = f.readline()
    return first.startswith(HEADER.split("{", 1)[0])


def _identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text)
    return name if name.isidentifier() else f"nb_{name}"


def _exception_text(e: BaseException) -> str:
    return traceback.format_exception_only(type(e), e)[-1].strip()


def _import_error(module: ModuleSource, error: str, lines: list[int]) -> ExportError:
    """Name the cell behind the deepest module line in a traceback."""
    for line in reversed(lines):
        origin = module.origin(line)
        if origin is None:
            continue
        cell, cell_line = origin
        text = module.lines[line - 1].strip()
        return ExportError(
            f"the exported module fails to import at cell {cell}, line {cell_line}: {error}\n"
            f"    {text}\n"
            f"Fix that cell, or tag it {SKIP_TAG} to leave it out of the export.",
            cell=cell,
            line=cell_line,
        )
    return ExportError(f"the exported module fails to import: {error}")


def _check_compiles(module: ModuleSource, target: Path) -> None:
    try:
        compile(module.text, str(target), "exec", dont_inherit=True)
    except SyntaxError as e:
        raise _import_error(module, f"SyntaxError: {e.msg}", [e.lineno or 0]) from None


# Runs in the fresh interpreter: import the module from its path; report the failure as JSON
# with the module's line numbers; on a hang, faulthandler prints where it hangs and exits.
_CHECKER = r"""
import faulthandler, importlib.util, json, sys, traceback
path, limit = sys.argv[1], float(sys.argv[2])
sys.path[0] = sys.argv[3]  # as `labloom run` imports it: from its own folder, not the cwd
import labloom  # (what every exported module imports: the limit is the notebook's code's)
faulthandler.dump_traceback_later(limit, exit=True)
try:
    spec = importlib.util.spec_from_file_location("labloom_export_check", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
except BaseException as e:
    lines = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == path]
    if isinstance(e, SyntaxError) and e.filename == path:
        lines.append(e.lineno)
    error = traceback.format_exception_only(type(e), e)[-1].strip()
    sys.stdout.write("\nLABLOOM-CHECK " + json.dumps({"error": error, "lines": lines}) + "\n")
    sys.exit(1)
"""


def _check_imports(
    module: ModuleSource, file: Path, cwd: Path, timeout: float, search: Path
) -> None:
    """Import ``file`` in a fresh interpreter, in ``cwd`` (the notebook's folder, for relative
    paths) with ``search`` (the module's folder) first on sys.path, as ``labloom run`` has it."""
    env = dict(os.environ)
    # The fresh interpreter must import this labloom, installed or not.
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    command = [sys.executable, "-c", _CHECKER, str(file), str(timeout), str(search)]
    try:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout + 30
        )
    except subprocess.TimeoutExpired:
        raise ExportError(f"importing the exported module took more than {timeout:g} s") from None
    if done.returncode == 0:
        return
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("LABLOOM-CHECK "):
            result = json.loads(line.removeprefix("LABLOOM-CHECK "))
            error = result["error"]
            if error.startswith("ModuleNotFoundError") and search != cwd:
                error += (f" (the module imports from its own folder, {search}, not the "
                          "notebook's: put that module there too, or export beside the notebook)")
            raise _import_error(module, error, result["lines"])
    # faulthandler lists the most recent call first; our frames read `File "path", line N`.
    pattern = re.compile(r'File "' + re.escape(str(file)) + r'", line (\d+)')
    hung = [int(m) for m in pattern.findall(done.stderr)]
    if hung:
        error = f"still running after {timeout:g} s (importing it must not do the work)"
        raise _import_error(module, error, hung[:1])
    detail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
    raise ExportError(f"the exported module fails to import: {detail[0]}")
