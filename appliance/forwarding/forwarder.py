"""The forwarder: a subscriber that passes this appliance's records (those its filters take)
to one upstream, and moves its cursor only once the upstream has them.

One supervisord program per `[forwarder:NAME]`; `uplink.py` speaks to the upstream (acked
batches to an appliance's relay, or plain SocketHandler frames).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from fnmatch import fnmatchcase
from pathlib import Path
from types import SimpleNamespace

from appliance.errors import ConfigError
from appliance.forwarding.uplink import ApplianceUplink, SocketUplink, UplinkError
from appliance.runtime import Every, StopFlag, backoff, start_process
from appliance.spine import stats
from appliance.spine.record import INDEX
from appliance.spine.subscriber import Deferred, Shard, SubscriberLoop

log = logging.getLogger(__name__)
_LEVELNO, _SYSTEM, _RECEIVED = INDEX["levelno"], INDEX["system_id"], INDEX["received"]
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


class Filter:
    """Which records go upstream: level at least, systems included and not excluded."""

    def __init__(self, level: str, systems: list[str], exclude: list[str]) -> None:
        self.level, self.systems, self.exclude = LEVELS[level], systems, exclude

    def __call__(self, values: list) -> bool:
        if (values[_LEVELNO] or 0) < self.level:
            return False
        system = values[_SYSTEM] or ""
        if self.systems and not any(fnmatchcase(system, p) for p in self.systems):
            return False
        return not any(fnmatchcase(system, p) for p in self.exclude)


class ForwardSink:
    """apply() returns once the upstream has the batch; the cursor file follows."""

    def __init__(self, name: str, uplink: ApplianceUplink | SocketUplink, wanted: Filter,
                 retry_max_delay: float, var_dir: Path, stop: StopFlag) -> None:
        self.name, self.uplink, self.wanted, self.stop = name, uplink, wanted, stop
        self.retry_max_delay, self.var_dir = retry_max_delay, Path(var_dir)
        self.cursor_path = self.var_dir / "forwarder" / f"{name}.cursor"
        self.forwarded = self.skipped = self.failures = self.cursor = 0
        self.oldest_waiting: float | None = None
        self.link_up = True
        self._stats = Every(2.0)

    def load_cursor(self, origin: str) -> int:
        try:
            data = json.loads(self.cursor_path.read_text(encoding="utf-8"))
            self.cursor = int(data[origin]) if isinstance(data, dict) and origin in data else 0
        except FileNotFoundError:
            self.cursor = 0
        except (OSError, ValueError, TypeError) as error:
            raise ConfigError(f"unreadable forwarder cursor ({error}); delete it to forward "
                              "the whole journal again", str(self.cursor_path)) from None
        return self.cursor

    def apply(self, records: list[list], origin: str, last_seq: int) -> None:
        batch = [values for values in records if self.wanted(values)]
        self.skipped += len(records) - len(batch)
        if batch:
            self.oldest_waiting = batch[0][_RECEIVED]
            self._deliver(batch)
        self._save_cursor(origin, last_seq)
        self.forwarded += len(batch)
        self.oldest_waiting = None

    def _deliver(self, batch: list[list]) -> None:
        attempt = 0
        while True:
            try:
                self.uplink.send(batch)
            except UplinkError as error:
                self.failures += 1
                attempt += 1
                if self.stop:
                    raise Deferred(str(error)) from None
                delay = backoff(attempt, self.retry_max_delay, first=0.5)
                if self.link_up or attempt % 10 == 0:
                    log.warning("%s: %s; retrying in %.1fs (attempt %d); the journal keeps "
                                "the records meanwhile", self.name, error, delay, attempt)
                self.link_up = False
                self._wait(delay)
                continue
            if not self.link_up:
                log.info("%s: upstream reached again after %d attempts", self.name, attempt)
                self.link_up = True
            return

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))
            self.tick(False)

    def _save_cursor(self, origin: str, seq: int) -> None:
        self.cursor_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cursor_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({origin: seq}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.cursor_path)
        self.cursor = seq

    def tick(self, live: bool) -> None:
        if not self._stats.due():
            return
        head = _journal_head(self.var_dir)
        stats.write(self.var_dir, f"forwarder-{self.name}", {
            "forwarded": self.forwarded, "skipped": self.skipped, "failures": self.failures,
            "cursor": self.cursor, "behind_records": max(head - self.cursor, 0),
            "behind_seconds": round(time.time() - self.oldest_waiting, 3)
            if self.oldest_waiting else 0.0, "link_up": self.link_up})


def _journal_head(var_dir: Path) -> int:
    """The newest seq in the journal, as the ingestor last published it."""
    next_seq = stats.number((stats.read(var_dir, "ingestor") or {}).get("next_seq"))
    return int(next_seq) - 1 if next_seq else 0


def make_uplink(settings: SimpleNamespace,
                stop: StopFlag) -> ApplianceUplink | SocketUplink:
    if settings.mode == "socket":
        return SocketUplink(settings.upstream, settings.ack_timeout)
    return ApplianceUplink(settings.upstream, settings.ack_timeout, settings.retry_max_delay,
                           settings.server_key, settings.client_key_file,
                           stopping=lambda: bool(stop))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="appliance forwarder", description=__doc__)
    parser.add_argument("name", help="the NAME of a [forwarder:NAME] section")
    args, config = start_process(parser, argv)
    settings = config.forwarders.get(args.name)
    if settings is None:
        raise ConfigError(f"no [forwarder:{args.name}] section; defined: "
                          f"{', '.join(config.forwarders) or 'none'}", str(config.path))
    stop = StopFlag()
    uplink = make_uplink(settings, stop)
    sink = ForwardSink(args.name, uplink,
                       Filter(settings.level, settings.systems, settings.exclude_systems),
                       settings.retry_max_delay, config.appliance.var_dir, stop)
    log.info("forwarder %s: %s mode to %s", args.name, settings.mode, settings.upstream)
    loop = SubscriberLoop(f"forwarder-{args.name}", config.journal.dir,
                          config.ingestor.publish, sink, Shard(), settings.batch_records,
                          settings.batch_delay, stop)
    try:
        loop.run()
    finally:
        uplink.close()
