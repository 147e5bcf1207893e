"""The ingestor: accepts SocketHandler (TCP) and DatagramHandler (UDP) frames on the stage port.

Frames go to decoder processes (decoder_pool.py); each good record comes back normalised, gets
its seq, is appended to the journal in batches and then published on ZeroMQ PUB for the
subscribers. Bad frames are counted and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from pathlib import Path

import zmq

from appliance import config as config_module
from appliance.errors import ApplianceError, JournalError
from appliance.ingest.decoder_pool import DecoderPool
from appliance.ingest.listeners import DatagramProtocol, StreamProtocol, udp_socket
from appliance.ingest.rejections import RejectionLog
from appliance.ingest.relay import Relay
from appliance.runtime import Every, start_process
from appliance.spine import retention, stats
from appliance.spine.codec import with_seq
from appliance.spine.journal import Journal, journal_bytes
from appliance.spine.link import TOPIC
from appliance.spine.record import Caps

log = logging.getLogger(__name__)

PUB_SNDHWM = 16        # batches; a subscriber that falls behind reads the journal instead
RETENTION_EVERY = 10.0  # seconds
STATS_EVERY = 2.0
LOG_EVERY = 60.0
DRAIN_QUIET = 0.25     # seconds without data that end the drain at shutdown
DRAIN_LIMIT = 5.0
CHUNK_BYTES = 4 << 20  # frames sent to a decoder at once, at most
BACKLOG_BYTES = 64 << 20  # frame bytes waiting for decoders before TCP reading pauses


class Ingestor:
    """Owns the journal, the PUB socket and the decoder pool; the protocols feed it frames."""

    def __init__(self, config: config_module.Config) -> None:
        settings = config.ingestor
        self.config = config
        self.max_frame_bytes = settings.max_frame_bytes
        self.batch_records, self.batch_delay = settings.batch_records, settings.batch_delay
        self.backlog_limit = settings.batch_records * (settings.decoders + 1) * 4
        self.journal = Journal(config.journal.dir, config.appliance.instance,
                               config.journal.segment_bytes, config.journal.fsync)
        self.origin = self.journal.origin
        self.pub = self._bind_pub(settings.publish)
        self.pool = DecoderPool(
            settings.decoders,
            ["--origin", self.origin, "--max-text-chars", str(settings.max_text_chars),
             "--max-field-chars", str(settings.max_field_chars),
             "--memory", str(settings.decoder_memory)],
            settings.decode_timeout, self.journal_records, self.reject)
        self.frames: list[list] = []  # [peer, received, payload] not yet sent to a decoder
        self.frames_bytes = 0
        self.rejections = RejectionLog()
        self.accepted = 0
        self.journal_lost = 0  # records the journal cap deleted before a subscriber had them
        self.last_data = 0.0  # monotonic time of the last bytes received
        self.streams: set[StreamProtocol] = set()
        self.paused = False
        self.stopped = asyncio.Event()
        self.failed: ApplianceError | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self.relay: Relay | None = None
        if config.relay.listen:
            self.relay = Relay(config.relay, config.journal.dir,
                               self.origin, Caps(settings.max_text_chars,
                                                 settings.max_field_chars),
                               self.journal_payloads, self.reject)

    @staticmethod
    def _bind_pub(endpoint: str) -> zmq.Socket:
        if endpoint.startswith("ipc://"):
            Path(endpoint[6:]).parent.mkdir(parents=True, exist_ok=True)
        pub = zmq.Context.instance().socket(zmq.PUB)
        pub.setsockopt(zmq.SNDHWM, PUB_SNDHWM)
        pub.setsockopt(zmq.LINGER, 1000)
        pub.bind(endpoint)
        return pub

    def reject(self, peer: str, kind: str, reason: str) -> None:
        self.rejections.reject(peer, kind, reason)

    def accept_frame(self, payload: bytes, peer: str) -> None:
        self.frames.append([peer, time.time(), payload])
        self.frames_bytes += len(payload)
        if len(self.frames) >= self.batch_records or self.frames_bytes >= CHUNK_BYTES:
            self.submit()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(
                self.batch_delay, self.submit)

    def submit(self) -> None:
        """Hand the frames received so far to a decoder, and push back if they pile up."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self.frames:
            return
        frames, self.frames, self.frames_bytes = self.frames, [], 0
        self.pool.submit(frames)
        if not self.paused and self.backlogged():
            self.paused = True  # TCP flow control now slows the clients down
            for stream in self.streams:
                stream.pause()

    def backlogged(self, fraction: float = 1.0) -> bool:
        """Whether the decoders are behind by more than `fraction` of what may wait for them,
        counted in frames and in bytes (1 MiB frames must not pile up by the thousand)."""
        return (self.pool.backlog_frames > self.backlog_limit * fraction
                or self.pool.backlog_bytes > BACKLOG_BYTES * fraction)

    def journal_records(self, records: list[bytes]) -> None:
        """Give decoded records their seqs, journal them durably, then publish the same bytes."""
        if records:
            seq = self.journal.next_seq
            self.journal_payloads(
                [with_seq(packed, seq + offset) for offset, packed in enumerate(records)])
        if self.paused and not self.backlogged(fraction=0.5):
            self.paused = False
            for stream in self.streams:
                stream.resume()

    def journal_payloads(self, payloads: list[bytes]) -> int | None:
        """Append packed records durably, then publish the same bytes; the next seq, or None
        when the journal refused (then the ingestor stops)."""
        try:
            _first, blob = self.journal.append(payloads)
        except JournalError as error:
            # Nothing of this batch is in the journal; stop taking records in (clients
            # buffer or retry) rather than accept what cannot be kept.
            log.critical("%s; %d records not accepted; stopping", error, len(payloads))
            self.failed = error
            self.stopped.set()
            return None
        self.accepted += len(payloads)
        try:
            self.pub.send_multipart((TOPIC, blob), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            pass  # no subscriber keeps up right now: they read it from the journal
        return self.journal.next_seq

    def prune_journal(self) -> None:
        journal = self.config.journal
        result = retention.prune(journal.dir, journal.keep, journal.max_bytes, time.time())
        if result.lost:
            self.journal_lost += sum(result.lost.values())

    def write_stats(self) -> None:
        stats.write(self.config.appliance.var_dir, "ingestor", {
            "origin": self.origin, "accepted": self.accepted,
            "next_seq": self.journal.next_seq, "rejected": self.rejections.total,
            "rejected_by_reason": dict(self.rejections.by_reason),
            "journal_lost": self.journal_lost, "connections": len(self.streams),
            "decoder_restarts": self.pool.restarts, "journal_bytes": journal_bytes(
                self.config.journal.dir),
            **({"relayed": self.relay.received, "relay_duplicates": self.relay.duplicates,
                "relay_batches": self.relay.batches} if self.relay else {})})

    def log_stats(self) -> None:
        log.info("accepted %d records (next seq %d), rejected %d frames, %d connections",
                 self.accepted, self.journal.next_seq, self.rejections.total, len(self.streams))

    async def close(self) -> None:
        if self.failed is None:
            self.submit()
            await self.pool.close(timeout=DRAIN_LIMIT)
        else:
            await self.pool.close(timeout=0)
        self.rejections.flush_summary()
        self.journal.close()
        self.pub.close()


async def serve(config: config_module.Config) -> None:
    ingestor = Ingestor(config)  # its port is free: cli.preflight checked it
    await ingestor.pool.start()
    loop = asyncio.get_running_loop()
    stopped = ingestor.stopped
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
            sock=udp_socket(host, port, config.ingestor.udp_receive_buffer))
    log.info("ingestor %s listening on %s:%d (tcp%s), journal %s, next seq %d, publishing on %s",
             ingestor.origin, host, port, "+udp" if udp else "", config.journal.dir,
             ingestor.journal.next_seq, config.ingestor.publish)
    periodic = asyncio.create_task(_periodic(ingestor))
    relay = asyncio.create_task(ingestor.relay.serve(ingestor.journal.next_seq)) \
        if ingestor.relay else None
    if relay is not None:
        relay.add_done_callback(lambda task: _relay_ended(task, ingestor))
    try:
        await stopped.wait()
    finally:
        log.info("stopping: no new connections; reading what clients already sent")
        periodic.cancel()
        if relay is not None:
            relay.cancel()
        server.close()
        if ingestor.failed is None:
            await _drain(ingestor)
        for stream in list(ingestor.streams):
            stream.pause()  # nothing more comes in while the last chunks are journaled
        if udp is not None:
            udp.close()
        await ingestor.close()
        for stream in list(ingestor.streams):
            if stream.transport is not None:
                stream.transport.close()
        ingestor.write_stats()
        ingestor.log_stats()
    if ingestor.failed is not None:
        raise ingestor.failed


def _relay_ended(task: asyncio.Task, ingestor: Ingestor) -> None:
    """The relay must not die quietly (a bad key file, a port in use): stop the ingestor,
    so supervisord shows it and the error is in the log."""
    if task.cancelled() or task.exception() is None:
        return
    error = task.exception()
    log.critical("relay stopped: %s", error)
    if isinstance(error, ApplianceError):
        ingestor.failed = error
    ingestor.stopped.set()


async def _drain(ingestor: Ingestor) -> None:
    """Keep reading open connections until they go quiet (or DRAIN_LIMIT passes): records a
    client has already sent are in hand, even if still in the kernel's buffers."""
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_LIMIT:
        if time.monotonic() - ingestor.last_data >= DRAIN_QUIET and not ingestor.paused:
            return
        await asyncio.sleep(DRAIN_QUIET / 5)
    log.warning("clients still sending after %.0fs; closing their connections", DRAIN_LIMIT)


async def _periodic(ingestor: Ingestor) -> None:
    retention_due, log_due = Every(RETENTION_EVERY), Every(LOG_EVERY)
    while True:
        await asyncio.sleep(STATS_EVERY)
        ingestor.write_stats()
        if retention_due.due():
            now = time.monotonic()
            for stream in list(ingestor.streams):
                stream.close_if_stalled(now)
            ingestor.prune_journal()
            ingestor.rejections.flush_summary()
        if log_due.due():
            ingestor.log_stats()


def main(argv: list[str] | None = None) -> None:
    _args, config = start_process(
        argparse.ArgumentParser(prog="appliance ingestor", description=__doc__), argv)
    asyncio.run(serve(config))
