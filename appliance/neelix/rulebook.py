"""neelix's rules file (conf/neelix.ini) read into plain, validated data: rules, heartbeats,
actions and maintenance windows. The old per-system format is translated into the same data.

Every section and key is checked; a mistake stops neelix with file, section and key named.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from appliance import converters as c
from appliance.config import ensure_live
from appliance.errors import ConfigError
from appliance.neelix.actions import Action, Defaults, parse_action
from appliance.neelix.maintenance import Maintenance, parse_maintenance
from appliance.spine.record import COLUMNS

ALIASES = {"system": "system_id", "host": "sub_system_id"}
# Rule keys that match a field against a list of glob patterns.
PATTERN_KEYS = {"system": "system_id", "host": "sub_system_id", "logger": "logger",
                "package_version": "package_version"}


@dataclass(frozen=True)
class Rule:
    name: str
    patterns: tuple[tuple[str, tuple[str, ...]], ...]  # (column, globs)
    fields: tuple[tuple[str, str], ...]                 # (column or extra key, exact value)
    level: int | None
    message: Any  # compiled regex or None
    traceback: Any
    threshold: int
    window: float
    key: tuple[str, ...]
    realert: float
    actions: tuple[str, ...]
    # The old format's MSG: a regex searched in the message, exc_text and stack_info alike,
    # because its users wrote `MSG = Traceback` to catch logger.exception() records.
    anywhere: Any = None


@dataclass(frozen=True)
class Heartbeat:
    name: str
    systems: tuple[str, ...]   # listed names: watched from neelix's start
    patterns: tuple[str, ...]  # globs (* is every system): watched once seen
    silence: float
    grace: float
    remind: float
    actions: tuple[str, ...]
    forget: float = 7 * 86400.0  # a system matched by a pattern, silent this long, is dropped

    def watches(self, system: str | None) -> bool:
        return system is not None and (system in self.systems or any(
            fnmatchcase(system, pattern) for pattern in self.patterns))


@dataclass(frozen=True)
class RuleBook:
    rules: tuple[Rule, ...] = ()
    heartbeats: tuple[Heartbeat, ...] = ()
    actions: dict[str, Action] = field(default_factory=dict)
    maintenance: tuple[Maintenance, ...] = ()


def _globs(text: str) -> tuple[str, ...]:
    values = tuple(c.word_list(text))
    if not values:
        raise ValueError("give at least one value")
    return values


def _column(text: str) -> str:
    name = ALIASES.get(text.strip(), text.strip())
    if name not in COLUMNS:
        raise ValueError(f"{text.strip()!r} is not a record field")
    return name


def _key(text: str) -> tuple[str, ...]:
    return tuple(_column(word) for word in c.word_list(text)) or ("system_id",)


def _threshold(text: str) -> tuple[int, float]:
    """'5 in 10m' → (5, 600.0)."""
    count, sep, window = text.partition(" in ")
    if not sep:
        raise ValueError(f"{text!r} is not 'N in DURATION', e.g. 5 in 10m")
    return c.positive_int(count), c.duration(window)


RULE_KEYS = {"level": c.level_number, "message": c.regex, "traceback": c.regex,
             "threshold": _threshold, "key": _key, "realert": c.duration,
             "actions": c.word_list, **{k: _globs for k in PATTERN_KEYS}}
HEARTBEAT_KEYS = {"systems": c.word_list, "silence": c.at_least(c.seconds, 1.0, "1s"),
                  "grace": c.seconds, "remind": c.seconds, "actions": c.word_list,
                  "forget": c.at_least(c.seconds, 60.0, "1m")}
LEGACY_KEYS = {"mail_to": c.address_list, "msg": c.text,
               "age": c.at_least(c.product, 1, "1 second")}


class _Reader:
    """Turns one section's raw text into typed values, naming file/section/key on error."""

    def __init__(self, path: Path, section: str, items: dict[str, str]) -> None:
        self.path, self.section, self.items = path, section, items

    def typed(self, known: dict[str, Any]) -> dict[str, Any]:
        """Keys are case-insensitive (the old format wrote them upper-case); only the NAME of
        field.NAME keeps its case, as extra attributes do."""
        values: dict[str, Any] = {}
        seen: set[str] = set()
        for key, text in self.items.items():
            name = key.lower()
            if name.startswith("field.") and "field." in known:
                name = "field." + key[len("field."):]
            if name in seen:
                self.fail("given twice (keys are case-insensitive)", key)
            seen.add(name)
            if name.startswith("field.") and "field." in known:
                values.setdefault("field.", []).append((self._field(key), text.strip()))
                continue
            if name not in known:
                shown = ", ".join(k + "NAME" if k.endswith(".") else k for k in known)
                self.fail(f"unknown key; known here: {shown}", key)
            try:
                values[name] = known[name](text)
            except ValueError as error:
                self.fail(str(error), key)
        return values

    def _field(self, key: str) -> str:
        name = key[len("field."):]
        if not name:
            self.fail("field. needs a field name, e.g. field.produkt_id", key)
        return ALIASES.get(name, name)

    def fail(self, message: str, key: str = "") -> None:
        raise ConfigError(message, str(self.path), self.section, key)


def load(path: str | Path, defaults: Defaults | None = None) -> RuleBook:
    """Read and check a rules file (an empty file is an empty rule book)."""
    path, defaults = Path(path), defaults or Defaults()
    ensure_live(path)
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise ConfigError("no rules file here (`appliance init` writes a starter; an empty "
                          "file means no rules)", str(path)) from None
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", str(path)) from None
    except configparser.DuplicateOptionError as error:
        raise ConfigError(f"given twice (line {error.lineno})", str(path), error.section,
                          error.option) from None
    except configparser.DuplicateSectionError as error:
        raise ConfigError(f"section given twice (line {error.lineno})", str(path),
                          error.section) from None
    except configparser.Error as error:
        raise ConfigError(f"not a valid INI file: {error}", str(path)) from None
    if parser.defaults():
        raise ConfigError("a [DEFAULT] section is not supported", str(path), "DEFAULT")
    return parse(parser, path, defaults)


def parse(parser: configparser.ConfigParser, path: Path, defaults: Defaults) -> RuleBook:
    rules: list[Rule] = []
    heartbeats: list[Heartbeat] = []
    actions: dict[str, Action] = {}
    windows: list[Maintenance] = []
    wanted: list[tuple[_Reader, tuple[str, ...]]] = []
    for section in parser.sections():
        reader = _Reader(path, section, dict(parser.items(section)))
        kind, colon, name = (part.strip() for part in section.partition(":"))
        if not colon:
            _legacy(reader, kind, defaults, rules, heartbeats, actions)
            _unique(reader, rules, heartbeats, actions)
            continue
        if not name:
            reader.fail(f"[{kind}:NAME] needs a name")
        if kind == "rule":
            rules.append(_rule(reader, name))
            wanted.append((reader, rules[-1].actions))
        elif kind == "heartbeat":
            heartbeats.append(_heartbeat(reader, name))
            wanted.append((reader, heartbeats[-1].actions))
        elif kind == "action":
            if name in actions:
                reader.fail(f"an action called {name!r} is already defined (the old format's "
                            "[SYSTEM] sections define SYSTEM-mail)")
            actions[name] = parse_action(reader, name, defaults)
        elif kind == "maintenance":
            windows.append(parse_maintenance(reader, name))
        else:
            reader.fail("unknown section kind; use [rule:NAME], [heartbeat:NAME], "
                        "[action:NAME], [maintenance:NAME] or the old [SYSTEM_ID]")
        _unique(reader, rules, heartbeats, actions)
    for reader, names in wanted:
        for name in names:
            if name not in actions:
                reader.fail(f"unknown action {name!r}; defined: {', '.join(actions) or 'none'}",
                            "actions")
    return RuleBook(tuple(rules), tuple(heartbeats), actions, tuple(windows))


def _unique(reader: _Reader, rules: list[Rule], heartbeats: list[Heartbeat],
            actions: dict[str, Action]) -> None:
    """The section just read must not reuse a rule's or heartbeat's name."""
    for kind, items in (("rule", rules), ("heartbeat", heartbeats)):
        names = [item.name for item in items]
        if len(set(names)) < len(names):
            reader.fail(f"a {kind} called {names[-1]!r} is already defined (an old-format "
                        f"[SYSTEM] section defines a rule and a heartbeat named SYSTEM)")


def _rule(reader: _Reader, name: str) -> Rule:
    v = reader.typed({**RULE_KEYS, "field.": None})
    conditions = {"level", "message", "traceback", "field.", *PATTERN_KEYS}
    if not conditions & set(v):
        reader.fail("a rule needs at least one condition (system, host, logger, "
                    "package_version, level, message, traceback or field.NAME)")
    if not v.get("actions"):
        reader.fail("a rule needs actions = NAME[, NAME…]", "actions")
    count, window = v.get("threshold", (1, 0.0))
    return Rule(name=name,
                patterns=tuple((PATTERN_KEYS[k], v[k]) for k in PATTERN_KEYS if k in v),
                fields=tuple(v.get("field.", ())), level=v.get("level"),
                message=v.get("message"), traceback=v.get("traceback"),
                threshold=count, window=window, key=v.get("key", ("system_id",)),
                realert=v.get("realert", 600.0), actions=tuple(v["actions"]))


def _heartbeat(reader: _Reader, name: str) -> Heartbeat:
    v = reader.typed(HEARTBEAT_KEYS)
    for key in ("systems", "silence", "actions"):
        if not v.get(key):
            reader.fail(f"a heartbeat needs {key}", key)
    listed = tuple(s for s in v["systems"] if not any(ch in s for ch in "*?["))
    patterns = tuple(s for s in v["systems"] if s not in listed)
    return Heartbeat(name=name, systems=listed, patterns=patterns, silence=v["silence"],
                     grace=v.get("grace", 0.0), remind=v.get("remind", 0.0),
                     actions=tuple(v["actions"]), forget=v.get("forget", 7 * 86400.0))


def _legacy(reader: _Reader, system: str, defaults: Defaults, rules: list[Rule],
            heartbeats: list[Heartbeat], actions: dict[str, Action]) -> None:
    """The old neelix's [SYSTEM_ID] MAIL_TO= MSG= AGE= section, as a rule and a heartbeat."""
    v = reader.typed(LEGACY_KEYS)
    if "msg" in v and not v["msg"]:
        reader.fail("MSG is empty: leave it out to mail on silence only", "MSG")
    if "mail_to" not in v:
        reader.fail("an old-format system section needs MAIL_TO (or use [rule:NAME], "
                    "[heartbeat:NAME], [action:NAME])", "MAIL_TO")
    action = f"{system}-mail"
    if action in actions:
        reader.fail(f"an action called {action!r} is already defined; this section needs "
                    "that name for its MAIL_TO")
    actions[action] = Action(action, "mail", {"to": v["mail_to"], "host": defaults.smtp_host,
                                              "port": defaults.smtp_port,
                                              "from": defaults.mail_from},
                             defaults.retry_for)
    if v.get("msg"):
        rules.append(Rule(name=system, patterns=(("system_id", (system,)),), fields=(),
                          level=None, message=None, traceback=None,
                          threshold=1, window=0.0, key=("system_id",), realert=600.0,
                          actions=(action,), anywhere=re.compile(re.escape(v["msg"]))))
    if v.get("age"):
        heartbeats.append(Heartbeat(name=system, systems=(system,), patterns=(),
                                    silence=float(v["age"]),
                                    grace=0.0, remind=0.0, actions=(action,)))
