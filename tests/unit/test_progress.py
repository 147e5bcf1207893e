"""The progress bar of long operator work: drawn in place on a terminal, never elsewhere."""

from __future__ import annotations

import io

from appliance.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_drawn_on_a_terminal_and_ended_with_a_newline():
    screen = Terminal()
    bar = Progress("purging", 2000, screen)
    bar.update(1000)
    bar.finish()
    text = screen.getvalue()
    assert text.startswith("\rpurging [" + "#" * 15 + "." * 15 + "]  50% 1,000/2,000")
    assert text.count("1,000/2,000") == 2  # finish() redraws the last count, then a newline
    assert text.endswith("\n") and text.count("\r") == 2


def test_silent_when_not_a_terminal():
    log = io.StringIO()
    bar = Progress("importing", 10, log)
    bar.update(5)
    bar.finish()
    assert log.getvalue() == "" and not bar.shown
