"""/metrics: a health snapshot in the Prometheus text exposition format (version 0.0.4).

Counters come from the processes' stats files; each series is named herald_… with its
program, shard or forwarder as a label.
"""

from __future__ import annotations

from collections.abc import Iterator

from appliance.monitor.health import Snapshot

# (stats file prefix, key, metric, type, help)
SERIES = (
    ("ingestor", "accepted", "herald_ingestor_accepted_total", "counter",
     "records accepted and journaled"),
    ("ingestor", "rejected", "herald_ingestor_rejected_total", "counter",
     "frames rejected (bad input)"),
    ("ingestor", "journal_lost", "herald_journal_lost_total", "counter",
     "records the journal's size cap deleted before a subscriber had them"),
    ("ingestor", "connections", "herald_ingestor_connections", "gauge", "open TCP clients"),
    ("ingestor", "decoder_restarts", "herald_ingestor_decoder_restarts_total", "counter",
     "decoder processes replaced (a hostile frame, a crash)"),
    ("ingestor", "relayed", "herald_relay_received_total", "counter",
     "records journaled from downstream forwarders"),
    ("ingestor", "relay_duplicates", "herald_relay_duplicates_total", "counter",
     "records a forwarder sent again and the relay dropped"),
    ("writer", "written", "herald_writer_written_total", "counter", "rows stored"),
    ("writer", "duplicates", "herald_writer_duplicates_total", "counter",
     "records already stored (same origin and seq)"),
    ("writer", "rejected", "herald_writer_rejected_total", "counter",
     "records the database refused"),
    ("neelix", "matched", "herald_neelix_matched_total", "counter",
     "records that met a rule"),
    ("neelix", "notices", "herald_neelix_notices_total", "counter", "notices made"),
    ("neelix", "sent", "herald_neelix_sent_total", "counter", "alerts delivered"),
    ("neelix", "failed", "herald_neelix_failed_total", "counter", "alerts given up"),
    ("forwarder", "forwarded", "herald_forwarder_forwarded_total", "counter",
     "records the upstream acknowledged"),
    ("forwarder", "failures", "herald_forwarder_failures_total", "counter",
     "batches that had to be sent again"),
    ("forwarder", "behind_records", "herald_forwarder_behind_records", "gauge",
     "records in the journal not yet acknowledged upstream"),
    ("forwarder", "behind_seconds", "herald_forwarder_behind_seconds", "gauge",
     "age of the oldest record waiting for the upstream"),
    ("forwarder", "link_up", "herald_forwarder_link_up", "gauge",
     "1 while the upstream answers"),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: object) -> str | None:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return None


def render(snap: Snapshot) -> str:
    return "".join(f"{line}\n" for line in _lines(snap))


def _lines(snap: Snapshot) -> Iterator[str]:
    yield from _family("herald_up", "gauge", "1 when /health finds nothing wrong",
                       [("", "1" if snap.healthy else "0")])
    yield from _family("herald_program_running", "gauge", "1 while supervisord says RUNNING",
                       [(f'program="{_label(name)}"', "1" if state == "RUNNING" else "0")
                        for name, state in sorted(snap.programs.items())])
    yield from _family("herald_subscriber_lag_records", "gauge",
                       "records in the journal a subscriber has not taken yet",
                       [(f'subscriber="{_label(name)}"', str(behind))
                        for name, behind in sorted(snap.lag.items())])
    for prefix, key, metric, kind, text in SERIES:
        samples = []
        for name, stats in sorted(snap.stats.items()):
            if name == prefix or name.startswith(prefix + "-"):
                value = _number(stats.get(key))
                if value is not None:
                    samples.append((f'process="{_label(name)}"', value))
        yield from _family(metric, kind, text, samples)
    for metric, value, text in (
            ("herald_journal_bytes", snap.journal_bytes, "journal segments on disk"),
            ("herald_db_bytes", snap.db_bytes, "herald database file and its WAL"),
            ("herald_disk_free_bytes", snap.disk_free, "free space where var_dir lives")):
        yield from _family(metric, "gauge", text, [("", str(value))])


def _family(metric: str, kind: str, text: str,
            samples: list[tuple[str, str]]) -> Iterator[str]:
    if not samples:
        return
    yield f"# HELP {metric} {text}"
    yield f"# TYPE {metric} {kind}"
    for labels, value in samples:
        yield f"{metric}{{{labels}}} {value}" if labels else f"{metric} {value}"
