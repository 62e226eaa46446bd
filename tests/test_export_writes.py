"""`labloom export` where the module cannot be written (a full disk, a folder that cannot be
made): one line naming the fix, and a module exported there before stays whole. Before
session 46 each was an OSError traceback, and `write_text` had emptied the earlier module first.

A full disk is a file-size limit (RLIMIT_FSIZE) on the exporting process: writes past it fail
with EFBIG, as they fail with ENOSPC on a full disk, whoever runs the test (root too)."""

from __future__ import annotations

import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from cli_helpers import cli_env, labloom

CELLS = ["from labloom import task", "@task\ndef double(x: int) -> int:\n    return 2 * x",
         "%%flow twice\ny = double(3)"]
EARLIER = "# exported before\n"


def notebook(folder: Path) -> Path:
    path = folder / "job.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in CELLS]), path)
    return path


def small_files() -> None:  # in the child, before it runs: its writes stop at 64 bytes
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, not kills
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))


def run_limited(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=cli_env(tmp_path / "home"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, preexec_fn=small_files)


def test_a_module_that_cannot_be_written_keeps_the_earlier_one(tmp_path: Path) -> None:
    nb = notebook(tmp_path)
    out_path = tmp_path / "job_flow.py"
    out_path.write_text(EARLIER)
    code = ("import sys\nfrom labloom.export.exporter import export_notebook\n"
            "from labloom.core.errors import ExportError\n"
            "try:\n    export_notebook(sys.argv[1], sys.argv[2], check=False)\n"
            "except ExportError as exc:\n    print(exc)\n")
    out = run_limited(tmp_path, sys.executable, "-c", code, str(nb), str(out_path))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout.startswith(f"[labloom] cannot write {out_path} (File too large); the "
                                 "job_flow.py there is as it was: free some space there, or "
                                 "pass out= (-o) a path"), out.stdout
    assert out_path.read_text() == EARLIER
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.ipynb", "job_flow.py"]  # no temp


def test_the_cli_says_it_in_one_line(tmp_path: Path) -> None:
    notebook(tmp_path)
    out = run_limited(tmp_path, sys.executable, "-m", "labloom", "export", "job.ipynb", "-o",
                      "job_flow.py")
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("labloom: error: cannot try the module in ") and \
        "(File too large): free some space there, or set TMPDIR" in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    (tmp_path / "afile").write_text("a file where a folder should be")
    out = labloom(tmp_path, "export", "job.ipynb", "-o", "afile/job_flow.py")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert re.match(r"labloom: error: cannot write afile/job_flow.py \(.+\): pass out= \(-o\) "
                    "a path in a folder you can write", out.stderr), out.stderr


def test_a_folder_as_out_writes_into_it_and_a_name_not_py_is_refused(tmp_path: Path) -> None:
    # `-o flows` (a folder) and `-o job.txt` said "the exported module fails to import:
    # AttributeError: 'NoneType' object has no attribute 'loader'" (session 46).
    notebook(tmp_path)
    (tmp_path / "flows").mkdir()
    for out, written in (("flows", "flows/job.py"), ("new/", "new/job.py")):
        done = labloom(tmp_path, "export", "job.ipynb", "-o", out)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"wrote {written} from job.ipynb"), done.stdout
        assert "def twice" in (tmp_path / written).read_text()
    refused = labloom(tmp_path, "export", "job.ipynb", "-o", "job.txt")
    assert refused.returncode == 2 and refused.stderr == (
        "labloom: error: cannot export job.ipynb as job.txt: a module's file name ends in .py "
        "(Python and `labloom run` import it); pass out= (-o) job.py or a folder\n")
    assert not (tmp_path / "job.txt").exists()
