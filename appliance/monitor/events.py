"""A supervisord event listener: turns a program's unexpected exit or FATAL state into an
alert record in the appliance's own table, so it reports on itself where people look.

Runs as [eventlistener:events]; speaks supervisord's listener protocol on stdin/stdout, logs
to stderr, and keeps alerts it could not deliver (the ingestor may be the one that died).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import BinaryIO, TextIO

from appliance import ports
from appliance.config import ingest_host
from appliance.runtime import start_process
from appliance.spine.emit import send_record_frame

log = logging.getLogger(__name__)

EVENTS_LOGGER = "appliance.events"
SYSTEM_ID = "herald"
THROTTLE = 60.0   # seconds: one "exited" alert per program at most, then a count
PENDING = 1000    # alerts kept while the ingestor is away
SEND_TIMEOUT = 2.0  # a stalled ingestor must not hold the listener (events queue meanwhile)


def parse(text: str) -> dict[str, str]:
    """'key:value key:value …' → dict (supervisord's header and payload format)."""
    return dict(token.split(":", 1) for token in text.split() if ":" in token)


class Watch:
    """Decides which events become alert records (pure: time is passed in)."""

    def __init__(self) -> None:
        self.last_exit: dict[str, float] = {}
        self.held: dict[str, int] = {}

    def alert(self, event: str, payload: dict[str, str], now: float) -> tuple[int, str] | None:
        group, name = payload.get("groupname", "?"), payload.get("processname", "?")
        program = name if group == name else f"{group}:{name}"
        if event == "PROCESS_STATE_FATAL":
            return logging.CRITICAL, (f"{program} is FATAL: it kept exiting while starting "
                                      f"and supervisord gave up; see its log and "
                                      f"`supervisorctl start {program}` once fixed")
        if event == "PROCESS_STATE_EXITED" and payload.get("expected") == "0":
            if now - self.last_exit.get(program, -THROTTLE) < THROTTLE:
                self.held[program] = self.held.get(program, 0) + 1
                return None
            self.last_exit[program] = now
            more = self.held.pop(program, 0)
            note = f" ({more} more unexpected exits in the minute before)" if more else ""
            return logging.ERROR, (f"{program} exited unexpectedly (pid {payload.get('pid')}, "
                                   f"was {payload.get('from_state')}); supervisord restarts "
                                   f"it{note}")
        return None


def listen(stdin: BinaryIO, stdout: TextIO, deliver: Callable[[int, str], None],
           watch: Watch) -> None:
    pending: deque[tuple[int, str]] = deque(maxlen=PENDING)
    last_error = ""
    while True:
        stdout.write("READY\n")
        stdout.flush()
        line = stdin.readline()
        if not line:
            return  # supervisord went away
        header = parse(line.decode("utf-8", "replace"))
        # len counts bytes: read bytes, then decode.
        payload = parse(stdin.read(int(header.get("len", 0))).decode("utf-8", "replace"))
        found = watch.alert(header.get("eventname", ""), payload, time.time())
        if found:
            log.warning("%s", found[1])
            pending.append(found)
        while pending:
            level, message = pending[0]
            try:
                deliver(level, message)
            except OSError as error:
                if str(error) != last_error:  # TICK_5 retries: say each new reason once
                    log.warning("alert kept for later (%d waiting): %s", len(pending), error)
                last_error = str(error)
                break
            pending.popleft()
            last_error = ""
        stdout.write("RESULT 2\nOK")
        stdout.flush()


def check_own_ingestor(port: int, supervisor_pid: int) -> None:
    """Raise OSError unless the process listening on `port` is a child of our supervisord.
    A second instance started on taken ports must not report "ingestor is FATAL" into the
    first, healthy one that holds them."""
    held = ports.holders(port, "tcp")
    if not any(ports.parent_pid(holder.pid) == supervisor_pid for holder in held):
        by = ", ".join(map(str, held)) or "no process of ours"
        raise OSError(f"the ingest port {port} is held by {by}, not by this instance's "
                      f"ingestor")


def main(argv: list[str] | None = None) -> None:
    _args, config = start_process(
        argparse.ArgumentParser(prog="appliance events", description=__doc__), argv)
    host, port = ingest_host(config), config.ingestor.port
    instance, stage = config.appliance.instance, config.stage.name
    supervisor_pid = os.getppid()  # supervisord runs the listener and the ingestor alike

    def deliver(level: int, message: str) -> None:
        check_own_ingestor(port, supervisor_pid)
        send_record_frame(host, port, EVENTS_LOGGER, level, f"{instance} ({stage}): {message}",
                          {"SYSTEM_ID": SYSTEM_ID, "alert_event": "supervisor",
                           "instance": instance, "stage": stage},
                          timeout=SEND_TIMEOUT)

    listen(sys.stdin.buffer, sys.stdout, deliver, Watch())
