"""The service side of the flow: a logging handler that sends records to the appliance's
ingestor without ever blocking the service, and keeps them while the appliance restarts.

    import appliance.client
    log = appliance.client.setup(system_id="billing", stage="PRODUCTION", package="billing")
    log.info("invoice %s sent", 4711)                  # returns in microseconds, link up or not
    log.warning("card declined", extra={"order": 17})  # extras land in the `extra` column
    # at exit logging.shutdown() sends what is queued (close_timeout seconds at most)

Standard library only, and no import from the rest of `appliance`: copy this one file into a
service that cannot install the package. Frames are what `logging.handlers.SocketHandler`
sends (4-byte length + pickle protocol 1 of the record dict), with every value reduced to
plain data so the appliance's restricted unpickler takes it.

Fields come from setup()'s arguments, else from ps.basic's environment variables SYSTEM_ID,
SUB_SYSTEM_ID (default: the host name), SUB_SUB_SYSTEM_ID, PRODUKT_ID, USER_SPEC_1,
USER_SPEC_2; the port from the stage (argument, else $STAGE, else DEVELOPMENT) unless
$HERALD_PORT or port= says otherwise; the host from host=, $HERALD_HOST or 127.0.0.1.

Delivery: records wait in a bounded in-memory queue; a daemon thread sends them and
reconnects with exponential backoff and jitter. A full queue spills to `spill=PATH` (sent in
order once the queue has drained, also by the next run if this one ends first), or without a
spill file the record is counted in `handler.dropped`. TCP has no acknowledgement, so what
went out in the last `resend_window` seconds before a connection broke is sent again on the
next one: around an appliance restart (or kill -9) some records arrive twice; one is lost only
if the appliance held it unread for longer than that before closing, or if the service exits
with it still in memory after close_timeout (counted in `dropped`).
"""

from __future__ import annotations

import collections
import importlib.metadata
import logging
import os
import pickle
import queue
import random
import socket
import struct
import sys
import threading
import time
from collections.abc import Mapping

# A copy of appliance/stages.py (ingest ports and ps.basic's aliases), because this file must
# stay vendorable on its own; tests/test_client_library.py checks that the two agree.
STAGE_PORTS = {"TESTING": 9010, "DEVELOPMENT": 9020, "INTEGRATION": 9022, "PRODUCTION": 9024}
STAGE_ALIASES = {"TEST": "TESTING", "DEV": "DEVELOPMENT", "DEV_STAGE": "DEVELOPMENT",
                 "INT": "INTEGRATION", "PROD": "PRODUCTION"}
DEFAULT_STAGE = "DEVELOPMENT"
# ps.basic's record fields, read from environment variables of the same names.
FIELDS = ("SYSTEM_ID", "SUB_SYSTEM_ID", "SUB_SUB_SYSTEM_ID", "PRODUKT_ID", "USER_SPEC_1",
          "USER_SPEC_2")
MAX_FRAME_BYTES = 1 << 20    # the appliance's default [ingestor] max_frame_bytes
BATCH_BYTES = 256 << 10      # frames joined into one send
RESEND_MAX_BYTES = 16 << 20  # cap of what is kept for resending after a broken connection
FIRST_RETRY = 0.05           # seconds before the first reconnection attempt
TICK = 0.2                   # idle check of the connection (and of close())
WARN_AFTER = 3               # failed connects before a never-connected handler says so
_PLAIN = frozenset({str, int, float, bool, type(None)})
_HEADER = struct.Struct(">L")
_FORMATTER = logging.Formatter()


def stage_port(stage: str) -> int:
    """The ingest port of `stage` (case-insensitive; ps.basic's short names allowed)."""
    name = stage.strip().upper()
    name = STAGE_ALIASES.get(name, name)
    try:
        return STAGE_PORTS[name]
    except KeyError:
        raise ValueError(f"unknown stage {stage!r}; expected one of "
                         f"{', '.join(STAGE_PORTS)}") from None


def plain(value: object, depth: int = 0) -> object:
    """`value` as plain data (str, int, float, bool, None, lists and dicts of them)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if depth < 32 and kind in (list, tuple):
        return [plain(item, depth + 1) for item in value]  # type: ignore[attr-defined]
    if depth < 32 and kind is dict:
        return {k if type(k) is str else str(plain(k, 32)): plain(v, depth + 1)
                for k, v in value.items()}  # type: ignore[attr-defined]
    try:
        for base in (int, float, str):  # enums and other subclasses as their base value
            if isinstance(value, base):
                return base.__new__(base, value)  # type: ignore[call-overload]
        return repr(value)
    except Exception:  # noqa: BLE001 - a broken __str__/__repr__ must not cost the record
        return f"<unprintable {kind.__name__}>"


def record_fields(*, system_id: str | None = None, sub_system_id: str | None = None,
                  sub_sub_system_id: str | None = None, produkt_id: str | None = None,
                  user_spec_1: str | None = None, user_spec_2: str | None = None,
                  package: str | None = None, package_version: str | None = None,
                  env: Mapping[str, str] | None = None) -> dict[str, str]:
    """ps.basic's fields: each argument, else its environment variable; SUB_SYSTEM_ID
    defaults to the host name; package_version is "NAME VERSION" of the installed `package`."""
    env = os.environ if env is None else env
    given = (system_id, sub_system_id, sub_sub_system_id, produkt_id, user_spec_1, user_spec_2)
    fields = {}
    for key, value in zip(FIELDS, given, strict=True):
        value = value if value is not None else env.get(key)
        if not value and key == "SUB_SYSTEM_ID":
            value = socket.gethostname()
        if value:
            fields[key] = str(value)
    if package_version is None and package:
        try:
            package_version = f"{package} {importlib.metadata.version(package)}"
        except (importlib.metadata.PackageNotFoundError, ValueError):
            package_version = None  # not installed (e.g. run from a checkout): no field
    if package_version:
        fields["package_version"] = package_version
    return fields


class ApplianceHandler(logging.Handler):
    """Queues each record as a SocketHandler frame; a daemon thread owns the connection."""

    def __init__(self, host: str = "127.0.0.1", port: int = STAGE_PORTS[DEFAULT_STAGE], *,
                 fields: Mapping[str, str] | None = None, queue_size: int = 10000,
                 spill: str | os.PathLike[str] | None = None, spill_max_bytes: int = 256 << 20,
                 heartbeat: float | None = None, heartbeat_name: str = "appliance.client",
                 retry_max_delay: float = 5.0, resend_window: float = 2.0,
                 connect_timeout: float = 5.0, send_timeout: float = 30.0,
                 close_timeout: float = 5.0, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        super().__init__()
        self.host, self.port = host, port
        self.fields = dict(fields or {})
        self.spill = os.fspath(spill) if spill is not None else None
        self._replay_path = f"{self.spill}.replay"
        self.spill_max_bytes, self.max_frame_bytes = spill_max_bytes, max_frame_bytes
        self.heartbeat, self.heartbeat_name = heartbeat, heartbeat_name
        self.retry_max_delay, self.resend_window = retry_max_delay, resend_window
        self.connect_timeout, self.send_timeout = connect_timeout, send_timeout
        self.close_timeout = close_timeout
        self.sent = self.dropped = self.spilled = self.resent = self.connects = 0
        self.last_error: str | None = None
        # Said once on stderr (never through logging: it would come back here) when the first
        # warn_after connects fail: a wrong port or stage must not be silent.
        self.warning: str | None = None
        self.warn_after = WARN_AFTER
        self._queue: queue.Queue[bytes] = queue.Queue(queue_size)
        self._handed = 0  # records queued or spilled: what flush() waits for
        self._handed_before = 0  # records in spill files a previous run left
        self._spill_lock = threading.Lock()
        self._spill_fd: int | None = None
        self._spill_bytes, self._spilling = 0, False
        self._replay = None
        self._replay_rest = b""
        # (frames, how many are sent for the first time, whether a spill file keeps them)
        self._outbox: collections.deque[tuple[bytes, int, bool]] = collections.deque()
        self._window: collections.deque[tuple[float, bytes]] = collections.deque()
        self._window_bytes = 0
        self._sock: socket.socket | None = None
        self._failures, self._retry_at, self._gave_up_at = 0, 0.0, -1e9
        self._done = threading.Condition()
        self._stop = threading.Event()
        self._closed = False
        self._resume_spill()  # before any emit() can write to the spill file
        self._thread = threading.Thread(target=self._run, name="appliance.client", daemon=True)
        self._thread.start()

    # the service's side: never blocks ----------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            frame = self._frame(record)
        except Exception:  # noqa: BLE001 - as every logging handler: report, never raise
            self.handleError(record)
            return
        if frame is None or self._closed:
            with self._spill_lock:
                self.dropped += 1
            return
        if not self._spilling:  # once spilling, keep spilling until the queue drained: order
            try:
                self._queue.put_nowait(frame)
                self._handed += 1
                return
            except queue.Full:
                pass
        with self._spill_lock:
            if self.spill is not None and self._spill_bytes + len(frame) <= self.spill_max_bytes:
                try:
                    if self._spill_fd is None:
                        self._spill_fd = os.open(self.spill,
                                                 os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                    if os.write(self._spill_fd, frame) < len(frame):  # disk full
                        os.ftruncate(self._spill_fd, self._spill_bytes)  # whole frames only
                        raise OSError("short write")
                except OSError as error:
                    self.last_error = f"spill {self.spill}: {error}"
                else:
                    self._spill_bytes += len(frame)
                    self._spilling = True
                    self.spilled += 1
                    self._handed += 1
                    return
            try:  # spill full or failing: the queue may have room again (order gives way)
                self._queue.put_nowait(frame)
                self._handed += 1
            except queue.Full:
                self.dropped += 1

    def _frame(self, record: logging.LogRecord) -> bytes | None:
        """Like SocketHandler.makePickle: message merged, traceback as text, then plain."""
        if record.exc_info and not record.exc_text:
            record.exc_text = (self.formatter or _FORMATTER).formatException(record.exc_info)
        data = dict(record.__dict__)
        data["msg"] = record.getMessage()
        data["args"] = data["exc_info"] = None
        data.pop("message", None)
        for key, value in self.fields.items():
            if key not in data and key.lower() not in data:  # the record's own value wins
                data[key] = value
        for key, value in data.items():
            if type(value) not in _PLAIN:
                data[key] = plain(value)
        payload = pickle.dumps(data, 1)
        if len(payload) > self.max_frame_bytes:  # the appliance would close the connection
            cap = self.max_frame_bytes // 16
            for key, value in data.items():
                text = value if isinstance(value, str) else repr(value)
                if len(text) > cap:
                    data[key] = f"{text[:cap]}…[cut {len(text) - cap} chars by the client]"
            payload = pickle.dumps(data, 1)
            if len(payload) > self.max_frame_bytes:
                return None
        return _HEADER.pack(len(payload)) + payload

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record handed over so far is sent (at most `timeout` seconds,
        default close_timeout); True if it was."""
        target = self._handed + self._handed_before
        self._retry_at = 0.0  # try the link now rather than after the backoff
        with self._done:
            done = self._done.wait_for(lambda: self.sent >= target,
                                       self.close_timeout if timeout is None else timeout)
        if not done:
            self._gave_up_at = time.monotonic()
        return done

    def close(self) -> None:
        """Flush (bounded by close_timeout), stop the sender; logging.shutdown() calls this
        at exit. Records still unsent then are counted in `dropped`."""
        if not self._closed:
            # logging.shutdown() calls flush() and then close(): one wait, not two
            recent = time.monotonic() - self._gave_up_at < 1.0
            self.flush(0.0 if recent else self.close_timeout)
            self._closed = True
            self._stop.set()
            self._thread.join(TICK * 5)  # longer only if stuck in a send (send_timeout)
            in_memory = [] if self._thread.is_alive() else list(self._outbox)
            with self._spill_lock:  # records in spill files wait for the next run
                self.dropped += self._queue.qsize() + sum(
                    count for _blob, count, kept in in_memory if not kept)
                if self._spill_fd is not None:
                    os.close(self._spill_fd)
                    self._spill_fd = None
        super().close()

    # the sender thread: owns the socket, the outbox and the spill replay -----------------
    def _run(self) -> None:
        next_beat = time.monotonic() + (self.heartbeat or 0)
        while not self._stop.is_set():
            try:
                if self.heartbeat and time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.heartbeat
                    self._beat()
                self._step()
            except Exception as error:  # noqa: BLE001 - the sender must outlive any bug
                self.last_error = f"sender: {type(error).__name__}: {error}"
                self._stop.wait(TICK)
        if self._sock is not None:
            self._sock.close()

    def _beat(self) -> None:
        """A heartbeat record, only when nothing else waits to go: records already prove the
        service alive, and beats must not pile up while the link is down. It bypasses the
        queue (and the handler's lock, which logging.shutdown() holds while flushing)."""
        if not self._outbox:
            frame = self._frame(logging.LogRecord(self.heartbeat_name, logging.INFO, __file__,
                                                  0, "heartbeat", None, None, "heartbeat"))
            if frame is not None:
                self._outbox.append((frame, 0, False))

    def _step(self) -> None:
        if not self._outbox and not self._refill():
            if self._sock is not None and _peer_gone(self._sock):
                self._broken("the appliance closed the connection")
            else:
                self._settle()
            return
        if self._sock is None:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                self._stop.wait(min(wait, TICK))
                return
            try:
                self._sock = socket.create_connection((self.host, self.port),
                                                      self.connect_timeout)
            except OSError as error:
                self._broken(f"connect {self.host}:{self.port}: {error}")
                self._warn_if_unreachable()
                return
            self._sock.settimeout(self.send_timeout)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            self.connects += 1
        if _peer_gone(self._sock):  # closed since the last send: that one may be lost
            self._broken("the appliance closed the connection")
            return
        self._settle()
        blob, count, _kept = self._outbox[0]
        try:
            self._sock.sendall(blob)
        except OSError as error:
            self._broken(f"send to {self.host}:{self.port}: {error}")
            return
        self._outbox.popleft()
        self._window.append((time.monotonic(), blob))
        self._window_bytes += len(blob)
        with self._done:
            self.sent += count
            self._done.notify_all()

    def _refill(self) -> bool:
        """Next frames into the outbox, in logging order: the queue, then (once it has
        drained) the spill file. False when there was nothing to send."""
        if self._replay is None and self._spilling and self._queue.empty():
            self._swap_spill()
        if self._replay is not None:
            return self._read_replay()
        try:
            frames = [self._queue.get(timeout=TICK)]
        except queue.Empty:
            return False
        size = len(frames[0])
        while size < BATCH_BYTES:
            try:
                frames.append(self._queue.get_nowait())
            except queue.Empty:
                break
            size += len(frames[-1])
        self._outbox.append((b"".join(frames), len(frames), False))
        return True

    def _settle(self) -> None:
        """The connection is still up: what went out more than resend_window ago is taken
        as read by the appliance (and the link as healthy: the backoff starts over)."""
        horizon = time.monotonic() - self.resend_window
        while self._window and (self._window[0][0] < horizon
                                or self._window_bytes > RESEND_MAX_BYTES):
            self._window_bytes -= len(self._window.popleft()[1])
            self._failures = 0

    def _broken(self, reason: str) -> None:
        """Drop the connection; what it may have swallowed unread goes to the outbox's front."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.last_error = reason
        self.resent += len(self._window)
        self._outbox.extendleft((blob, 0, False) for _sent, blob in reversed(self._window))
        self._window.clear()
        self._window_bytes = 0
        self._failures += 1
        delay = min(self.retry_max_delay, FIRST_RETRY * 2 ** min(self._failures - 1, 30))
        self._retry_at = time.monotonic() + random.uniform(delay / 2, delay)

    # spill file: PATH is written by emit(), PATH.replay read by the sender ---------------
    def _resume_spill(self) -> None:
        """Files a previous run left are sent first, in order (and flush() waits for them)."""
        if self.spill is None:
            return
        if os.path.exists(self._replay_path):
            self._handed_before += _whole_frames(self._replay_path, self.max_frame_bytes)
            self._replay = open(self._replay_path, "rb")  # read across many steps
        if os.path.exists(self.spill):
            self._handed_before += _whole_frames(self.spill, self.max_frame_bytes)
            self._spilling = True
            self._spill_bytes = os.path.getsize(self.spill)

    def _swap_spill(self) -> None:
        with self._spill_lock:
            if self._spill_fd is not None:
                os.close(self._spill_fd)
                self._spill_fd = None
            self._spilling, self._spill_bytes = False, 0
            try:
                os.replace(self.spill, self._replay_path)  # type: ignore[arg-type]
            except OSError as error:
                self.last_error = f"spill {self.spill}: {error}"
                return
        self._replay = open(self._replay_path, "rb")  # read across many steps

    def _read_replay(self) -> bool:
        assert self._replay is not None
        while True:
            chunk = self._replay.read(BATCH_BYTES)
            data = self._replay_rest + chunk
            end, count = 0, 0
            while len(data) - end >= 4:
                size = _HEADER.unpack_from(data, end)[0]
                if len(data) - end - 4 < size:
                    break
                end += 4 + size
                count += 1
            self._replay_rest = data[end:]
            if count:
                self._outbox.append((data[:end], count, True))
                return True
            if not chunk:  # end of file; everything read from it has been sent
                self._replay.close()
                os.unlink(self._replay.name)
                self._replay, self._replay_rest = None, b""
                return False

    def _warn_if_unreachable(self) -> None:
        if self.connects or self.warning or self._failures < self.warn_after:
            return
        self.warning = (f"appliance.client: cannot reach the appliance at {self.host}:"
                        f"{self.port} ({self.last_error}); records are kept and sent once it "
                        f"answers. Wrong port or stage? (setup(port=…, stage=…), $HERALD_PORT, "
                        f"$STAGE)")
        try:
            sys.stderr.write(self.warning + "\n")
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):  # no usable stderr (a daemon)
            pass

    def stats(self) -> dict[str, object]:
        return {"sent": self.sent, "dropped": self.dropped, "spilled": self.spilled,
                "resent_batches": self.resent, "connects": self.connects,
                "queued": self._queue.qsize(), "last_error": self.last_error,
                "warning": self.warning}


def _peer_gone(sock: socket.socket) -> bool:
    """The appliance never sends: a readable socket means it closed (FIN or RST)."""
    timeout = sock.gettimeout()
    sock.settimeout(0)
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


def _whole_frames(path: str, max_frame_bytes: int) -> int:
    """The number of frames in a spill file; a torn or garbled tail (the service died while
    writing) is cut off, or new frames appended after it would be misread."""
    count, end, size = 0, 0, os.path.getsize(path)
    with open(path, "rb") as file:
        while len(header := file.read(4)) == 4:
            length = _HEADER.unpack(header)[0]
            if length > max_frame_bytes or end + 4 + length > size:
                break
            file.seek(length, os.SEEK_CUR)
            end += 4 + length
            count += 1
    if end < size:
        os.truncate(path, end)
    return count


def setup(system_id: str | None = None, stage: str | None = None, *, name: str | None = None,
          level: int | str = logging.INFO, host: str | None = None, port: int | None = None,
          sub_system_id: str | None = None, sub_sub_system_id: str | None = None,
          produkt_id: str | None = None, user_spec_1: str | None = None,
          user_spec_2: str | None = None, package: str | None = None,
          package_version: str | None = None, env: Mapping[str, str] | None = None,
          **options: object) -> logging.Logger:
    """Send the service's records to the appliance; return a logger named after the system.

    By default the ApplianceHandler goes on the root logger, so every logger of the service
    (`logging.getLogger("mypkg.db")`, libraries' loggers) reaches the appliance, and the root
    level becomes `level`. With `name=` it goes on that logger only (and its children), which
    is then the one returned. `options` go to the handler (spill=, heartbeat=, queue_size=,
    …); `current_handler()` gives it back (for stats()). Calling setup() again
    for the same logger replaces its handler."""
    global _current
    env = os.environ if env is None else env
    fields = record_fields(system_id=system_id, sub_system_id=sub_system_id,
                           sub_sub_system_id=sub_sub_system_id, produkt_id=produkt_id,
                           user_spec_1=user_spec_1, user_spec_2=user_spec_2, package=package,
                           package_version=package_version, env=env)
    host = host or env.get("HERALD_HOST") or "127.0.0.1"
    if port is None:
        port = int(env["HERALD_PORT"]) if env.get("HERALD_PORT") else \
            stage_port(stage or env.get("STAGE") or DEFAULT_STAGE)
    returned = logging.getLogger(fields.get("SYSTEM_ID", "service") if name is None else name)
    attached = logging.getLogger() if name is None else returned
    for old in [h for h in attached.handlers if isinstance(h, ApplianceHandler)]:
        attached.removeHandler(old)
        old.close()
    options.setdefault("heartbeat_name", returned.name)
    handler = ApplianceHandler(host, port, fields=fields, **options)  # type: ignore[arg-type]
    attached.addHandler(handler)
    attached.setLevel(level)
    _current = handler
    return returned


_current: ApplianceHandler | None = None


def current_handler() -> ApplianceHandler | None:
    """The handler the last setup() installed (handler.stats(): sent, dropped, warning, …)."""
    return _current
