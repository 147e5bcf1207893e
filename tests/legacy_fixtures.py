"""Old ps.herald databases built with plain sqlite3, as ps_bridge left them: the `log` table of
its SQLAlchemy model, string timestamps, "None" for every missing value.

ps_bridge lowered each attribute name, renamed msg to message, stamped `created` with its own
clock (datetime.now(), '%Y-%m-%d %H:%M:%S.%f') and stored str(None) for missing values; the
client's own time survives in asctime when its formatter made one ('%Y-%m-%d %H:%M:%S,mmm').
"""

from __future__ import annotations

import datetime
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

ZONE = "Europe/Berlin"  # the zone the old hosts wrote their naive times in (--timezone)
SYSTEM = "legacy-app"

# The DDL SQLAlchemy emits for ps.herald's `Log` model (sqlite_autoincrement), plus a column
# a later bridge added that the appliance has no column for.
PS_BRIDGE_DDL = """
CREATE TABLE log (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    created VARCHAR, threadname VARCHAR, api_version VARCHAR, package_version VARCHAR,
    name VARCHAR, relativecreated FLOAT, process INTEGER, args VARCHAR, module VARCHAR,
    funcname VARCHAR, levelno INTEGER, processname VARCHAR, thread BIGINT, msecs FLOAT,
    message VARCHAR, exc_text VARCHAR, exc_info VARCHAR, stack_info VARCHAR,
    pathname VARCHAR, filename VARCHAR, asctime VARCHAR, levelname VARCHAR, lineno INTEGER,
    produkt_id VARCHAR(10), system_id VARCHAR(10), sub_system_id VARCHAR(10),
    sub_sub_system_id VARCHAR(10), user_spec_1 VARCHAR(10), user_spec_2 VARCHAR(10),
    summary VARCHAR(70), request_id VARCHAR
);
CREATE TABLE heartbeat (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, newest_heartbeat VARCHAR,
    system_id VARCHAR(10) UNIQUE
);
CREATE TABLE user (id INTEGER NOT NULL PRIMARY KEY, username VARCHAR(64));
"""

TRACEBACK = """Traceback (most recent call last):
  File "/opt/billing/run.py", line 12, in settle
    total = amount / count
ZeroDivisionError: division by zero"""


def epoch(text: str, zone: str = ZONE) -> float:
    """What an old naive time string means, as UTC epoch seconds."""
    moment = datetime.datetime.fromisoformat(text)
    return moment.replace(tzinfo=ZoneInfo(zone)).timestamp()


def _row(**values: object) -> dict:
    """A row as ps_bridge stored it: every field the client did not send is "None"."""
    row = {name: "None" for name in (
        "created", "threadname", "api_version", "package_version", "name", "args", "module",
        "funcname", "processname", "message", "exc_text", "exc_info", "stack_info",
        "pathname", "filename", "levelname", "produkt_id", "system_id", "sub_system_id",
        "sub_sub_system_id", "user_spec_1", "user_spec_2", "summary")}
    row.update(args="", relativecreated=1234.5, process=4711, levelno=20, levelname="INFO",
               thread=140735286908888, msecs=100.0, threadname="MainThread",
               processname="MainProcess", module="billing", funcname="settle",
               pathname="/opt/billing/billing.py", filename="billing.py", lineno=42,
               name="billing", system_id=SYSTEM)
    row.update(values)
    return row


# message → (row, what the appliance must show). `created` is the client's time (asctime,
# else ps_bridge's stamp), `received` ps_bridge's stamp.
PS_BRIDGE_ROWS: list[tuple[dict, dict]] = [
    (_row(message="disk quota nearly exhausted on volume7", created="2023-04-01 12:00:00.523456",
          asctime="2023-04-01 12:00:00,100", sub_system_id="host-a", sub_sub_system_id="eu",
          produkt_id="HR2", user_spec_1="tenant-9", user_spec_2="None",
          package_version="4.2.1", api_version="1.2.44", request_id="req-77"),
     {"created": epoch("2023-04-01 12:00:00.100"), "received": epoch("2023-04-01 12:00:00.523456"),
      "levelno": 20, "levelname": "INFO", "logger": "billing", "sub_system_id": "host-a",
      "sub_sub_system_id": "eu", "produkt_id": "HR2", "user_spec_1": "tenant-9",
      "user_spec_2": None, "package_version": "4.2.1", "api_version": "1.2.44",
      "func_name": "settle", "lineno": 42, "process": 4711, "thread": 140735286908888,
      "thread_name": "MainThread", "process_name": "MainProcess", "module": "billing",
      "filename": "billing.py", "pathname": "/opt/billing/billing.py", "exc_text": None,
      "stack_info": None, "extra": {"request_id": "req-77"}}),
    # ps_bridge without the client's asctime: its own stamp is all there is.
    (_row(message="settlement failed for batch 17", created="2023-04-01 12:05:30.250000",
          levelno=40, levelname="ERROR", exc_text=TRACEBACK, sub_system_id="host-b",
          lineno="None", process=""),
     {"created": epoch("2023-04-01 12:05:30.25"), "received": epoch("2023-04-01 12:05:30.25"),
      "levelno": 40, "levelname": "ERROR", "exc_text": TRACEBACK, "lineno": None,
      "process": None, "sub_system_id": "host-b", "produkt_id": None, "extra": None}),
    # A formatter with a datefmt of its own: asctime without the fraction, msecs adds it.
    (_row(message="nightly export written", created="2023-04-01 23:59:59.999000",
          asctime="2023-04-01 23:59:58", msecs=250.0, levelno="None", levelname="WARNING"),
     {"created": epoch("2023-04-01 23:59:58.25"), "received": epoch("2023-04-01 23:59:59.999"),
      "levelno": 30, "levelname": "WARNING"}),
    # Times nobody can read: created is NULL (counted), received the import's time.
    (_row(message="clock was broken here", created="gestern", asctime="bald"),
     {"created": None, "levelno": 20}),
]
# ps_bridge's init_database() wrote one such row at every start: no record, nothing to import.
PLACEHOLDER = {"produkt_id": "None", "system_id": "None", "sub_system_id": "None",
               "sub_sub_system_id": "None", "user_spec_1": "None", "user_spec_2": "None",
               "summary": "None"}


def ps_bridge_db(path: Path, filler: int = 0, samples: bool = True) -> Path:
    """The old database: a placeholder row, the rows above (with `samples`), then `filler`
    plain INFO rows (one a second from 2023-04-02 00:00 on) for scale."""
    db = sqlite3.connect(path)
    with db:
        db.executescript(PS_BRIDGE_DDL)
        _insert(db, [PLACEHOLDER] + [row for row, _ in PS_BRIDGE_ROWS if samples])
        start = datetime.datetime(2023, 4, 2)
        rows = []
        for n in range(filler):
            moment = start + datetime.timedelta(seconds=n)
            rows.append(_row(message=f"filler record {n}", system_id=f"{SYSTEM}-bulk",
                             created=f"{moment:%Y-%m-%d %H:%M:%S.%f}",
                             asctime=f"{moment:%Y-%m-%d %H:%M:%S},000"))
            if len(rows) == 5000:
                _insert(db, rows)
                rows = []
        _insert(db, rows)
        db.execute("INSERT INTO heartbeat (newest_heartbeat, system_id) VALUES (?, ?)",
                   ("2023-04-01 12:00:00", SYSTEM))
    db.close()
    return path


def _insert(db: sqlite3.Connection, rows: list[dict]) -> None:
    for names in dict.fromkeys(tuple(row) for row in rows):  # in order: ids are old ids
        same = [row for row in rows if tuple(row) == names]
        db.executemany(f"INSERT INTO log ({', '.join(names)}) "
                       f"VALUES ({', '.join('?' * len(names))})",
                       [tuple(row[n] for n in names) for row in same])


# Another layout of the same era: its own names (upper-case ps.basic fields, funcName, msg,
# level, logger, traceback), a separate `received`, and every timestamp form the old tools
# wrote. message → (timestamp, received, created expected, received expected).
VARIANT_DDL = """
CREATE TABLE LOG (
    ID INTEGER PRIMARY KEY, timestamp, received, level VARCHAR, logger VARCHAR, msg TEXT,
    traceback TEXT, funcName VARCHAR, lineno VARCHAR, SYSTEM_ID VARCHAR, SUB_SYSTEM_ID VARCHAR,
    PRODUKT_ID VARCHAR, taskName VARCHAR, hostname VARCHAR
)
"""
VARIANT_ROWS: list[tuple[str, object, object, float | None, float]] = [
    ("iso with offset", "2023-04-01T12:00:00.250+02:00", "2023-04-01 12:00:01,123",
     1680343200.25, epoch("2023-04-01 12:00:01.123")),
    ("iso utc", "2023-04-01T10:00:00Z", 1680343201.5, 1680343200.0, 1680343201.5),
    ("epoch text", "1680343200.5", "1680343202", 1680343200.5, 1680343202.0),
    ("epoch real", 1680343200.75, "None", 1680343200.75, 1680343200.75),
    ("epoch millis", 1680343200123, "", 1680343200.123, 1680343200.123),
    ("naive T", "2023-04-01T12:00:00", "2023-04-01 12:00:00.000001",
     epoch("2023-04-01 12:00:00"), epoch("2023-04-01 12:00:00.000001")),
]


def variant_db(path: Path) -> Path:
    db = sqlite3.connect(path)
    with db:
        db.executescript(VARIANT_DDL)
        db.executemany(
            "INSERT INTO LOG (timestamp, received, level, logger, msg, traceback, funcName, "
            "lineno, SYSTEM_ID, SUB_SYSTEM_ID, PRODUKT_ID, taskName, hostname) "
            "VALUES (?, ?, 'ERROR', 'variant.logger', ?, 'None', 'handle', '7', 'variant', "
            "'None', 'P1', 'Task-3', 'web01')",
            [(stamp, received, f"variant {message}") for message, stamp, received, _, _
             in VARIANT_ROWS])
    db.close()
    return path
