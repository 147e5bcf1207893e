"""normalize() turns whatever plain data a client sent into the record columns: both spellings
of the ps.basic fields, NULL for missing, extras as JSON, safe formatting, capped sizes."""

import decimal
import json
import math
import pickle
import subprocess
import sys
import tracemalloc

import pytest

from appliance.spine.codec import decode_frame, pack_record, unpack_record
from appliance.spine.record import COLUMNS, PS_FIELDS, Caps, normalize, scrub

CAPS = Caps()


def norm(raw: dict, caps: Caps = CAPS) -> dict:
    values = normalize(raw, "10.0.0.7:5555", 1700000000.5, caps)
    assert len(values) == len(COLUMNS)
    return dict(zip(COLUMNS, values, strict=True))


def laughs(depth: int = 60) -> list:
    x: list = []
    for _ in range(depth):
        x = [x, x]
    return x


@pytest.mark.parametrize("spell", [str.upper, str.lower], ids=["ps.basic", "lower"])
def test_ps_fields_land_in_their_columns_in_either_spelling(spell):
    row = norm({spell(name): f"v-{name}" for name in PS_FIELDS})
    assert {name: row[name] for name in PS_FIELDS} == {n: f"v-{n}" for n in PS_FIELDS}
    assert row["extra"] is None


def test_missing_values_are_null_and_the_string_none_in_id_fields_too():
    row = norm({"msg": "m", "SYSTEM_ID": "None", "sub_system_id": "None", "produkt_id": None})
    assert row["system_id"] is row["sub_system_id"] is row["produkt_id"] is None
    assert all(row[c] is None for c in COLUMNS if c not in ("message", "received", "peer"))
    assert (row["message"], row["received"], row["peer"]) == ("m", 1700000000.5, "10.0.0.7:5555")


def test_standard_attributes_map_to_columns():
    row = norm({"name": "svc.db", "msg": "m", "funcName": "f", "processName": "P",
                "threadName": "T", "taskName": "Task-1", "lineno": 12, "created": 5.5,
                "pathname": "/a/b.py", "filename": "b.py", "module": "b", "process": 9,
                "thread": 2**40, "exc_text": "Trace", "stack_info": "Stack"})
    assert (row["logger"], row["func_name"], row["process_name"], row["thread_name"],
            row["task_name"]) == ("svc.db", "f", "P", "T", "Task-1")
    assert (row["lineno"], row["process"], row["thread"], row["created"]) == (12, 9, 2**40, 5.5)
    assert (row["exc_text"], row["stack_info"], row["module"]) == ("Trace", "Stack", "b")


def test_unknown_and_column_named_attributes_go_to_extra_and_never_override():
    row = norm({"msg": "m", "seq": 99, "origin": "forged", "peer": "1.2.3.4", "received": 1.0,
                "extra": {"a": 1}, "id": 5, "futureAttr": [1, "x"], "order_id": 7,
                "msecs": 1.0, "relativeCreated": 2.0, "exc_info": None, "message": "merged"})
    assert (row["seq"], row["origin"]) == (None, None)
    assert (row["peer"], row["received"]) == ("10.0.0.7:5555", 1700000000.5)
    assert json.loads(row["extra"]) == {"seq": 99, "origin": "forged", "peer": "1.2.3.4",
                                        "received": 1.0, "extra": {"a": 1}, "id": 5,
                                        "futureAttr": [1, "x"], "order_id": 7}


@pytest.mark.parametrize(("msg", "args", "expected"), [
    ("a %s b %d", ("x", 3), "a x b 3"),
    ("a %s b %d", ["x", 3], "a x b 3"),
    ("%(k)s=%(n)05.1f", {"k": "v", "n": 2.25}, "v=002.2"),
    ("100%% %s", ("done",), "100% done"),
])
def test_unmerged_args_are_formatted(msg, args, expected):
    assert norm({"msg": msg, "args": args})["message"] == expected


@pytest.mark.parametrize(("msg", "args"), [
    ("%s %s", ("only one",)), ("%s", ("a", "b")), ("%d", ("x",)), ("%(k)s", {"j": 1}),
    ("%(k)s", ("tuple",)), ("%y", (1,)),
    ("%999999999d", (1,)), ("%.999999999f", (1.0,)), ("%*d", (999999999, 1)),
])
def test_bad_or_huge_args_fall_back_to_message_plus_repr(msg, args):
    tracemalloc.start()
    try:
        message = norm({"msg": msg, "args": args})["message"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message == f"{msg} {args!r}"
    assert peak < 1 << 20


@pytest.mark.parametrize(("msg", "args"), [
    ("%(a)9999999d", {"a": 1}), ("%(a)9999s" * 1000, {"a": ""}),
], ids=["mapping-width", "many-widths"])
def test_formatting_memory_stays_bounded(msg, args):
    tracemalloc.start()
    try:
        norm({"msg": msg, "args": args})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes for a {len(msg)}-char message"


def test_long_texts_are_cut_with_a_visible_marker():
    caps = Caps(text=100, field=20)
    row = norm({"msg": "m" * 150, "exc_text": "e" * 101, "stack_info": "s" * 100,
                "name": "n" * 25, "SYSTEM_ID": "i" * 21, "pathname": "p" * 20}, caps)
    assert row["message"] == "m" * 100 + "…[truncated 50 chars]"
    assert row["exc_text"] == "e" * 100 + "…[truncated 1 chars]"
    assert row["stack_info"] == "s" * 100  # at the cap: untouched
    assert row["logger"] == "n" * 20 + "…[truncated 5 chars]"
    assert row["system_id"] == "i" * 20 + "…[truncated 1 chars]"
    assert row["pathname"] == "p" * 20
    big_extra = json.loads(norm({"blob": "x" * 500}, caps)["extra"])
    assert list(big_extra) == ["_truncated"] and "…[truncated" in big_extra["_truncated"]


@pytest.mark.parametrize(("value", "expected"), [
    (2**63 - 1, 2**63 - 1), (-2**63, -2**63), (2**63, None), (-2**63 - 1, None),
    ("42", 42), ("x", None), (7.9, 7), (True, None), (float("nan"), None), ([1], None),
])
def test_integer_columns_hold_int64_or_null(value, expected):
    row = norm({"lineno": value, "process": value, "thread": value})
    assert row["lineno"] == row["process"] == row["thread"] == expected


@pytest.mark.parametrize(("value", "expected"), [
    (1.5, 1.5), (3, 3.0), (float("nan"), None), (float("inf"), None), (-math.inf, None),
    ("1.5", None), (True, None),
])
def test_created_is_a_finite_float_or_null(value, expected):
    assert norm({"created": value})["created"] == expected


def test_level_number_and_name_complete_each_other():
    assert norm({"levelname": "WARNING"})["levelno"] == 30
    assert norm({"levelname": "error"})["levelno"] == 40
    assert norm({"levelname": "NOSUCH"})["levelno"] is None
    assert norm({"levelno": 50})["levelname"] == "CRITICAL"
    assert norm({"levelno": 25})["levelname"] == "Level 25"
    assert (lambda r: (r["levelno"], r["levelname"]))(norm({"levelno": 10,
                                                            "levelname": "X"})) == (10, "X")


def test_billion_laughs_from_a_frame_is_bounded_and_marked():
    x = laughs()
    frame = pickle.dumps({"msg": "a %s", "args": x, "bomb": x, "ok": [1, 2]}, protocol=1)
    assert len(frame) < 2000
    row = norm(decode_frame(frame))
    assert json.loads(row["extra"]) == {
        "bomb": f"…[value too large: more than {CAPS.nodes} parts]", "ok": [1, 2]}
    assert row["message"].startswith("a %s")


def test_billion_laughs_as_args_leaves_a_marker_in_the_message():
    assert "value too large" in norm({"msg": "a %s", "args": laughs()})["message"]


def frame_with_deep_list(raw: dict, depth: int = 5000) -> bytes:
    """A protocol 2 pickle of `raw` whose "DEEP" string is a list nested `depth` deep, built
    with opcodes (the pickler itself would hit its recursion limit)."""
    placeholder = b"X\x04\x00\x00\x00DEEP"  # BINUNICODE 'DEEP'
    frame = pickle.dumps(raw, protocol=2)
    assert frame.count(placeholder) == 1
    return frame.replace(placeholder, b"]" * depth + b"a" * (depth - 1))


@pytest.mark.parametrize("frame", [
    pickle.dumps({"SYSTEM_ID": 10**5000}, protocol=2),
    pickle.dumps({"custom": 10**5000}, protocol=2),
    pickle.dumps({"created": 10**400}, protocol=2),
    pickle.dumps({"msg": "%d", "args": (10**5000,)}, protocol=2),
    frame_with_deep_list({"custom": "DEEP"}),
    frame_with_deep_list({"module": "DEEP"}),
    frame_with_deep_list({"msg": "%s", "args": ("DEEP",)}),
], ids=["int-column", "int-extra", "int-created", "int-args", "deep-extra", "deep-column",
        "deep-args"])
def test_normalize_never_raises_on_decodable_data(frame):
    raw = decode_frame(frame)  # outside the expected failure: the frame itself is fine
    assert len(frame) < 30000
    norm(raw)


def test_decimal_args_do_not_stall_formatting():
    frame = pickle.dumps({"msg": "%d", "args": (decimal.Decimal("1e10000000"),)}, protocol=1)
    script = ("import sys; from appliance.spine.record import normalize, Caps; "
              "from appliance.spine.codec import decode_frame; "
              "normalize(decode_frame(sys.stdin.buffer.read()), None, 0.0, Caps())")
    subprocess.run([sys.executable, "-c", script], input=frame, timeout=5, check=True)


def test_bytes_are_decoded_and_keys_made_strings():
    row = norm({"msg": b"caf\xc3\xa9 \xff", "SYSTEM_ID": b"sys", b"k": 1, 7: "seven",
                None: "none", (1, 2): "tuple", "blob": b"\xc3\xa9\xfe"})
    assert row["message"] == "café \\xff" and row["system_id"] == "sys"
    assert json.loads(row["extra"]) == {"k": 1, "7": "seven", "None": "none",
                                        "<class 'tuple'>": "tuple", "blob": "é\\xfe"}


def test_lone_surrogates_survive_packing_after_scrub():
    row = normalize({"msg": "bad \udcff end", "SYSTEM_ID": "s\ud800", "note": "x\udc80"},
                    None, 1.0, CAPS)
    with pytest.raises(UnicodeEncodeError):
        pack_record(row)  # the reason scrub exists
    back = dict(zip(COLUMNS, unpack_record(pack_record(scrub(row))), strict=True))
    assert back["message"] == "bad \\udcff end" and back["system_id"] == "s\\ud800"
    back["extra"].encode("utf-8")  # stored text is valid UTF-8
    assert json.loads(back["extra"]) == {"note": "x\ufffd"}  # no surrogate comes back out
