"""Heartbeats: which systems have gone silent (DOWN), came back (RECOVERED), or are still
down (reminders). A `Pulse` per heartbeat+system; time is passed in, never read here.

neelix feeds every record's system and receive time to `seen`, and calls `check` on its
schedule; the dry run does the same over stored records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from appliance.neelix.notice import Notice
from appliance.neelix.rulebook import Heartbeat


@dataclass
class Pulse:
    """One system's liveness under one heartbeat."""

    last_seen: float           # newest record's receive time (or when watching began)
    down_since: float | None = None  # when the silence passed the allowed age
    notified: float = 0.0      # last DOWN or reminder notice
    seen: bool = True          # False: a listed system that has not sent a record yet


class HeartbeatWatch:
    """Every (heartbeat, system) this shard watches; `dirty` names the states to save."""

    def __init__(self, heartbeats: tuple[Heartbeat, ...],
                 owns: Callable[[str | None], bool]) -> None:
        self.heartbeats = {beat.name: beat for beat in heartbeats}
        self.owns = owns
        self.pulses: dict[tuple[str, str], Pulse] = {}
        self.dirty: set[tuple[str, str]] = set()
        self.forgotten: set[tuple[str, str]] = set()  # dropped while down: close incidents

    def start(self, now: float) -> None:
        """Listed systems that never sent a record are watched from now on; states of
        heartbeats or systems no longer in the rules are forgotten."""
        for key in [k for k in self.pulses if k[0] not in self.heartbeats
                    or not self.heartbeats[k[0]].watches(k[1])]:
            del self.pulses[key]
            self.dirty.add(key)
        for heartbeat in self.heartbeats.values():
            for system in heartbeat.systems:
                if self.owns(system) and (heartbeat.name, system) not in self.pulses:
                    self.pulses[(heartbeat.name, system)] = Pulse(now, seen=False)
                    self.dirty.add((heartbeat.name, system))

    def seen(self, system: str | None, when: float) -> list[Notice]:
        notices = []
        for heartbeat in self.heartbeats.values():
            if not heartbeat.watches(system):
                continue
            assert system is not None
            key = (heartbeat.name, system)
            beat = self.pulses.get(key)
            if beat is None:
                self.pulses[key] = Pulse(when)
                self.dirty.add(key)
                continue
            if when <= beat.last_seen and beat.seen:
                continue
            beat.last_seen, beat.seen = max(beat.last_seen, when), True
            self.dirty.add(key)
            if beat.down_since is not None:
                notices.append(Notice("recovered", heartbeat.name, system, system, when,
                                      heartbeat.actions, since=beat.down_since))
                beat.down_since, beat.notified = None, 0.0
        return notices

    def check(self, now: float, quiet: Callable[[str, float], bool]) -> list[Notice]:
        """DOWN for every watched system silent past silence + grace (unless a maintenance
        window or snooze covers it: then DOWN waits until it ends); reminders while down."""
        notices = []
        for (name, system), beat in list(self.pulses.items()):
            heartbeat = self.heartbeats[name]
            if system not in heartbeat.systems and now - beat.last_seen > heartbeat.forget:
                # Seen through a pattern only (e.g. a run id in SYSTEM_ID): not watched
                # forever, so the state stays bounded.
                del self.pulses[(name, system)]
                self.dirty.add((name, system))
                if beat.down_since is not None:
                    self.forgotten.add((name, system))
                continue
            due = beat.last_seen + heartbeat.silence + heartbeat.grace
            if beat.down_since is None:
                if now >= due and not quiet(system, now):
                    beat.down_since, beat.notified = due, now
                    self.dirty.add((name, system))
                    notices.append(Notice("down", name, system, system, due,
                                          heartbeat.actions, since=beat.last_seen))
            elif heartbeat.remind and now - beat.notified >= heartbeat.remind:
                beat.notified = now
                self.dirty.add((name, system))
                notices.append(Notice("reminder", name, system, system, now,
                                      heartbeat.actions, since=beat.last_seen))
        return notices
