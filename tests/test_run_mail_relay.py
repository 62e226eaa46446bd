"""`labloom run --notify mailto:` reads the SMTP relay's settings once, where --notify is checked
at its start: its alert goes through that relay, from that sender, whatever the flow does to the
process's environment meanwhile. Before, the alert read them again after the run, and went to
whatever the flow had set (here a port nothing listens on: not delivered). A bad
LABLOOM_SMTP_FROM is refused there too, before the run, naming the fix; before, the run ran and
its alert failed."""

from __future__ import annotations

import socket
from pathlib import Path

from cli_helpers import MailRelay, labloom, write

FLOW = """
    import os
    from labloom import flow, task

    @task
    def check():
        raise ValueError("a malformed row")

    @flow
    def nightly(port: int, marker: str):
        # settings of its own, as a library the flow imports may set them
        os.environ["LABLOOM_SMTP_PORT"] = str(port)
        os.environ["LABLOOM_SMTP_FROM"] = "someone@else.test"
        open(marker, "w").close()
        check()
"""
FAST = {"LABLOOM_NOTIFY_DELAYS": "0.2,0.4"}
NOTIFY = ("--notify", "mailto:ops@hospital.test")


def test_the_alert_goes_through_the_relay_read_at_the_start(tmp_path: Path) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    relay = MailRelay()
    try:
        write(tmp_path / "flows.py", FLOW)
        out = labloom(tmp_path, "run", "flows.py:nightly", "-p", f"port={port}", "-p",
                      f"marker={tmp_path / 'ran'}", *NOTIFY, **FAST, **relay.env())
    finally:
        relay.close()
    assert (tmp_path / "ran").exists()  # the flow did change the environment
    assert out.returncode == 1 and "failure alert delivered" in out.stderr, out.stderr
    assert relay.envelopes == [("labloom@lab.test", ["ops@hospital.test"])]
    [mail] = relay.mails
    assert mail["From"] == "labloom@lab.test" and "'nightly'" in mail["Subject"]


def test_a_bad_sender_is_refused_before_the_run(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOW)
    out = labloom(tmp_path, "run", "flows.py:nightly", "-p", "port=25", "-p",
                  f"marker={tmp_path / 'ran'}", *NOTIFY, LABLOOM_SMTP_FROM="labloom at lab")
    assert out.returncode == 2, out.stderr
    assert ("LABLOOM_SMTP_FROM must be one email address (labloom@lab.example.org, or Labloom "
            "<labloom@lab.example.org>), got 'labloom at lab': set it to one, or unset it for "
            "the default (labloom@") in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "ran").exists()  # refused before the run
