"""The forwarder's other promises: with Curve, a forwarder (or any client) whose key the relay
does not list is refused and none of its data is stored; socket mode feeds a receiver built
on the standard library only; filters pass only the levels and systems asked for."""

from __future__ import annotations

import logging
import pickle
import shutil
import socketserver
import struct
import subprocess
import sys
import threading

import msgpack
import zmq

from appliance.harness.instance import chained, free_port, send_records, wait_until
from appliance.ingest.relay import BATCH


def make_keys(directory, *names: str) -> None:
    for name in names:
        subprocess.run([sys.executable, "-m", "appliance", "keys", name, "--dir",
                        str(directory)], check=True, capture_output=True)


def test_curve_admits_listed_keys_only(instance, tmp_path):
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    make_keys(keys, "relay", "good", "rogue")
    allowed.mkdir()
    shutil.copy(keys / "good.key", allowed)
    good, up = chained(instance, server_key=str(keys / "relay.key"),
                       client_key_file=str(keys / "good.key_secret"))
    relay = up.ini.read_text().split("listen = ")[1].split()[0]
    up.set(relay={"secret_key_file": str(keys / "relay.key_secret"),
                  "allowed_keys": str(allowed)})
    rogue = instance()
    rogue.add_forwarder("core", upstream=relay, server_key=str(keys / "relay.key"),
                        client_key_file=str(keys / "rogue.key_secret"), ack_timeout="2s")
    up.start()
    good.start(("ingestor", "writer", "forwarder-core"))
    rogue.start(("ingestor", "writer", "forwarder-core"))
    send_records(rogue.port, *[(logging.ERROR, f"rogue {n}", "from-rogue") for n in range(50)])
    send_records(good.port, *[(logging.ERROR, f"good {n}", "from-good") for n in range(50)])
    up.wait_count(50, "system_id = 'from-good'")
    # A client without any key gets no answer either.
    plain = zmq.Context.instance().socket(zmq.DEALER)
    plain.setsockopt(zmq.LINGER, 0)
    plain.connect(relay)
    plain.send_multipart([BATCH, b"\0" * 8, msgpack.packb([[1, "o", 1.0]])])
    assert not plain.poll(2000), "an unauthenticated client got an answer"
    plain.close()
    wait_until(lambda: rogue.stats("forwarder-core").get("failures", 0) >= 2, 30,
               "the rogue forwarder refused twice", rogue.diagnostics)
    assert up.count("system_id = 'from-rogue'") == 0
    assert up.count("origin = 'o'") == 0
    assert up.count("system_id != 'herald'") == 50


class Receiver(socketserver.ThreadingTCPServer):
    """The logging cookbook's receiver, reduced: length-prefixed pickles of LogRecord dicts."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.records: list[dict] = []
        super().__init__(("127.0.0.1", free_port()), Handler)


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while header := self.rfile.read(4):
            (length,) = struct.unpack(">L", header)
            self.server.records.append(pickle.loads(self.rfile.read(length)))  # noqa: S301


def test_socket_mode_feeds_a_standard_library_receiver(instance):
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        down = instance()
        down.add_forwarder("old-bridge", mode="socket",
                           upstream=f"127.0.0.1:{receiver.server_address[1]}")
        down.start(("ingestor", "writer", "forwarder-old-bridge"))
        send_records(down.port, *[(logging.WARNING, f"hello {n}", "ch2eu")
                                  for n in range(1000)])
        wait_until(lambda: len(receiver.records) >= 1000, 30, "1000 records received",
                   down.diagnostics)
        first = logging.makeLogRecord(receiver.records[0])
        assert first.getMessage() == "hello 0" and first.levelname == "WARNING"
        assert first.SYSTEM_ID == "ch2eu" and first.name == "service"
        assert [r["msg"] for r in receiver.records] == [f"hello {n}" for n in range(1000)]
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_filters_pass_only_the_levels_and_systems_asked_for(instance):
    down, up = chained(instance, level="WARNING", systems="keep-*",
                       exclude_systems="keep-secret")
    up.start()
    down.start(("ingestor", "writer", "forwarder-core"))
    send_records(down.port, (logging.INFO, "too low", "keep-a"),
                 (logging.WARNING, "passes", "keep-a"),
                 (logging.ERROR, "excluded", "keep-secret"),
                 (logging.CRITICAL, "not included", "other"),
                 (logging.ERROR, "passes too", "keep-b"))
    up.wait_count(2)
    send_records(down.port, (logging.ERROR, "sentinel", "keep-z"))
    up.wait_count(1, "message = 'sentinel'")
    assert sorted(m for (m,) in up.query("SELECT message FROM record")) == \
        ["passes", "passes too", "sentinel"]
