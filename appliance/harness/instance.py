"""Run the real appliance for tests and benchmarks: an instance under its own supervisord,
real clients in their own processes, readiness by probe record, never a bare sleep."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from appliance.spine.stats import read as read_stats

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent  # the folder holding appliance/


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (bind port 0, as circus does)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port")


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               diagnostics: Callable[[], str] = lambda: "") -> object:
    """Poll until `predicate()` is truthy; fail loudly with `diagnostics()` on timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n"
                                 f"{diagnostics()}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


class Instance:
    """An `appliance init` instance in `directory`, run by a supervisord this test owns."""

    def __init__(self, directory: Path, stage: str = "TESTING", store: str | None = None,
                 **settings: dict) -> None:
        """`store`: a PostgreSQL URL (harness.postgres) instead of the SQLite default."""
        self.dir = Path(directory)
        self.port, self.web_port = free_port(), free_port()
        self.store = store
        subprocess.run([sys.executable, "-m", "appliance", "init", str(self.dir),
                        "--stage", stage, "--ingest-port", str(self.port),
                        "--web-port", str(self.web_port),
                        *(["--store", store] if store else [])],
                       check=True, capture_output=True)
        if store:
            from appliance.harness.postgres import PASSWORD, PASSWORD_ENV
            os.environ[PASSWORD_ENV] = PASSWORD  # supervisord's programs inherit it
            settings.setdefault("store", {})["password_env"] = PASSWORD_ENV
        self.conf = self.dir / "supervisord.conf"
        self.ini = self.dir / "conf" / "appliance.ini"
        self.db_path = self.dir / "var" / "herald.sqlite"
        self.state_path = self.dir / "var" / "neelix.sqlite"
        self.rules_path = self.dir / "conf" / "neelix.ini"
        self.journal_dir = self.dir / "var" / "journal"
        if settings:
            self.set(**settings)
        self.supervisord: subprocess.Popen | None = None

    def set(self, **sections: dict) -> None:
        """Append settings, e.g. set(writer={'batch_delay': '50ms'})."""
        text = self.ini.read_text()
        for section, values in sections.items():
            lines = "".join(f"{key} = {value}\n" for key, value in values.items())
            text = text.replace(f"[{section}]\n", f"[{section}]\n{lines}", 1)
        self.ini.write_text(text)

    def add_forwarder(self, name: str, **settings: str) -> None:
        """A [forwarder:NAME] section and its supervisord program, as the README says."""
        from appliance.ops.templates import forwarder_program
        lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
        self.ini.write_text(f"{self.ini.read_text()}\n[forwarder:{name}]\n{lines}")
        program = forwarder_program(name, f"{sys.executable} -m appliance",
                                    str(PACKAGE_ROOT))
        self.conf.write_text(f"{self.conf.read_text()}\n{program}")

    def scale(self, program: str, count: int) -> None:
        """Run `count` shards of a subscriber program, as the README tells operators to."""
        text = self.conf.read_text()
        head, _, rest = text.partition(f"[program:{program}]\n")
        body, sep, tail = rest.partition("\n[")
        body = (body.replace("process_name=%(program_name)s\n",
                             "process_name=%(program_name)s_%(process_num)d\n")
                .replace("numprocs=1\n", f"numprocs={count}\n")
                .replace("--shard %(process_num)d/1", f"--shard %(process_num)d/{count}"))
        self.conf.write_text(f"{head}[program:{program}]\n{body}{sep}{tail}")

    def only(self, keep: tuple[str, ...], shard: tuple[int, int] | None = None) -> None:
        """Run only the programs in `keep` (the others do not autostart); with `shard`
        (K, N) the writer is shard K of N: one of several writer hosts on one store."""
        text = self.conf.read_text()
        for name in re.findall(r"^\[program:([\w-]+)\]$", text, re.MULTILINE):
            if name not in keep:
                text = text.replace(f"[program:{name}]\n",
                                    f"[program:{name}]\nautostart=false\n")
        if shard:
            ini = "writer -c %(here)s/conf/appliance.ini --shard"
            text = text.replace(f"{ini} %(process_num)d/1", f"{ini} {shard[0]}/{shard[1]}")
        self.conf.write_text(text)

    # supervisord -----------------------------------------------------------------------
    def start(self, wait_programs: tuple[str, ...] = ("ingestor", "writer")) -> Instance:
        self.supervisord = subprocess.Popen(
            ["supervisord", "-n", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: all(self.state(p) == "RUNNING" for p in wait_programs), 30,
                   f"{wait_programs} RUNNING", self.diagnostics)
        return self

    def stop(self) -> None:
        process, self.supervisord = self.supervisord, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def ctl(self, *args: str) -> str:
        done = subprocess.run(["supervisorctl", "-c", str(self.conf), *args],
                              capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr

    def state(self, program: str) -> str:
        words = self.ctl("status", program).split()
        return words[1] if len(words) > 1 else ""

    def pid(self, program: str) -> int:
        text = self.ctl("pid", program).strip()
        return int(text) if text.isdigit() else 0

    def kill9(self, program: str) -> int:
        """SIGKILL a program by its PID and wait until supervisord runs a new one."""
        old = self.pid(program)
        assert old, f"{program} has no pid: {self.ctl('status')}"
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: self.pid(program) not in (0, old)
                   and self.state(program) == "RUNNING", 30,
                   f"{program} restarted after kill -9", self.diagnostics)
        return self.pid(program)

    # data ------------------------------------------------------------------------------
    def query(self, sql: str, params: tuple = (), schema: str | None = None) -> list[tuple]:
        """Rows of one statement (`?` placeholders) on this instance's store, [] while the
        table is not there yet."""
        if self.store:
            from appliance.harness.postgres import query
            return query(self.store, sql, params, schema)
        if not self.db_path.exists():
            return []
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30) as db:
            try:
                return db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as error:
                if "no such table" in str(error):
                    return []
                raise

    def alerts(self, where: str = "1=1", params: tuple = ()) -> list[dict]:
        """Rows of neelix's alert outbox/history."""
        if self.store:
            from appliance.harness.postgres import query
            return query(self.store, f"SELECT * FROM alert WHERE {where} ORDER BY id",  # noqa: S608
                         params, "neelix", as_dicts=True)
        if not self.state_path.exists():
            return []
        with sqlite3.connect(f"file:{self.state_path}?mode=ro", uri=True, timeout=30) as db:
            db.row_factory = sqlite3.Row
            try:
                return [dict(row) for row in db.execute(
                    f"SELECT * FROM alert WHERE {where} ORDER BY id", params)]
            except sqlite3.OperationalError as error:
                if "no such table" in str(error):
                    return []
                raise

    def stats(self, name: str) -> dict:
        return read_stats(self.dir / "var", name) or {}

    def count(self, where: str = "1=1", params: tuple = ()) -> int:
        rows = self.query(f"SELECT count(*) FROM record WHERE {where}", params)
        return rows[0][0] if rows else 0

    def log(self, program: str) -> str:
        parts = []
        for path in sorted((self.dir / "var" / "log").glob(f"{program}*.log")):
            parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    def diagnostics(self) -> str:
        out = [self.ctl("status")]
        for path in sorted((self.dir / "var" / "log").glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-25:]
            out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def wait_ready(self, timeout: float = 30) -> None:
        """A probe record that arrives end to end proves PUB/SUB and the writer are live."""
        marker = f"probe-{uuid.uuid4().hex}"
        handler = logging.handlers.SocketHandler("127.0.0.1", self.port)
        logger = logging.Logger("probe")
        logger.addHandler(handler)

        def arrived() -> bool:
            logger.warning(marker, extra={"SYSTEM_ID": "probe"})
            return self.count("message = ?", (marker,)) > 0

        try:
            wait_until(arrived, timeout, "a probe record in the DB", self.diagnostics)
        finally:
            handler.close()

    def wait_web(self, timeout: float = 30) -> None:
        """The web listens once the writer has made the DB: wait for its port."""
        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.web_port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(listening, timeout, "the web viewer to listen", self.diagnostics)

    def wait_count(self, expected: int, where: str = "1=1", params: tuple = (),
                   timeout: float = 120) -> None:
        wait_until(lambda: self.count(where, params) >= expected, timeout,
                   f"{expected} records where {where}",
                   lambda: f"have {self.count(where, params)}\n{self.diagnostics()}")


def get(inst: Instance, path: str) -> tuple[int, str]:
    """GET a page of an instance's web viewer: (status, body); (0, "") while it does not
    listen yet (it starts once the writer has made the DB)."""
    url = f"http://127.0.0.1:{inst.web_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except urllib.error.URLError as error:
        if isinstance(error.reason, ConnectionRefusedError):
            return 0, ""
        raise


def api(inst: Instance, path: str) -> dict:
    """A JSON API answer that must be a 200."""
    status, body = get(inst, path)
    assert status == 200, body
    return json.loads(body)


def send_records(port: int, *records: tuple[int, str, str]) -> float:
    """Log (level, message, system_id) records through one stdlib SocketHandler; returns
    the time the last one was handed over."""
    handler = logging.handlers.SocketHandler("127.0.0.1", port)
    logger = logging.Logger("service")
    logger.addHandler(handler)
    try:
        for level, message, system in records:
            logger.log(level, message, extra={"SYSTEM_ID": system})
        return time.time()
    finally:
        handler.close()


def start_client(port: int, count: int, system_id: str, *, udp: bool = False,
                 rate: float = 0.0, lowercase: bool = False) -> subprocess.Popen:
    """A separate client process that logs `count` records through the stdlib handler."""
    args = [sys.executable, "-m", "appliance.harness.stdlib_service", "--port", str(port),
            "--count", str(count), "--system-id", system_id]
    if udp:
        args.append("--udp")
    if rate:
        args += ["--rate", str(rate)]
    if lowercase:
        args.append("--lowercase")
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 120) -> str:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=10)
        raise AssertionError(f"client did not finish: {out}\n{err}") from None
    assert process.returncode == 0, f"client failed ({process.returncode}): {out}\n{err}"
    return out


def chained(make: Callable[..., Instance], **forwarder: str) -> tuple[Instance, Instance]:
    """(downstream, upstream): the upstream's ingestor runs a relay, the downstream a
    forwarder "core" to it; neither is started."""
    upstream = make()
    relay_port = free_port()
    upstream.set(relay={"listen": f"tcp://127.0.0.1:{relay_port}"})
    downstream = make()
    downstream.add_forwarder("core", **{"upstream": f"tcp://127.0.0.1:{relay_port}",
                                        **forwarder})
    return downstream, upstream


def journal_records(journal_dir: Path) -> list[list]:
    """Every record in a journal, as values in COLUMNS order."""
    from appliance.spine.codec import unpack_record
    from appliance.spine.journal import JournalReader
    reader, out, position = JournalReader(journal_dir), [], 1
    while entries := reader.read_from(position, 10000):
        out.extend(unpack_record(payload) for _seq, payload in entries)
        position = entries[-1][0] + 1
    return out
