"""One record sent to an ingestor exactly as a service's SocketHandler sends it: how the
appliance puts its own alert records into its table (neelix's record action, the event
listener), through the same door as every service's records."""

from __future__ import annotations

import logging
import logging.handlers
import socket


def send_record_frame(host: str, port: int, logger: str, level: int, message: str,
                      fields: dict[str, object], timeout: float = 10.0) -> None:
    """One record in the SocketHandler wire format to an ingestor; raises OSError."""
    record = logging.LogRecord(logger, level, __file__, 0, "%s", (message,), None)
    record.SUB_SYSTEM_ID = socket.gethostname()
    for name, value in fields.items():
        setattr(record, name, value)
    frame = logging.handlers.SocketHandler(host, port).makePickle(record)
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(frame)
        connection.shutdown(socket.SHUT_WR)
        connection.recv(1)  # the ingestor closes once it has read the frame
