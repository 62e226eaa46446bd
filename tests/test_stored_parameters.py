"""``store/stored_parameters.shown_stored`` walks a run's stored parameter text to show a big
value as its summary without parsing it: it must show exactly what parsing the whole text and
``shown_parameters`` show, for any text labloom stores (nested values, strings holding quotes,
brackets, commas, escapes, non-ASCII and lone surrogates, NaN and inf)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from labloom.core.kept_parameters import ENV, shown_parameters
from labloom.store.stored_parameters import shown_stored

PIECES = ['"', "[", "]", "{", "}", ",", ":", "\\", "a", "é", "\udce9", " ", "\n", "1"]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 12)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([rng.randrange(-10**6, 10**6), 10**30, 0.5, -1e-9, math.inf,
                           -math.inf, math.nan])
    if kind in (2, 3, 4):
        return _text(rng)
    if kind in (5, 6):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 30))]
    return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randrange(0, 8))}


def _same_nan(value: Any) -> str:
    """Compared as JSON text: NaN is not equal to itself, its text is."""
    return json.dumps(value, default=repr)


@pytest.mark.parametrize("seed", range(3))
def test_a_walked_summary_is_what_parsing_shows(seed: int, monkeypatch: pytest.MonkeyPatch,
                                                ) -> None:
    rng = random.Random(seed)
    for case in range(300):
        limit = rng.choice([8, 20, 60, 200])
        monkeypatch.setenv(ENV, str(limit))
        parameters = {_text(rng): _value(rng) for _ in range(rng.randrange(1, 6))}
        # As the store writes it (``storable``: one line, non-ASCII as is), or all escaped.
        text = json.dumps(parameters, ensure_ascii=rng.random() < 0.5)
        expected = shown_parameters(json.loads(text))
        assert _same_nan(shown_stored(text, limit)) == _same_nan(expected), (seed, case, text)
