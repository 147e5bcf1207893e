"""The neelix program: a subscriber that matches every record of its shard against the rules,
watches heartbeats, and queues alerts in the outbox for the couriers.

Rules and heartbeats are pure cores (`rules.py`, `heartbeats.py`); this module wires them to
the journal/ZeroMQ loop, the state (`state.py`), the `schedule` clock and the couriers
(`outbox.py`), which send through the transports (`transports/`).
"""

from __future__ import annotations

import argparse
import logging
import time

import schedule

from appliance.config import Config, ingest_host
from appliance.neelix import state as state
from appliance.neelix.actions import Defaults
from appliance.neelix.heartbeats import HeartbeatWatch
from appliance.neelix.notice import Notice
from appliance.neelix.outbox import Dispatcher
from appliance.neelix.rulebook import RuleBook
from appliance.neelix.rulebook import load as load_rules
from appliance.neelix.rules import RuleMatcher
from appliance.neelix.state import FAILED, PENDING, Alert
from appliance.neelix.transports import Context
from appliance.neelix.transports.record import ALERT_LOGGER
from appliance.runtime import Every, StopFlag, start_process
from appliance.spine import stats
from appliance.spine.journal import last_seq
from appliance.spine.record import INDEX
from appliance.spine.subscriber import Shard, SubscriberLoop

log = logging.getLogger(__name__)
_LOGGER, _SYSTEM, _RECEIVED = INDEX["logger"], INDEX["system_id"], INDEX["received"]


def rule_book(config: Config) -> RuleBook:
    n = config.neelix
    return load_rules(n.rules, Defaults(n.smtp_host, n.smtp_port, n.mail_from, n.retry_for))


class Quiet:
    """Whether notices about a system are held: a maintenance window or a snooze covers it."""

    def __init__(self, book: RuleBook) -> None:
        self.windows = book.maintenance
        self.snoozed: dict[str, float] = {}

    def refresh(self, now: float) -> None:
        self.snoozed = state.snoozes(now)

    def __call__(self, system: str | None, when: float) -> bool:
        if max(self.snoozed.get(system or "", 0.0), self.snoozed.get("*", 0.0)) > when:
            return True
        return any(window.covers(system, when) for window in self.windows)


def held(notices: list[Notice], quiet: Quiet, now: float) -> set[int]:
    """Notices to record but not send. A RECOVERED notice always goes: people were told
    about the DOWN and must hear it is over."""
    return {i for i, n in enumerate(notices) if n.event != "recovered" and quiet(n.system, now)}


class NeelixSink:
    """The subscriber loop's sink: match a batch, commit states + alerts + cursor at once."""

    def __init__(self, name: str, book: RuleBook, shard: Shard, check_interval: float,
                 history: float, dispatcher: Dispatcher, var_dir: str,
                 journal_dir: str) -> None:
        self.name, self.shard, self.dispatcher, self.var_dir = name, shard, dispatcher, var_dir
        self.journal_dir = journal_dir
        self.newest = 0.0  # the newest receive time matched: the clock while catching up
        self.rules = RuleMatcher(book.rules)
        self.heartbeats = HeartbeatWatch(book.heartbeats, shard.owns)
        self.quiet = Quiet(book)
        self.live = False
        self.notices = self.held = 0
        self.clock = schedule.Scheduler()
        self.clock.every(check_interval).seconds.do(self.check)
        if shard.index == 0:
            self.clock.every(1).hours.do(self.prune, history)
            self.prune(history)
        self._stats = Every(2.0)

    def load_cursor(self, origin: str) -> int:
        now = time.time()
        state.load(self.rules, self.heartbeats, self.shard.label)
        self.heartbeats.start(now)
        if self.shard.index == 0:
            beats = self.heartbeats.heartbeats
            closed = state.close_incidents(
                lambda name, system: name in beats and beats[name].watches(system), now)
            if closed:
                log.warning("%s: closed %d incidents of heartbeats or systems no longer in "
                            "the rules", self.name, closed)
        self.quiet.refresh(now)
        return state.load_cursor(self.name, origin, last_seq(self.journal_dir))

    def apply(self, records: list[list], origin: str, last_seq: int) -> None:
        notices: list[Notice] = []
        for values in records:
            if values[_LOGGER] == ALERT_LOGGER:
                continue
            notices += self.rules.observe(values)
            notices += self.heartbeats.seen(values[_SYSTEM], values[_RECEIVED])
            self.newest = max(self.newest, values[_RECEIVED])
        self._commit(notices, (self.name, origin, last_seq))

    def tick(self, live: bool) -> None:
        self.live = live
        self.clock.run_pending()
        if self._stats.due():
            stats.write(self.var_dir, f"neelix-{self.shard.label}",
                        {"matched": self.rules.matched, "notices": self.notices, "held": self.held,
                         **self.dispatcher.counters()})

    def check(self) -> None:
        """Scheduled: realert digests, and heartbeats once the journal is caught up (before
        that, a system's newer records may still be unread: no false DOWN)."""
        now = time.time()
        self.quiet.refresh(now)
        # Realert windows are in record time: while the backlog is read, the clock is the
        # newest record matched, so a replayed flood still makes one digest per window.
        notices = self.rules.due_digests(now if self.live else self.newest)
        if self.live:
            notices += self.heartbeats.check(now, self.quiet)
        if notices or self.rules.dirty or self.heartbeats.dirty:
            self._commit(notices, None)

    def prune(self, history: float) -> None:
        gone = state.prune(time.time() - history)
        if gone:
            log.info("%s: %d alerts and incidents older than the history kept deleted",
                     self.name, gone)

    def _commit(self, notices: list[Notice], cursor: tuple[str, str, int] | None) -> None:
        now = time.time()
        if notices:
            self.quiet.refresh(now)  # a snooze made a moment ago counts
        hold = held(notices, self.quiet, now)
        queued = state.commit(notices, self.rules, self.heartbeats, self.shard.label, hold,
                              cursor)
        for number, notice in enumerate(notices):
            log.info("%s: %s%s", self.name, notice.summary,
                     " (held: maintenance or snooze)" if number in hold else "")
        self.notices += len(notices)
        self.held += len(hold)
        if queued:
            self.dispatcher.wake()


def adopt_orphans(book: RuleBook, shard: Shard) -> None:
    """Alerts queued by shards of an earlier numprocs are taken over by shard 0; alerts for
    an action the rules no longer have can never go: say so."""
    if shard.index == 0:
        adopted = (Alert.update(shard=shard.label)
                   .where((Alert.status == PENDING) &
                          ~Alert.shard.endswith(f"of{shard.count}")).execute())
        if adopted:
            log.warning("took over %d queued alerts of shards from another numprocs",
                        adopted)
    orphans = (Alert.update(status=FAILED, last_error="action no longer in the rules")
               .where((Alert.status == PENDING) & Alert.action.not_in(list(book.actions)))
               .execute())
    if orphans:
        log.warning("%d queued alerts named actions no longer in the rules: marked failed",
                    orphans)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="appliance neelix", description=__doc__)
    parser.add_argument("--shard", type=Shard.parse, default=Shard(), help="K/N, e.g. 0/2")
    args, config = start_process(parser, argv)
    book = rule_book(config)
    settings = config.neelix
    state.open_state_when_reachable(state.state_target(config))
    adopt_orphans(book, args.shard)
    secrets = frozenset(a.options["password_env"] for a in book.actions.values()
                        if a.options.get("password_env"))
    context = Context(config.appliance.instance, ingest_host(config), config.ingestor.port,
                      settings.web_url,
                      secrets)
    dispatcher = Dispatcher(book.actions, args.shard.label, context, settings.retry_max_delay)
    stop = StopFlag()
    name = f"neelix-{args.shard.label}"
    sink = NeelixSink(name, book, args.shard, settings.check_interval, settings.history,
                      dispatcher, str(config.appliance.var_dir), str(config.journal.dir))
    log.info("%s: %d rules, %d heartbeats, %d actions, %d maintenance windows from %s", name,
             len(book.rules), len(book.heartbeats), len(book.actions), len(book.maintenance),
             settings.rules)
    dispatcher.start()
    loop = SubscriberLoop("neelix", config.journal.dir, config.ingestor.publish, sink,
                          args.shard, settings.batch_records, settings.batch_delay, stop)
    try:
        loop.run()
    finally:
        dispatcher.stop()
        state.state_db.close()
