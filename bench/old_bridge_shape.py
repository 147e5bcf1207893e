"""The old ps_bridge's architecture, re-created minimally: the reference for bench/ingest.py.

asyncio stream server; per connection `readexactly(4)` + `readexactly(n)`; the appliance's
restricted decoder (never pickle.loads) and normaliser; then one INSERT and one commit() per
record on a plain sqlite3 connection (rollback journal, synchronous=FULL), as the old
SQLAlchemy-based bridge did. Deliberately kinder than the original: readexactly instead of
read(n) (which lost records), no ORM objects, no secondary indexes, no full-text index.

Run by bench/ingest.py: `old_bridge_shape.py --db PATH`; it binds 127.0.0.1 on an ephemeral
port, prints `listening on PORT` once the table exists, and exits 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sqlite3
import sys
import time
from pathlib import Path

from appliance.errors import FrameError
from appliance.spine.codec import HEADER_BYTES, decode_frame
from appliance.spine.record import COLUMNS, ORIGIN, SEQ, Caps, normalize

MAX_FRAME_BYTES = 1 << 20
ORIGIN_NAME = "old-bridge-shape"
# Same columns as the appliance's `record` table; built from the schema's constants.
CREATE_SQL = (f"CREATE TABLE IF NOT EXISTS record (id INTEGER PRIMARY KEY, "
              f"{', '.join(COLUMNS)})")
INSERT_SQL = (f"INSERT INTO record ({', '.join(COLUMNS)}) "
              f"VALUES ({', '.join('?' * len(COLUMNS))})")


class Bridge:
    def __init__(self, db_path: Path) -> None:
        # isolation_level "" (the default): the INSERT opens a transaction, commit() ends it.
        self.db = sqlite3.connect(str(db_path), timeout=30)
        self.db.execute("PRAGMA journal_mode=DELETE")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(CREATE_SQL)
        self.db.commit()
        self.caps = Caps()
        self.next_seq = 1
        self.rejected = 0

    def store(self, payload: bytes, peer: str) -> None:
        """One record, one transaction: the old bridge's commit-per-record."""
        try:
            values = normalize(decode_frame(payload), peer, time.time(), self.caps)
        except FrameError:
            self.rejected += 1
            return
        values[SEQ], values[ORIGIN] = self.next_seq, ORIGIN_NAME
        self.next_seq += 1
        self.db.execute(INSERT_SQL, values)
        self.db.commit()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        peer = f"{host}:{port}"
        try:
            while True:
                header = await reader.readexactly(HEADER_BYTES)
                length = int.from_bytes(header, "big")
                if length > MAX_FRAME_BYTES:
                    print(f"{peer}: frame length {length}, closing", file=sys.stderr)
                    break
                self.store(await reader.readexactly(length), peer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def serve(db_path: Path) -> None:
    bridge = Bridge(db_path)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    server = await asyncio.start_server(bridge.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {port}", flush=True)
    try:
        await stopped.wait()
    finally:
        server.close()
        bridge.db.close()
        print(f"stored {bridge.next_seq - 1}, rejected {bridge.rejected}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="SQLite file to create")
    asyncio.run(serve(parser.parse_args().db))


if __name__ == "__main__":
    main()
