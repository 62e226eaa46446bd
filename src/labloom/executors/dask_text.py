"""Text a Dask message cannot carry as it is: a lone surrogate (what ``os.listdir`` gives for a
file name that is not UTF-8, printed or logged by a task). Dask packs a worker's messages with
msgpack, which encodes text as strict UTF-8: one such character in a log line or a logged value
failed the worker's whole batched stream to the scheduler, and the run waited for news that
never came. The worker sends such text as bytes (its UTF-8 with the surrogates kept), such
values pickled; the client reads them back as they were, so every executor records the same.
"""

from __future__ import annotations

import pickle
from typing import Any


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def sendable_text(text: str) -> str | bytes:
    """``text``, or its bytes when msgpack could not encode it."""
    if _encodable(text):
        return text
    return text.encode("utf-8", "surrogatepass")


def received_text(text: str | bytes) -> str:
    if isinstance(text, bytes):
        return text.decode("utf-8", "surrogatepass")
    return text


def sendable_values(values: dict[str, Any]) -> dict[str, Any] | bytes:
    """``values`` (a logging call's, checked: names are text, values numbers, bools, text or
    None), or pickled when a name or a value is text msgpack could not encode."""
    for name, value in values.items():
        if not _encodable(name) or (type(value) is str and not _encodable(value)):
            return pickle.dumps(values)
    return values


def received_values(values: dict[str, Any] | bytes) -> dict[str, Any]:
    # Bytes only ever come from ``sendable_values`` on a worker of this cluster: Dask trusts
    # its workers' pickles as it unpickles their results.
    if isinstance(values, bytes):
        unpickled: dict[str, Any] = pickle.loads(values)
        return unpickled
    return values
