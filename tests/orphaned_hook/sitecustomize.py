"""For tests/pg_commit_cut.py (``held=True``), on the PYTHONPATH it gives the `labloom`
processes a test starts: the idle time after which the server ends a short transaction
(``unanswered_commits.ORPHANED``, 30 s) set to LABLOOM_TEST_ORPHANED seconds, as the test
process sets it in itself, so a test of a transaction left open by a cut its server never
noticed waits a few seconds for its end, not 30. Without that variable it does nothing."""

import os


def _shorten_orphaned() -> None:
    seconds = os.environ.get("LABLOOM_TEST_ORPHANED")
    if not seconds:
        return
    from labloom.store import unanswered_commits

    unanswered_commits.ORPHANED = int(seconds)


_shorten_orphaned()
