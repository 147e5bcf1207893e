"""`appliance init`: writes a self-contained instance (supervisord.conf, conf/, var/).

Its texts come from templates.py, which also renders the repo's own in-place instance files.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from appliance import ports
from appliance.config import SETTINGS
from appliance.errors import ConfigError
from appliance.ops.templates import NEELIX_INI, render_appliance_ini, render_supervisord
from appliance.stages import Stage, stage_named
from appliance.store import url as store_url

UNIX_PATH_MAX = 107


def init(directory: Path, stage: Stage, ingest_port: int | None = None,
         web_port: int | None = None, force: bool = False, check_ports: bool = True,
         store: str | None = None) -> Path:
    """Write an instance into `directory`; return its supervisord.conf. Ports another
    process holds are refused: a second instance on them would crash-loop."""
    directory = Path(directory).resolve()
    ini = directory / "conf" / "appliance.ini"
    if ini.exists() and not force:
        raise ConfigError("an instance already exists here (use --force to overwrite)",
                          str(ini))
    for socket_path in (directory / "var/run/supervisor.sock",
                        directory / "var/run/records.pub"):
        if len(str(socket_path).encode()) > UNIX_PATH_MAX:
            raise ConfigError(f"instance path too long for a unix socket: {socket_path} "
                              f"(at most {UNIX_PATH_MAX} bytes)", str(directory))
    if (ingest_port or stage.ingest_port) == (web_port or stage.web_port):
        raise ConfigError(f"ingest and web port are both {web_port or stage.web_port}",
                          str(ini))
    if check_ports:
        taken = ports.taken(ports.instance_ports("127.0.0.1", ingest_port or stage.ingest_port,
                                                 web_port or stage.web_port))
        if taken:
            raise ConfigError(f"{taken[0]}; choose free ones with --ingest-port N --web-port N",
                              str(directory))
    for sub in ("conf", "var/run", "var/log"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    ini.write_text(render_appliance_ini(stage, ingest_port, web_port, store),
                   encoding="utf-8")
    neelix = directory / "conf" / "neelix.ini"
    if not neelix.exists():
        neelix.write_text(NEELIX_INI, encoding="utf-8")
    conf = directory / "supervisord.conf"
    package_root = str(Path(__file__).resolve().parent.parent)
    conf.write_text(render_supervisord(stage, f"{shlex.quote(sys.executable)} -m appliance",
                                       package_root, str(conf)), encoding="utf-8")
    return conf


def init_main(argv: list[str]) -> None:
    """`appliance init DIR [--stage S] [--ingest-port N] [--web-port N] [--store URL] [--force]`."""
    parser = argparse.ArgumentParser(
        prog="appliance init", description="Write a self-contained appliance instance.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--stage", type=stage_named, default="DEVELOPMENT",
                        help="TESTING, DEVELOPMENT, INTEGRATION or PRODUCTION")
    parser.add_argument("--ingest-port", type=int, help="instead of the stage's ingest port")
    parser.add_argument("--web-port", type=int, help="instead of the stage's web port")
    parser.add_argument("--force", action="store_true", help="overwrite an existing instance")
    parser.add_argument("--ports-in-use", action="store_true",
                        help="write it even if its ports are taken now (e.g. to replace the "
                        "instance holding them)")
    parser.add_argument("--store", help="[store] url, e.g. postgresql://herald@db:5432/herald "
                        "(default: SQLite under var/); the password goes in password_env or "
                        "password_file")
    args = parser.parse_args(argv)
    if args.store:
        try:
            store_url.parse(args.store, args.directory / "conf")
        except ValueError as error:
            parser.error(f"--store: {error}")
    conf = init(args.directory, args.stage, args.ingest_port, args.web_port, args.force,
                check_ports=not args.ports_in_use, store=args.store)
    print(f"wrote {conf.parent} (stage {args.stage.name}); start it with:\n"
          f"  supervisord -c {conf}\n  supervisorctl -c {conf} status")


def settings_markdown() -> str:
    """The settings reference table of the README, from the same table the loader uses."""
    rows = ["| section | key | default | meaning |", "|---|---|---|---|"]
    for setting in SETTINGS:
        default = setting.default or "(derived)"
        rows.append(f"| `[{setting.section}]` | `{setting.key}` | `{default}` | "
                    f"{setting.help} |")
    return "\n".join(rows) + "\n"
