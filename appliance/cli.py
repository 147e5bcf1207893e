"""The `appliance` command: one sub-command per process, plus `init`.

supervisord runs `appliance ingestor|writer …`; people run `appliance init` and friends.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from appliance.errors import ConfigError
from appliance.runtime import run_process
from appliance.stages import stage_named


def _process(module: str) -> Callable[[list[str]], None]:
    def run(argv: list[str]) -> None:
        __import__(f"appliance.{module}")
        sys.modules[f"appliance.{module}"].main(argv)
    return run


def _neelix(argv: list[str]) -> None:
    """`appliance neelix -c …` is the process; `appliance neelix test|snooze|…` the tools."""
    from appliance import neelix_cli
    if argv and argv[0] in neelix_cli.COMMANDS:
        neelix_cli.main(argv)
    else:
        _process("neelix")(argv)


PROCESSES = {"ingestor": _process("ingestor"), "writer": _process("writer"),
             "neelix": _neelix, "forwarder": _process("forwarder"), "web": _process("web"),
             "events": _process("events"),
             "decoder": _process("decoder")}  # run by the ingestor, not by supervisord


def _init(argv: list[str]) -> None:
    from appliance.instance import init
    parser = argparse.ArgumentParser(
        prog="appliance init", description="Write a self-contained appliance instance.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--stage", type=stage_named, default="DEVELOPMENT",
                        help="TESTING, DEVELOPMENT, INTEGRATION or PRODUCTION")
    parser.add_argument("--ingest-port", type=int, help="instead of the stage's ingest port")
    parser.add_argument("--web-port", type=int, help="instead of the stage's web port")
    parser.add_argument("--force", action="store_true", help="overwrite an existing instance")
    args = parser.parse_args(argv)
    conf = init(args.directory, args.stage, args.ingest_port, args.web_port, args.force)
    print(f"wrote {conf.parent} (stage {args.stage.name}); start it with:\n"
          f"  supervisord -c {conf}\n  supervisorctl -c {conf} status")


def _passwd(argv: list[str]) -> None:
    from appliance.auth import passwd_main
    passwd_main(argv)


def _keys(argv: list[str]) -> None:
    from appliance.keys import keys_main
    keys_main(argv)


def _operations(name: str) -> Callable[[list[str]], None]:
    def run(argv: list[str]) -> None:
        from appliance.operations import COMMANDS as OPERATIONS
        OPERATIONS[name](argv)
    return run


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    **PROCESSES, "init": _init, "passwd": _passwd, "keys": _keys,
    "import-legacy": _process("legacy_import"),  # an operator command, not a process
    **{name: _operations(name) for name in ("status", "emit", "query", "tail", "purge")}}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        names = "|".join(COMMANDS)
        print(f"usage: appliance {{{names}}} [options]   (appliance COMMAND --help)",
              file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command == "init":
        try:
            _init(rest)
        except ConfigError as error:
            print(f"appliance init: {error}", file=sys.stderr)
            return 2
        return 0
    return run_process(command, lambda: COMMANDS[command](rest))
