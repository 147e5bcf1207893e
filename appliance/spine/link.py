"""The ZeroMQ wire between the appliance's processes and between appliances: the PUB topic
every subscriber takes, and the relay link's message kinds (a forwarder's BATCH, the relay's
ACK). Both ends of each import them from here.

PUB/SUB: [TOPIC, journal entries (journal.encode_entries)].
Relay link (DEALER → ROUTER): [BATCH, batch id (8 bytes), msgpack list of records] answered
by [ACK, the same batch id, OK or ERROR, the number of records journaled or the reason].
"""

from __future__ import annotations

TOPIC = b"records"
BATCH = b"herald-batch-1"
ACK = b"herald-ack-1"
OK = b"ok"
ERROR = b"error"
BATCH_ID_BYTES = 8


def ack(batch_id: bytes, journaled: int) -> list[bytes]:
    return [ACK, batch_id, OK, str(journaled).encode()]


def refusal(batch_id: bytes, reason: bytes) -> list[bytes]:
    return [ACK, batch_id, ERROR, reason]
