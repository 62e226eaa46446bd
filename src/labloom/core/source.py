"""A function's source, hashed: what names a version of a flow in the store and a task's code
in its result keys (``results.py``).

A task's code key (``code_hash``) follows the code its result depends on where it was written,
not only its own body: in a notebook, a cached task calling a helper defined in another cell
returned last run's answer after the helper (or a threshold it reads) was edited, its own
source unchanged. So the key holds, recursively, the source of each function and class the
task names that is defined in the task's own module (a notebook's cells are one) or in another
module of the user's own code (a file outside Python's installation and labloom), and the
value of each short constant it names there (numbers, strings, and small tuples, lists and
dicts of them; not one the task changes in place, a record it keeps), or holds as a default
argument or a closed-over variable. Not followed: libraries (the standard library and what
is installed in site-packages), and any other value (a DataFrame read as a global: pass it as
an input).
"""

from __future__ import annotations

import dis
import functools
import hashlib
import inspect
import os
import site
import sys
import sysconfig
import types
from collections.abc import Callable, Iterator
from typing import Any

from .tasks import Task

# A constant named by a task is in its key when its repr is at most this long; longer ones
# (a big table of settings) are left out, as data is.
MAX_CONSTANT = 10_000
MAX_FOLLOWED = 200  # functions and classes followed from one task, at most
_CONSTANTS = (int, float, complex, str, bytes, bool, type(None))


def source_hash(fn: Callable[..., Any]) -> str:
    """A short hash of a function's source (its bytecode when the source is not available)."""
    return hashlib.sha256(_source(fn).encode()).hexdigest()[:16]


def code_hash(fn: Callable[..., Any]) -> str:
    """A short hash of ``fn``'s source and of the code and short constants it uses from its
    own module (see above): a task's code in its result keys."""
    module = getattr(fn, "__module__", None)
    parts: list[str] = []
    seen: set[int] = set()
    todo: list[Any] = [fn]
    while todo and len(seen) < MAX_FOLLOWED:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        parts.append(_source(item))
        for name, value in [*_globals_named(item), *_bound_values(item)]:
            if isinstance(value, Task):  # a task named by another: its function
                value = value.fn
            if isinstance(value, (types.FunctionType, type)):
                if id(value) not in seen and _followed(value, module):
                    todo.append(value)
            elif isinstance(value, types.ModuleType) and _users_own(value.__name__):
                # ``helpers.prep(x)``: what the code names in the user's module
                for attribute in _names(item.__code__) if hasattr(item, "__code__") else ():
                    found = getattr(value, attribute, None)
                    if isinstance(found, (types.FunctionType, type)) and id(found) not in seen:
                        todo.append(found)
            elif _is_constant(value):
                text = _constant_text(value)
                if len(text) <= MAX_CONSTANT:
                    parts.append(f"{name}={text}")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _followed(value: Any, module: str | None) -> bool:
    """A function or class of the task's own module, or of another module of the user's own
    code (``from helpers import prep`` beside the flow's script): an edited ``prep`` returned
    the old answer from the cache."""
    named = getattr(value, "__module__", None)
    return named == module or (named is not None and _users_own(named))


@functools.lru_cache(maxsize=1024)
def _users_own(module_name: str) -> bool:
    """True for a module of the user's code: a file outside Python's installation (the
    standard library, site-packages) and outside labloom; libraries change with their version."""
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if not path:
        return False
    path = os.path.realpath(path)
    return not any(path.startswith(root) for root in _installed_roots())


@functools.lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots |= {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for listed in ("getsitepackages", "getusersitepackages"):  # an old virtualenv's site
        found: str | list[str] = getattr(site, listed, lambda: [])()  # lacks them
        roots |= {found} if isinstance(found, str) else set(found)
    roots.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # labloom's own
    return tuple(os.path.join(os.path.realpath(root), "") for root in roots if root)


def _source(fn: Any) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        if isinstance(fn, type):  # a class of a notebook (no module file): its methods'
            return repr(fn) + "".join(map(_source, _functions_of(fn)))
        code = getattr(fn, "__code__", None)
        return repr((code.co_code, code.co_consts)) if code is not None else repr(fn)


def _functions_of(cls: type) -> list[types.FunctionType]:
    """A class's methods, static and class ones and properties' getters too."""
    members = [getattr(v, "__func__", v) for v in vars(cls).values()]
    members += [v.fget for v in vars(cls).values() if isinstance(v, property)]
    return [v for v in members if isinstance(v, types.FunctionType)]


def _globals_named(item: Any) -> Iterator[tuple[str, Any]]:
    """The module globals a function's code (nested functions and comprehensions included)
    or a class's methods name, each once."""
    functions = _functions_of(item) if isinstance(item, type) else [item]
    named: dict[str, Any] = {}
    for function in functions:
        space = function.__globals__
        written = _written(function.__code__)
        for name in _names(function.__code__):
            if name in space and name not in named and name not in written:
                named[name] = space[name]
    return iter(sorted(named.items()))


# Methods that change a list, dict or set in place.
_MUTATORS = frozenset(("append", "extend", "insert", "add", "update", "setdefault", "pop",
                       "popitem", "remove", "discard", "clear"))


def _written(code: types.CodeType) -> set[str]:
    """Globals the code changes in place (``SEEN.append(x)``): a record the task keeps, not a
    setting it reads; in its key, each call's append would miss the next run's cache."""
    written: set[str] = set()
    loaded = None
    for instruction in dis.get_instructions(code):
        if loaded is not None and instruction.opname in ("LOAD_ATTR", "LOAD_METHOD") \
                and instruction.argval in _MUTATORS:
            written.add(loaded)
        loaded = instruction.argval if instruction.opname == "LOAD_GLOBAL" else None
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            written |= _written(const)
    return written


def _bound_values(item: Any) -> Iterator[tuple[str, Any]]:
    """The values a function holds that its source only names: its defaults (``factor=TH``)
    and the variables it closes over (``th`` of a task made in a function): an edited TH or a
    task made again with another ``th`` returned the old answer."""
    for function in _functions_of(item) if isinstance(item, type) else [item]:
        code = function.__code__
        positional = code.co_varnames[:code.co_argcount]
        defaults = function.__defaults__ or ()
        yield from zip(positional[len(positional) - len(defaults):], defaults, strict=True)
        yield from sorted((function.__kwdefaults__ or {}).items())
        for name, cell in zip(code.co_freevars, function.__closure__ or (), strict=True):
            try:
                yield f"<closure>{name}", cell.cell_contents
            except ValueError:  # a cell not filled yet (a name assigned after the def)
                continue


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _constant_text(value: Any) -> str:
    """A constant's repr, its frozensets' items sorted: their order follows the strings'
    hashes, salted per process, and a task reading ``STOP = frozenset({...})`` never hit the
    cache in a later process."""
    kind = type(value)  # otherwise its repr, as keys were made before
    if kind is frozenset:
        return "frozenset({" + ", ".join(sorted(map(_constant_text, value))) + "})"
    if kind is tuple:
        return "(" + ", ".join(map(_constant_text, value)) + ("," if len(value) == 1 else "") + ")"
    if kind is list:
        return "[" + ", ".join(map(_constant_text, value)) + "]"
    if kind is dict:
        return "{" + ", ".join(f"{_constant_text(key)}: {_constant_text(item)}"
                               for key, item in value.items()) + "}"
    return repr(value)


def _is_constant(value: Any, depth: int = 0) -> bool:
    """Numbers and strings, and small tuples, lists and dicts of them: settings such as
    ``FEATURES = ["age", "bmi"]`` or ``PARAMS = {"depth": 3}``, whose edit left a cached task
    returning the old answer while only tuples were followed."""
    if isinstance(value, _CONSTANTS):
        return True
    if depth > 10:  # deep nesting, or a list holding itself, is data
        return False
    if isinstance(value, (tuple, list, frozenset)) and len(value) <= 1000:
        return all(_is_constant(item, depth + 1) for item in value)
    if isinstance(value, dict) and len(value) <= 1000:
        return all(_is_constant(key, depth + 1) and _is_constant(item, depth + 1)
                   for key, item in value.items())
    return False
