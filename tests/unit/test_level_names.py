"""Level names are read the same everywhere (web and API filters, the command line, the
config): any case, WARN and FATAL as logging spells them too."""

from __future__ import annotations

import pytest

from appliance import converters as c
from appliance.store.query import QueryError, parse


@pytest.mark.parametrize(("text", "number"), [
    ("WARN", 30), ("warn", 30), ("Warning", 30), ("error", 40), ("FATAL", 50),
    ("critical", 50), ("debug", 10), ("35", 35)])
def test_query_levels(text, number):
    assert parse({"level": text}).level == number


@pytest.mark.parametrize("text", ["LOUD", "-1", "101", "warnings"])
def test_bad_query_levels_say_so(text):
    with pytest.raises(QueryError, match="level"):
        parse({"level": text})


def test_config_and_rule_levels():
    assert c.log_level(" warn ") == "WARNING"
    assert c.level_number("fatal") == 50
    with pytest.raises(ValueError, match="not a log level"):
        c.log_level("verbose")
