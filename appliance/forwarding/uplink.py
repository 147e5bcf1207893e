"""The forwarder's two ways upstream: `ApplianceUplink` sends batches over ZeroMQ DEALER to
another appliance's relay and returns only when the relay has acknowledged them (journaled);
`SocketUplink` writes plain SocketHandler frames to any receiver of that protocol.

Both raise UplinkError when a batch did not go; the forwarder retries with backoff.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import pickle
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import zmq

from appliance.spine import keys
from appliance.spine.link import ACK, BATCH, BATCH_ID_BYTES, OK
from appliance.spine.record import COLUMNS, INDEX, PS_FIELDS

log = logging.getLogger(__name__)


class UplinkError(Exception):
    """A batch was not delivered (upstream away, refused, or too slow to answer)."""


# Bytes of one batch message at most: within the relay's max_batch_bytes (default 32 MiB,
# at least 4 MiB), so a batch of long tracebacks is split rather than refused.
MAX_MESSAGE = 4 << 20


class ApplianceUplink:
    """Acked batches to an upstream appliance's relay over ZeroMQ DEALER (optionally Curve)."""
    def __init__(self, endpoint: str, ack_timeout: float, reconnect_max: float,
                 server_key: str = "", client_key_file: Path | None = None,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.endpoint, self.ack_timeout, self.stopping = endpoint, ack_timeout, stopping
        self.reconnect_max = reconnect_max
        self.server_public = keys.server_key(server_key) if server_key else None
        self.client_key_file = client_key_file
        if self.server_public and client_key_file:
            keys.load_pair(client_key_file)  # a bad key file is a config error at start
        self.socket: zmq.Socket | None = None
        self.ids = itertools.count(int.from_bytes(os.urandom(4), "big") << 24)

    def _connect(self) -> zmq.Socket:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 2)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing for a peer that is not there
        # ZeroMQ reconnects by itself, backing off exponentially up to this:
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, int(self.reconnect_max * 1000))
        if self.server_public and self.client_key_file:
            keys.client_curve(sock, self.client_key_file, self.server_public)
        sock.connect(self.endpoint)
        return sock

    def send(self, records: list[list]) -> int:
        """Deliver one batch; return how many the relay journaled (the rest it already had).
        A batch bigger than MAX_MESSAGE goes as several, in order, each acknowledged."""
        body = msgpack.packb(records, use_bin_type=True)
        if len(body) > MAX_MESSAGE and len(records) > 1:
            half = len(records) // 2
            return self.send(records[:half]) + self.send(records[half:])
        return self._send(body)

    def _send(self, body: bytes) -> int:
        if self.socket is None:
            self.socket = self._connect()
        batch_id = next(self.ids).to_bytes(BATCH_ID_BYTES, "big")
        # With IMMEDIATE, the socket is writable only once a relay is connected (and, with
        # Curve, has accepted our key): nothing waits in a queue for a peer that is away.
        if not self._poll(zmq.POLLOUT):
            raise UplinkError(f"{self.endpoint} is not connected (down, unreachable, or "
                              "refusing our key)")
        try:
            self.socket.send_multipart([BATCH, batch_id, body], flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            raise UplinkError(f"{self.endpoint} went away before the batch") from None
        while self._poll(zmq.POLLIN):
            reply = self.socket.recv_multipart()
            if len(reply) == 4 and reply[0] == ACK and reply[1] == batch_id:
                if reply[2] == OK:
                    return int(reply[3] or 0)
                raise UplinkError(f"relay refused the batch: {reply[3][:200]!r}")
            # an ack of an earlier try that timed out: keep waiting for this one
        raise UplinkError(f"no acknowledgement from {self.endpoint} within "
                          f"{self.ack_timeout:g}s")

    def _poll(self, event: int) -> bool:
        """Wait up to ack_timeout for `event`, in slices, so a stop is never kept waiting."""
        assert self.socket is not None
        deadline = time.monotonic() + self.ack_timeout
        while not self.stopping():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.socket.poll(int(min(left, 0.1) * 1000) + 1, event):
                return True
        return False

    def reset(self) -> None:
        """Drop the connection (and anything queued on it); the next send reconnects."""
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None

    close = reset


# Record columns → the LogRecord attribute a SocketHandler receiver expects.
_ATTRIBUTES = {"logger": "name", "message": "msg", "func_name": "funcName",
               "process_name": "processName", "thread_name": "threadName",
               "task_name": "taskName", **{name.lower(): name.upper() for name in PS_FIELDS}}
_SKIPPED = frozenset({"extra", "hops", "peer"})


def socket_frame(values: list) -> bytes:
    """A record as SocketHandler sends one: 4-byte length + pickle (protocol 1) of the
    LogRecord's dict; ps.basic's fields upper-case, extras as attributes."""
    record: dict = {}
    extra = values[INDEX["extra"]]
    if extra:
        try:
            attributes = json.loads(extra)
            if isinstance(attributes, dict):
                record.update(attributes)
        except ValueError:
            pass
    for name, value in zip(COLUMNS, values, strict=False):
        if name not in _SKIPPED and value is not None:
            record[_ATTRIBUTES.get(name, name)] = value
    record["args"] = None
    record["msg"] = record.get("msg") or ""
    record["herald_origin"], record["herald_seq"] = values[INDEX["origin"]], values[0]
    payload = pickle.dumps(record, 1)
    return struct.pack(">L", len(payload)) + payload


class SocketUplink:
    """Best effort: once the kernel took the bytes they count as sent; a connection that
    breaks mid-batch sends the whole batch again (the receiver may see some twice)."""

    def __init__(self, address: tuple[str, int], timeout: float) -> None:
        self.address, self.timeout = address, timeout
        self.socket: socket.socket | None = None

    def send(self, records: list[list]) -> int:
        data = b"".join(socket_frame(values) for values in records)
        try:
            if self.socket is None:
                self.socket = socket.create_connection(self.address, timeout=self.timeout)
            self.socket.sendall(data)
        except OSError as error:
            self.reset()
            raise UplinkError(f"{self.address[0]}:{self.address[1]}: {error}") from None
        return len(records)

    def reset(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    close = reset
