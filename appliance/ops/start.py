"""`appliance start`: the README's run command for an instance folder (the clone itself, or
one `appliance init` wrote). Says in one line why it will not start (already running, a port
taken), then runs supervisord with this interpreter and reports the programs and addresses.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

from appliance import ports
from appliance.config import Config, ensure_live
from appliance.config import load as load_config
from appliance.errors import ConfigError
from appliance.monitor import health
from appliance.ops.commands import addresses

STARTUP = 30.0  # seconds the programs get to reach RUNNING before start reports on them


def supervisord_pid(directory: Path) -> int:
    """The pid of the supervisord running this instance, or 0."""
    try:
        pid = int((directory / "var" / "run" / "supervisord.pid").read_text().strip())
    except (OSError, ValueError):
        return 0
    return pid if "supervisord" in ports.command_line(pid) else 0  # not a recycled pid


def refusal(config: Config, directory: Path, conf: Path) -> str | None:
    """Why this instance must not start now, in one line; None if it may."""
    pid = supervisord_pid(directory)
    if pid:
        return (f"herald is already running in {directory} (supervisord pid {pid}); "
                f"stop it with: supervisorctl -c {conf} shutdown")
    listed = ports.instance_ports(config.appliance.bind, config.ingestor.port,
                                  config.web.port, config.ingestor.udp)
    taken = ports.taken(listed)
    if taken:
        return (f"{taken[0]}: another instance? Give this one other ports in "
                f"{config.path} ([ingestor] port, [web] port)")
    return None


def start_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="appliance start", description="Start an instance: make its live config from "
        "conf/*.example.ini on first run, refuse a second start or taken ports, run its "
        "supervisord with this Python, and show its addresses.")
    parser.add_argument("-c", "--conf", default="supervisord.conf", type=Path,
                        help="the instance's supervisord.conf (default: %(default)s)")
    parser.add_argument("--foreground", action="store_true",
                        help="run supervisord in the foreground (supervisord -n, for systemd "
                        "Type=simple)")
    args = parser.parse_args(argv)
    conf = args.conf.resolve()
    if not conf.is_file():
        raise ConfigError("no supervisord.conf here: run this in a clone of the appliance or "
                          "an `appliance init` folder, or give -c", str(conf))
    directory = conf.parent
    ini = directory / "conf" / "appliance.ini"
    ensure_live(directory / "conf" / "neelix.ini")
    config = load_config(ini)
    why_not = refusal(config, directory, conf)
    if why_not:
        print(f"appliance start: {why_not}", file=sys.stderr)
        raise SystemExit(1)
    # The in-place supervisord.conf runs the first python3 on its PATH: put this one there.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)]
    if args.foreground:
        os.execve(sys.executable, [*command, "-n"], env)  # noqa: S606 - argv, no shell
    started = subprocess.run(command, env=env, check=False)  # supervisord detaches itself
    if started.returncode:
        raise SystemExit(started.returncode)
    states = _wait_for_programs(config)
    stage = config.stage.name
    print(f"herald {config.appliance.instance} (stage {stage}) started in {directory}")
    print("\n".join(f"  {line}" for line in addresses(config)))
    not_running = {name: state for name, state in states.items() if state != "RUNNING"}
    if not_running or not states:
        shown = ", ".join(f"{name} {state}" for name, state in sorted(not_running.items()))
        print(f"  not running yet: {shown or 'no answer from supervisord'}; see "
              f"`appliance status -c {ini}` and {directory / 'var' / 'log'}", file=sys.stderr)
    print(f"  status  appliance status -c {ini}\n  stop    supervisorctl -c {conf} shutdown")


def _wait_for_programs(config: Config) -> dict[str, str]:
    """The programs' states once all run or STARTUP has passed (FATAL ones end the wait)."""
    deadline = time.monotonic() + STARTUP
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            states = health.programs(config.health.supervisor)
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            states = {}
        if states and all(state in ("RUNNING", "FATAL") for state in states.values()):
            break
        time.sleep(0.2)  # supervisord answers on its socket; nothing to wait on but polling
    return states
