"""Tracebacks that point at notebook cells, as IPython's own do.

A task defined in a cell runs code the kernel compiled under a temporary file name; its
traceback text names ``Cell In[2], line 10`` instead. A failing ``%%flow`` cell shows the cell
and the error (and, for a failed task, that task's own traceback first), not the frames of
IPython's magic machinery or of labloom.
"""

from __future__ import annotations

import os
import re
from types import TracebackType
from typing import Any

_FILE_LINE = re.compile(r'File "([^"]+)", line (\d+)')


def name_cells(text: str, shell: Any) -> str:
    """``text`` (a formatted traceback) with every cell's temporary file named as its cell."""
    def cell(match: re.Match[str]) -> str:
        named = shell.compile.format_code_name(match.group(1))
        if named is None:
            return match.group(0)
        label, name = named
        return f"{label} {name}, line {match.group(2)}"

    return _FILE_LINE.sub(cell, text)


def show_from_cells(exc: BaseException, shell: Any) -> BaseException:
    """Have IPython show ``exc`` (and the exceptions it chains) with only the frames of the
    notebook's own code: its cells, and files that are not labloom's, IPython's or Dask's."""

    def render() -> list[str]:
        seen: set[int] = set()
        error: BaseException | None = exc
        while error is not None and id(error) not in seen:
            seen.add(id(error))
            error.__traceback__ = _user_frames(error.__traceback__, shell)
            error = error.__cause__ or error.__context__
        # tb_offset=0: IPython's own first frame (which it skips by default) is gone already.
        lines: list[str] = shell.InteractiveTB.structured_traceback(
            type(exc), exc, exc.__traceback__, tb_offset=0
        )
        return lines

    exc._render_traceback_ = render  # type: ignore[attr-defined]
    return exc


def in_one_line(exc: BaseException) -> BaseException:
    """Have IPython show ``exc`` as its class and message, no frames, as a magic's mistake: for
    labloom's errors whose message names what to check (a scheduler nothing answers at)."""
    text = f"{type(exc).__name__}: {str(exc).removeprefix('[labloom] ')}"
    exc._render_traceback_ = lambda: [text]  # type: ignore[attr-defined]
    return exc


def _machinery() -> tuple[str, ...]:
    """Folders of the code between a cell and the user's functions."""
    import sys

    folders = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # labloom
    for name in ("IPython", "ipykernel", "distributed", "concurrent", "tornado", "asyncio"):
        where: str | None = getattr(sys.modules.get(name), "__file__", None)
        if where:
            folders.append(os.path.dirname(os.path.abspath(where)))
    return tuple(folder + os.sep for folder in folders)


def _user_frames(tb: TracebackType | None, shell: Any) -> TracebackType | None:
    machinery = _machinery()
    kept = []
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if shell.compile.format_code_name(filename) is not None or not (
            os.path.abspath(filename).startswith(machinery) or filename.startswith("<frozen")
        ):
            kept.append(tb)
        tb = tb.tb_next
    chain: TracebackType | None = None
    for frame in reversed(kept):
        chain = TracebackType(chain, frame.tb_frame, frame.tb_lasti, frame.tb_lineno)
    return chain
