"""Forwarding throughput: a downstream journal pre-filled with 200,000 records → seconds until
every one is a row in the upstream appliance's DB, over the appliance link and in socket mode.

Per run and mode, two fresh `appliance init` instances under their own supervisord. The
downstream's `[forwarder:core]` program is held back (`autostart=false`) while client
processes pre-fill its journal; once its ingestor has journaled them all and both instances
are idle, the clock starts with `supervisorctl start forwarder-core` and stops when the
upstream's DB (polled read-only every 20 ms) holds every record.

- **appliance**: `mode = appliance` to the upstream's `[relay] listen` (acked batches).
- **socket**: `mode = socket` to the upstream's ingest port (SocketHandler frames, decoded by
  its ingestor like any client's).
- **old-bridge shape** (the reference): one process reads the same records from the socket
  run's downstream journal and sends each as a SocketHandler frame with one blocking
  `sendall` (the old ps_bridge's way upstream) to a fresh upstream's ingest port.

    python3 bench/forward.py [--runs 3] [--records 200000] [--clients 4]
                             [--reference-records 200000] [--reference-cap 120]

(`forward.py old-bridge-sender JOURNAL PORT COUNT` is the reference's sending process, which
the script starts itself.)

Modes run interleaved per run; medians are quoted. CPU columns are % of one core over the
timed window ("other": the rest of the machine, from /proc/stat, i.e. the noise).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ingest import (  # bench/ingest.py, beside this script
    POLL_INTERVAL,
    RowCounter,
    child_pids,
    cpu_seconds,
    kill_leftover,
    machine_busy_cpu,
    own_cpu,
    peak_rss_kib,
    reaped_children_cpu,
    stop_process,
)

from appliance.forwarding.uplink import socket_frame
from appliance.harness.instance import Instance, chained, finish, start_client, wait_until
from appliance.spine.codec import unpack_record
from appliance.spine.journal import JournalReader
from appliance.spine.record import INDEX

HERE = Path(__file__).resolve().parent
RUN_TIMEOUT = 300.0        # seconds from the forwarder's start until every row must be there
PREFILL_TIMEOUT = 300.0
PREFILL_ATTEMPTS = 5
TARGET = 20_000            # records/s, the acceptance's figure for both modes
QUIET_CPU = 0.05           # cores: below this over a 0.5 s sample, the instances are idle
MODES = ("appliance", "socket")
REFERENCE = "old-bridge shape"
SENDER_COMMAND = "old-bridge-sender"
_SYSTEM = INDEX["system_id"]
BENCH = "bench-"           # system_id prefix of the pre-fill's records: only they are counted


class BenchRows(RowCounter):
    """Rows of the pre-fill's records only: not probes, nor an appliance's own alert records
    (the events listener's, forwarded like any record). All rows minus the few others: a
    plain count(*) is far cheaper than counting a range of 200,000 (7 ms), and the poller
    shares the two cores with what it measures."""

    SQL = (f"SELECT (SELECT count(*) FROM record) - (SELECT count(*) FROM record WHERE "
           f"system_id < '{BENCH}' OR system_id >= 'bench.' OR system_id IS NULL)")


@dataclass
class Run:
    mode: str
    index: int
    records: int
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)         # label → % of one core
    peak_rss_kib: dict[str, int] = field(default_factory=dict)  # label → VmHWM
    note: str = ""

    @property
    def rate(self) -> float:
        return self.records / self.seconds


# instances --------------------------------------------------------------------------------
def instance_pair(workdir: Path, index: int, mode: str) -> tuple[Instance, Instance]:
    """(downstream, upstream), the downstream's forwarder-core not started with supervisord."""
    names = iter(("up", "down"))  # chained() makes the upstream first

    def make() -> Instance:
        return Instance(workdir / f"{mode}-{index}-{next(names)}")

    if mode == "appliance":
        down, up = chained(make)
    else:
        up, down = make(), make()
        down.add_forwarder("core", mode="socket", upstream=f"127.0.0.1:{up.port}")
    text, held = re.subn(r"^\[program:forwarder-core\]\n", "[program:forwarder-core]\n"
                         "autostart=false\n", down.conf.read_text(), count=1, flags=re.M)
    if not held:
        raise RuntimeError(f"no [program:forwarder-core] in {down.conf}")
    down.conf.write_text(text)
    return down, up


def program_pids(instance: Instance, prefix: str) -> dict[str, int]:
    """Label → PID of the instance's busy processes (the ingestor's decoders included)."""
    pids = {f"{prefix}{name}": instance.pid(name) for name in ("ingestor", "writer", "neelix")}
    if not all(pids.values()):
        raise RuntimeError(f"no pid for {pids}\n{instance.diagnostics()}")
    for number, child in enumerate(child_pids(pids[f"{prefix}ingestor"])):
        pids[f"{prefix}decoder{number}"] = child
    return pids


def wait_quiet(pids: dict[str, int], what: str, diagnostics: Callable[[], str],
               timeout: float = 60) -> None:
    """Until these processes together use under QUIET_CPU cores over a 0.5 s sample: the
    downstream's writer and neelix are done with the pre-fill and do not share the clock."""
    last = [time.monotonic(), sum(cpu_seconds(pid) for pid in pids.values())]

    def quiet() -> bool:
        now = time.monotonic()
        if now - last[0] < 0.5:
            return False
        used = sum(cpu_seconds(pid) for pid in pids.values())
        idle = (used - last[1]) / (now - last[0]) < QUIET_CPU
        last[:] = [now, used]
        return idle

    wait_until(quiet, timeout, what, diagnostics)


def prefill(down: Instance, records: int, clients: int) -> None:
    """`records` from client processes into the downstream, until its ingestor has journaled
    them all and its writer stored them. A stdlib SocketHandler drops a record whose send
    times out (1 s) while the ingestor pushes back, so what is missing is sent again."""
    counter = BenchRows(down.db_path)
    try:
        for attempt in range(PREFILL_ATTEMPTS):
            missing = records - counter()
            if missing <= 0:
                break
            count = clients if attempt == 0 else 1
            per_client, rest = divmod(missing, count)
            send(down, [(per_client + (n < rest), f"{BENCH}{attempt}-{n}")
                        for n in range(count) if per_client + (n < rest)])
            wait_journaled(down, counter)
        if counter() != records:
            raise RuntimeError(f"downstream has {counter()} rows for {records} records "
                               f"after {PREFILL_ATTEMPTS} attempts\n{down.diagnostics()}")
    finally:
        counter.close()


def send(down: Instance, clients: list[tuple[int, str]]) -> None:
    started = [start_client(down.port, count, system) for count, system in clients]
    try:
        for client in started:
            finish(client, timeout=PREFILL_TIMEOUT)
    finally:
        for client in started:
            stop_process(client)


def wait_journaled(down: Instance, counter: BenchRows) -> None:
    """Until two of the ingestor's stats snapshots agree, with no client connected, and the
    writer has every record it accepted."""
    last: list[dict] = [{}]

    def settled() -> bool:
        stats = down.stats("ingestor")
        same = stats.get("time") != last[0].get("time") and \
            stats.get("accepted") == last[0].get("accepted")
        last[0] = stats
        return same and not stats.get("connections") and \
            stats["accepted"] == down.count()

    wait_until(settled, PREFILL_TIMEOUT, "the downstream's ingestor and writer settled",
               lambda: f"{down.stats('ingestor')}, {counter()} rows\n{down.diagnostics()}")


def wait_for_rows(counter: BenchRows, expected: int, started: float, timeout: float,
                  failed: Callable[[], str], diagnostics: Callable[[], str]) -> float | None:
    """Seconds from `started` until `counter()` reaches `expected`; None after `timeout`.
    Fails loudly on more rows than records or when `failed()` names a failure."""
    while True:
        rows = counter()
        now = time.monotonic()
        if rows >= expected:
            if rows > expected:
                raise RuntimeError(f"{rows} rows for {expected} records\n{diagnostics()}")
            return now - started
        if problem := failed():
            raise RuntimeError(f"{problem}\n{diagnostics()}")
        if now - started > timeout:
            return None
        time.sleep(POLL_INTERVAL)


def window_cpu(pids: dict[str, int], before: dict[str, float], seconds: float,
               machine: float, extra: dict[str, float]) -> dict[str, float]:
    """CPU seconds over the window → % of one core, with "other" for the rest."""
    cpu = {label: cpu_seconds(pid) - before.get(label, 0.0) for label, pid in pids.items()}
    cpu.update(extra)
    cpu["other"] = max(0.0, machine - sum(cpu.values()))
    return {label: 100 * value / seconds for label, value in cpu.items()}


def stop_all(*instances: Instance, pids: tuple[int, ...] = ()) -> None:
    for instance in instances:
        instance.stop()
        for pid in pids:
            kill_leftover(pid, str(instance.dir))


# the two forwarder modes ------------------------------------------------------------------
def run_forwarding(workdir: Path, index: int, mode: str, records: int,
                   clients: int) -> tuple[Run, Path]:
    """One timed run; returns it and the downstream's journal (the reference sends it)."""
    down, up = instance_pair(workdir, index, mode)
    pids: dict[str, int] = {}
    counter: BenchRows | None = None
    starter: subprocess.Popen | None = None
    try:
        up.start()
        up.wait_ready()
        down.start()
        down.wait_ready()
        prefill(down, records, clients)
        pids = {**program_pids(down, "down-"), **program_pids(up, "up-")}
        diagnostics = lambda: f"{down.diagnostics()}\n--- upstream\n{up.diagnostics()}"  # noqa: E731
        wait_quiet(pids, "both instances idle after the pre-fill", diagnostics)
        counter = BenchRows(up.db_path)
        supervisors = {"supervisord-down": down.supervisord.pid,
                       "supervisord-up": up.supervisord.pid}
        pids.update(supervisors)
        before = {label: cpu_seconds(pid) for label, pid in pids.items()}
        children_before, own_before = reaped_children_cpu(), own_cpu()
        machine_before = machine_busy_cpu()
        started = time.monotonic()
        # Not down.ctl(): `supervisorctl start` returns only after startsecs (1 s), and the
        # poller must watch the rows from the start.
        starter = subprocess.Popen(["supervisorctl", "-c", str(down.conf), "start",
                                    "forwarder-core"], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)

        def failed() -> str:
            code = starter.poll()
            return "" if code in (None, 0) else \
                f"supervisorctl start exited {code}: {starter.stdout.read()}"

        seconds = wait_for_rows(counter, records, started, RUN_TIMEOUT, failed, diagnostics)
        if seconds is None:
            raise RuntimeError(f"timed out after {RUN_TIMEOUT:.0f}s with {counter()} of "
                               f"{records} rows upstream\n{diagnostics()}")
        machine = machine_busy_cpu() - machine_before
        starter.communicate(timeout=60)
        ctl = reaped_children_cpu() - children_before  # supervisorctl start
        forwarder = down.pid("forwarder-core")
        if not forwarder:
            raise RuntimeError(f"forwarder-core not running\n{diagnostics()}")
        pids["forwarder"], before["forwarder"] = forwarder, 0.0  # its CPU since its start
        cpu = window_cpu(pids, before, seconds, machine,
                         {"poller+ctl": own_cpu() - own_before + ctl})
        rss = {"forwarder": peak_rss_kib(forwarder), "up-ingestor": peak_rss_kib(
            pids["up-ingestor"])}
        stats = down.stats("forwarder-core")
        check_upstream(up, down, mode, records)
        note = f"forwarder failures {stats.get('failures', '?')}" if stats.get("failures") \
            else ""
        return Run(mode, index, records, seconds, cpu, rss, note), down.journal_dir
    finally:
        if counter is not None:
            counter.close()
        if starter is not None:
            stop_process(starter)
        stop_all(down, up, pids=tuple(pids.values()))
        shutil.rmtree(up.dir, ignore_errors=True)


def check_upstream(up: Instance, down: Instance, mode: str, records: int) -> None:
    """Every record exactly once upstream (appliance mode: with its downstream origin and
    seq; socket mode records get the upstream's own)."""
    where = f"system_id >= '{BENCH}' AND system_id < 'bench.'"
    if mode == "appliance":
        origin = (down.journal_dir / "origin").read_text().strip()
        got = up.query(f"SELECT count(*), count(DISTINCT seq) FROM record WHERE {where} "
                       "AND origin = ?", (origin,))[0]
    else:
        got = up.query(f"SELECT count(*), count(DISTINCT message) FROM record WHERE {where}")[0]
    if got != (records, records):
        raise RuntimeError(f"{mode}: upstream has (rows, distinct) {got} for {records}")


# the reference: the old ps_bridge's way upstream --------------------------------------------
def send_old_shape(argv: list[str]) -> None:
    """`forward.py old-bridge-sender JOURNAL PORT COUNT`: read a journal and send each record
    as one SocketHandler frame with one blocking sendall, in this one process."""
    journal_dir, port, count = Path(argv[0]), int(argv[1]), int(argv[2])
    reader, position, sent = JournalReader(journal_dir), 1, 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        while sent < count and (entries := reader.read_from(position, 2000)):
            for _seq, payload in entries:
                values = unpack_record(payload)
                if not (values[_SYSTEM] or "").startswith(BENCH):
                    continue  # probes, alert records
                sock.sendall(socket_frame(values))
                sent += 1
                if sent == count:
                    break
            position = entries[-1][0] + 1
    print(f"sent {sent}", flush=True)


def run_reference(workdir: Path, index: int, journal_dir: Path, records: int,
                  cap: float) -> Run:
    up = Instance(workdir / f"reference-{index}-up")
    pids: dict[str, int] = {}
    counter: BenchRows | None = None
    sender: subprocess.Popen | None = None
    try:
        up.start()
        up.wait_ready()
        pids = program_pids(up, "up-")
        wait_quiet(pids, "the upstream idle", up.diagnostics)
        counter = BenchRows(up.db_path)
        pids["supervisord-up"] = up.supervisord.pid
        before = {label: cpu_seconds(pid) for label, pid in pids.items()}
        children_before, own_before = reaped_children_cpu(), own_cpu()
        machine_before = machine_busy_cpu()
        started = time.monotonic()
        sender = subprocess.Popen(
            [sys.executable, __file__, SENDER_COMMAND, str(journal_dir), str(up.port),
             str(records)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def failed() -> str:
            code = sender.poll()
            return "" if code in (None, 0) else f"sender exited {code}: {sender.stderr.read()}"

        seconds = wait_for_rows(counter, records, started, cap, failed, up.diagnostics)
        note, stored = "", records
        if seconds is None:  # capped: the rate so far
            seconds, stored = time.monotonic() - started, counter()
            note = f"capped at {cap:.0f}s: {stored} of {records} stored"
        machine = machine_busy_cpu() - machine_before
        if note:
            stop_process(sender)
        else:
            finish(sender, timeout=60)  # every row is in: it has sent its last frame
        sender_cpu = reaped_children_cpu() - children_before
        cpu = window_cpu(pids, before, seconds, machine,
                         {"sender": sender_cpu, "poller": own_cpu() - own_before})
        return Run(REFERENCE, index, stored, seconds, cpu,
                   {"up-ingestor": peak_rss_kib(pids["up-ingestor"])}, note)
    finally:
        if counter is not None:
            counter.close()
        if sender is not None:
            stop_process(sender)
        stop_all(up, pids=tuple(pids.values()))
        shutil.rmtree(up.dir, ignore_errors=True)


# report -----------------------------------------------------------------------------------
def print_header() -> None:
    print(f"{'mode':<16} {'run':>3} {'records':>8} {'seconds':>8} {'records/s':>10}  "
          f"CPU % of one core over the window; peak RSS MiB")


def print_runs(runs: list[Run]) -> None:
    for run in runs:
        cpu = " ".join(f"{name} {value:.0f}" for name, value in run.cpu.items()
                       if value >= 0.5 or name == "other")
        rss = " ".join(f"{name} {value / 1024:.1f}" for name, value in run.peak_rss_kib.items())
        note = f"  [{run.note}]" if run.note else ""
        print(f"{run.mode:<16} {run.index:>3} {run.records:>8} {run.seconds:>8.2f} "
              f"{run.rate:>10.0f}  {cpu}; {rss}{note}", flush=True)


def print_medians(runs: dict[str, list[Run]]) -> None:
    reference = statistics.median(run.rate for run in runs[REFERENCE])
    print(f"\nmedians of {len(runs[REFERENCE])} runs per mode")
    for mode, done in runs.items():
        rate = statistics.median(run.rate for run in done)
        verdict = "" if mode == REFERENCE else \
            f"  ratio to reference {rate / reference:5.1f}  target {TARGET:,}/s: " \
            f"{'met' if rate >= TARGET else 'NOT met'}"
        print(f"  {mode:<16} {rate:10.0f} records/s (min {min(r.rate for r in done):.0f}, "
              f"max {max(r.rate for r in done):.0f}){verdict}")
    for mode, done in runs.items():
        labels = [label for label in done[0].cpu if all(label in r.cpu for r in done)]
        cpu = " ".join(f"{label} {statistics.median(r.cpu[label] for r in done):.0f}"
                       for label in labels
                       if label == "other" or statistics.median(r.cpu[label] for r in done) >= 0.5)
        print(f"  {mode:<16} median CPU % of one core: {cpu}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=4, help="pre-fill client processes")
    parser.add_argument("--reference-records", type=int, default=200_000)
    parser.add_argument("--reference-cap", type=float, default=120.0,
                        help="seconds; a slower reference run is cut and its rate so far used")
    args = parser.parse_args()
    if min(args.runs, args.records, args.clients, args.reference_records) < 1:
        parser.error("every count must be at least 1")
    if args.reference_records > args.records:
        parser.error("the reference sends records of the socket run's journal: "
                     "--reference-records must not exceed --records")
    print(f"$ python3 bench/forward.py {shlex.join(sys.argv[1:])}".rstrip())
    print(f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.records} records pre-filled by {args.clients} clients per mode and run; "
          f"reference: {args.reference_records} records, capped at {args.reference_cap:.0f}s\n")
    runs: dict[str, list[Run]] = {mode: [] for mode in (*MODES, REFERENCE)}
    print_header()
    with tempfile.TemporaryDirectory(prefix="herald-forward-") as tmp:
        workdir = Path(tmp)
        for index in range(1, args.runs + 1):  # interleaved, so noise falls on every mode
            for mode in MODES:
                run, journal_dir = run_forwarding(workdir, index, mode, args.records,
                                                  args.clients)
                runs[mode].append(run)
                print_runs([run])
            runs[REFERENCE].append(run_reference(workdir, index, journal_dir,
                                                 args.reference_records, args.reference_cap))
            print_runs(runs[REFERENCE][-1:])
            for path in workdir.iterdir():
                shutil.rmtree(path, ignore_errors=True)
    print("\nall runs")
    print_header()
    print_runs([run for done in runs.values() for run in done])
    print_medians(runs)


if __name__ == "__main__":
    if sys.argv[1:2] == [SENDER_COMMAND]:
        send_old_shape(sys.argv[2:])
    else:
        main()
