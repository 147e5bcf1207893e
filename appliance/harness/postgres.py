"""A real PostgreSQL server for tests and benchmarks: Debian's binaries, initdb + pg_ctl as the
unprivileged `postgres` user in a temporary folder, 127.0.0.1 on a free port, stopped by PID.

Each test or instance gets its own database (`create_database`) and the role `herald`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

BIN_DIRS = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin",
            "/usr/lib/postgresql/15/bin")
PASSWORD = "herald-test-password"  # a throwaway server's, on loopback only
PASSWORD_ENV = "HERALD_TEST_PG_PASSWORD"  # how instances get it ([store] password_env)
ROLE = "herald"


def bin_dir() -> Path | None:
    """Where Debian's PostgreSQL server binaries are, or None when it is not installed."""
    for folder in BIN_DIRS:
        if (Path(folder) / "initdb").exists():
            return Path(folder)
    return None


class PostgresServer:
    """initdb + pg_ctl in a temporary folder; `url(db)` and `create_database()` for tests."""

    def __init__(self, user: str = "postgres", fsync: bool = True) -> None:
        found = bin_dir()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin, self.user, self.fsync = found, user, fsync
        with socket.socket() as probe:  # a free TCP port on loopback (bind port 0)
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.dir = Path(tempfile.mkdtemp(prefix="herald-pg-"))
        self.data = self.dir / "data"
        self.pid = 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # postgres refuses to run as root: every server command runs as the unprivileged user
        command = list(args) if os.geteuid() != 0 else ["runuser", "-u", self.user, "--", *args]
        return subprocess.run(command, capture_output=True, text=True, check=check,
                              timeout=120)

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            account = pwd.getpwnam(self.user)
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        password_file = self.dir / "pw"
        password_file.write_text(PASSWORD)
        if os.geteuid() == 0:
            os.chown(password_file, pwd.getpwnam(self.user).pw_uid, -1)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}",
                  "-E", "UTF8", "--locale=C.UTF-8")
        self.resume()
        self.sql(f"CREATE ROLE {ROLE} LOGIN CREATEROLE PASSWORD '{PASSWORD}'")
        return self

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement as the superuser over the server's Unix socket."""
        done = self._run(str(self.bin / "psql"), "-h", str(self.dir), "-p", str(self.port),
                         "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt",
                         "-c", statement)
        return done.stdout

    def create_database(self, name: str | None = None) -> str:
        """A fresh database owned by `herald`; returns its URL (the password is in PASSWORD)."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self.sql(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def url(self, database: str, role: str = ROLE) -> str:
        return f"postgresql://{role}@127.0.0.1:{self.port}/{database}"

    def pause(self) -> None:
        """Stop the server (fast: connections are cut), keeping its data."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.pid = 0

    def resume(self) -> None:
        """(Re)start the server on its port and folder."""
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.dir} "
                   f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.dir / "server.log"), "-w", "-t", "60", "start")
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        if self.pid:
            done = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                             "-w", "stop", check=False)
            if done.returncode != 0:  # pg_ctl could not: end the postmaster we started
                try:
                    os.kill(self.pid, signal.SIGQUIT)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + 30
                while _alive(self.pid) and time.monotonic() < deadline:
                    time.sleep(0.1)  # not our child: poll until it has gone
            self.pid = 0
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def query(url: str, statement: str, params: tuple = (), schema: str | None = None,
          as_dicts: bool = False) -> list:
    """Rows of one statement written with `?` on the database at `url`; [] while its table
    does not exist yet (the writer or neelix has not made it)."""
    import psycopg
    from psycopg.rows import dict_row, tuple_row
    with psycopg.connect(url, password=PASSWORD, autocommit=True,
                         row_factory=dict_row if as_dicts else tuple_row) as db:
        if schema:
            db.execute(f"SET search_path = {schema}")
        try:
            cursor = db.execute(statement.replace("%", "%%").replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            return []
