"""Secret parameters are stored and shown as ***; a setting stores no parameter values.
Checked where it matters: the bytes of every file of the store."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
from pydantic import SecretStr

from cli_helpers import labloom, write
from labloom import Secret, State, flow, task
from labloom.store import open_store

PASSWORD = "hunter2-7f3a9c"
PATIENT = "patient-0042-ab"


def store_bytes(home: Path) -> bytes:
    """Every byte labloom wrote under its home: the database, its WAL, results, logs."""
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def stored_parameters(run_id: str) -> dict[str, object]:
    with open_store() as store:
        record = store.get_run(run_id)
    assert record is not None
    return record.parameters


@task
def log_in(password: object, patient: str) -> int:
    secret = password.get_secret_value()  # type: ignore[attr-defined]
    return len(secret) + len(patient)


@flow
def with_labloom_secret(password: Secret, patient: str) -> int:
    return log_in(password, patient)  # type: ignore[return-value]


@flow
def with_pydantic_secret(password: SecretStr, patient: str) -> int:
    return log_in(password, patient)  # type: ignore[return-value]


@flow
def unannotated(password, patient):  # type: ignore[no-untyped-def]
    return log_in(password, patient)


@pytest.mark.parametrize(
    ("flow_", "secret"),
    [(with_labloom_secret, Secret(PASSWORD)), (with_pydantic_secret, SecretStr(PASSWORD)),
     (unannotated, Secret(PASSWORD))],  # a Secret value hides itself whatever the annotation
    ids=["labloom.Secret", "pydantic.SecretStr", "a Secret value"],
)
def test_a_secret_parameter_is_stored_and_shown_as_stars(
    labloom_home: Path, flow_: object, secret: object
) -> None:
    run = flow_.run(password=secret, patient=PATIENT)  # type: ignore[attr-defined]
    assert run.state is State.COMPLETED and run.result() == len(PASSWORD) + len(PATIENT)
    assert stored_parameters(run.id) == {"password": "***", "patient": PATIENT}
    shown = labloom(labloom_home, "show", run.id).stdout
    assert '"password": "***"' in shown and PASSWORD not in shown
    assert PASSWORD.encode() not in store_bytes(labloom_home)
    assert PATIENT.encode() in store_bytes(labloom_home)  # the search would find it


def test_the_setting_stores_no_parameter_values(labloom_home: Path) -> None:
    os.environ["LABLOOM_STORE_PARAMETERS"] = "0"
    try:
        run = with_labloom_secret.run(password=Secret(PASSWORD), patient=PATIENT)
    finally:
        del os.environ["LABLOOM_STORE_PARAMETERS"]
    assert run.state is State.COMPLETED
    assert stored_parameters(run.id) == {"password": "***", "patient": "***"}
    data = store_bytes(labloom_home)
    assert PATIENT.encode() not in data and PASSWORD.encode() not in data


def test_secret_keeps_its_value_and_hides_it() -> None:
    secret = Secret(PASSWORD)
    assert secret.get_secret_value() == PASSWORD
    assert repr(secret) == "Secret('***')" and str(secret) == "***" and f"{secret}" == "***"
    assert pickle.loads(pickle.dumps(secret)) == secret  # to Dask workers and back


FLOW = f"""
    from labloom import Secret, flow, task

    @task
    def log_in(password, patient):
        assert password.get_secret_value() == "{PASSWORD}"
        print("logged in as", patient, "with", password)

    @task
    def fail():
        raise RuntimeError("then something broke")

    @flow
    def nightly(password: Secret, patient: str):
        log_in(password, patient)
        fail()
"""


def test_from_the_command_line_to_show_logs_and_retry(tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"  # the flow's file holds the password
    write(work / "flows.py", FLOW)
    out = labloom(home, "run", "flows.py:nightly", "-p", f"password={PASSWORD}",
                  "-p", f"patient={PATIENT}", cwd=work, LABLOOM_PROGRESS="0")
    assert out.returncode == 1, out.stderr  # `fail` failed; log_in got its Secret
    run = json.loads(labloom(home, "runs", "--json").stdout)[0]
    assert run["parameters"] == {"password": "***", "patient": PATIENT}
    assert f"logged in as {PATIENT} with ***" in labloom(home, "logs", run["id"]).stdout
    assert PASSWORD.encode() not in store_bytes(home)
    retried = labloom(home, "retry", run["id"])
    assert retried.returncode == 1  # as every run that cannot be retried from here
    assert "password were not stored (secret" in retried.stderr and "--param" in retried.stderr


def test_a_schedule_refuses_to_keep_a_secret(tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    write(work / "flows.py", FLOW)
    out = labloom(home, "schedule", "add", "flows.py:nightly", "--every", "1h",
                  "-p", f"password={PASSWORD}", "-p", f"patient={PATIENT}", cwd=work)
    assert out.returncode == 2 and "password are secret" in out.stderr, out.stderr
    assert PASSWORD.encode() not in store_bytes(home)


class Table:  # a value JSON cannot hold, whose repr shows its rows (as a DataFrame's does)
    def __init__(self, rows: list[str]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"Table({self.rows!r})"


def test_a_parameter_json_cannot_hold_is_stored_as_what_it_is_never_its_content(
    labloom_home: Path, tmp_path: Path
) -> None:
    # Its repr (the table's first rows) was kept: task data in the store and the Flows panel.
    import datetime
    import importlib.util

    module = tmp_path / "wards.py"
    module.write_text("from labloom import flow, task\n\n@task\ndef count(rows):\n"
                      "    return len(rows)\n\n@flow\ndef ward(rows, day, source):\n"
                      "    return count(rows)\n")
    spec = importlib.util.spec_from_file_location("wards", module)
    assert spec is not None and spec.loader is not None
    wards = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wards)
    run = wards.ward.run(rows=Table([PATIENT, "patient-0043"]), day=datetime.date(2026, 12, 1),
                         source=tmp_path / "admissions.csv")
    assert run.state is State.COMPLETED and run.result() == 2
    assert stored_parameters(run.id) == {
        "rows": {"__type__": "test_secrets.Table", "__len__": 2},
        # Settings, not data: kept as text, so the history says what the run ran with.
        "day": {"__type__": "datetime.date", "__text__": "2026-12-01"},
        "source": {"__type__": type(tmp_path).__module__ + "." + type(tmp_path).__qualname__,
                   "__text__": str(tmp_path / "admissions.csv")},
    }
    assert PATIENT.encode() not in store_bytes(labloom_home)
    again = labloom(labloom_home, "retry", run.id, cwd=tmp_path)
    assert again.returncode == 1, again.stderr
    assert "rows, day, source were not JSON values" in again.stderr
    assert "--param" in again.stderr
