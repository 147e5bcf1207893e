"""The `appliance` command: one table from command name to the function that runs it.

supervisord runs the programs (`appliance ingestor -c …`); people run the operator commands
(`appliance init`, `status`, `query`, …). `appliance --help` lists both groups.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

from appliance import ports
from appliance.config import load as load_config
from appliance.errors import ConfigError
from appliance.runtime import run_process


@dataclass(frozen=True)
class Command:
    target: str  # "module:function", imported only when the command runs
    help: str

    def load(self) -> Callable[[list[str]], object]:
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function)


OPERATOR_COMMANDS: dict[str, Command] = {
    "start": Command("appliance.ops.start:start_main",
                     "start an instance's supervisord (refuses a second start, taken ports)"),
    "init": Command("appliance.ops.instance:init_main",
                    "write a self-contained instance (supervisord.conf, conf/, var/)"),
    "status": Command("appliance.ops.commands:status",
                      "programs, records/s, lag, journal, database and disk; exit 1 if unhealthy"),
    "emit": Command("appliance.ops.commands:emit",
                    "send test records to the ingest port, as a service would"),
    "query": Command("appliance.ops.commands:query",
                     "print the newest records matching the web's filters"),
    "tail": Command("appliance.ops.commands:tail", "print new records as they are stored"),
    "purge": Command("appliance.ops.commands:purge",
                     "delete records older than a duration, in small transactions"),
    "import-legacy": Command("appliance.ops.legacy_import:main",
                             "copy an old ps.herald database's records into this instance"),
    "import": Command("appliance.ops.store_import:main",
                      "copy every record of another herald store (SQLite or PostgreSQL) here"),
    "passwd": Command("appliance.web.auth:passwd_main",
                      "print a [web] users line (or an API token) for the login"),
    "keys": Command("appliance.spine.keys:keys_main",
                    "make a CurveZMQ key pair for the appliance link"),
}
PROGRAMS: dict[str, Command] = {
    "ingestor": Command("appliance.ingest.ingestor:main",
                        "takes records on the stage port, journals and publishes them"),
    "writer": Command("appliance.store.writer:main",
                      "stores the records of its shard in the herald database"),
    "neelix": Command("appliance.neelix.commands:main",
                      "matches rules and heartbeats, sends alerts (appliance neelix --help)"),
    "forwarder": Command("appliance.forwarding.forwarder:main",
                         "passes records to an upstream appliance ([forwarder:NAME])"),
    "web": Command("appliance.web.app:main", "the herald web viewer and its JSON API"),
    "events": Command("appliance.monitor.events:main",
                      "supervisord event listener: alert records about the programs"),
}
# Run by the ingestor for its decoder pool, never by people or supervisord.
INTERNAL: dict[str, Command] = {
    "decoder": Command("appliance.ingest.decoder:main", "a decoder worker of the ingestor"),
}
COMMANDS = {**OPERATOR_COMMANDS, **PROGRAMS, **INTERNAL}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: appliance COMMAND [options]   (appliance COMMAND --help: its options)",
             "", "operator commands:"]
    lines += [f"  {name:<{width}}  {command.help}" for name, command in OPERATOR_COMMANDS.items()]
    lines += ["", "programs run by supervisord (see supervisord.conf):"]
    lines += [f"  {name:<{width}}  {command.help}" for name, command in PROGRAMS.items()]
    return "\n".join(lines)


# The port each listening program must own before it starts.
LISTENS = {"ingestor": "ingest", "web": "web"}


def preflight(name: str, argv: list[str]) -> None:
    """A program's config (and, for the listeners, its port) checked before its heavy modules
    are imported: a mistake then ends it well within supervisord's startsecs even on a busy
    host, so it goes FATAL after the retries instead of being restarted for ever, with one
    line in its log (ConfigError, exit 78)."""
    path = _config_argument(argv)
    if path is None:
        return  # its own parser will say what is missing
    config = load_config(path)
    what = LISTENS.get(name)
    if what is not None:
        bind = config.appliance.bind
        host = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind
        port = config.ingestor.port if what == "ingest" else config.web.port
        kinds = ("tcp", "udp") if what == "ingest" and config.ingestor.udp else ("tcp",)
        taken = ports.taken([(what, host, port, kind) for kind in kinds])
        if taken:
            raise ConfigError(f"{taken[0]}; is another instance on this port?",
                              str(config.path), "ingestor" if what == "ingest" else "web",
                              "port")


def _config_argument(argv: list[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg in ("-c", "--config") and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--config="):
            return arg.partition("=")[2]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    command = COMMANDS.get(name)
    if command is None:
        print(f"appliance: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if name in PROGRAMS:
        checked = run_process(name, lambda: preflight(name, rest))
        if checked:
            return checked
    run = command.load()
    if name in ("init", "start"):
        try:
            run(rest)
        except ConfigError as error:
            print(f"appliance {name}: {error}", file=sys.stderr)
            return 2
        return 0
    return run_process(name, lambda: run(rest))
