"""`appliance neelix …`: the program (`-c CONFIG --shard K/N`, run by supervisord) or one of
its operator commands: `test` (a dry run of the rules over stored records, sending nothing)
and `snooze|unsnooze|snoozes`.

The commands read the same config and rules as the program and use its pure cores.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from appliance import converters as c
from appliance.config import Config
from appliance.config import load as load_config
from appliance.neelix import state as state
from appliance.neelix.actions import Defaults
from appliance.neelix.heartbeats import HeartbeatWatch
from appliance.neelix.matcher import rule_book
from appliance.neelix.notice import Notice
from appliance.neelix.rulebook import load as load_rules
from appliance.neelix.rules import RuleMatcher
from appliance.neelix.transports.record import ALERT_LOGGER
from appliance.runtime import command_parser, typed
from appliance.spine.record import INDEX
from appliance.store.engine import open_store
from appliance.store.reader import RecordStore
from appliance.store.url import StoreUnavailable
from appliance.times import when_text

USAGE = """\
usage: appliance neelix -c CONFIG [--shard K/N]   the program (run by supervisord)
       appliance neelix COMMAND [options]           (appliance neelix COMMAND --help)

commands:
  test      run the rules over stored records and print what would fire; sends nothing
  snooze    hold every notice about a system for a while
  unsnooze  end a snooze early
  snoozes   list the snoozes in force"""


def main(argv: list[str]) -> None:
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return
    command = COMMANDS.get(argv[0]) if argv else None
    if command is None:
        from appliance.neelix.matcher import main as program
        if argv and not argv[0].startswith("-"):
            print(f"appliance neelix: unknown command {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
            raise SystemExit(2)
        program(argv)
        return
    command(argv[1:])


def dry_run(argv: list[str]) -> None:
    parser = command_parser("neelix test", "Run the rules and heartbeats over stored records "
                            "and print what would have fired. Sends nothing.")
    parser.add_argument("--since", type=typed(c.duration), default=86400.0,
                        help="how far back to start (default 1d)")
    parser.add_argument("--rules", type=Path, help="a rules file to try instead of the "
                        "configured one")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    n = config.neelix
    book = load_rules(args.rules, Defaults(n.smtp_host, n.smtp_port, n.mail_from)) \
        if args.rules else rule_book(config)
    now = time.time()
    start = now - args.since
    rules, beats = RuleMatcher(book.rules), HeartbeatWatch(book.heartbeats, lambda _system: True)
    windows = book.maintenance

    def quiet(system: str | None, when: float) -> bool:
        return any(window.covers(system, when) for window in windows)

    fired: list[Notice] = []
    scanned = 0
    for values in _stored(config, start):
        scanned += 1
        if values[INDEX["logger"]] == ALERT_LOGGER:
            continue
        when = values[INDEX["received"]]
        if scanned == 1:
            beats.start(when)  # listed systems are watched from the first stored record
        fired += rules.due_digests(when) + beats.check(when, quiet)
        fired += rules.observe(values) + beats.seen(values[INDEX["system_id"]], when)
    fired += beats.check(now, quiet) + rules.due_digests(math.inf)  # digests due later too
    held = 0
    for notice in fired:
        hold = notice.event != "recovered" and quiet(notice.system, notice.time)
        held += hold
        note = "  (held: maintenance)" if hold else "  (due later)" if notice.time > now else ""
        print(f"{when_text(notice.time)}  {notice.event:9} {notice.source:20} -> "
              f"{','.join(notice.actions)}{note}\n    {notice.summary}")
    print(f"{len(fired)} notices would have fired ({held} held by maintenance windows) over "
          f"{scanned} records since {when_text(start)}; nothing was sent.")


def _stored(config: Config, start: float) -> Iterator[list]:
    store = RecordStore(open_store(config.store.url))
    try:
        store.connection()
    except StoreUnavailable as error:
        raise SystemExit(f"appliance neelix test: {error}") from None
    return store.values_since(start)


def _open_state(config_path: str) -> None:
    config = load_config(config_path)
    state.open_state(state.state_target(config))


def snooze(argv: list[str]) -> None:
    parser = command_parser("neelix snooze", "Hold every notice about a system for a while "
                            "(maintenance). A RECOVERED notice still goes.")
    parser.add_argument("system", help="its system_id, or * for every system")
    parser.add_argument("duration", type=typed(c.duration), help="e.g. 30m, 2h, 1d")
    parser.add_argument("--reason", default="", help="shown on /systems and /alerts")
    args = parser.parse_args(argv)
    _open_state(args.config)
    until = time.time() + args.duration
    values = {state.Snooze.until: until, state.Snooze.reason: args.reason,
              state.Snooze.created: time.time()}
    state.Snooze.insert({state.Snooze.system: args.system, **values}).on_conflict(
        conflict_target=[state.Snooze.system], update=values).execute()
    print(f"{args.system}: notices held until {when_text(until)}")


def unsnooze(argv: list[str]) -> None:
    parser = command_parser("neelix unsnooze", "End a snooze early.")
    parser.add_argument("system")
    args = parser.parse_args(argv)
    _open_state(args.config)
    gone = state.Snooze.delete().where(state.Snooze.system == args.system).execute()
    print(f"{args.system}: {'snooze ended' if gone else 'was not snoozed'}")


def list_snoozes(argv: list[str]) -> None:
    args = command_parser("neelix snoozes", "List the snoozes in force.").parse_args(argv)
    _open_state(args.config)
    rows = state.snoozes(time.time())
    for system, until in sorted(rows.items()):
        print(f"{system}\tuntil {when_text(until)}")
    if not rows:
        print("no system is snoozed")


COMMANDS = {"test": dry_run, "snooze": snooze, "unsnooze": unsnooze, "snoozes": list_snoozes}
