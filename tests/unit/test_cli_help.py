"""`appliance --help` lists every command with a description, operator commands apart from the
programs supervisord runs; an unknown command says so."""

from __future__ import annotations

import subprocess
import sys

from appliance.cli import OPERATOR_COMMANDS, PROGRAMS


def appliance(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *args], capture_output=True,
                          text=True, timeout=60)


def test_help_lists_every_command_with_its_description_in_two_groups():
    shown = appliance("--help")
    assert shown.returncode == 0
    text = shown.stdout
    operators, _, programs = text.partition("programs run by supervisord")
    for name, command in OPERATOR_COMMANDS.items():
        assert f"  {name} " in operators and command.help in operators, name
    for name, command in PROGRAMS.items():
        assert f"  {name} " in programs and command.help in programs, name
    assert "decoder" not in text  # internal


def test_an_unknown_command_is_named():
    wrong = appliance("strat")
    assert wrong.returncode == 2 and "unknown command 'strat'" in wrong.stderr
    assert "operator commands:" in wrong.stderr
