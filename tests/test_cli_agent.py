"""``daoban agent add`` as an operator runs it: a real process, no terminal, own SQLite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.consoles import PASSWORD
from tests.servers import ROOT, _server_env


def _daoban(workdir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # start_new_session: no controlling terminal, as under cron, ssh without -t, or CI.
    return subprocess.run([sys.executable, "-m", "channels.cli", *args], cwd=ROOT,
                          env=_server_env(workdir), input=stdin, text=True,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, timeout=120, start_new_session=True)


def test_add_without_a_terminal_says_how(tmp_path: Path) -> None:
    r = _daoban(tmp_path, "agent", "add", "zhang")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    assert "--password-stdin" in r.stderr
    assert "zhang" not in _daoban(tmp_path, "agent", "list").stdout


def test_skills_must_be_departments_of_the_guide(tmp_path: Path) -> None:
    r = _daoban(tmp_path, "agent", "add", "lisi", "--skills", "公安,外星事务局", "--password-stdin",
                stdin=PASSWORD + "\n")
    assert r.returncode != 0 and "外星事务局" in r.stderr and "Traceback" not in r.stderr
    assert "人社" in r.stderr  # the choices are listed
    assert "lisi" not in _daoban(tmp_path, "agent", "list").stdout

    # Short names, ids and full names are all accepted and stored as short names.
    r = _daoban(tmp_path, "agent", "add", "wang", "--skills", "公安，renshe", "--password-stdin",
                stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    line = next(x for x in _daoban(tmp_path, "agent", "list").stdout.splitlines() if "wang" in x)
    assert line.split("\t")[4] == "公安,人社"
