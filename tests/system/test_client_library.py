"""appliance.client: a service keeps every record through an ingestor restart without its
log calls blocking; a full queue spills or counts drops; ps.basic's fields, stages and
clients work as before. The wire side is checked with the appliance's own frame decoder."""

import json
import logging
import logging.handlers
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from enum import IntEnum
from pathlib import Path

import pytest

import appliance.client as client
from appliance.harness.instance import PACKAGE_ROOT, finish, free_port, wait_until
from appliance.spine.codec import FrameSplitter, decode_frame
from appliance.stages import ALIASES, STAGES

SERVICE = ("-m", "appliance.harness.library_service")
COLUMNS = ("system_id", "sub_system_id", "sub_sub_system_id", "produkt_id", "user_spec_1",
           "user_spec_2", "package_version")


class Receiver:
    """A tiny SocketHandler receiver on 127.0.0.1: frames go through the appliance's
    restricted decoder, so what it accepts the ingestor accepts. `read=False` accepts
    connections and never reads them (an appliance that dies with data unread)."""

    def __init__(self, port: int = 0, read: bool = True) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.05)
        self.port = self.server.getsockname()[1]
        self.read = read
        self.records: list[dict] = []
        self.connections: list[socket.socket] = []
        self.stopped = threading.Event()
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(connection)
            if self.read:
                threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        splitter = FrameSplitter(1 << 20)
        connection.settimeout(0.05)
        while not self.stopped.is_set():
            try:
                data = connection.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            frames, error = splitter.feed(data)
            assert error is None, error
            self.records.extend(decode_frame(frame) for frame in frames)

    def messages(self) -> list[str]:
        return [record["msg"] for record in list(self.records)]

    def close(self) -> None:
        self.stopped.set()
        self.acceptor.join(5)  # a thread still in accept() would keep the port listening
        self.server.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def handlers():
    made = []

    def make(port: int, **options) -> tuple[logging.Logger, client.ApplianceHandler]:
        handler = client.ApplianceHandler("127.0.0.1", port, **options)
        logger = logging.Logger(f"test-{len(made)}")
        logger.addHandler(handler)
        made.append(handler)
        return logger, handler

    yield make
    for handler in made:
        handler.close_timeout = 0.1
        handler.close()


def test_stage_ports_are_the_appliances_table():
    assert client.STAGE_PORTS == {name: s.ingest_port for name, s in STAGES.items()}
    assert client.STAGE_ALIASES == ALIASES
    assert client.stage_port("dev_stage") == client.stage_port("DEVELOPMENT") == 9020
    assert client.stage_port(" prod ") == 9024
    with pytest.raises(ValueError, match="unknown stage"):
        client.stage_port("STAGING")


def test_setup_takes_stage_and_port_from_arguments_or_environment():
    def port_of(**kwargs) -> int:
        logger = client.setup("ports", name=f"ports-{uuid.uuid4().hex}", **kwargs)
        handler = logger.handlers[-1]
        handler.close_timeout = 0.1
        handler.close()
        return handler.port

    assert port_of(env={}) == 9020  # DEVELOPMENT, the default
    assert port_of(stage="INT", env={"STAGE": "PRODUCTION"}) == 9022
    assert port_of(env={"STAGE": "TEST"}) == 9010
    assert port_of(env={"STAGE": "PRODUCTION", "HERALD_PORT": "9999"}) == 9999
    assert port_of(port=1234, env={"HERALD_PORT": "9999"}) == 1234


def test_fields_come_from_arguments_or_the_ps_basic_environment():
    env = {"SYSTEM_ID": "env-system", "SUB_SUB_SYSTEM_ID": "worker-3", "PRODUKT_ID": "P-9",
           "USER_SPEC_1": "blue", "USER_SPEC_2": "", "UNRELATED": "x"}
    assert client.record_fields(env=env) == {
        "SYSTEM_ID": "env-system", "SUB_SYSTEM_ID": socket.gethostname(),
        "SUB_SUB_SYSTEM_ID": "worker-3", "PRODUKT_ID": "P-9", "USER_SPEC_1": "blue"}
    fields = client.record_fields(system_id="arg-system", user_spec_2="green",
                                  sub_system_id="host-9", package="herald-appliance", env=env)
    assert fields["SYSTEM_ID"] == "arg-system" and fields["USER_SPEC_2"] == "green"
    assert fields["SUB_SYSTEM_ID"] == "host-9"
    from importlib.metadata import version
    assert fields["package_version"] == f"herald-appliance {version('herald-appliance')}"
    assert "package_version" not in client.record_fields(package="no-such-dist-xyz", env={})
    assert client.record_fields(package_version="billing 2.0", env={})["package_version"] \
        == "billing 2.0"


def test_records_carry_the_fields_and_plain_data_only(monkeypatch):
    receiver = Receiver()
    for name in client.FIELDS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SYSTEM_ID", "from-env")
    monkeypatch.setenv("PRODUKT_ID", "P-1")
    monkeypatch.setenv("USER_SPEC_1", "u1")
    log = client.setup(port=receiver.port, name=f"fields-{uuid.uuid4().hex}",
                       user_spec_2="u2", package="herald-appliance")
    handler = log.handlers[-1]
    try:
        class Color(IntEnum):
            RED = 1

        log.info("order %s of %d", "A-1", 3, extra={
            "odd": object(), "pair": (1, b"\x00"), "tags": {"x"}, "color": Color.RED,
            "nested": {"k": [1, (2, 3)], 5: None}})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed", extra={"system_id": "own-system"})
        assert handler.flush(10)
        wait_until(lambda: len(receiver.records) >= 2, 10, "2 records")
    finally:
        handler.close()
        receiver.close()
    first, second = receiver.records
    assert first["msg"] == "order A-1 of 3" and first["args"] is None
    assert first["SYSTEM_ID"] == "from-env" and first["PRODUKT_ID"] == "P-1"
    assert first["USER_SPEC_1"] == "u1" and first["USER_SPEC_2"] == "u2"
    assert first["SUB_SYSTEM_ID"] == socket.gethostname()
    assert first["package_version"].startswith("herald-appliance ")
    assert first["pair"] == [1, "b'\\x00'"] and first["tags"] == "{'x'}"
    assert first["color"] == 1 and type(first["color"]) is int
    assert first["nested"] == {"k": [1, [2, 3]], "5": None}
    assert first["odd"].startswith("<object object")
    assert "ValueError: boom" in second["exc_text"] and second["exc_info"] is None
    # a record's own lower-case field wins over the handler's upper-case one
    assert second["system_id"] == "own-system" and "SYSTEM_ID" not in second


def test_full_queue_without_spill_counts_drops_and_never_blocks(handlers):
    port = free_port()  # nothing listens: the sender backs off, the queue fills
    log, handler = handlers(port, queue_size=10)
    slowest = 0.0
    for index in range(2000):
        before = time.perf_counter()
        log.warning("record %d", index)
        slowest = max(slowest, time.perf_counter() - before)
    accepted = 2000 - handler.dropped
    # the queue's 10 plus at most one batch the sender took out before it found no receiver
    assert 10 <= accepted <= 20, handler.stats()
    assert slowest < 0.05, f"a log call took {slowest * 1000:.1f} ms"
    handler.close_timeout = 0.5
    before = time.monotonic()
    handler.close()
    assert time.monotonic() - before < 3
    assert handler.dropped == 2000  # what could not go before the close timeout is counted
    assert "connect" in handler.last_error


def test_spill_file_is_replayed_in_order_when_the_receiver_comes(handlers, tmp_path):
    port = free_port()
    spill = tmp_path / "spill.frames"
    log, handler = handlers(port, queue_size=20, spill=spill)
    for index in range(1000):
        log.info("record %d", index)
    assert handler.dropped == 0 and handler.spilled >= 900, handler.stats()
    assert spill.exists()
    receiver = Receiver(port)
    try:
        assert handler.flush(30), handler.stats()
        wait_until(lambda: len(set(receiver.messages())) >= 1000, 30, "1000 records",
                   lambda: str(handler.stats()))
        seen = list(dict.fromkeys(receiver.messages()))  # first arrival of each, in order
        assert seen == [f"record {i}" for i in range(1000)]
        wait_until(lambda: not spill.exists()
                   and not Path(f"{spill}.replay").exists(), 5, "spill files removed")
        log.info("after")  # the queue is used again once the spill is replayed
        wait_until(lambda: "after" in receiver.messages(), 10, "a later record")
        assert handler.spilled < 1000
    finally:
        receiver.close()


def test_spill_left_by_a_previous_run_is_sent_first(handlers, tmp_path):
    port = free_port()
    spill = tmp_path / "spill.frames"
    log, handler = handlers(port, queue_size=1, spill=spill)
    for index in range(50):
        log.info("old %d", index)
    handler.close_timeout = 0.1
    handler.close()  # the service ends while the appliance is away
    spilled = handler.spilled
    # what was in memory (the queue's 1 and the sender's 1) is counted; the file keeps the rest
    assert handler.dropped + spilled == 50 and handler.dropped <= 2, handler.stats()
    with open(spill, "ab") as file:  # as if it had died in the middle of writing a frame
        file.write(b"\x00\x00\x01\x00torn")
    receiver = Receiver(port)
    try:
        log, handler = handlers(port, spill=spill)
        log.info("new")
        assert handler.flush(30), handler.stats()
        wait_until(lambda: "new" in receiver.messages(), 10, "the new record")
        assert list(dict.fromkeys(receiver.messages())) == \
            [f"old {i}" for i in range(50 - spilled, 50)] + ["new"]
    finally:
        receiver.close()


def test_records_a_dying_receiver_left_unread_are_sent_again(handlers):
    silent = Receiver(read=False)  # takes the connection, never reads: data stays in buffers
    log, handler = handlers(silent.port)  # resend_window 2 s
    for index in range(100):
        log.info("record %d", index)
    assert handler.flush(10)
    sent = time.monotonic()
    # the sender checks the idle connection every 0.2 s: it looks alive all this while
    wait_until(lambda: time.monotonic() - sent > 1.0, 5, "1 s with the records unread")
    port = silent.port
    silent.close()  # unread data: the kernel answers with a reset
    receiver = Receiver(port)
    try:
        wait_until(lambda: len(set(receiver.messages())) >= 100, 20, "100 records again",
                   lambda: str(handler.stats()))
        assert handler.resent >= 1
    finally:
        receiver.close()


def test_a_service_exiting_without_flush_still_sends_its_queue():
    receiver = Receiver()
    try:
        service = subprocess.Popen(
            [sys.executable, *SERVICE, "--port", str(receiver.port), "--count", "5000",
             "--system-id", "exiting", "--flush-timeout", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)})
        report = json.loads(finish(service, timeout=60).strip().splitlines()[-1])
        assert report["flushed"] is None
        # logging.shutdown() at exit closed the handler, which sent what was queued
        wait_until(lambda: len(set(receiver.messages())) >= 5000, 10, "5000 records")
        assert sorted(set(receiver.messages()), key=lambda m: int(m.split()[1])) == \
            [f"exiting {i}" for i in range(5000)]
    finally:
        receiver.close()


def test_heartbeat_records_come_from_the_sender_thread(handlers):
    receiver = Receiver()
    try:
        _log, handler = handlers(receiver.port, heartbeat=0.1, heartbeat_name="beating",
                                 fields={"SYSTEM_ID": "beater"})
        wait_until(lambda: receiver.messages().count("heartbeat") >= 3, 10, "3 heartbeats")
        beat = receiver.records[0]
        assert beat["name"] == "beating" and beat["levelname"] == "INFO"
        assert beat["SYSTEM_ID"] == "beater" and beat["threadName"] == "appliance.client"
    finally:
        receiver.close()


def test_ps_basic_style_and_library_clients_land_in_the_columns(instance):
    inst = instance().start()
    inst.wait_ready()
    marker = uuid.uuid4().hex
    # ps.basic: a plain stdlib SocketHandler with upper-case fields as record attributes
    handler = logging.handlers.SocketHandler("127.0.0.1", inst.port)
    old = logging.Logger("ps.basic.service")
    old.addHandler(handler)
    old.error("old %s", marker, extra={
        "SYSTEM_ID": "legacy", "SUB_SYSTEM_ID": "host-1", "SUB_SUB_SYSTEM_ID": "job-2",
        "PRODUKT_ID": "P-3", "USER_SPEC_1": "u-4", "USER_SPEC_2": "u-5",
        "package_version": "ps.basic 1.0", "ticket": 77})
    handler.close()
    new = client.setup("modern", port=inst.port, name="modern.service",
                       sub_sub_system_id="job-7", produkt_id="P-8", user_spec_1="u-9",
                       package="herald-appliance", env={})
    new.warning("new %s", marker, extra={"ticket": 78})
    assert new.handlers[-1].flush(10)
    inst.wait_count(2, "message LIKE ?", (f"% {marker}",))
    rows = {row[0]: row[1:] for row in inst.query(
        f"SELECT message, logger, levelname, {', '.join(COLUMNS)}, extra FROM record "
        "WHERE message LIKE ?", (f"% {marker}",))}
    assert rows[f"old {marker}"] == (
        "ps.basic.service", "ERROR", "legacy", "host-1", "job-2", "P-3", "u-4", "u-5",
        "ps.basic 1.0", json.dumps({"ticket": 77}))
    logger, level, *fields, extra = rows[f"new {marker}"]
    assert (logger, level) == ("modern.service", "WARNING")
    assert fields[:6] == ["modern", socket.gethostname(), "job-7", "P-8", "u-9", None]
    assert fields[6].startswith("herald-appliance ")
    assert json.loads(extra) == {"ticket": 78}


# The service process times each log.info with perf_counter (a call costs ~15 µs: a dict
# copy, a pickle, a put_nowait). On the 2-core box these bounds were tuned on, with the
# appliance's processes, supervisorctl and pytest sharing the CPUs, p99 was 0.22-0.30 ms and
# the slowest call 2.5-12 ms in most runs, 40 ms once; a NullHandler logger paced the same
# way under the same load peaks at ~4 ms. Those peaks are the OS descheduling the process or
# the GIL passing between threads (every 5 ms at most), not the handler waiting for the
# network. So: p99 under 1 ms, and a max of 100 ms, far above that noise and far below what
# network I/O in the caller's thread costs (a connect timeout, or a send stuck behind the
# ingestor's paused reads for seconds while it shuts down).
MAX_CALL_MS, P99_CALL_MS = 100.0, 1.0


@pytest.mark.parametrize("outage", ["stop", "stop-spill", "kill-9"])
def test_service_keeps_every_record_through_an_ingestor_restart(instance, tmp_path, outage):
    inst = instance().start()
    inst.wait_ready()
    system = f"svc-{uuid.uuid4().hex[:8]}"
    # 500 records/s for 20 s: it logs before, during and after the outage (stopping takes
    # up to the ingestor's 5 s drain while the service keeps sending, then 5 s down)
    args = [sys.executable, *SERVICE, "--port", str(inst.port), "--count", "10000",
            "--rate", "500", "--system-id", system]
    if outage == "stop-spill":  # a queue far smaller than the outage: most go to the file
        args += ["--queue-size", "200", "--spill", str(tmp_path / "service.spill")]
    began = time.monotonic()
    service = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)})
    timeline = {}
    try:
        inst.wait_count(200, "system_id = ?", (system,), timeout=30)
        timeline["outage"] = time.monotonic() - began
        if outage == "kill-9":  # records it had read but not yet journaled die with it
            inst.kill9("ingestor")
        else:
            inst.ctl("stop", "ingestor")
            assert inst.state("ingestor") == "STOPPED", inst.diagnostics()
            down_since = time.monotonic()
            timeline["stopped"] = down_since - began
            assert service.poll() is None, "the service ended before the outage"
            wait_until(lambda: time.monotonic() - down_since >= 5.0, 10, "5 s of outage")
            assert service.poll() is None, "the service ended during the outage"
            inst.ctl("start", "ingestor")
            assert inst.state("ingestor") == "RUNNING", inst.diagnostics()
        timeline["running"] = time.monotonic() - began
        assert service.poll() is None, "the service ended before the ingestor was back"
        out = finish(service, timeout=180)
    finally:
        if service.poll() is None:
            service.kill()
            service.communicate(timeout=10)
    report = json.loads(out.strip().splitlines()[-1])

    def distinct() -> int:
        rows = inst.query("SELECT count(DISTINCT message) FROM record WHERE system_id = ?",
                          (system,))
        return rows[0][0] if rows else 0

    wait_until(lambda: distinct() >= 10000, 120, "10,000 distinct records",
               lambda: f"have {distinct()}; service {report}\n{inst.diagnostics()}")
    messages = {m for (m,) in inst.query(
        "SELECT DISTINCT message FROM record WHERE system_id = ?", (system,))}
    assert messages == {f"{system} {i}" for i in range(10000)}
    total = inst.count("system_id = ?", (system,))
    print(f"\n{outage}: test timeline {timeline}; service {report}; "
          f"rows {total} ({total - 10000} sent twice around the outage)")
    assert report["flushed"] and report["dropped"] == 0, report
    assert report["connects"] >= 2, report  # it did reconnect
    if outage == "stop-spill":
        assert report["spilled"] > 0, report
    assert report["max_ms"] < MAX_CALL_MS, report
    assert report["p99_ms"] < P99_CALL_MS, report


def test_setup_sends_every_logger_of_the_service(instance):
    """The default setup() hangs on the root logger: a module's own logger arrives too."""
    inst = instance().start()
    marker = uuid.uuid4().hex
    script = (
        "import logging, appliance.client\n"
        f"log = appliance.client.setup('svc-{marker[:8]}', port={inst.port}, env={{}})\n"
        f"logging.getLogger('mypkg.db').warning('pool exhausted {marker}')\n"
        f"log.info('own logger {marker}')\n"
        "assert appliance.client.current_handler().flush(30)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=PACKAGE_ROOT)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    inst.wait_count(2, "message LIKE ?", (f"%{marker}",))
    rows = dict(inst.query("SELECT logger, system_id FROM record WHERE message LIKE ?",
                           (f"%{marker}",)))
    assert rows == {"mypkg.db": f"svc-{marker[:8]}", f"svc-{marker[:8]}": f"svc-{marker[:8]}"}


def test_a_wrong_port_is_said_once_on_stderr_and_in_stats():
    nobody = free_port()  # nothing listens there
    script = (
        "import json, logging, time, appliance.client\n"
        f"log = appliance.client.setup('lost', port={nobody}, env={{}})\n"
        "for n in range(20): log.warning('lost %d', n)\n"
        "handler = appliance.client.current_handler()\n"
        "deadline = time.monotonic() + 20\n"
        "while handler.connects == 0 and handler._failures < 6 and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print(json.dumps(handler.stats()))\n"
        "handler.close_timeout = 0.1\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=PACKAGE_ROOT)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    warned = [line for line in done.stderr.splitlines() if "cannot reach" in line]
    assert len(warned) == 1 and f"127.0.0.1:{nobody}" in warned[0], done.stderr
    assert "Wrong port or stage?" in warned[0]
    assert stats["warning"] == warned[0] and stats["sent"] == 0 and stats["connects"] == 0
