"""Acceptance: hostile and broken input never runs, never crashes the ingestor, and never
costs a good record: on the same connection, or on another client's."""

import json
import os
import pickle
import random
import socket
import struct

from appliance.harness.instance import finish, start_client, wait_until


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def frame(payload: bytes) -> bytes:
    return struct.pack(">L", len(payload)) + payload


def good(system_id: str, n: int) -> bytes:
    return frame(pickle.dumps({"msg": f"{system_id} {n}", "levelno": 20, "levelname": "INFO",
                               "name": "bad-input-test", "SYSTEM_ID": system_id}, protocol=1))


def shared_tuple_key(depth: int) -> bytes:
    value = ()
    for _ in range(depth):
        value = (value, value)
    return b"\x80\x02}" + pickle.dumps(value, protocol=2)[2:-1] + b"K\x01s."  # {value: 1}


def stats(inst) -> dict:
    path = inst.dir / "var" / "run" / "ingestor.stats.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_hostile_frames_are_refused_counted_and_the_stream_goes_on(instance, tmp_path):
    inst = instance().start()
    inst.wait_ready()
    pid = inst.pid("ingestor")
    marker = tmp_path / "pwned"
    address = ("127.0.0.1", inst.port)
    honest = start_client(inst.port, 3000, "honest", rate=3000)

    # 1. Code-running pickles between good frames on one connection: refused, the rest lands.
    with socket.create_connection(address) as conn:
        for protocol in (0, 1, 2, 4, 5):
            conn.sendall(good("same-conn", protocol)
                         + frame(pickle.dumps(Exploit(marker), protocol=protocol)))
        # A few hundred bytes whose hash would take ages: the decoder is killed, not us.
        conn.sendall(frame(shared_tuple_key(40)) + good("same-conn", 98))
        conn.sendall(frame(pickle.dumps(["not", "a", "dict"], protocol=1))
                     + frame(b"") + frame(b"\x80\x02}q\x00X\x03")  # empty, truncated pickle
                     + good("same-conn", 99))
    # 2. Random bytes, a truncated frame, and an impossible length on other connections.
    rng = random.Random(1234)
    for _ in range(20):
        with socket.create_connection(address) as conn:
            conn.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4000))))
    with socket.create_connection(address) as conn:
        conn.sendall(struct.pack(">L", 500) + b"x" * 100)  # then the client goes away
    with socket.create_connection(address) as conn:
        conn.sendall(good("before-huge", 0) + b"\xff\xff\xff\xff" + b"junk" * 100)
        conn.settimeout(10)
        assert conn.recv(1) == b"", "an impossible length must close the connection"
    # 3. Garbage datagrams.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for payload in (b"", b"\x00", b"\xff" * 100, frame(pickle.dumps(Exploit(marker))),
                        struct.pack(">L", 10) + b"short"):
            udp.sendto(payload, address)
        udp.sendto(good("udp-after-garbage", 0), address)

    finish(honest)
    inst.wait_count(3000, "system_id = 'honest'")
    inst.wait_count(1, "system_id = 'udp-after-garbage'")
    assert inst.count("system_id = 'honest'") == 3000  # other clients never noticed
    assert sorted(r[0] for r in inst.query(
        "SELECT message FROM record WHERE system_id = 'same-conn'")) == \
        sorted(f"same-conn {n}" for n in (0, 1, 2, 4, 5, 98, 99))
    assert inst.count("system_id = 'before-huge'") == 1  # frames before the bad length count
    assert not marker.exists(), "a pickle ran code"
    assert inst.pid("ingestor") == pid, "the ingestor restarted"

    wait_until(lambda: stats(inst).get("rejected", 0) >= 5 + 1 + 3 + 20 + 1 + 1 + 5, 10,
               "the rejections to be counted", lambda: json.dumps(stats(inst)))
    counted = stats(inst)["rejected_by_reason"]
    assert counted["refused-pickle"] == 6 and counted["bad-pickle"] == 1, counted
    assert counted["not-a-dict"] == 1 and counted["empty"] == 1, counted
    assert counted["truncated"] >= 1 and counted["decode-timeout"] == 1, counted
    assert counted["oversized"] >= 2 and counted["bad-datagram"] == 3, counted
    log = inst.log("ingestor")
    assert "refused pickle: global posix.system refused" in log
    assert "exceeds the maximum" in log and "closing the connection" in log
    assert "Traceback" not in log
