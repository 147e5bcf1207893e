"""End-to-end ingest throughput: stdlib SocketHandler client processes → rows in SQLite.

(A) the appliance (an `appliance init` instance under its own supervisord) against (B) the old
ps_bridge's shape (bench/old_bridge_shape.py: one SQLite transaction per record), runs
interleaved in one invocation on one machine; prints every run and the medians.

    python3 bench/ingest.py [--runs 3] [--clients 4] [--records-per-client 25000]
                            [--reference-records-per-client 1000]
                            [--engines sqlite,postgresql,postgresql-2]

--engines runs the appliance side once per store engine in each round: `sqlite` (the
default), `postgresql` (one writer) and `postgresql-2` (two writer shards), against a
PostgreSQL server the benchmark starts itself (harness.postgres; its CPU is the "postgres"
column).

A run's clock starts just before the client processes are started and stops when the poller
(read-only, every 20 ms) sees every non-probe record as a row. CPU columns are % of one core
over that window ("other": the rest of the machine, from /proc/stat, i.e. the noise); peak
RSS is VmHWM of the appliance's ingestor and writer (and of the reference bridge) at its end.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import logging.handlers
import os
import platform
import resource
import select
import shlex
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.harness.instance import Instance, finish, start_client, wait_until
from appliance.harness.postgres import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = Path(__file__).resolve().parent / "old_bridge_shape.py"
RUN_TIMEOUT = 300.0     # seconds from the clients' start until every row must be there
POLL_INTERVAL = 0.02
PROBE = "probe"         # system_id of readiness probes, not counted
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    side: str
    index: int
    records: int
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)         # label → % of one core
    peak_rss_kib: dict[str, int] = field(default_factory=dict)  # label → VmHWM

    @property
    def rate(self) -> float:
        return self.records / self.seconds


# /proc and rusage -------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def child_pids(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return sorted(children)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def reaped_children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_cpu() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8])
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# processes ----------------------------------------------------------------------------------
def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """terminate → wait → kill, by the Popen's own PID."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def kill_leftover(pid: int, marker: str) -> None:
    """SIGKILL a supervised process that outlived its supervisord, if the PID is still it."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if marker.encode() in cmdline:
        print(f"warning: pid {pid} outlived supervisord; killing it", file=sys.stderr)
        os.kill(pid, signal.SIGKILL)


def start_clients(port: int, clients: int, per_client: int) -> list[subprocess.Popen]:
    return [start_client(port, per_client, system) for system in balanced_systems(clients)]


def balanced_systems(clients: int, shards: int = 2) -> list[str]:
    """bench-N system ids that split evenly between the shards of a two-shard writer (by
    the writer's own hash), so that side has work for both; the same ids for every side."""
    from appliance.spine.subscriber import Shard
    chosen: list[str] = []
    for number in range(10_000):
        name = f"bench-{number}"
        shard = next(k for k in range(shards) if Shard(k, shards).owns(name))
        if sum(Shard(shard, shards).owns(c) for c in chosen) < -(-clients // shards):
            chosen.append(name)
        if len(chosen) == clients:
            return chosen
    raise RuntimeError("no balanced system ids")


# the database side --------------------------------------------------------------------------
class RowCounter:
    """Counts non-probe rows through one read-only connection (each SELECT sees the latest
    commit). count(*) walks the smallest index; probes are few and found by system_id."""

    SQL = (f"SELECT (SELECT count(*) FROM record) - "
           f"(SELECT count(*) FROM record WHERE system_id = '{PROBE}')")

    def __init__(self, db_path: Path, url: str | None = None) -> None:
        if url:
            import psycopg

            from appliance.harness.postgres import PASSWORD
            self.db = psycopg.connect(url, password=PASSWORD, autocommit=True)
        else:
            self.db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)

    def __call__(self) -> int:
        return self.db.execute(self.SQL).fetchone()[0]

    def probes(self) -> int:
        return self.db.execute(f"SELECT count(*) FROM record WHERE system_id = '{PROBE}'"  # noqa: S608
                               ).fetchone()[0]

    def close(self) -> None:
        self.db.close()


def probe_until_stored(port: int, stored: Callable[[], int], diagnostics: Callable[[], str],
                       timeout: float = 30) -> None:
    """Readiness for the reference, as Instance.wait_ready does it for the appliance."""
    handler = logging.handlers.SocketHandler("127.0.0.1", port)
    logger = logging.Logger("probe")
    logger.addHandler(handler)

    def arrived() -> bool:
        logger.warning(f"probe-{uuid.uuid4().hex}", extra={"SYSTEM_ID": PROBE})
        return stored() > 0

    try:
        wait_until(arrived, timeout, "a probe record in the reference DB", diagnostics)
    finally:
        handler.close()


def wait_for_rows(count: Callable[[], int], expected: int, clients: list[subprocess.Popen],
                  started: float, diagnostics: Callable[[], str]) -> float:
    """Seconds from `started` until `count()` reaches `expected`; fails loudly on a client
    that failed, on more rows than records sent, or after RUN_TIMEOUT."""
    while True:
        rows = count()
        now = time.monotonic()
        if rows >= expected:
            if rows > expected:
                raise RuntimeError(f"{rows} rows for {expected} records sent\n{diagnostics()}")
            return now - started
        for client in clients:
            if client.poll() not in (None, 0):
                raise RuntimeError(f"client {client.pid} exited {client.returncode}: "
                                   f"{client.stderr.read() if client.stderr else ''}")
        if now - started > RUN_TIMEOUT:
            raise RuntimeError(f"timed out after {RUN_TIMEOUT:.0f}s with {rows} of {expected} "
                               f"rows\n{diagnostics()}")
        time.sleep(POLL_INTERVAL)


# (A) the appliance --------------------------------------------------------------------------
def finish_run(side: str, index: int, expected: int, seconds: float, cpu: dict[str, float],
               rss: dict[str, int], machine: float, clients: list[subprocess.Popen],
               children_before: float) -> Run:
    """Reap the clients and turn CPU seconds into % of one core over the run's window."""
    for client in clients:
        finish(client, timeout=RUN_TIMEOUT)
    cpu["clients"] = reaped_children_cpu() - children_before
    cpu["other"] = max(0.0, machine - sum(cpu.values()))
    return Run(side, index, expected, seconds,
               {name: 100 * value / seconds for name, value in cpu.items()}, rss)


ENGINES = {"sqlite": (None, 1), "postgresql": ("postgresql", 1),
           "postgresql-2": ("postgresql", 2)}  # side → (engine, writer shards)


def run_appliance(workdir: Path, index: int, clients: int, per_client: int,
                  engine: str = "sqlite", server: PostgresServer | None = None) -> Run:
    kind, shards = ENGINES[engine]
    url = server.create_database() if kind else None
    instance = Instance(workdir / f"appliance-{engine}-{index}", store=url)
    writers = ("writer",) if shards == 1 else tuple(f"writer:writer_{n}" for n in range(shards))
    if shards > 1:
        instance.scale("writer", shards)
    expected = clients * per_client
    pids: dict[str, int] = {}
    started_clients: list[subprocess.Popen] = []
    counter: RowCounter | None = None
    try:
        instance.start(wait_programs=("ingestor", *writers))
        instance.wait_ready()
        pids = {name.replace("writer:", ""): instance.pid(name)
                for name in ("ingestor", *writers)}
        if server is not None and kind:
            pids["postgres"] = server.pid
        if not all(pids.values()):
            raise RuntimeError(f"no pid for {pids}\n{instance.diagnostics()}")
        for number, child in enumerate(child_pids(pids["ingestor"])):
            pids[f"decoder{number}"] = child  # the ingestor's decoder processes
        assert instance.supervisord is not None
        supervisord = instance.supervisord.pid
        counter = RowCounter(instance.db_path, url)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        if "postgres" in pids:  # the server's backends are its children
            cpu_before["postgres"] = postgres_cpu(pids["postgres"])
        cpu_before["supervisord"] = cpu_seconds(supervisord)
        children_before, own_before = reaped_children_cpu(), own_cpu()
        machine_before = machine_busy_cpu()
        started = time.monotonic()
        started_clients = start_clients(instance.port, clients, per_client)
        seconds = wait_for_rows(counter, expected, started_clients, started,
                                instance.diagnostics)
        machine = machine_busy_cpu() - machine_before
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        if "postgres" in pids:
            cpu["postgres"] = postgres_cpu(pids["postgres"]) - cpu_before["postgres"]
        cpu["supervisord"] = cpu_seconds(supervisord) - cpu_before["supervisord"]
        cpu["poller"] = own_cpu() - own_before
        rss = {name: peak_rss_kib(pid) for name, pid in pids.items()}
        return finish_run(f"appliance-{engine}", index, expected, seconds, cpu, rss, machine,
                          started_clients, children_before)
    finally:
        if counter is not None:
            counter.close()
        for client in started_clients:
            stop_process(client)
        instance.stop()
        for name, pid in pids.items():
            if name != "postgres":
                kill_leftover(pid, str(instance.dir))


def postgres_cpu(postmaster: int) -> float:
    """CPU seconds of the server and its backends (live ones; a backend that ended took its
    seconds along, so connections are kept open for the whole run)."""
    return cpu_seconds(postmaster) + sum(cpu_seconds(pid) for pid in child_pids(postmaster))


# (B) the old bridge's shape -----------------------------------------------------------------
def read_port(bridge: subprocess.Popen, log_path: Path, timeout: float = 30) -> int:
    assert bridge.stdout is not None
    ready, _, _ = select.select([bridge.stdout], [], [], timeout)
    line = bridge.stdout.readline() if ready else ""
    if not line.startswith("listening on "):
        raise RuntimeError(f"reference bridge did not start: {line!r}\n"
                           f"{log_path.read_text(errors='replace')}")
    return int(line.split()[-1])


def run_reference(workdir: Path, index: int, clients: int, per_client: int) -> Run:
    directory = workdir / f"old-bridge-{index}"
    directory.mkdir()
    db_path, log_path = directory / "bridge.sqlite", directory / "bridge.log"
    expected = clients * per_client
    started_clients: list[subprocess.Popen] = []
    counter: RowCounter | None = None
    with log_path.open("w") as log_file:
        bridge = subprocess.Popen([sys.executable, str(BRIDGE), "--db", str(db_path)],
                                  stdout=subprocess.PIPE, stderr=log_file, text=True, cwd=ROOT)
    try:
        port = read_port(bridge, log_path)
        counter = RowCounter(db_path)
        diagnostics = lambda: log_path.read_text(errors="replace")  # noqa: E731
        probe_until_stored(port, counter.probes, diagnostics)
        bridge_before = cpu_seconds(bridge.pid)
        children_before, own_before = reaped_children_cpu(), own_cpu()
        machine_before = machine_busy_cpu()
        started = time.monotonic()
        started_clients = start_clients(port, clients, per_client)
        seconds = wait_for_rows(counter, expected, started_clients, started, diagnostics)
        machine = machine_busy_cpu() - machine_before
        cpu = {"bridge": cpu_seconds(bridge.pid) - bridge_before,
               "poller": own_cpu() - own_before}
        rss = {"bridge": peak_rss_kib(bridge.pid)}
        return finish_run("old-bridge shape", index, expected, seconds, cpu, rss, machine,
                          started_clients, children_before)
    finally:
        if counter is not None:
            counter.close()
        for client in started_clients:
            stop_process(client)
        stop_process(bridge)


# report -------------------------------------------------------------------------------------
def mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def print_header() -> None:
    print(f"{'side':<24} {'run':>3} {'records':>8} {'seconds':>8} {'records/s':>10}  "
          f"{'CPU % of one core over the window':<72} peak RSS MiB")


def print_runs(runs: list[Run]) -> None:
    for run in runs:
        cpu = " ".join(f"{name} {value:.0f}" for name, value in run.cpu.items())
        rss = " ".join(f"{name} {mib(value)}" for name, value in run.peak_rss_kib.items())
        print(f"{run.side:<24} {run.index:>3} {run.records:>8} {run.seconds:>8.2f} "
              f"{run.rate:>10.0f}  {cpu:<72} {rss}")


def print_medians(sides: dict[str, list[Run]], reference: list[Run]) -> None:
    b = statistics.median(run.rate for run in reference)
    first = next(iter(sides))
    base = statistics.median(run.rate for run in sides[first])
    print(f"\nmedians of {len(reference)} runs each")
    for side, runs in sides.items():
        a = statistics.median(run.rate for run in runs)
        print(f"  {side:<24} {a:10.0f} records/s (min {min(r.rate for r in runs):.0f}, "
              f"max {max(r.rate for r in runs):.0f}); ×{a / b:.1f} the old bridge, "
              f"×{a / base:.2f} {first}")
    print(f"  {'old-bridge shape':<24} {b:10.0f} records/s "
          f"(min {min(r.rate for r in reference):.0f}, max {max(r.rate for r in reference):.0f})")
    for side, runs in sides.items():
        for name in runs[0].peak_rss_kib:
            values = [run.peak_rss_kib[name] for run in runs]
            print(f"  {side} peak RSS {name:<9} {mib(statistics.median(values)):>8} MiB "
                  f"(max {mib(max(values))})")
        cpu = ", ".join(f"{name} {statistics.median(run.cpu[name] for run in runs):.0f}"
                        for name in runs[0].cpu)
        print(f"  {side} CPU % of one core: {cpu}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--records-per-client", type=int, default=25000)
    parser.add_argument("--reference-records-per-client", type=int, default=1000)
    parser.add_argument("--engines", default="sqlite",
                        help="appliance sides, comma-separated: " + ", ".join(ENGINES))
    args = parser.parse_args()
    engines = [name.strip() for name in args.engines.split(",") if name.strip()]
    if not engines or set(engines) - set(ENGINES):
        parser.error(f"--engines takes {', '.join(ENGINES)}")
    if min(args.runs, args.clients, args.records_per_client,
           args.reference_records_per_client) < 1:
        parser.error("every count must be at least 1")
    print(f"$ python3 bench/ingest.py {shlex.join(sys.argv[1:])}".rstrip())
    print(f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"appliance: {args.clients} clients × {args.records_per_client} records; "
          f"old-bridge shape: {args.clients} clients × {args.reference_records_per_client}\n")
    sides: dict[str, list[Run]] = {f"appliance-{engine}": [] for engine in engines}
    reference: list[Run] = []
    print_header()
    server = PostgresServer().start() if any(ENGINES[e][0] for e in engines) else None
    try:
        with tempfile.TemporaryDirectory(prefix="herald-bench-") as tmp:
            workdir = Path(tmp)
            for index in range(1, args.runs + 1):  # interleaved: noise falls on every side
                for engine in engines:
                    run = run_appliance(workdir, index, args.clients, args.records_per_client,
                                        engine, server)
                    sides[f"appliance-{engine}"].append(run)
                    print_runs([run])
                reference.append(run_reference(workdir, index, args.clients,
                                               args.reference_records_per_client))
                print_runs(reference[-1:])
    finally:
        if server is not None:
            server.stop()
    print("\nall runs")
    print_header()
    print_runs([run for runs in sides.values() for run in runs] + reference)
    print_medians(sides, reference)


if __name__ == "__main__":
    main()
