"""The ingestor: accepts SocketHandler (TCP) and DatagramHandler (UDP) frames on the stage port.

Each good record is normalised, given seq/origin/received, appended to the journal in batches
and then published on ZeroMQ PUB for the subscribers. Bad frames are counted and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import time
from pathlib import Path

import zmq

from appliance import config as config_module
from appliance import retention
from appliance.codec import FrameSplitter, decode_frame, pack_record, split_datagram
from appliance.errors import FrameError
from appliance.journal import Journal
from appliance.record import ORIGIN, SEQ, Caps, normalize, scrub
from appliance.rejections import RejectionLog
from appliance.runtime import Every, setup_logging, write_stats
from appliance.subscriber import TOPIC

log = logging.getLogger(__name__)

PUB_SNDHWM = 16        # batches; a subscriber that falls behind reads the journal instead
RETENTION_EVERY = 10.0  # seconds
STATS_EVERY = 2.0
LOG_EVERY = 60.0
DRAIN_QUIET = 0.25     # seconds without data that end the drain at shutdown
DRAIN_LIMIT = 5.0


class Ingestor:
    """Owns the journal and the PUB socket; the protocols below feed it frames."""

    def __init__(self, config: config_module.Config) -> None:
        settings = config.ingestor
        self.config = config
        self.caps = Caps(text=settings.max_text_chars, field=settings.max_field_chars)
        self.max_frame_bytes = settings.max_frame_bytes
        self.batch_records, self.batch_delay = settings.batch_records, settings.batch_delay
        self.journal = Journal(config.journal.dir, config.appliance.instance,
                               config.journal.segment_bytes, config.journal.fsync)
        self.origin = self.journal.origin
        self.pub = self._bind_pub(settings.publish)
        self.pending: list[list] = []
        self.rejections = RejectionLog()
        self.accepted = 0
        self.last_data = 0.0  # monotonic time of the last bytes received
        self.connections = 0
        self._flush_handle: asyncio.TimerHandle | None = None

    @staticmethod
    def _bind_pub(endpoint: str) -> zmq.Socket:
        if endpoint.startswith("ipc://"):
            Path(endpoint[6:]).parent.mkdir(parents=True, exist_ok=True)
        pub = zmq.Context.instance().socket(zmq.PUB)
        pub.setsockopt(zmq.SNDHWM, PUB_SNDHWM)
        pub.setsockopt(zmq.LINGER, 1000)
        pub.bind(endpoint)
        return pub

    def accept_frame(self, payload: bytes, peer: str) -> None:
        try:
            raw = decode_frame(payload)
            values = normalize(raw, peer, time.time(), self.caps)
        except FrameError as error:
            self.rejections.reject(peer, error.kind, error.reason)
            return
        except Exception as error:  # noqa: BLE001 - a bug must cost one frame, not a client
            log.exception("could not normalise a frame from %s", peer)
            self.rejections.reject(peer, "internal-error", f"{type(error).__name__}: {error}")
            return
        self.pending.append(values)
        if len(self.pending) >= self.batch_records:
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(
                self.batch_delay, self.flush)

    def flush(self) -> None:
        """Journal the pending records (durably, in order), then publish the same bytes."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self.pending:
            return
        records, self.pending = self.pending, []
        seq, origin = self.journal.next_seq, self.origin
        payloads = []
        for offset, values in enumerate(records):
            values[SEQ], values[ORIGIN] = seq + offset, origin
            try:
                payloads.append(pack_record(values))
            except (UnicodeEncodeError, ValueError):
                payloads.append(pack_record(scrub(values)))
        _first, blob = self.journal.append(payloads)
        self.accepted += len(payloads)
        try:
            self.pub.send_multipart((TOPIC, blob), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            pass  # no subscriber keeps up right now: they read it from the journal

    def prune_journal(self) -> None:
        journal = self.config.journal
        result = retention.prune(journal.dir, journal.keep, journal.max_bytes, time.time())
        if result.lost:
            self.rejections.lost += sum(result.lost.values())

    def write_stats(self) -> None:
        write_stats(self.config.appliance.var_dir, "ingestor", {
            "origin": self.origin, "accepted": self.accepted,
            "next_seq": self.journal.next_seq, "rejected": self.rejections.total,
            "rejected_by_reason": dict(self.rejections.by_reason),
            "journal_lost": self.rejections.lost, "connections": self.connections})

    def log_stats(self) -> None:
        log.info("accepted %d records (next seq %d), rejected %d frames, %d connections",
                 self.accepted, self.journal.next_seq, self.rejections.total, self.connections)

    def close(self) -> None:
        self.flush()
        self.rejections.flush_summary()
        self.journal.close()
        self.pub.close()


class StreamProtocol(asyncio.Protocol):
    """One TCP client: split its byte stream into frames, whatever the read sizes."""

    def __init__(self, ingestor: Ingestor, max_connections: int) -> None:
        self.ingestor = ingestor
        self.max_connections = max_connections
        self.splitter = FrameSplitter(ingestor.max_frame_bytes)
        self.peer = "?"
        self.transport: asyncio.Transport | None = None
        self.closed_on_error = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = f"{host}:{port}"
        self.ingestor.connections += 1
        if self.ingestor.connections > self.max_connections:
            log.warning("refused %s: already %d connections", self.peer, self.max_connections)
            transport.close()

    def data_received(self, data: bytes) -> None:
        self.ingestor.last_data = time.monotonic()
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
        self.ingestor.connections -= 1
        if self.splitter.buffered and not self.closed_on_error:
            self.ingestor.rejections.reject(
                self.peer, "truncated",
                f"connection closed inside a frame ({self.splitter.buffered} bytes buffered)")


class DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.ingestor.last_data = time.monotonic()
        peer = f"{addr[0]}:{addr[1]}"
        try:
            payload = split_datagram(data, self.ingestor.max_frame_bytes)
        except FrameError as error:
            self.ingestor.rejections.reject(peer, error.kind, error.reason)
            return
        self.ingestor.accept_frame(payload, peer)


async def serve(config: config_module.Config) -> None:
    ingestor = Ingestor(config)
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    host, port = config.appliance.bind, config.ingestor.port
    server = await loop.create_server(
        lambda: StreamProtocol(ingestor, config.ingestor.max_connections), host, port,
        reuse_address=True, backlog=512)
    udp = None
    if config.ingestor.udp:
        udp, _ = await loop.create_datagram_endpoint(
            lambda: DatagramProtocol(ingestor),
            sock=_udp_socket(host, port, config.ingestor.udp_receive_buffer))
    log.info("ingestor %s listening on %s:%d (tcp%s), journal %s, next seq %d, publishing on %s",
             ingestor.origin, host, port, "+udp" if udp else "", config.journal.dir,
             ingestor.journal.next_seq, config.ingestor.publish)
    periodic = asyncio.create_task(_periodic(ingestor))
    try:
        await stopped.wait()
    finally:
        log.info("stopping: no new connections; reading what clients already sent")
        periodic.cancel()
        server.close()
        await _drain(ingestor)
        if udp is not None:
            udp.close()
        ingestor.close()
        ingestor.write_stats()
        ingestor.log_stats()


async def _drain(ingestor: Ingestor) -> None:
    """Keep reading open connections until they go quiet (or DRAIN_LIMIT passes): records a
    client has already sent are in hand, even if still in the kernel's buffers."""
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_LIMIT:
        if time.monotonic() - ingestor.last_data >= DRAIN_QUIET:
            return
        await asyncio.sleep(DRAIN_QUIET / 5)
    log.warning("clients still sending after %.0fs; closing their connections", DRAIN_LIMIT)


def _udp_socket(host: str, port: int, buffer_bytes: int) -> socket.socket:
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


async def _periodic(ingestor: Ingestor) -> None:
    retention_due, log_due = Every(RETENTION_EVERY), Every(LOG_EVERY)
    while True:
        await asyncio.sleep(STATS_EVERY)
        ingestor.write_stats()
        if retention_due.due():
            ingestor.prune_journal()
            ingestor.rejections.flush_summary()
        if log_due.due():
            ingestor.log_stats()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="appliance ingestor", description=__doc__)
    parser.add_argument("-c", "--config", required=True, help="path of appliance.ini")
    args = parser.parse_args(argv)
    config = config_module.load(args.config)
    setup_logging(config.appliance.log_level)
    asyncio.run(serve(config))
