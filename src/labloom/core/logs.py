"""Per-task-run log capture: prints and logging records, attributed by a context variable.

Each task call sets ``_CURRENT`` in the thread that runs it, so concurrent tasks on a thread
pool never mix their lines. While any task runs, ``sys.stdout``/``sys.stderr`` are wrapped by a
proxy that copies lines to the current task run's sink and still writes them through, and a
handler on the root logger copies records. Both are removed again when the last task ends, so
nothing lingers in the user's process (or in pytest's capture).
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from .terminal_text import printable

LogSink = Callable[[str, int, float, str], None]  # (task_run_id, level, time, text)

# A log line (a printed line, a logging record) keeps at most this many characters, cut here
# where it is captured: a 20 MB line would otherwise travel whole to the store, the widget and
# the Flows panel (seconds to draw). The rest is counted in a note at the end of the line.
MAX_LINE_CHARS = 10_000
PROGRESS_EVERY = 10.0  # seconds between the lines of a progress bar still going (``_written_over``)


def cut_line(text: str, dropped: int = 0) -> str:
    """``text`` cut to ``MAX_LINE_CHARS``, with a note of how much went (``dropped``: characters
    of this line already let go before it was complete)."""
    extra = max(0, len(text) - MAX_LINE_CHARS) + dropped
    if not extra:
        return text
    return (f"{text[:MAX_LINE_CHARS]} [labloom: {extra:,} more characters cut; a log line "
            f"keeps {MAX_LINE_CHARS:,}]")


def shown_line(line: str, ended: bool) -> str:
    """What a terminal shows of ``line`` that carriage returns wrote over (each refresh of a
    progress bar: tqdm writes ``"\\r 45%|####5     | 45/100"`` ten times a second, and a
    line of them all was cut at ``MAX_LINE_CHARS`` to its first refreshes): what follows the
    last one. A final one is the line's CRLF end when ``ended``, else kept for what comes."""
    body = line[:-1] if line.endswith("\r") else line
    at = body.rfind("\r")
    if at >= 0:
        body = body[at + 1:]
    return body if ended or not line.endswith("\r") else body + "\r"


@dataclass
class TaskContext:
    run_id: str
    task_run_id: str
    task_name: str
    log_prints: bool
    sink: LogSink
    # False where a view shows the run's lines (see ``prints_shown_elsewhere``), decided where
    # the run lives: on a Dask worker the set below is empty, yet the worker's stdout may be
    # the kernel's (a LocalCluster's workers inherit its captured file descriptors).
    echo: bool = True
    # Where the task run's logging calls go, one (task run id, kind, values, step, time,
    # attempt, rerun) each, when its run lives in this process (the run's ``waiting_calls``),
    # bound once per task call; None elsewhere (a Dask worker: ``experiment_values.record``
    # looks up the sink per call).
    add_call: Callable[[tuple[Any, ...]], None] | None = None
    # The run's calls waiting (``waiting_calls.WaitingCalls``) when ``add_call`` appends to
    # them straight: ``record`` has them sent (``wake``) once per send, not once per call.
    waiting: Any = None
    # The attempt this context's call is, carried with each logging call: where the calls
    # are applied, one of an attempt that is no longer its task run's is dropped.
    attempt: int = 1
    rerun: int = 0  # and the run's rerun it is of (``attempt.TaskCall.rerun``)
    # The logging calls of this attempt, (kind, values, step) each, kept when its result is
    # saved (a cached task's): saved with it, so that a task run answered from the file shows
    # them (``result_files.load_cached``). None: nothing kept.
    kept: list[tuple[str, dict[str, Any], int | None]] | None = None
    _partial: dict[int, str] = field(default_factory=dict)
    _dropped: dict[int, int] = field(default_factory=dict)  # of the partial line, past the cap
    _shown_on: dict[int, TextIO] = field(default_factory=dict)
    _bar_since: dict[int, float] = field(default_factory=dict)  # a bar's last line logged
    _bar_logged: dict[int, str] = field(default_factory=dict)  # and the state it logged

    def write(self, level: int, text: str, shown_on: TextIO | None = None) -> None:
        """Streams arrive in arbitrary pieces: record and show whole lines, keep the rest.

        On ``shown_on`` (the real stdout or stderr) each line is written whole, in one call and
        prefixed with the task run's name, so concurrent tasks never mix within a line.
        """
        if shown_on is not None:
            self._shown_on[level] = shown_on
        buffered = self._partial.get(level, "") + text
        *lines, rest = buffered.split("\n")
        if "\r" in buffered:  # a progress bar's refreshes (tqdm, Keras), or CRLF ends
            lines, rest = self._written_over(level, lines, rest)
        if lines:
            dropped = self._dropped.pop(level, 0)
            self._bar_since.pop(level, None)
            if self._bar_logged.pop(level, None) == lines[0] and not dropped:
                lines = lines[1:]  # a bar's end in the state it was logged in while it went
            if lines:
                lines = [cut_line(lines[0], dropped), *map(cut_line, lines[1:])]
        if len(rest) > MAX_LINE_CHARS:  # a line without its end yet must not grow without bound
            self._dropped[level] = self._dropped.get(level, 0) + len(rest) - MAX_LINE_CHARS
            rest = rest[:MAX_LINE_CHARS]
        self._partial[level] = rest
        self._emit(level, lines)

    def _written_over(self, level: int, lines: list[str], rest: str) -> tuple[list[str], str]:
        """The lines and the rest as a terminal shows them (``shown_line``). A bar still going
        is logged as a line every ``PROGRESS_EVERY`` seconds (its state then), so that a long
        training's progress can be followed in its logs while it runs; a bar shorter than that
        logs its last state only, once its line ends (``write``: not again, if logged so)."""
        # What was kept of the line has no carriage return but a last one: a return before
        # the end of the first line (or of the rest) is in the new text, after what the line
        # had cut, which it writes over too.
        if "\r" in (lines[0] if lines else rest)[:-1]:
            self._dropped.pop(level, None)
        lines = [shown_line(line, ended=True) for line in lines]
        rest = shown_line(rest, ended=False)
        if lines:
            return lines, rest
        now = time.monotonic()
        since = self._bar_since.setdefault(level, now)
        if rest.rstrip("\r") and now - since >= PROGRESS_EVERY:
            self._bar_since[level] = now
            self._bar_logged[level] = rest.rstrip("\r")
            self._emit(level, [cut_line(rest.rstrip("\r"))])  # the rest stays the line's
        return lines, rest

    def flush(self) -> None:
        for level, rest in list(self._partial.items()):
            last = shown_line(rest, ended=True)
            if rest and (self._bar_logged.get(level) != last or self._dropped.get(level)):
                self._emit(level, [cut_line(last, self._dropped.pop(level, 0))])
        self._partial.clear()
        self._dropped.clear()
        self._bar_logged.clear()

    def _emit(self, level: int, lines: list[str]) -> None:
        if not lines:
            return
        now = time.time()
        if self.log_prints:
            for line in lines:
                self.sink(self.task_run_id, level, now, line)
        out = self._shown_on.get(level)
        if out is not None and self.echoes and self.run_id not in _echo_failed:
            try:
                # The name escaped (a name made from data may hold U+202E, which read the
                # line backwards); the line as printed: the task's own output, as a script's.
                name = printable(self.task_name)
                out.write("".join(f"{name} | {line}\n" for line in lines))
            except OSError as exc:
                # The copy to the terminal or a file (`labloom serve`'s run log on a full disk,
                # past `ulimit -f`) failed: the lines are in the run's logs, so the task goes
                # on, as logging's handlers let a program go on, instead of failing with
                # "No space left on device" for a print. Said once a run, in its logs; the
                # run's tasks copy no more lines there.
                _echo_failed.add(self.run_id)
                if self.log_prints:
                    self.sink(self.task_run_id, logging.WARNING, now,
                              f"[labloom] this task's output could not also be written to the "
                              f"process's {'stderr' if level >= logging.WARNING else 'stdout'} "
                              f"({type(exc).__name__}: {exc.strerror or exc}); its lines are "
                              "kept in the run's logs only")

    @property
    def echoes(self) -> bool:
        """Whether the task's prints and run-logger records are also written to the terminal."""
        return self.echo and self.run_id not in _shown_elsewhere


# Runs whose copy of their tasks' lines to stdout or stderr failed (``TaskContext._emit``).
_echo_failed: set[str] = set()

# Runs whose task prints a view shows from the run's log lines (a notebook cell's bounded
# area under the live DAG), so they are recorded but not also written to stdout and stderr.
_shown_elsewhere: set[str] = set()


def show_prints_elsewhere(run_id: str, elsewhere: bool = True) -> None:
    if elsewhere:
        _shown_elsewhere.add(run_id)
    else:
        _shown_elsewhere.discard(run_id)


def prints_shown_elsewhere(run_id: str) -> bool:
    return run_id in _shown_elsewhere


_CURRENT: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "labloom_task", default=None
)


# The current task run's context, or None: the context variable's own ``get``, no Python
# frame around it (every logging call reads it: a metric per map child is a hot path).
current_task: Callable[[], TaskContext | None] = _CURRENT.get


@contextmanager
def outside_task() -> Iterator[None]:
    """Within, this thread runs no task (``current_task()`` is None): what labloom says of a
    task run on the process's log (``sinks.ExecutorSink.warn``), in that run's logs already,
    is not captured again as a line of the task this thread runs, if any (reports applied in
    a task's thread: ``Inbox.add``, a cache key made where the inputs are)."""
    token = _CURRENT.set(None)
    try:
        yield
    finally:
        _CURRENT.reset(token)


class _StreamProxy:
    """Stands in for sys.stdout/sys.stderr while tasks run; delegates everything else."""

    def __init__(self, wrapped: TextIO, level: int) -> None:
        self._wrapped = wrapped
        self._level = level

    def write(self, text: str) -> int:
        ctx = _CURRENT.get()
        if ctx is None:
            return self._wrapped.write(text)
        ctx.write(self._level, text, self._wrapped)  # shown line by line, whole
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


class _CaptureHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        ctx = _CURRENT.get()
        if ctx is None:
            # Outside a task (labloom's own threads: the store's writer): this handler must not
            # hide a warning that Python would print to stderr were it not installed.
            if _only_us(record) and logging.lastResort is not None and (
                    record.levelno >= logging.lastResort.level):
                logging.lastResort.handle(record)
            return
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if not record.name.startswith(_TASK_LOGGER_NAME):
            text = f"{record.name}: {text}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        ctx.sink(ctx.task_run_id, record.levelno, record.created, cut_line(text))


def _only_us(record: logging.LogRecord) -> bool:
    """Whether no handler but the capture one would see ``record``."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(h is not _capture_handler for h in logger.handlers):
            return False
        logger = logger.parent if logger.propagate else None
    return True


_capture_lock = threading.Lock()
_capture_depth = 0  # threads capturing (each counts once, however deep it nests)
_capture_handler = _CaptureHandler()


class _Captures(threading.local):
    depth = 0  # a thread's first read finds 0 here, not an AttributeError raised and dropped


# How deep this thread's ``capturing`` nests: a task thread holds one capture while calls
# keep coming (``ThreadPool``'s ``busy``), a Dask chunk one per chunk; each call's own is then
# a count in this thread, not a global lock taken and the proxies put in and out again.
_captures = _Captures()


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the *real* stderr of the moment, never through our proxy (no double capture)."""

    def emit(self, record: logging.LogRecord) -> None:
        ctx = _CURRENT.get()
        if ctx is not None and not ctx.echoes:
            return  # a view shows it from the run's log lines (a %%flow cell's bounded area)
        stream = sys.stderr
        self.stream = stream._wrapped if isinstance(stream, _StreamProxy) else stream
        super().emit(record)


def _install() -> None:
    if not isinstance(sys.stdout, _StreamProxy) and sys.stdout is not None:
        sys.stdout = _StreamProxy(sys.stdout, logging.INFO)
    if not isinstance(sys.stderr, _StreamProxy) and sys.stderr is not None:
        sys.stderr = _StreamProxy(sys.stderr, logging.WARNING)
    root = logging.getLogger()
    if _capture_handler not in root.handlers:
        root.addHandler(_capture_handler)


def _installed() -> bool:
    """Whether what ``_install`` puts in place is still there."""
    return (isinstance(sys.stdout, _StreamProxy | type(None))
            and isinstance(sys.stderr, _StreamProxy | type(None))
            and _capture_handler in logging.getLogger().handlers)


def _uninstall() -> None:
    # Only undo our own wrapping: if someone replaced the stream since, leave theirs alone.
    if isinstance(sys.stdout, _StreamProxy):
        sys.stdout = sys.stdout._wrapped
    if isinstance(sys.stderr, _StreamProxy):
        sys.stderr = sys.stderr._wrapped
    logging.getLogger().removeHandler(_capture_handler)


@contextmanager
def capturing() -> Iterator[None]:
    """Keep the stream proxies and the log handler installed for the duration.

    Only a thread's outermost ``capturing`` takes the global lock. Per task call it took it
    twice and, as no-op calls rarely overlap, removed and put back the proxies and the root
    handler each time (0.5-0.9 times per task run on ``ThreadExecutor(4)``); with both cores
    free the task threads queued on that lock, each wait a sleep and a wake-up on the other
    core (session 32)."""
    here = _captures
    depth = here.depth
    if depth:
        # Already installed by this thread's outer capture; something (a test runner, a
        # notebook) may have swapped a stream since: put ours back then, as the outer did.
        if not _installed():
            with _capture_lock:
                _install()
        here.depth = depth + 1
        try:
            yield
        finally:
            here.depth = depth
        return
    global _capture_depth
    counted = False
    # Counted inside the ``try``: a Ctrl-C landing in ``_install`` (a local executor's call
    # runs in the kernel's main thread) kept the count up and the proxies in for good, and
    # every print of the kernel after went through them.
    try:
        with _capture_lock:
            _capture_depth += 1
            counted = True  # (nothing between the two where a signal could land)
            # Every time, not only for the first thread: something may have swapped
            # sys.stdout while a task (say one past its timeout) kept the depth up.
            _install()
        here.depth = 1
        yield
    finally:
        here.depth = 0
        if counted:
            with _capture_lock:
                _capture_depth -= 1
                if _capture_depth == 0:
                    _uninstall()


@contextmanager
def task_context(ctx: TaskContext) -> Iterator[None]:
    token = _CURRENT.set(ctx)
    try:
        yield
    finally:
        ctx.flush()
        _CURRENT.reset(token)


# --- the run logger --------------------------------------------------------------------------

_TASK_LOGGER_NAME = "labloom.task"


def _task_logger() -> logging.Logger:
    logger = logging.getLogger(_TASK_LOGGER_NAME)
    if not getattr(logger, "_labloom_ready", False):
        # Records from get_run_logger() are shown on stderr as Prefect users expect, and not
        # propagated (the root capture handler would record them twice).
        logger.setLevel(logging.INFO)
        logger.propagate = False
        console = _ConsoleHandler()
        console.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(message)s"))
        logger.addHandler(console)
        logger.addHandler(_capture_handler)
        logger._labloom_ready = True  # type: ignore[attr-defined]
    return logger


class _RunLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"{self.extra['task']} - {msg}" if self.extra else msg, kwargs


def get_run_logger() -> logging.LoggerAdapter:  # type: ignore[type-arg]
    """A logger bound to the current task run: its records go to that run's logs.

    >>> @task
    ... def train(n):
    ...     get_run_logger().info("training with %d trees", n)

    Outside a task it still works and logs under ``labloom.task``.
    """
    ctx = _CURRENT.get()
    return _RunLoggerAdapter(_task_logger(), {"task": ctx.task_name} if ctx else {})
