"""The ingestor's side of the decoder workers: sends chunks of frames, delivers the records
in arrival order, and contains a hostile frame by killing the worker stuck on it.

A chunk whose worker overran `timeout` or died is split into single frames and decoded again
one by one, so the frame that did it is rejected alone and every good frame still lands.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack

from appliance.ingest.decoder import LENGTH, frame_message

log = logging.getLogger("appliance.ingestor")

MAX_IN_FLIGHT = 2  # chunks queued at one worker: one decoding, one waiting


@dataclass(eq=False)
class Chunk:
    id: int
    frames: list  # [[peer, received, payload], …]
    size: int     # payload bytes
    records: list[bytes] = field(default_factory=list)
    done: bool = False


@dataclass(eq=False)
class Worker:
    process: asyncio.subprocess.Process
    in_flight: deque = field(default_factory=deque)  # of Chunk, in the order sent
    busy_since: float = 0.0
    reader: asyncio.Task | None = None
    dead: bool = False


class DecoderPool:
    def __init__(self, size: int, argv: list[str], timeout: float,
                 deliver: Callable[[list[bytes]], None],
                 reject: Callable[[str, str, str], None]) -> None:
        self.size, self.argv, self.timeout = size, argv, timeout
        self.deliver, self.reject = deliver, reject
        self.order: deque[Chunk] = deque()     # every chunk not yet delivered, oldest first
        self.waiting: deque[Chunk] = deque()   # not yet sent to a worker
        self.workers: list[Worker] = []
        self._ids = itertools.count()
        self._watchdog: asyncio.Task | None = None
        self.restarts = 0
        self.backlog_frames = 0
        self.backlog_bytes = 0
        self._failures = 0  # replacements since a worker last answered

    async def start(self) -> None:
        self.workers = [await self._spawn() for _ in range(self.size)]
        self._watchdog = asyncio.create_task(self._watch())

    async def _spawn(self) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "appliance", "decoder", *self.argv,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        worker = Worker(process)
        worker.reader = asyncio.create_task(self._read(worker))
        return worker

    def submit(self, frames: list) -> None:
        chunk = Chunk(next(self._ids), frames, sum(len(frame[2]) for frame in frames))
        self.backlog_frames += len(frames)
        self.backlog_bytes += chunk.size
        self.order.append(chunk)
        self.waiting.append(chunk)
        self._dispatch()

    def _dispatch(self) -> None:
        while self.waiting:
            idle = [w for w in self.workers if not w.dead and len(w.in_flight) < MAX_IN_FLIGHT]
            if not idle:
                return
            worker = min(idle, key=lambda w: len(w.in_flight))
            chunk = self.waiting.popleft()
            if not worker.in_flight:
                worker.busy_since = time.monotonic()
            worker.in_flight.append(chunk)
            assert worker.process.stdin is not None
            worker.process.stdin.write(frame_message(
                msgpack.packb([chunk.id, chunk.frames], use_bin_type=True)))

    async def _read(self, worker: Worker) -> None:
        stdout = worker.process.stdout
        assert stdout is not None
        try:
            while True:
                header = await stdout.readexactly(LENGTH.size)
                body = await stdout.readexactly(LENGTH.unpack(header)[0])
                chunk_id, records, rejects, _seconds = msgpack.unpackb(body, raw=False)
                chunk = worker.in_flight.popleft()
                if chunk.id != chunk_id:
                    raise RuntimeError(f"decoder answered chunk {chunk_id}, not {chunk.id}")
                worker.busy_since = time.monotonic()
                self._failures = 0
                for peer, kind, reason in rejects:
                    self.reject(peer, kind, reason)
                chunk.records, chunk.done = records, True
                self._deliver_ready()
                self._dispatch()
        except asyncio.IncompleteReadError:
            if not worker.dead:
                await self._replace(worker, "exited")
        except (RuntimeError, ValueError, msgpack.UnpackException) as error:
            log.error("decoder %d answered nonsense (%s)", worker.process.pid, error)
            if not worker.dead:
                await self._replace(worker, "answered nonsense")

    def _deliver_ready(self) -> None:
        while self.order and self.order[0].done:
            chunk = self.order.popleft()
            self.backlog_frames -= len(chunk.frames)
            self.backlog_bytes -= chunk.size
            try:
                self.deliver(chunk.records)
            except Exception:  # noqa: BLE001 - a bug in journaling is not the decoder's fault
                log.exception("could not journal %d decoded records", len(chunk.records))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(min(0.1, self.timeout / 4))
            now = time.monotonic()
            for worker in list(self.workers):
                if worker.in_flight and not worker.dead \
                        and now - worker.busy_since > self.timeout:
                    await self._replace(worker, f"overran {self.timeout:g}s")

    async def _replace(self, worker: Worker, why: str) -> None:
        """Kill a worker, start another, and retry its chunks: the one it was decoding frame
        by frame (a single frame is rejected), the others whole."""
        worker.dead = True
        if worker.reader is not None and worker.reader is not asyncio.current_task():
            worker.reader.cancel()  # before waiting: a late answer must not shift in_flight
        if worker.process.returncode is None:
            worker.process.kill()
        await worker.process.wait()
        self.restarts += 1
        self._failures += 1
        if self._failures > self.size * 3:  # workers that cannot even start: don't spin
            await asyncio.sleep(min(0.1 * self._failures, 5.0))
        if not worker.in_flight:
            log.warning("decoder %d %s while idle; starting another", worker.process.pid, why)
            self.workers[self.workers.index(worker)] = await self._spawn()
            return
        suspect, *innocent = worker.in_flight
        log.warning("decoder %d %s on a chunk of %d frames; decoding it frame by frame",
                    worker.process.pid, why, len(suspect.frames))
        retry: list[Chunk] = []
        if len(suspect.frames) == 1:
            peer = suspect.frames[0][0]
            kind = "decode-timeout" if why.startswith("overran") else "decoder-crash"
            self.reject(peer, kind, f"the decoder {why} on this frame")
            suspect.done = True
        else:
            singles = [Chunk(next(self._ids), [frame], len(frame[2]))
                       for frame in suspect.frames]
            position = self.order.index(suspect)
            self.order.remove(suspect)
            for offset, single in enumerate(singles):
                self.order.insert(position + offset, single)
            retry.extend(singles)
        retry.extend(innocent)
        self.waiting.extendleft(reversed(retry))
        self.workers[self.workers.index(worker)] = await self._spawn()
        self._deliver_ready()
        self._dispatch()

    async def close(self, timeout: float) -> None:
        """Wait (bounded) for chunks in flight, then let the workers go by closing stdin."""
        deadline = time.monotonic() + timeout
        while self.order and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.order:
            log.error("decoders still busy after %.0fs; %d frames not journaled", timeout,
                      self.backlog_frames)
        if self._watchdog is not None:
            self._watchdog.cancel()
        for worker in self.workers:
            worker.dead = True
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in self.workers:
            try:
                await asyncio.wait_for(worker.process.wait(), 5)
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()
            if worker.reader is not None:
                worker.reader.cancel()
