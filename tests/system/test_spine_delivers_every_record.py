"""Acceptance: 4 SocketHandler clients × 5,000 flat out plus 1,000 DatagramHandler records
through a real instance under supervisord land as exactly 21,000 rows with the right fields."""

import json

from appliance.harness.instance import finish, start_client


def test_four_tcp_clients_and_one_udp_client_give_exactly_21000_rows(instance, store):
    inst = instance().start()
    inst.wait_ready()
    clients = [start_client(inst.port, 5000, f"sys{n}") for n in range(4)]
    # UDP has no flow control: this flat-out burst fits only because the ingestor asks the
    # kernel for a 4 MiB receive buffer ([ingestor] udp_receive_buffer).
    clients.append(start_client(inst.port, 1000, "udp1", udp=True, lowercase=True))
    for client in clients:
        finish(client)
    inst.wait_count(21000, "system_id != 'probe'")

    assert inst.count("system_id != 'probe'") == 21000
    assert inst.query("SELECT count(DISTINCT seq), count(DISTINCT origin) FROM record "
                      "WHERE system_id != 'probe'") == [(21000, 1)]
    for system_id, expected in [("sys0", 5000), ("sys1", 5000), ("sys2", 5000),
                                ("sys3", 5000), ("udp1", 1000)]:
        rows = inst.query("SELECT count(DISTINCT message) FROM record WHERE system_id = ?",
                          (system_id,))
        assert rows == [(expected,)], system_id

    row = inst.query(
        "SELECT message, levelname, levelno, logger, sub_system_id, package_version, exc_text, "
        "extra, func_name, peer, received >= created, task_name FROM record "
        "WHERE system_id = 'sys2' AND message = 'sys2 199'")[0]
    (message, levelname, levelno, logger, host, version, exc_text, extra, func, peer,
     received_after_created, task_name) = row
    assert (message, levelname, levelno, logger) == ("sys2 199", "ERROR", 40, "client.service")
    assert (host, version, func) == ("host-7", "2.4.1", "main")
    assert exc_text.startswith("Traceback (most recent call last):")
    assert "ValueError: bad order 199" in exc_text
    assert json.loads(extra) == {"order_id": 199, "tags": ["a", "b"]}
    assert peer.startswith("127.0.0.1:")
    assert received_after_created == 1
    assert task_name is None  # NULL, not the string "None"

    udp = inst.query("SELECT sub_system_id, package_version, exc_text FROM record "
                     "WHERE system_id = 'udp1' AND message = 'udp1 5'")
    assert udp == [("host-7", "2.4.1", None)]
    assert inst.count("exc_text IS NOT NULL AND system_id != 'probe'") == 4 * 50 + 10
    assert "already stored" not in inst.log("writer")
