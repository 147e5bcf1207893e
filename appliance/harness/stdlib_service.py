"""A test client: a plain Python service logging through the standard library handlers only.

Run as its own process by the tests: `client.py --port P --count N --system-id S [--udp]`.
Each message is `<system-id> <index>`; every 100th record carries a traceback.
"""

import argparse
import logging
import logging.handlers
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--system-id", required=True)
    parser.add_argument("--udp", action="store_true")
    parser.add_argument("--rate", type=float, default=0.0, help="records/s; 0 = flat out")
    parser.add_argument("--lowercase", action="store_true", help="lower-case field names")
    args = parser.parse_args()
    kind = logging.handlers.DatagramHandler if args.udp else logging.handlers.SocketHandler
    handler = kind("127.0.0.1", args.port)
    logger = logging.getLogger("client.service")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    names = ("system_id", "sub_system_id", "package_version") if args.lowercase else \
        ("SYSTEM_ID", "SUB_SYSTEM_ID", "package_version")
    fields = dict(zip(names, (args.system_id, "host-7", "2.4.1"), strict=True))
    started = time.monotonic()
    for index in range(args.count):
        extra = {**fields, "order_id": index, "tags": ["a", "b"]}
        if index % 100 == 99:
            try:
                raise ValueError(f"bad order {index}")
            except ValueError:
                logger.exception("%s %d", args.system_id, index, extra=extra)
        else:
            logger.info("%s %d", args.system_id, index, extra=extra)
        if args.rate and index % 10 == 0:
            ahead = index / args.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    handler.close()
    print(f"sent {args.count}")


if __name__ == "__main__":
    main()
