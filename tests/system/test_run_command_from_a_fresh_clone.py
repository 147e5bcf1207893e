"""The README's run command, as written, in a fresh clone: on Debian's own Python (PEP 668
refuses a system-wide pip install) it makes a venv and starts the instance, whose supervisord
is that venv's and not activated; every program runs; the live config it made is ignored by
git; running it again says the instance is already running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from appliance.harness.instance import PACKAGE_ROOT, wait_until

DEBIAN_PYTHON = Path("/usr/bin/python3")
PROGRAMS = {"ingestor", "writer", "neelix", "web", "events"}


def run_command() -> str:
    readme = (PACKAGE_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- run-command -->\s*```sh\n(.*?)```", readme, re.S)
    assert block, "README.md has no run command"
    return block.group(1).strip()


def test_the_readme_run_command_works_from_a_fresh_clone(tmp_path):
    clone = tmp_path / "herald"
    subprocess.run(["git", "clone", "-q", str(PACKAGE_ROOT), str(clone)], check=True,
                   timeout=120)
    # `python3` is Debian's (externally managed) where it exists, as on a stock machine.
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").symlink_to(DEBIAN_PYTHON if DEBIAN_PYTHON.exists() else sys.executable)
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{shim}:/usr/local/bin:/usr/bin:/bin"

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", run_command()], cwd=clone, env=env,
                              capture_output=True, text=True, timeout=600)

    first = run()
    pid_file = clone / "var" / "run" / "supervisord.pid"
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        assert "http://127.0.0.1:9021/" in first.stdout, first.stdout
        supervisorctl = [str(clone / ".venv" / "bin" / "supervisorctl"), "-c",
                         str(clone / "supervisord.conf"), "status"]

        def states() -> dict[str, str]:
            out = subprocess.run(supervisorctl, capture_output=True, text=True,
                                 timeout=60).stdout
            return {line.split()[0]: line.split()[1] for line in out.splitlines()
                    if len(line.split()) > 1}

        wait_until(lambda: set(states()) == PROGRAMS and
                   set(states().values()) == {"RUNNING"}, 60, "every program RUNNING",
                   lambda: f"{states()}\n{first.stdout}{first.stderr}")
        supervisord = int(pid_file.read_text())
        assert str(clone / ".venv") in Path(f"/proc/{supervisord}/cmdline").read_text()
        assert (clone / "conf" / "appliance.ini").exists() and \
            (clone / "conf" / "neelix.ini").exists()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=clone,
                               capture_output=True, text=True, check=True).stdout
        assert dirty == "", dirty  # following the README leaves the clone clean for git pull

        again = run()
        assert again.returncode != 0
        assert f"already running in {clone} (supervisord pid {supervisord})" in again.stderr, \
            again.stderr
        assert "Another program is already listening" not in again.stdout + again.stderr
    finally:
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not Path(f"/proc/{pid}").exists() or
                       "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3], 60,
                       "the clone's supervisord to stop")
