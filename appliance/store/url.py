"""Where the herald store lives: `[store] url` parsed into a StoreUrl (engine, SQLite path or
PostgreSQL connection string, the password from an environment variable or a file).

Every process that touches records or neelix's shared state reads its StoreUrl from here;
`display` is the URL without its password, the only form that is ever logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from appliance.errors import ApplianceError, ConfigError

SQLITE, POSTGRESQL = "sqlite", "postgresql"
SCHEMES = {"sqlite": SQLITE, "postgresql": POSTGRESQL, "postgres": POSTGRESQL}
CONNECT_TIMEOUT = "10"  # seconds; libpq's default waits forever for a host that drops packets


class StoreUnavailable(ApplianceError):
    """The database cannot be reached or refuses us (server down, wrong password, no such
    database): one line naming the URL without the password. `status` is the web's answer."""

    status = 503


class SchemaTooNew(ConfigError):
    """The database was made or upgraded by a newer appliance: this one must not touch it
    (a ConfigError: the process stops with exit 78 instead of crash-looping)."""

    def __init__(self, display: str, found: int, known: int) -> None:
        super().__init__(f"the store {display} has schema version {found}; this appliance "
                         f"knows up to {known}: upgrade the appliance (pip install -U) on "
                         "this host before running it against that database")


class MissingTable(StoreUnavailable):
    """The database is there but a table is not (its writer or neelix has not run yet)."""


@dataclass(frozen=True)
class StoreUrl:
    engine: str  # SQLITE or POSTGRESQL
    path: Path | None = None  # SQLite: the database file
    dsn: str = ""  # PostgreSQL: the URL as libpq takes it, password removed
    password: str | None = None  # PostgreSQL: from the URL, password_env or password_file

    @property
    def display(self) -> str:
        """The URL as it may be logged and shown: never with a password."""
        return f"sqlite:///{self.path}" if self.engine == SQLITE else self.dsn

    def connect_args(self) -> dict:
        """psycopg.connect(**this): libpq's URL (TLS and other options pass through in its
        query string) plus the password."""
        args: dict = {"conninfo": self.dsn}
        if self.password is not None:
            args["password"] = self.password
        if "connect_timeout" not in dict(parse_qsl(urlsplit(self.dsn).query)):
            args["connect_timeout"] = CONNECT_TIMEOUT
        return args


def parse(text: str, base: Path, password_env: str = "", password_file: str = "") -> StoreUrl:
    """`sqlite:///PATH` (relative to `base`) or `postgresql://USER@HOST:PORT/DB?OPTIONS`.
    A password in the URL itself is refused: it would be in a file everyone reads and in
    every log line; give password_env or password_file instead. Raises ValueError."""
    scheme, colon, rest = text.strip().partition(":")
    if not colon or scheme.lower() not in SCHEMES:
        raise ValueError(f"a store URL starts with sqlite:/// or postgresql://, not {text!r}")
    if SCHEMES[scheme.lower()] == SQLITE:
        if not rest.startswith("///") or len(rest) == 3:
            raise ValueError(f"a SQLite URL is sqlite:///PATH (three slashes), not {text!r}")
        return StoreUrl(SQLITE, path=(base / unquote(rest[3:])).resolve())
    parts = urlsplit(text.strip())
    if not parts.hostname and "host" not in dict(parse_qsl(parts.query)):
        raise ValueError(f"a PostgreSQL URL names its host: postgresql://USER@HOST:PORT/DB, "
                         f"not {_without_password(parts)!r}")
    if not parts.path.strip("/"):
        raise ValueError(f"a PostgreSQL URL names its database: {_without_password(parts)}/DB")
    if parts.password is not None:
        raise ValueError("put no password in the URL: use password_env or password_file")
    try:
        _ = parts.port
    except ValueError as error:
        raise ValueError(f"bad port in {_without_password(parts)!r}: {error}") from None
    return StoreUrl(POSTGRESQL, dsn=_without_password(parts),
                    password=_password(password_env, password_file, base))


def _password(env: str, file: str, base: Path) -> str | None:
    if env and file:
        raise ValueError("give password_env or password_file, not both")
    if env:
        if env not in os.environ:
            raise ValueError(f"the environment variable {env} (password_env) is not set")
        return os.environ[env]
    if file:
        try:
            return (base / file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise ValueError(f"cannot read password_file {file}: {error.strerror}") from None
    return None  # libpq may still find one: PGPASSWORD, ~/.pgpass, a client certificate


def _without_password(parts) -> str:  # noqa: ANN001 - a urllib SplitResult
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{quote(unquote(parts.username), safe='')}@{netloc}"
    if ":" in (parts.hostname or ""):
        netloc = netloc.replace(parts.hostname, f"[{parts.hostname}]")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port:
        netloc += f":{port}"
    return urlunsplit(("postgresql", netloc, parts.path, parts.query, ""))


def resolve(store: dict, writer: dict, default_db: Path, var: Path, base: Path,
            path: str) -> None:
    """The [store] section of config.py: url (or the older [writer] db, kept working) and
    admin_url → StoreUrls, in place; a mistake is a ConfigError naming file, section, key."""
    if store["url"] and writer["db"] != default_db:
        raise ConfigError("[writer] db and [store] url both name the store; keep [store] url",
                          path, "writer", "db")
    text = (store["url"] or f"sqlite:///{writer['db']}").replace("{var}", str(var))
    try:
        store["url"] = parse(text, base, store["password_env"], store["password_file"])
    except ValueError as error:
        raise ConfigError(str(error), path, "store", "url") from None
    try:
        store["admin_url"] = parse(
            store["admin_url"].replace("{var}", str(var)), base,
            store["admin_password_env"] or store["password_env"],
            store["admin_password_file"] or store["password_file"]) \
            if store["admin_url"] else store["url"]
    except ValueError as error:
        raise ConfigError(str(error), path, "store", "admin_url") from None
    if store["admin_url"].engine != store["url"].engine:
        raise ConfigError("admin_url must be of the same engine as url", path, "store",
                          "admin_url")
    writer["db"] = store["url"].path  # the old key keeps meaning the SQLite file (or None)
