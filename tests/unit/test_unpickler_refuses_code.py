"""The wire decoder admits plain data only: no pickle opcode ever reaches code, hostile or
broken bytes only ever raise FrameError, and stdlib frames survive any TCP read boundaries."""

import contextlib
import copyreg
import datetime
import decimal
import io
import logging
import logging.handlers
import os
import pickle
import random
import re
import resource
import shlex
from pathlib import Path

import pytest

from appliance.errors import FrameError
from appliance.spine.codec import FrameSplitter, decode_frame, split_datagram

PLAIN = {"msg": "hello %s", "n": 7, "big": 2**70, "neg": -3, "f": 1.5, "t": True, "no": None,
         "list": [1, "two", [3.0, None]], "tuple": (1, ("a", False)), "nested": {"k": {"j": []}},
         "unicode": "grüße ✓", "empty": "", "raw": b"\x00\xff", "nob": b""}
ADMITTED = {"set": {1, "a"}, "frozen": frozenset({2}), "day": datetime.date(2020, 1, 2),
            "when": datetime.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=datetime.UTC),
            "span": datetime.timedelta(seconds=5), "amount": decimal.Decimal("1.25")}
SYSTEM = os.system.__module__.encode()  # 'posix'


def _touch(marker):
    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {shlex.quote(str(marker))}",)
    return Exploit()


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def _refused(payload: bytes, kind: str = "") -> FrameError:
    with pytest.raises(FrameError) as caught:
        decode_frame(payload)
    assert caught.value.kind == kind or not kind, caught.value.reason
    return caught.value


def _hand_built(marker) -> dict[str, bytes]:
    cmd = f"touch {shlex.quote(str(marker))}".encode()
    return {
        "GLOBAL+REDUCE": b"c" + SYSTEM + b"\nsystem\n(V" + cmd + b"\ntR.",
        "INST": b"(V" + cmd + b"\ni" + SYSTEM + b"\nsystem\n.",
        "OBJ": b"(c" + SYSTEM + b"\nsystem\nV" + cmd + b"\no.",
        "STACK_GLOBAL": b"\x80\x04\x8c" + bytes([len(SYSTEM)]) + SYSTEM + b"\x8c\x06system\x93"
                        b"\x8c" + bytes([len(cmd)]) + cmd + b"\x85R.",
        "eval": b"cbuiltins\neval\n(Vopen(%r, 'w').close()\ntR." % str(marker).encode(),
    }


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_reduce_to_os_system_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "MARKER"
    payload = pickle.dumps({"msg": "x", "evil": _touch(marker)}, protocol=protocol)
    assert "posix.system refused" in _refused(payload, "refused-pickle").reason
    assert not marker.exists()


def test_hand_built_payloads_are_live_exploits_under_plain_pickle(tmp_path):
    marker = tmp_path / "control"  # control: refusing them below means something
    for name, payload in _hand_built(marker).items():
        pickle.loads(payload)
        assert marker.exists(), name
        marker.unlink()


def test_global_inst_obj_stack_global_and_eval_are_refused(tmp_path):
    marker = tmp_path / "MARKER"
    for name, payload in _hand_built(marker).items():
        assert " refused" in _refused(payload, "refused-pickle").reason, name
        assert not marker.exists(), name
    for protocol in (0, 2, 4):
        assert "eval refused" in _refused(pickle.dumps({"f": eval}, protocol=protocol)).reason


class Thing:
    def __init__(self):
        self.attribute = 1


@pytest.mark.parametrize("payload", [
    pickle.dumps({"thing": Thing()}, protocol=2),
    pickle.dumps({"thing": Thing()}, protocol=5),
    b"\x80\x02}q\x00)\x81.",            # NEWOBJ on a dict instead of a class
    b"\x80\x04}q\x00)}\x92.",           # NEWOBJ_EX likewise
    b"\x80\x02X\x01\x00\x00\x00a)R.",   # REDUCE of a str
    b"\x80\x02}}b.",                    # BUILD on a dict
    b"c__builtin__\nbytes\n(J\x00\x00\x00\x7ftR.",  # bytes(2**31-1): admitted name, bad args
    b"c__builtin__\nset\n(Vabc\ntR.",                # set('abc')
    b"c_codecs\nencode\n(Vx\nVzlib_codec\ntR.",      # encode with another codec
], ids=["newobj-p2", "newobj-p5", "newobj-dict", "newobj_ex", "reduce-str", "build-dict",
        "bytes-size", "set-str", "codecs-zlib"])
def test_object_building_opcodes_fail_cleanly(payload):
    _refused(payload)


def test_ext_opcode_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    copyreg.add_extension(SYSTEM.decode(), "system", 0xF0)
    try:
        payload = pickle.dumps({"evil": _touch(marker)}, protocol=2)
        assert b"\x82\xf0" in payload  # EXT1 0xF0
        _refused(payload, "refused-pickle")
        assert not marker.exists()
    finally:
        copyreg.remove_extension(SYSTEM.decode(), "system", 0xF0)


def test_persistent_ids_are_refused():
    class WithIds(pickle.Pickler):
        def persistent_id(self, obj):
            return "external" if obj == "ref-me" else None

    buffer = io.BytesIO()
    WithIds(buffer, protocol=2).dump({"x": "ref-me"})
    for payload in (buffer.getvalue(), b"\x80\x02X\x01\x00\x00\x00aQ.", b"Pabc\n."):
        assert "persistent" in _refused(payload, "bad-pickle").reason


def test_non_dict_empty_and_truncated_frames_are_refused():
    for value in ([1, 2], ("a",), "text", 5, None):
        _refused(pickle.dumps(value, protocol=2), "not-a-dict")
    _refused(b"", "empty")
    whole = pickle.dumps(PLAIN, protocol=1)
    for cut in range(1, len(whole)):
        _refused(whole[:cut])


@contextlib.contextmanager
def _address_space_cap(headroom: int):
    """Lower RLIMIT_AS to the current size + headroom, so an allocation the fuzz provokes
    fails with MemoryError instead of taking gigabytes (that amplification is its own test)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    size = re.search(r"VmSize:\s+(\d+) kB", Path("/proc/self/status").read_text())
    cap = int(size.group(1)) * 1024 + headroom
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY
                                            else min(cap, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_random_and_mutated_bytes_only_ever_raise_frame_error():
    rng = random.Random(20240601)
    seeds = [pickle.dumps({**PLAIN, **ADMITTED}, protocol=p) for p in range(6)]
    payloads = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
                for _ in range(4000)]
    for _ in range(4000):
        mutated = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        payloads.append(bytes(mutated))
    outcomes = []
    with _address_space_cap(512 << 20):
        for payload in payloads:
            try:
                outcomes.append(type(decode_frame(payload)))
            except FrameError:
                outcomes.append(FrameError)
    assert set(outcomes) <= {dict, FrameError}
    assert outcomes.count(FrameError) > len(payloads) // 2  # the fuzz did reach the errors


def test_socket_handler_frames_round_trip_plain_and_admitted_values():
    record = logging.makeLogRecord({**PLAIN, **ADMITTED, "args": ("world",), "name": "svc"})
    frame = logging.handlers.SocketHandler("127.0.0.1", 9).makePickle(record)
    expected = {**record.__dict__, "msg": "hello world", "args": None, "exc_info": None}
    frames, error = FrameSplitter(1 << 20).feed(frame)
    assert error is None and len(frames) == 1
    assert decode_frame(frames[0]) == expected


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_plain_data_round_trips_for_every_protocol(protocol):
    value = {**PLAIN, **ADMITTED}
    assert decode_frame(pickle.dumps(value, protocol=protocol)) == value


def _stream(count: int, seed: int) -> tuple[list[bytes], bytes]:
    rng = random.Random(seed)
    payloads = [pickle.dumps({"i": i, "pad": "x" * rng.randrange(0, 3000)}, protocol=1)
                for i in range(count)]
    return payloads, b"".join(_frame(p) for p in payloads)


def test_splitter_yields_the_same_frames_however_the_reads_fall():
    payloads, stream = _stream(200, 2)
    rng = random.Random(3)
    for plan in range(21):  # plan 0: one byte at a time; then random read sizes
        splitter, got, pos = FrameSplitter(1 << 20), [], 0
        while pos < len(stream):
            step = 1 if plan == 0 else rng.choice([1, 2, 3, 5, 17, 500, 4096, 70000])
            frames, error = splitter.feed(stream[pos:pos + step])
            assert error is None
            got.extend(frames)
            pos += step
        assert got == payloads and splitter.buffered == 0


def test_splitter_length_over_max_is_fatal_after_returning_complete_frames():
    payloads, stream = _stream(3, 4)
    limit = max(len(p) for p in payloads)
    bad = (limit + 1).to_bytes(4, "big") + b"junk"
    frames, error = FrameSplitter(limit).feed(stream + bad)
    assert frames == payloads
    assert error.fatal and error.kind == "oversized" and str(limit + 1) in error.reason
    splitter = FrameSplitter(limit)  # the same, with the bad header split over two reads
    first, err1 = splitter.feed(stream + bad[:2])
    second, err2 = splitter.feed(bad[2:])
    assert first == payloads and err1 is None and second == [] and err2.fatal
    assert FrameSplitter(5).feed(_frame(b"12345")) == ([b"12345"], None)  # exactly max is fine


def test_split_datagram():
    payload = pickle.dumps({"msg": "udp"}, protocol=1)
    assert split_datagram(_frame(payload), 1 << 20) == payload
    bad = [b"", b"\x00", b"\x00\x00\x00", _frame(payload)[:-1], _frame(payload) + b"x"]
    for datagram in bad:
        with pytest.raises(FrameError) as caught:
            split_datagram(datagram, 1 << 20)
        assert caught.value.kind == "bad-datagram" and not caught.value.fatal
    with pytest.raises(FrameError, match="exceeds"):
        split_datagram(_frame(payload), len(payload) - 1)
