"""The one routine that imports a Python file as a module (``labloom run file.py``,
``labloom retry``, a notebook exported on the fly)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def import_file(path: str | Path, name: str, search: str | Path | None = None) -> ModuleType:
    """Import ``path`` as module ``name``; its folder (or ``search``) goes on ``sys.path`` so
    sibling imports work as when it runs as a script. Whatever the file raises propagates
    (callers say what it means for them); the half-made module is then forgotten.

    Registered in ``sys.modules`` (dataclasses and pickling look modules up by name) and
    pickled by value, since Dask workers cannot import it by that name.
    """
    path = Path(path)
    folder = str(search if search is not None else path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    return module
