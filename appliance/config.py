"""Every process reads its settings here: one declarative table, one INI loader, one validator.

Unknown sections or keys and bad values stop the process with file, section and key named;
`appliance init` writes its config from the same table.
"""

from __future__ import annotations

import configparser
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from appliance import converters as c
from appliance.errors import ConfigError
from appliance.stages import Stage, stage_named
from appliance.store import url as store_url  # the [store] section's own resolver


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    convert: Callable[[str], Any]
    default: str  # text as it would appear in the file; "" with `derived` means computed
    help: str
    derived: bool = False


S = Setting
FORWARDER = "forwarder:NAME"  # a template: one [forwarder:NAME] section per upstream
SETTINGS: tuple[Setting, ...] = (
    S("appliance", "stage", stage_named, "DEVELOPMENT",
      "TESTING, DEVELOPMENT, INTEGRATION or PRODUCTION: picks the default ports"),
    S("appliance", "instance", c.text, "", "name of this instance, the records' origin "
      "(default: host name and stage)", derived=True),
    S("appliance", "var_dir", c.text, "../var",
      "where data, journal, logs and sockets live; relative to this file's folder"),
    S("appliance", "bind", c.bind_address, "127.0.0.1",
      "address the listeners bind; 0.0.0.0 exposes them to the network"),
    S("appliance", "log_level", c.log_level, "INFO", "level of the processes' own logs"),

    S("ingestor", "port", c.port_number, "", "TCP+UDP port for SocketHandler/DatagramHandler "
      "clients (default: the stage's)", derived=True),
    S("ingestor", "udp", c.boolean, "true", "also accept DatagramHandler frames on UDP"),
    S("ingestor", "udp_receive_buffer", c.at_least(c.byte_size, 65536, "64KiB"), "4MiB",
      "kernel receive buffer asked for the UDP socket (UDP has no flow control: bursts beyond "
      "it are dropped by the kernel; raise net.core.rmem_max to allow more)"),
    S("ingestor", "publish", c.endpoint, "ipc://{var}/run/records.pub",
      "ZeroMQ PUB endpoint the subscribers connect to"),
    S("ingestor", "max_frame_bytes", c.at_least(c.byte_size, 1024, "1KiB"), "1MiB",
      "largest accepted frame; a longer length closes that connection"),
    S("ingestor", "max_text_chars", c.positive_int, "65536",
      "cap for message, exc_text, stack_info and extra; longer values are cut with a marker"),
    S("ingestor", "max_field_chars", c.positive_int, "1024", "cap for every other text field"),
    S("ingestor", "max_connections", c.positive_int, "1024", "concurrent TCP clients allowed"),
    S("ingestor", "decoders", c.positive_int, "1",
      "decoder processes (frames are unpickled and normalised there, isolated from the "
      "ingestor); more use more cores"),
    S("ingestor", "decode_timeout", c.at_least(c.duration, 0.1, "100ms"), "2s",
      "a decoder busy longer on one chunk is killed and the chunk retried frame by frame"),
    S("ingestor", "decoder_memory", c.at_least(c.byte_size, 128 << 20, "128MiB"), "512MiB",
      "address-space limit of a decoder process; a frame needing more is rejected"),
    S("ingestor", "batch_records", c.positive_int, "2000",
      "records journaled and published together at most"),
    S("ingestor", "batch_delay", c.duration, "5ms",
      "longest a received record waits before it is journaled"),

    S("journal", "dir", c.text, "{var}/journal", "segment files and subscriber cursors"),
    S("journal", "segment_bytes", c.at_least(c.byte_size, 1 << 20, "1MiB"), "64MiB",
      "size at which a new segment starts"),
    S("journal", "keep", c.duration, "1d",
      "segments every subscriber has passed are deleted once older than this"),
    S("journal", "max_bytes", c.byte_size, "4GiB", "hard cap; past it the oldest segments go "
      "even if unread (logged loudly and counted as lost)"),
    S("journal", "fsync", c.boolean, "true", "fsync each batch (survives power loss, not just "
      "a process kill)"),

    S("writer", "db", c.text, "{var}/herald.sqlite", "SQLite database file (older setting: "
      "`[store] url = sqlite:///PATH` says the same; give one of them)"),
    S("writer", "batch_records", c.positive_int, "2000", "rows per transaction at most"),
    S("writer", "batch_delay", c.duration, "200ms", "longest a record waits for its transaction"),
    S("writer", "keep", c.duration, "30d", "delete records received longer ago (0 = never)"),
    S("writer", "max_rows", c.natural_int, "20000000", "keep at most this many rows (0 = no cap)"),
    S("writer", "retention_interval", c.at_least(c.duration, 1.0, "1s"), "60s",
      "how often retention runs"),
    S("writer", "delete_batch", c.positive_int, "2000",
      "rows deleted per retention transaction, so readers never stall"),

    # The store every process that touches records shares (docs/scaling.md). A block of its
    # own so the engine choice reads in one place.
    S("store", "url", c.text, "", "sqlite:///PATH (default: [writer] db) or postgresql://USER@"
      "HOST:PORT/DB?sslmode=verify-full&… (libpq options pass through); neelix's state goes "
      "there too when it is PostgreSQL", derived=True),
    S("store", "password_env", c.text, "", "environment variable holding the PostgreSQL "
      "password (never the password in this file)"),
    S("store", "password_file", c.text, "", "file holding the PostgreSQL password (relative "
      "to this file's folder)"),
    S("store", "admin_url", c.text, "", "connection for purges and retention (a role that may "
      "delete) when url's role is a read-only viewer; default: url", derived=True),
    S("store", "admin_password_env", c.text, "", "admin_url's password variable (default: "
      "password_env)"),
    S("store", "admin_password_file", c.text, "", "admin_url's password file (default: "
      "password_file)"),

    S("neelix", "rules", c.text, "neelix.ini", "rules file: rules, heartbeats, actions, "
      "maintenance windows (and the old [SYSTEM_ID] MAIL_TO/MSG/AGE format)"),
    S("neelix", "state", c.text, "{var}/neelix.sqlite",
      "neelix's own SQLite file: cursor, incidents, throttles, snoozes, alert history"),
    S("neelix", "check_interval", c.at_least(c.duration, 0.1, "100ms"), "1s",
      "how often heartbeats and realert digests are checked"),
    S("neelix", "batch_records", c.positive_int, "1000", "records matched per transaction"),
    S("neelix", "batch_delay", c.duration, "100ms",
      "longest a record waits before it is matched"),
    S("neelix", "smtp_host", c.text, "localhost", "SMTP server of mail actions that name none "
      "(and of the old format's MAIL_TO)"),
    S("neelix", "smtp_port", c.port_number, "25", "its port"),
    S("neelix", "mail_from", c.text, "", "sender of neelix's mail (default: neelix@ this "
      "host's name)", derived=True),
    S("neelix", "retry_for", c.duration, "1d",
      "a failing delivery is retried with backoff this long, then recorded as failed"),
    S("neelix", "retry_max_delay", c.at_least(c.duration, 1.0, "1s"), "5m",
      "longest wait between two tries of one delivery"),
    S("neelix", "history", c.at_least(c.duration, 3600.0, "1h"), "90d",
      "alerts and closed incidents are kept this long (on /alerts), then deleted"),
    S("neelix", "web_url", c.text, "", "link to the web viewer in notices (default: "
      "http://127.0.0.1 and the web port)", derived=True),

    S("relay", "listen", c.text, "", "ZeroMQ endpoint (tcp://127.0.0.1:PORT) where forwarders "
      "of downstream appliances deliver acked batches; empty: no relay"),
    S("relay", "secret_key_file", c.text, "", "this relay's CurveZMQ secret key file (`appliance "
      "keys NAME` makes one): encrypts the link and admits only allowed_keys"),
    S("relay", "allowed_keys", c.text, "", "folder of the public key files (*.key) of the "
      "forwarders allowed in, when secret_key_file is set"),
    S("relay", "max_batch_bytes", c.at_least(c.byte_size, 4 << 20, "4MiB"), "32MiB",
      "largest batch accepted from a forwarder"),

    S("health", "supervisor", c.text, "unix://{var}/run/supervisor.sock",
      "supervisord's control socket: /health, /metrics and `appliance status` read the "
      "programs' states there"),
    S("health", "max_lag", c.natural_int, "100000",
      "a subscriber further behind the journal than this many records makes /health 503"),
    S("health", "min_disk_free", c.byte_size, "512MiB",
      "less free space than this where var_dir lives makes /health 503"),

    S(FORWARDER, "mode", c.choice("appliance", "socket"), "appliance",
      "appliance: acked batches to another appliance's [relay] listen; socket: plain "
      "SocketHandler frames to any receiver of that protocol (best effort)"),
    S(FORWARDER, "upstream", c.text, "", "appliance mode: tcp://HOST:PORT of the upstream relay; "
      "socket mode: HOST:PORT (default: 127.0.0.1 and the stage's upstream port, the old "
      "bridge's tunnel end)", derived=True),
    S(FORWARDER, "level", c.log_level, "DEBUG", "forward records at or above this level"),
    S(FORWARDER, "systems", c.word_list, "", "forward only these systems (glob patterns; "
      "empty: every system)"),
    S(FORWARDER, "exclude_systems", c.word_list, "", "never forward these systems (glob "
      "patterns)"),
    S(FORWARDER, "batch_records", c.at_most(c.positive_int, 10000), "2000",
      "records sent per batch at most (up to 10000; big batches go in 4 MiB messages)"),
    S(FORWARDER, "batch_delay", c.duration, "100ms", "longest a record waits for its batch"),
    S(FORWARDER, "ack_timeout", c.at_least(c.duration, 1.0, "1s"), "10s",
      "a batch not acknowledged in this time is sent again (the upstream drops duplicates)"),
    S(FORWARDER, "retry_max_delay", c.at_least(c.duration, 1.0, "1s"), "30s",
      "longest wait between reconnection attempts (exponential backoff with jitter)"),
    S(FORWARDER, "server_key", c.text, "", "the upstream relay's public Curve key (40 "
      "characters) or the file holding it; turns encryption on"),
    S(FORWARDER, "client_key_file", c.text, "", "this forwarder's Curve secret key file "
      "(`appliance keys NAME`); its public key goes into the upstream's allowed_keys"),

    S("web", "port", c.port_number, "", "web viewer port (default: the stage's)", derived=True),
    S("web", "threads", c.positive_int, "8", "requests served at once"),
    S("web", "login", c.boolean, "false",
      "require a login for every page and an API token for /api (admin actions need it)"),
    S("web", "users", c.credentials, "", "name:role:hash entries (role viewer or admin), one "
      "per line or comma-separated; make one with `appliance passwd NAME --role admin`"),
    S("web", "tokens", c.credentials, "", "API tokens as name:role:sha256-hex-of-token "
      "(`appliance passwd` prints a fresh token and its line with --token)"),
    S("web", "session", c.at_least(c.duration, 60.0, "1m"), "12h", "how long a login lasts"),
    S("web", "secret_file", c.text, "", "file with the key that signs sessions and CSRF "
      "tokens; give every web process of one store the same (default: var/web.secret, made "
      "on first start)"),
    S("web", "secret_env", c.text, "", "environment variable holding that key instead (at "
      "least 32 characters)"),
    S("web", "hosts", c.word_list, "", "host names the viewer answers to (Host header); "
      "default: loopback names when bound to loopback, else any"),
)

_BY_KEY = {(s.section, s.key): s for s in SETTINGS}
SECTIONS = tuple(dict.fromkeys(s.section for s in SETTINGS if s.section != FORWARDER))


class Config(SimpleNamespace):
    """Typed settings: `config.ingestor.port`, `config.journal.dir`, … plus `path` and `stage`."""

    path: Path
    stage: Stage


def ingest_host(config: Config) -> str:
    """Where this host's own processes reach the ingestor (neelix's alert records, the event
    listener, `appliance emit`): its bind address, or loopback when bound to every address."""
    bind = config.appliance.bind
    return "127.0.0.1" if bind in ("0.0.0.0", "::") else bind


def example_of(path: Path) -> Path:
    """conf/appliance.ini → conf/appliance.example.ini: the tracked file a clone starts from."""
    return path.with_name(f"{path.stem}.example{path.suffix}")


def ensure_live(path: str | os.PathLike[str]) -> None:
    """Create a missing live file (conf/appliance.ini, conf/neelix.ini) from its example on
    first run. The live files are the operator's and ignored by git, so a `git pull` that
    changes an example never conflicts with them. Several processes start at once: the first
    to link its copy in place wins, the others find it there."""
    path = Path(path)
    example = example_of(path)
    if path.exists() or not example.exists():
        return
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.write_bytes(example.read_bytes())
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()


def load(path: str | os.PathLike[str]) -> Config:
    """Read, validate and resolve one appliance.ini; raise ConfigError naming what is wrong."""
    path = Path(path).resolve()
    ensure_live(path)
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # keep the key's case
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", str(path)) from None
    except configparser.Error as error:
        raise ConfigError(f"not a valid INI file: {error}", str(path)) from None
    return from_parser(parser, path)


def from_parser(parser: configparser.ConfigParser, path: Path) -> Config:
    if parser.defaults():
        raise ConfigError("a [DEFAULT] section is not supported; put each key in its section",
                          str(path), "DEFAULT")
    raw: dict[str, dict[str, str]] = {section: {} for section in SECTIONS}
    for section in parser.sections():
        kind, colon, name = section.partition(":")
        template = FORWARDER if kind == "forwarder" and colon else section
        if template not in raw and template != FORWARDER:
            raise ConfigError(f"unknown section; known: {', '.join(SECTIONS)}, "
                              f"[{FORWARDER}]", str(path), section)
        if template == FORWARDER and not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", name):
            raise ConfigError("a forwarder's NAME is 1-40 letters, digits, _ . -", str(path),
                              section)
        raw.setdefault(section, {})
        for key, value in parser.items(section):
            if (template, key) not in _BY_KEY:
                known = ", ".join(s.key for s in SETTINGS if s.section == template)
                raise ConfigError(f"unknown key; known in this section: {known}",
                                  str(path), section, key)
            raw[section][key] = value
    values: dict[str, dict[str, Any]] = {}
    for section, given in raw.items():
        template = FORWARDER if section.startswith("forwarder:") else section
        values[section] = {}
        for setting in (s for s in SETTINGS if s.section == template):
            text = given.get(setting.key, setting.default)
            if setting.derived and not text.strip():
                values[section][setting.key] = None
                continue
            try:
                values[section][setting.key] = setting.convert(text)
            except ValueError as error:
                raise ConfigError(str(error), str(path), section, setting.key) from None
    return _resolve(values, path)


def _resolve(values: dict[str, dict[str, Any]], path: Path) -> Config:
    """Fill in what derives from the stage and the file's location, then cross-check."""
    base = path.parent
    app = values["appliance"]
    stage: Stage = app["stage"]
    var = (base / app["var_dir"]).resolve()
    app["var_dir"] = var
    app["instance"] = app["instance"] or f"{socket.gethostname()}{stage.suffix or '_p'}"
    values["ingestor"]["port"] = values["ingestor"]["port"] or stage.ingest_port
    values["web"]["port"] = values["web"]["port"] or stage.web_port
    neelix = values["neelix"]
    neelix["mail_from"] = neelix["mail_from"] or f"neelix@{socket.gethostname()}"
    neelix["web_url"] = neelix["web_url"] or f"http://127.0.0.1:{values['web']['port']}"
    for section, key in (("journal", "dir"), ("writer", "db"), ("ingestor", "publish"),
                         ("neelix", "state"), ("health", "supervisor")):
        text = values[section][key].replace("{var}", str(var))
        if "{" in text or "}" in text:
            raise ConfigError("only {var} may stand in braces here", str(path), section, key)
        values[section][key] = text
    for section, key in (("journal", "dir"), ("writer", "db"), ("neelix", "rules"),
                         ("neelix", "state")):
        values[section][key] = (base / values[section][key]).resolve()
    try:
        values["ingestor"]["publish"] = c.endpoint(values["ingestor"]["publish"])
    except ValueError as error:
        raise ConfigError(str(error), str(path), "ingestor", "publish") from None
    if values["ingestor"]["port"] == values["web"]["port"]:
        raise ConfigError(f"ingest and web port are both {values['web']['port']}",
                          str(path), "web", "port")
    if values["web"]["login"] and not values["web"]["users"]:
        raise ConfigError("login is on but no users are configured", str(path), "web", "users")
    default_db = (base / _BY_KEY[("writer", "db")].default.replace("{var}", str(var))).resolve()
    store_url.resolve(values["store"], values["writer"], default_db, var, base, str(path))
    if values["web"]["secret_file"]:
        values["web"]["secret_file"] = (base / values["web"]["secret_file"]).resolve()
    _resolve_relay(values["relay"], base, str(path))
    forwarders = {section.partition(":")[2]: SimpleNamespace(**_resolve_forwarder(
        values.pop(section), section, stage, values, base, str(path)))
        for section in [s for s in values if s.startswith("forwarder:")]}
    targets = [(f.upstream, name) for name, f in forwarders.items() if f.mode == "appliance"]
    for upstream, name in targets:
        others = [other for target, other in targets if target == upstream and other != name]
        if others:
            # The relay drops what it already has by (origin, seq), which assumes one
            # in-order stream per origin: two filtered streams would interleave.
            raise ConfigError(f"forwarders {name} and {others[0]} both send to {upstream}; "
                              "one forwarder per upstream relay", str(path),
                              f"forwarder:{name}", "upstream")
    config = Config(**{name: SimpleNamespace(**section) for name, section in values.items()})
    config.path, config.stage, config.forwarders = path, stage, forwarders
    return config


def _resolve_relay(relay: dict[str, Any], base: Path, path: str) -> None:
    if relay["listen"]:
        try:
            relay["listen"] = c.endpoint(relay["listen"])
        except ValueError as error:
            raise ConfigError(str(error), path, "relay", "listen") from None
    for key in ("secret_key_file", "allowed_keys"):
        relay[key] = (base / relay[key]).resolve() if relay[key] else None
    if relay["secret_key_file"] and not relay["allowed_keys"]:
        raise ConfigError("with a secret key, list the allowed forwarders' keys",
                          path, "relay", "allowed_keys")


def _resolve_forwarder(forwarder: dict[str, Any], section: str, stage: Stage,
                       values: dict[str, dict[str, Any]], base: Path,
                       path: str) -> dict[str, Any]:
    upstream = forwarder["upstream"]
    if forwarder["mode"] == "appliance":
        if not upstream:
            raise ConfigError("appliance mode needs upstream = tcp://HOST:PORT (the upstream's "
                              "[relay] listen)", path, section, "upstream")
        try:
            forwarder["upstream"] = c.endpoint(upstream)
        except ValueError as error:
            raise ConfigError(str(error), path, section, "upstream") from None
    else:
        host, _, port = (upstream or f"127.0.0.1:{stage.upstream_port}").rpartition(":")
        try:
            forwarder["upstream"] = (host.strip("[]") or "127.0.0.1", c.port_number(port))
        except ValueError as error:
            raise ConfigError(f"{error} (socket mode wants HOST:PORT)", path, section,
                              "upstream") from None
        target = forwarder["upstream"][1]
        for clash, what in ((values["web"]["port"], "web"), (values["ingestor"]["port"],
                                                             "ingest")):
            if target == clash and host in ("", "127.0.0.1", "localhost", "::1"):
                raise ConfigError(f"upstream port {target} is this instance's own {what} "
                                  f"port; set upstream to the tunnel end or another "
                                  f"appliance", path, section, "upstream")
        if forwarder["server_key"] or forwarder["client_key_file"]:
            raise ConfigError("Curve keys apply to appliance mode only", path, section,
                              "server_key")
    if bool(forwarder["server_key"]) != bool(forwarder["client_key_file"]):
        raise ConfigError("Curve needs both server_key and client_key_file", path, section,
                          "client_key_file")
    if forwarder["client_key_file"]:
        forwarder["client_key_file"] = (base / forwarder["client_key_file"]).resolve()
    return forwarder
