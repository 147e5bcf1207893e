"""The command transport: a notice handed to a program (argv, no shell) as JSON on stdin and
HERALD_* environment variables."""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import Any

from appliance import converters as c
from appliance.neelix.notice import Notice
from appliance.neelix.transports.base import Context, TransportError

ERROR_TAIL = 300  # characters of the command's stderr kept in the alert's last error


def argv(text: str) -> tuple[str, ...]:
    words = tuple(shlex.split(text))
    if not words:
        raise ValueError("empty command")
    return words


OPTIONS = {"command": argv, "timeout": c.duration}


def send(o: dict[str, Any], notice: Notice, alert_id: int, context: Context) -> None:
    env = {**{k: v for k, v in os.environ.items() if k not in context.secrets},
           "HERALD_ALERT_ID": str(alert_id), "HERALD_EVENT": notice.event,
           "HERALD_SOURCE": notice.source, "HERALD_SYSTEM": notice.system or "",
           "HERALD_SUMMARY": notice.summary}
    try:
        done = subprocess.run(list(o["command"]), input=notice.to_json().encode(),
                              capture_output=True, timeout=o.get("timeout", 30.0), env=env,
                              check=False)
    except FileNotFoundError:
        raise TransportError(f"command not found: {o['command'][0]}", True) from None
    except subprocess.TimeoutExpired:
        raise TransportError(f"command timed out after {o.get('timeout', 30.0)}s") from None
    except OSError as error:
        raise TransportError(f"command failed to start: {error}") from None
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace").strip()
        raise TransportError(f"command exited {done.returncode}: {stderr[-ERROR_TAIL:]}")
