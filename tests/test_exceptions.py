"""The exception tree (``labloom/core/errors.py``), tested like httpx's exported members: every
public exception is exported by ``labloom``, and the tree drawn in the docstring is the real one."""

from __future__ import annotations

import inspect
import re

import pytest

import labloom
from labloom.core import errors

TREE = {
    "FlowFailed": (),
    "UpstreamFailedError": (),
    "RunCancelledError": (),
    "TaskTimeoutError": (TimeoutError,),
    "FlowTimeoutError": (TimeoutError,),
    "TaskCrashedError": (),
    "WorkerDiedError": (RuntimeError,),
    "SchedulerLostError": (ConnectionError,),
    "ResourceUnavailableError": (RuntimeError,),
    "ResultLoadError": (),
    "ClusterConfigError": (ValueError,),
    "TargetError": (),
    "ExportError": (),
    "ScheduleError": (ValueError,),
    "MagicArgsError": (ValueError,),
    "StoreVersionError": (),
    "StoreUnavailableError": (),
    "StoreUnreachableError": (),
    "StoreChangeUnknownError": (errors.StoreUnreachableError,),
    "StoreDataError": (ValueError,),
    "DatabaseURLError": (ValueError,),
    "NotAllowedError": (PermissionError,),
    "ExperimentValueError": (ValueError,),
    "UnknownColumnError": (ValueError,),
    "GraphvizNotFound": (RuntimeError,),
}


def test_every_public_exception_is_exported_and_the_same_object() -> None:
    defined = {
        name for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == errors.__name__
    }
    assert defined == {"LabloomError", *TREE}
    for name in defined:
        assert name in labloom.__all__, name
        assert getattr(labloom, name) is getattr(errors, name)


@pytest.mark.parametrize(("name", "also"), sorted(TREE.items()))
def test_the_tree(name: str, also: tuple[type[Exception], ...]) -> None:
    cls = getattr(labloom, name)
    assert issubclass(cls, labloom.LabloomError)
    for base in also:
        assert issubclass(cls, base)


def test_the_docstring_draws_the_real_tree() -> None:
    drawn = re.findall(r"[├└]── (\w+)", errors.__doc__ or "")
    assert sorted(drawn) == sorted(TREE)


def test_errors_raised_elsewhere_are_the_exported_ones() -> None:
    from labloom.export.exporter import ExportError
    from labloom.schedule.stored_schedules import parse_duration
    from labloom.store.schema import StoreVersionError

    assert ExportError is labloom.ExportError and StoreVersionError is labloom.StoreVersionError
    with pytest.raises(labloom.ScheduleError, match="duration"):
        parse_duration("soon")
    with pytest.raises(labloom.TargetError, match="neither a Python file nor a notebook"):
        from labloom.export.run_targets import parse_target

        parse_target("notes.txt")
