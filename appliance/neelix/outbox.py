"""The outbox's couriers: one thread per action carries its queued alerts (`Alert` rows that
neelix's batches commit) to the action's transport, so a dead SMTP server never holds up a
webhook (nor the rule loop); failures are retried with exponential backoff and recorded.
"""

from __future__ import annotations

import logging
import threading
import time

from peewee import fn

from appliance.neelix.actions import Action
from appliance.neelix.notice import Notice
from appliance.neelix.state import FAILED, PENDING, SENT, Alert, state_db
from appliance.neelix.transports import TRANSPORTS, Context, TransportError
from appliance.runtime import backoff

log = logging.getLogger(__name__)

IDLE_POLL = 1.0


class Courier(threading.Thread):
    """Delivers one action's alerts in order of their id, each when its retry is due."""

    def __init__(self, action: Action, shard: str, context: Context, max_delay: float,
                 stopping: threading.Event) -> None:
        super().__init__(name=f"courier-{action.name}", daemon=True)
        self.action, self.context, self.max_delay = action, context, max_delay
        self.mine = (Alert.status == PENDING) & (Alert.shard == shard) & \
            (Alert.action == action.name)
        self.stopping = stopping
        self.wake = threading.Event()
        self.sent = self.failed = self.retried = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                alert = self._next_due()
                if alert is None:
                    self.wake.wait(self._idle_wait())
                    self.wake.clear()
                    continue
                self.deliver(alert)
            except Exception:  # a bug or a broken state file must not end deliveries silently
                log.exception("%s: delivery loop error; going on in %ss", self.name,
                              IDLE_POLL)
                self.stopping.wait(IDLE_POLL)
        state_db.close()

    def _next_due(self) -> Alert | None:
        """The oldest due alert that no older pending alert of the same rule/heartbeat and
        key is waiting before (a RECOVERED never overtakes its DOWN)."""
        older = Alert.alias()
        waiting = (older.select(older.id).where(
            (older.status == PENDING) & (older.shard == Alert.shard) &
            (older.action == Alert.action) & (older.source == Alert.source) &
            (older.key == Alert.key) & (older.id < Alert.id)))
        return (Alert.select().where(self.mine & (Alert.next_attempt <= time.time()) &
                                     ~fn.EXISTS(waiting))
                .order_by(Alert.id).first())

    def _idle_wait(self) -> float:
        upcoming = (Alert.select(Alert.next_attempt).where(self.mine)
                    .order_by(Alert.next_attempt).first())
        if upcoming is None:
            return IDLE_POLL
        return min(max(upcoming.next_attempt - time.time(), 0.01), IDLE_POLL)

    def deliver(self, alert: Alert) -> None:
        notice = Notice.from_json(alert.notice)
        attempts = alert.attempts + 1
        try:
            try:
                TRANSPORTS[self.action.type].send(self.action.options, notice, alert.id,
                                                  self.context)
            except TransportError:
                raise
            except Exception as error:  # noqa: BLE001 - an odd peer must not stall the queue
                log.exception("%s: unexpected error delivering alert %d", self.name, alert.id)
                raise TransportError(f"{type(error).__name__}: {error}") from error
        except TransportError as error:
            now = time.time()
            gave_up = error.permanent or now - alert.created >= self.action.retry_for or \
                0 < self.action.retries <= attempts
            if gave_up:
                self.failed += 1
                log.error("%s: alert %d (%s) not delivered, giving up after %d attempt(s): %s",
                          self.name, alert.id, alert.summary[:80], attempts, error)
                Alert.update(status=FAILED, attempts=attempts, last_error=str(error)[:500]) \
                    .where(Alert.id == alert.id).execute()
                return
            delay = backoff(attempts, self.max_delay)
            self.retried += 1
            log.warning("%s: alert %d not delivered (attempt %d): %s; retrying in %.1fs",
                        self.name, alert.id, attempts, error, delay)
            Alert.update(attempts=attempts, last_error=str(error)[:500],
                         next_attempt=now + delay).where(Alert.id == alert.id).execute()
            return
        self.sent += 1
        log.info("%s: alert %d delivered: %s", self.name, alert.id, alert.summary[:120])
        Alert.update(status=SENT, attempts=attempts, sent=time.time(), last_error=None) \
            .where(Alert.id == alert.id).execute()


class Dispatcher:
    """The couriers of every action in the rule book."""

    def __init__(self, actions: dict[str, Action], shard: str, context: Context,
                 max_delay: float) -> None:
        self.stopping = threading.Event()
        self.couriers = {name: Courier(action, shard, context, max_delay, self.stopping)
                         for name, action in actions.items()}

    def start(self) -> None:
        for courier in self.couriers.values():
            courier.start()

    def wake(self) -> None:
        for courier in self.couriers.values():
            courier.wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Let each courier finish the delivery in hand; an alert cut off stays pending."""
        self.stopping.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for courier in self.couriers.values():
            courier.join(max(deadline - time.monotonic(), 0.1))

    def counters(self) -> dict[str, int]:
        return {"sent": sum(c.sent for c in self.couriers.values()),
                "failed": sum(c.failed for c in self.couriers.values()),
                "retried": sum(c.retried for c in self.couriers.values())}
