"""`labloom cancel` of several runs and `labloom delete` over several batches whose store
server goes away at a later change and stays away past the connection wait: the error says
what became of each run, not only of the change that was cut. Before, a cancel of three said
"the change may or may not have been made" without naming the run, nor that the first was
asked and the third was not; a delete of 60 runs (two transactions of 50 and 10) said the same
of the second, though the first 50 were gone. The proxy lets the first change through
(``skip=1``) and cuts the second's COMMIT (tests/pg_commit_cut.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, wait_for
from cut_runs import sixty_runs, states_of, three_held_runs
from pg_commit_cut import cut_command, cut_database


def test_a_cancel_of_several_runs_says_which_were_asked(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    with cut_database(postgres_server, monkeypatch, goes_down=True, skip=1,
                      writes=(b"INTO cancel_requests ",)) as proxy, \
            three_held_runs(tmp_path, stop) as proc:
        runs = json.loads(labloom(tmp_path, "runs", "--json").stdout)
        first, second, third = sorted(runs, key=lambda r: r["parameters"]["i"])
        ids = [first["id"], second["id"], third["id"]]
        done = cut_command(proxy, tmp_path, "cancel", *ids)
        assert done.returncode == 4, (done.stdout, done.stderr)
        err = " ".join(done.stderr.split())
        assert f"cancel of run {ids[1]}: the change may or may not have been made" in err, err
        assert f"cancel requested before it of run(s) {ids[0]};" in err, err
        assert (f"not asked of run(s) {ids[2]} (`labloom cancel {ids[2]}` once the server "
                "is back)") in err, err
        assert "`labloom runs` tells" in err, err
        proxy.down.clear()  # back: the first two are cancelled, the third never asked
        wait_for(lambda: states_of(tmp_path, ids)[:2] == ["Cancelled"] * 2, 60,
                 "the asked runs cancelled")
        stop.touch()
        out, _ = proc.communicate(timeout=120)
        assert out.split() == [f"{ids[0]}=Cancelled", f"{ids[1]}=Cancelled",
                               f"{ids[2]}=Completed"], out


def test_a_delete_over_several_batches_lists_those_deleted(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with cut_database(postgres_server, monkeypatch, goes_down=True, skip=1,
                      writes=(b"INTO deleted_runs ",)) as proxy:
        ids = sixty_runs(tmp_path, tmp_path)
        done = cut_command(proxy, tmp_path, "delete", *ids)
        assert done.returncode == 4, (done.stdout, done.stderr)
        err = " ".join(done.stderr.split())
        first, second = ids[:50], ids[50:]
        assert ("deleted before the store's server went away: 50 run(s) ("
                + ", ".join(first[:20]) + " and 30 more); of the next 10 ("
                + ", ".join(second[:3]) + " and 7 more), the change may or may not have been "
                "made") in err, err
        assert "`labloom runs` tells" in err, err
        proxy.down.clear()
        left = json.loads(labloom(tmp_path, "runs", "--json", "--limit", "100").stdout)
        assert not {r["id"] for r in left} & set(first), left  # what it said was deleted is


# The second batch's COMMIT unanswered (exit 4: it may be gone), or the first batch's
# connection gone before its COMMIT was sent (exit 2: not made, the second batch not tried),
# or the second's (its last delete, for 10 runs, a text sent anew: the proxy sees it).
@pytest.mark.parametrize(("commits", "skip", "write"), [
    (True, 1, b"INTO deleted_runs "), (False, 0, b"INTO deleted_runs "),
    (False, 1, b"DELETE FROM flow_runs ")], ids=["unanswered", "not-sent", "later-not-sent"])
def test_a_delete_json_cut_off_lists_the_runs_deleted_and_not_tried(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, commits: bool,
    skip: int, write: bytes,
) -> None:
    # Before, `delete --json` cut off printed nothing on stdout: a script reading it learned
    # of the runs deleted only from the error line's first 20. Now the JSON the Flows panel's
    # delete is answered (docs/rest-api.md); the exit status tells whether the batch cut off
    # may be gone (4) or is not (2).
    with cut_database(postgres_server, monkeypatch, goes_down=True, skip=skip,
                      commits=commits, at="commit" if commits else "write",
                      writes=(write,)) as proxy:
        ids = sixty_runs(tmp_path, tmp_path)
        done = cut_command(proxy, tmp_path, "delete", *ids, "--json")
        assert done.returncode == (4 if commits else 2), (done.stdout, done.stderr)
        said = json.loads(done.stdout)
        deleted = ids[:50 * skip]
        assert said["deleted"] == deleted, said
        assert said["cut_off"] == ids[len(deleted):len(deleted) + 50], said
        assert said["not_tried"] == 60 - len(deleted) - len(said["cut_off"]), said
        assert said["dry_run"] is False, said
        assert said["message"] in " ".join(done.stderr.split()), (said, done.stderr)
