"""The relay's checks on what a (less trusted) downstream sends, its duplicate filter through
a crash between journal append and bookkeeping, and the forwarder/relay config checks."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import msgpack
import pytest

from appliance import config
from appliance.errors import ConfigError
from appliance.ingest.relay import MAX_HOPS, BadRecord, Relay, Seen, add_hop, checked
from appliance.spine.codec import pack_record, unpack_record
from appliance.spine.journal import Journal, JournalReader
from appliance.spine.link import ACK, BATCH
from appliance.spine.record import COLUMNS, INDEX, Caps

CAPS = Caps(text=100, field=40)


def record(seq: int, origin: str = "edge_t-1", **fields: object) -> list:
    values = [None] * len(COLUMNS)
    values[INDEX["seq"]], values[INDEX["origin"]], values[INDEX["received"]] = seq, origin, 1.5
    for name, value in fields.items():
        values[INDEX[name]] = value
    return values


@pytest.mark.parametrize("bad", [
    "not a list", [], [None] * (len(COLUMNS) + 1), record(0), record(-3), record(1, origin=""),
    record(1, levelno="40"), record(1, levelno=2**70), record(1, created=math.nan),
    record(1, message=b"bytes"), record(1, message={"a": 1}), record(1, received=None),
])
def test_records_of_the_wrong_shape_are_refused(bad):
    with pytest.raises(BadRecord):
        checked(bad, CAPS)


def test_text_is_cut_to_the_caps_and_short_records_are_padded():
    values = checked(record(7, message="m" * 500, system_id="s" * 500)[:-3], CAPS)
    assert len(values) == len(COLUMNS)
    assert values[INDEX["message"]].startswith("m" * 100) and "truncated" in \
        values[INDEX["message"]]
    assert values[INDEX["system_id"]].startswith("s" * 40) and \
        len(values[INDEX["system_id"]]) < 100


def test_hops_start_at_the_origin_and_stay_bounded():
    values = record(1)
    add_hop(values, "dmz_p-1", 2.0)
    assert json.loads(values[INDEX["hops"]]) == [["edge_t-1", 1.5], ["dmz_p-1", 2.0]]
    values[INDEX["hops"]] = "{broken"
    add_hop(values, "core_p-1", 3.0)
    assert json.loads(values[INDEX["hops"]]) == [["edge_t-1", 1.5], ["core_p-1", 3.0]]
    for n in range(40):
        add_hop(values, f"relay-{n}", 4.0 + n)
    hops = json.loads(values[INDEX["hops"]])
    assert len(hops) == MAX_HOPS and hops[0][0] == "edge_t-1" and hops[-1][0] == "relay-39"


def relay_on(journal: Journal, directory: Path) -> tuple[Relay, list]:
    rejected: list = []

    def append(payloads: list[bytes]) -> int:
        journal.append(payloads)
        return journal.next_seq

    relay = Relay(SimpleNamespace(max_batch_bytes=1 << 20), directory, journal.origin, CAPS,
                  append, lambda *args: rejected.append(args))
    relay.seen.load(directory, journal.next_seq)
    return relay, rejected


def batch(*records: list) -> list[bytes]:
    return [BATCH, b"\0" * 7 + b"\1", msgpack.packb(list(records))]


def test_duplicates_are_dropped_even_after_a_crash_before_the_bookkeeping(tmp_path):
    journal = Journal(tmp_path, "up_p", 1 << 20, fsync=False)
    relay, _ = relay_on(journal, tmp_path)
    assert relay.handle(b"id", batch(record(1), record(2)))[2:] == [b"ok", b"2"]
    # A crash after the journal append, before relay-origins.json: the entries are there...
    journal.append([pack_record(record(3))])
    # ...and a restarted relay learns them from the journal, so the retry adds nothing twice.
    relay, _ = relay_on(journal, tmp_path)
    assert relay.handle(b"id", batch(record(2), record(3), record(4)))[2:] == [b"ok", b"1"]
    seqs = [unpack_record(p)[0] for _s, p in JournalReader(tmp_path).read_from(1, 100)]
    assert seqs == [1, 2, 3, 4]
    assert relay.duplicates == 2


def test_a_bad_record_costs_only_itself_and_garbage_gets_an_error_ack(tmp_path):
    journal = Journal(tmp_path, "up_p", 1 << 20, fsync=False)
    relay, rejected = relay_on(journal, tmp_path)
    reply = relay.handle(b"id", batch(record(1), record(2, levelno="x"), record(3)))
    assert reply[0] == ACK and reply[2:] == [b"ok", b"2"]
    assert [kind for _peer, kind, _why in rejected] == ["relay-record"]
    assert relay.handle(b"id", [BATCH, b"12345678", b"\xc1garbage"])[2] == b"error"
    assert relay.handle(b"id", [b"GET / HTTP/1.0"])[2] == b"error"
    assert [kind for _peer, kind, _why in rejected][1:] == ["relay-batch", "relay-protocol"]


def test_the_seen_file_survives_a_restart(tmp_path):
    seen = Seen(tmp_path, "own")
    seen.last = {"edge": 9}
    seen.save(5)
    again = Seen(tmp_path, "own")
    again.load(tmp_path, 5)
    assert again.last == {"edge": 9} and not again.fresh(record(9, origin="edge"), {})


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "conf" / "appliance.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return config.load(path)


@pytest.mark.parametrize(("text", "section", "key"), [
    ("[forwarder:core]\n", "forwarder:core", "upstream"),                  # appliance needs it
    ("[forwarder:core]\nupstream = core:9029\n", "forwarder:core", "upstream"),
    ("[forwarder:core]\nmode = carrier-pigeon\n", "forwarder:core", "mode"),
    ("[forwarder:core]\nupstrem = tcp://h:1\n", "forwarder:core", "upstrem"),
    ("[forwarder:a b]\nupstream = tcp://h:1\n", "forwarder:a b", ""),
    ("[forwarder:core]\nupstream = tcp://h:1\nserver_key = x\n", "forwarder:core",
     "client_key_file"),
    ("[forwarder:old]\nmode = socket\nupstream = h:99999\n", "forwarder:old", "upstream"),
    ("[appliance]\nstage = TESTING\n[forwarder:old]\nmode = socket\n", "forwarder:old",
     "upstream"),  # TESTING's upstream port 9011 is its own web port: refused
    ("[relay]\nlisten = tcp://127.0.0.1:9029\nsecret_key_file = k\n", "relay", "allowed_keys"),
    ("[relay]\nlisten = 9029\n", "relay", "listen"),
])
def test_forwarder_and_relay_mistakes_are_refused(tmp_path, text, section, key):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert (caught.value.section, caught.value.key) == (section, key), str(caught.value)


def test_forwarders_are_read_with_their_defaults(tmp_path):
    loaded = load(tmp_path, "[forwarder:core]\nupstream = tcp://10.0.0.5:9029\n"
                            "systems = shop*, web\n[forwarder:old]\nmode = socket\n")
    core, old = loaded.forwarders["core"], loaded.forwarders["old"]
    assert (core.mode, core.upstream, core.systems, core.level) == \
        ("appliance", "tcp://10.0.0.5:9029", ["shop*", "web"], "DEBUG")
    assert old.upstream == ("127.0.0.1", 9019)  # DEVELOPMENT's tunnel end, as the old bridge


def test_hostile_batches_cost_neither_the_relay_nor_its_memory(tmp_path):
    journal = Journal(tmp_path, "up_p", 1 << 20, fsync=False)
    relay, rejected = relay_on(journal, tmp_path)
    # Millions of one-byte arrays: refused from the header, before anything is built.
    bomb = b"\xdd" + (4_000_000).to_bytes(4, "big") + b"\x90" * 4_000_000
    assert relay.handle(b"id", [BATCH, b"\0" * 8, bomb])[2] == b"error"
    # Deeply nested hops text: the record is kept, its hops start afresh.
    nested = record(1, hops="[" * 60000)
    assert relay.handle(b"id", batch(nested))[2:] == [b"ok", b"1"]
    stored = unpack_record(JournalReader(tmp_path).read_from(1, 10)[0][1])
    assert [hop[0] for hop in json.loads(stored[INDEX["hops"]])] == ["edge_t-1", journal.origin]
    # Our own records coming back round a cycle of appliances are dropped.
    assert relay.handle(b"id", batch(record(5, origin=journal.origin)))[2:] == [b"ok", b"0"]
    # A newer downstream's extra columns are left out, the record kept.
    assert relay.handle(b"id", batch(record(2) + ["a column from the future"]))[2:] == \
        [b"ok", b"1"]
    assert [kind for _peer, kind, _why in rejected] == ["relay-batch"]


def test_two_forwarders_to_one_relay_are_refused(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "[forwarder:a]\nupstream = tcp://h:9029\nlevel = ERROR\n"
                       "[forwarder:b]\nupstream = tcp://h:9029\nsystems = audit\n")
    assert "one forwarder per upstream" in caught.value.reason
