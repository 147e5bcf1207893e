"""The ingestor's listeners: TCP connections split into frames, UDP datagrams, one each.

They hand frames to an `Intake` (the Ingestor in ingestor.py) and count what they must refuse.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Protocol

from appliance.errors import FrameError
from appliance.ingest.rejections import RejectionLog
from appliance.spine.codec import FrameSplitter, split_datagram

log = logging.getLogger("appliance.ingestor")

STALL_TIMEOUT = 60.0    # seconds a connection may sit inside an incomplete frame
UDP_BACKLOG_FACTOR = 4  # TCP clients are paused at the backlog limit; UDP queues this far


class Intake(Protocol):
    """What the listeners need of the ingestor: where frames go, the limits, the counters."""

    max_frame_bytes: int
    streams: set[StreamProtocol]
    paused: bool
    last_data: float
    rejections: RejectionLog

    def accept_frame(self, payload: bytes, peer: str) -> None: ...

    def backlogged(self, fraction: float = 1.0) -> bool: ...


class StreamProtocol(asyncio.Protocol):
    """One TCP client: split its byte stream into frames, whatever the read sizes."""

    def __init__(self, ingestor: Intake, max_connections: int) -> None:
        self.ingestor = ingestor
        self.max_connections = max_connections
        self.splitter = FrameSplitter(ingestor.max_frame_bytes)
        self.peer = "?"
        self.transport: asyncio.Transport | None = None
        self.closed_on_error = False
        self.last_data = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = f"{host}:{port}"
        if len(self.ingestor.streams) >= self.max_connections:
            log.warning("refused %s: already %d connections", self.peer, self.max_connections)
            transport.close()
            return
        self.ingestor.streams.add(self)
        if self.ingestor.paused:
            self.pause()

    def close_if_stalled(self, now: float) -> None:
        """A client that stops in the middle of a frame holds its buffer for nothing (and a
        connection slot): after STALL_TIMEOUT, close it. Idle clients between frames stay."""
        if self.splitter.buffered and now - self.last_data > STALL_TIMEOUT \
                and self.transport is not None and not self.ingestor.paused:
            self.ingestor.rejections.reject(
                self.peer, "stalled", f"no data for {STALL_TIMEOUT:.0f}s inside a frame "
                f"({self.splitter.buffered} bytes buffered); closing the connection")
            self.closed_on_error = True
            self.transport.abort()

    def pause(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.ingestor.last_data = self.last_data = time.monotonic()
        frames, error = self.splitter.feed(data)
        for payload in frames:
            self.ingestor.accept_frame(payload, self.peer)
        if error is not None:
            self.ingestor.rejections.reject(self.peer, error.kind,
                                           f"{error.reason}; closing the connection")
            assert self.transport is not None
            self.closed_on_error = True
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.ingestor.streams.discard(self)
        if self.splitter.buffered and not self.closed_on_error:
            self.ingestor.rejections.reject(
                self.peer, "truncated",
                f"connection closed inside a frame ({self.splitter.buffered} bytes buffered)")


class DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, ingestor: Intake) -> None:
        self.ingestor = ingestor

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.ingestor.last_data = time.monotonic()
        peer = f"{addr[0]}:{addr[1]}"
        try:
            payload = split_datagram(data, self.ingestor.max_frame_bytes)
        except FrameError as error:
            self.ingestor.rejections.reject(peer, error.kind, error.reason)
            return
        if self.ingestor.backlogged(fraction=UDP_BACKLOG_FACTOR):
            # UDP cannot be slowed down: past a generous backlog, say so rather than queue
            self.ingestor.rejections.reject(peer, "overload", "decoders behind; datagram dropped")
            return
        self.ingestor.accept_frame(payload, peer)


def udp_socket(host: str, port: int, buffer_bytes: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux doubles it
    if granted < buffer_bytes:
        log.warning("UDP receive buffer is %d bytes, not the %d asked for: raise "
                    "net.core.rmem_max, or bursts of datagrams will be dropped by the kernel",
                    granted, buffer_bytes)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock
