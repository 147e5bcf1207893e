"""What every appliance process shares: its log format, its stop flag, its exit codes.

`cli.py` runs each process's `main()` through `run_process`, the one place that turns a
ConfigError into a clear message and exit code for supervisord's log.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import time
from collections.abc import Callable

from appliance.config import Config
from appliance.config import load as load_config
from appliance.errors import EXIT_CONFIG, ApplianceError, ConfigError

log = logging.getLogger("appliance")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, force=True,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")


class StopFlag:
    """Set by SIGTERM/SIGINT; loops check it and finish the work in hand before exiting."""

    def __init__(self) -> None:
        self.stopping = False
        self.signal_name = ""
        signal.signal(signal.SIGTERM, self._set)
        signal.signal(signal.SIGINT, self._set)

    def _set(self, signum: int, _frame: object) -> None:
        self.stopping = True
        self.signal_name = signal.Signals(signum).name

    def __bool__(self) -> bool:
        return self.stopping


def run_process(name: str, body: Callable[[], None]) -> int:
    """Run a process body; map config and appliance errors to exit codes with one log line."""
    try:
        body()
    except ConfigError as error:
        print(f"{name}: configuration error: {error}", file=sys.stderr, flush=True)
        # supervisord counts an exit within startsecs as a failed start; after startretries
        # the program is FATAL and this line is in its stderr log.
        time.sleep(0.1)
        return EXIT_CONFIG
    except ApplianceError as error:
        log.critical("%s stopped: %s", name, error)
        return 1
    return 0


class Every:
    """True at most once per `interval` seconds: for periodic work inside a busy loop."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = time.monotonic() + interval

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.interval
        return True


def backoff(attempts: int, max_delay: float, first: float = 1.0) -> float:
    """Seconds before try number `attempts` + 1: first, doubling up to max_delay, ±20%
    jitter (so many clients do not retry in step)."""
    delay = min(first * 2 ** max(attempts - 1, 0), max_delay)
    return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret


def start_process(parser: argparse.ArgumentParser,
                  argv: list[str] | None) -> tuple[argparse.Namespace, Config]:
    """What every process's main() does first: -c CONFIG, load and check it, set up logs."""
    parser.add_argument("-c", "--config", required=True, help="path of appliance.ini")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    setup_logging(config.appliance.log_level)
    return args, config


def command_parser(name: str, description: str) -> argparse.ArgumentParser:
    """An operator command's parser, with -c pointing at the instance's appliance.ini."""
    parser = argparse.ArgumentParser(prog=f"appliance {name}", description=description)
    parser.add_argument("-c", "--config", default="conf/appliance.ini",
                        help="the instance's appliance.ini (default: %(default)s)")
    return parser


def typed(convert: Callable[[str], object]) -> Callable[[str], object]:
    """A converter as an argparse type (its ValueError becomes a usage error)."""
    def checked(text: str) -> object:
        try:
            return convert(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return checked
