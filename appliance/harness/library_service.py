"""A service that logs through appliance.client, run as its own process by
tests/test_client_library.py; it times every log.info call and prints one JSON line.

`client_service.py --port P --count N --system-id S [--rate R] [--queue-size Q] [--spill F]`
Each message is `<system-id> <index>`. The JSON line has the call durations (max, p99, p50
in ms, the slowest with their time since the start) and the handler's counters after a flush.
"""

import argparse
import json
import time

import appliance.client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--system-id", required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="records/s; 0 = flat out")
    parser.add_argument("--queue-size", type=int, default=10000)
    parser.add_argument("--spill", default=None)
    parser.add_argument("--flush-timeout", type=float, default=120.0,
                        help="0: leave it to logging.shutdown() at exit")
    args = parser.parse_args()
    log = appliance.client.setup(system_id=args.system_id, port=args.port,
                                 name="client_service", queue_size=args.queue_size,
                                 spill=args.spill, package="herald-appliance")
    handler = log.handlers[-1]
    durations = []
    started = time.monotonic()
    for index in range(args.count):
        before = time.perf_counter()
        log.info("%s %d", args.system_id, index, extra={"order_id": index})
        durations.append((time.perf_counter() - before, time.monotonic() - started))
        if args.rate and index % 10 == 0:
            ahead = index / args.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    logged_for = time.monotonic() - started
    flushed = handler.flush(args.flush_timeout) if args.flush_timeout else None
    durations.sort()
    calls = [took for took, _at in durations]
    print(json.dumps({
        "max_ms": calls[-1] * 1000, "p99_ms": calls[int(len(calls) * 0.99)] * 1000,
        "p50_ms": calls[len(calls) // 2] * 1000, "over_1ms": sum(c > 0.001 for c in calls),
        "slowest": [(round(took * 1000, 2), round(at, 2)) for took, at in durations[-5:]],
        "logged_for_s": logged_for, "flushed": flushed, **handler.stats()}), flush=True)


if __name__ == "__main__":
    main()
