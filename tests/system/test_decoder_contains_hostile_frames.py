"""Frames that make C code inside the unpickler spin or allocate without bound are contained by
the decoder processes: the stuck worker is killed (or hits its memory limit), the frame that did
it is rejected alone, and the good frames around it are delivered in order."""

import asyncio
import copyreg
import os
import pickle

import pytest

from appliance.ingest.decoder_pool import DecoderPool
from appliance.spine.codec import unpack_record, with_seq
from appliance.spine.record import INDEX, Caps, normalize

DECODER_ARGS = ["--origin", "test", "--max-text-chars", "65536", "--max-field-chars", "1024",
                "--memory", str(512 << 20)]


def good(n: int) -> bytes:
    return pickle.dumps({"msg": f"good {n}", "levelno": 20, "name": "t"}, protocol=1)


def shared_tuples(kind: str, depth: int) -> bytes:
    """A dict key or set item of `depth` nested tuples, each holding the one before twice:
    a few hundred bytes whose hash visits 2**depth tuples."""
    value = ()
    for _ in range(depth):
        value = (value, value)
    body = pickle.dumps(value, protocol=2)[2:-1]
    if kind == "dict-key":
        return b"\x80\x02}" + body + b"K\x01s."  # {value: 1}
    return (b"\x80\x02}X\x01\x00\x00\x00sc__builtin__\nset\n]" + body
            + b"a\x85Rs.")  # {"s": set([value])}


# LONG_BINPUT at index 2**28 makes the C unpickler grow its memo to 4 GiB (CPython gh-115952).
MEMO_BOMB = b"\x80\x02}r" + (1 << 28).to_bytes(4, "little") + b"."


def decode(frames: list[bytes], timeout: float = 0.5) -> tuple[list[str], list[tuple], int]:
    """Run real decoder processes over `frames`: delivered messages, rejections, restarts."""
    delivered: list[str] = []
    rejected: list[tuple] = []

    def deliver(records):
        delivered.extend(unpack_record(with_seq(r, 1))[INDEX["message"]] for r in records)

    async def run() -> int:
        pool = DecoderPool(1, DECODER_ARGS, timeout, deliver,
                           lambda peer, kind, reason: rejected.append((peer, kind)))
        await pool.start()
        pool.submit([[f"peer{i}", 1.0, frame] for i, frame in enumerate(frames)])
        await pool.close(timeout=60)
        return pool.restarts

    restarts = asyncio.run(run())
    return delivered, rejected, restarts


@pytest.mark.parametrize("kind", ["dict-key", "set-item"])
def test_shallow_shared_tuples_decode(kind):
    assert decode([shared_tuples(kind, 8)]) == ([None], [], 0)  # control: the shape is valid


@pytest.mark.parametrize("kind", ["dict-key", "set-item"])
def test_a_hash_bomb_costs_only_its_own_frame(kind):
    frames = [good(0), shared_tuples(kind, 40), good(1), good(2)]
    delivered, rejected, restarts = decode(frames)
    assert delivered == ["good 0", "good 1", "good 2"]
    assert rejected == [("peer1", "decode-timeout")]
    assert restarts == 2  # the chunk, then the frame alone


def test_a_memo_index_bomb_hits_the_memory_limit_not_the_machine():
    delivered, rejected, restarts = decode([good(0), MEMO_BOMB, good(1)], timeout=10)
    assert delivered == ["good 0", "good 1"]
    assert rejected == [("peer1", "bad-pickle")]
    assert restarts == 0


def test_ext_codes_mean_nothing_to_a_decoder():
    copyreg.add_extension(os.getpid.__module__, "getpid", 0xF1)
    try:
        payload = pickle.dumps({"f": os.getpid}, protocol=2)
        pickle.loads(payload)  # this process now has it in copyreg's cache; decoders never do
    finally:
        copyreg.remove_extension(os.getpid.__module__, "getpid", 0xF1)
    assert b"\x82\xf1" in payload  # EXT1 0xF1
    assert decode([payload, good(1)]) == (["good 1"], [("peer0", "bad-pickle")], 0)


@pytest.mark.parametrize("protocol", [2, 5])
def test_bytearray_values_arrive_as_text(protocol):
    raw = pickle.loads(pickle.dumps({"b": bytearray(b"x\xff")}, protocol))  # trusted test data
    assert normalize(raw, None, 1.0, Caps())[INDEX["extra"]] == '{"b": "x\\\\xff"}'
