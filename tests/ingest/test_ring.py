"""The shared-memory ring of Tracker(worker="process"): frames come out whole, in order,
once; a full ring refuses; a consumer in another process sees what was put."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from abkit.ingest import ring as ring_module
from abkit.ingest.ring import RingCorrupted, SharedRing


def _consumer(producer: SharedRing) -> SharedRing:
    """A second view of the same memory, as the child process maps it."""
    return SharedRing(producer.capacity, fd=producer.fd)


@settings(max_examples=150, deadline=None)
@example(steps=[("put", b"a" * 100)] * 3 + [("take", 2), ("put", b"b" * 200), ("take", 5)])
@given(
    steps=st.lists(
        st.one_of(
            st.binary(min_size=0, max_size=300).map(lambda b: ("put", b)),
            st.integers(min_value=1, max_value=7).map(lambda k: ("take", k)),
        ),
        max_size=120,
    )
)
def test_frames_come_out_whole_in_order_and_once(steps):
    """Random puts and takes through a small ring (so it wraps and fills): what comes out
    is exactly what went in and was accepted, in order; a refused put changes nothing."""
    producer = SharedRing(512)
    consumer = _consumer(producer)
    accepted: list[bytes] = []
    taken: list[bytes] = []
    try:
        for op, arg in steps:
            if op == "put":
                # room: the ring less what is not taken, less the tail skipped when the
                # frame (16-byte header, 16-byte aligned) would straddle the end
                write, read = producer._write, consumer._slots[8]
                need = (16 + len(arg) + 15) // 16 * 16
                skip = 512 - write % 512 if write % 512 + need > 512 else 0
                fits = write + skip + need - read <= 512
                assert producer.put(arg) is fits
                if fits:
                    accepted.append(arg)
            else:
                taken += consumer.take(limit=arg)
            assert consumer.taken == len(taken)
        taken += consumer.take()
        assert taken == accepted
        assert producer.frames == len(accepted)
    finally:
        consumer.close()
        producer.close()


def test_a_frame_that_would_straddle_the_end_starts_again_at_zero():
    producer = SharedRing(512)
    consumer = _consumer(producer)
    for _ in range(3):  # 3 x 128 bytes: the next frame starts at 384
        assert producer.put(b"a" * 100)
    assert len(consumer.take()) == 3
    assert producer.put(b"b" * 200)  # 224 bytes: 128 are skipped, it starts at 0
    assert producer._write == 512 + 224
    assert consumer.take() == [b"b" * 200]
    consumer.close()
    producer.close()


def test_a_full_ring_refuses_until_the_consumer_takes():
    producer = SharedRing(1024)
    consumer = _consumer(producer)
    frame = b"r" * 100  # 128 bytes with its header: 8 fit
    assert [producer.put(frame) for _ in range(9)] == [True] * 8 + [False]
    assert len(consumer.take(limit=3)) == 3
    assert [producer.put(frame) for _ in range(4)] == [True] * 3 + [False]
    assert consumer.take() == [frame] * 8
    assert producer.put(b"x" * 2000) is False  # larger than the ring: never fits
    consumer.close()
    producer.close()


def test_a_frame_not_yet_visible_is_waited_for_and_damage_is_an_error(monkeypatch):
    """The consumer takes a frame only when its position and CRC match (a late store on a
    weakly ordered machine); one that never matches is reported, not skipped silently."""
    producer = SharedRing(256)
    consumer = _consumer(producer)
    producer.put(b"abcdef")
    producer._map[ring_module._DATA + 16] ^= 0xFF  # the payload's first byte, damaged
    assert consumer.take() == []  # not taken: maybe still being written
    producer._map[ring_module._DATA + 16] ^= 0xFF  # the store lands
    assert consumer.take() == [b"abcdef"]
    producer.put(b"ghijkl")
    producer._map[ring_module._DATA + 32 + 16] ^= 0xFF
    monkeypatch.setattr(ring_module, "_STALL_SECONDS", 0.0)
    assert consumer.take() == []
    with pytest.raises(RingCorrupted, match="stayed unreadable"):
        consumer.take()
    consumer.close()
    producer.close()


def test_a_frame_from_an_earlier_lap_is_not_taken_again():
    producer = SharedRing(128)
    consumer = _consumer(producer)
    for i in range(6):  # three laps of two 64-byte frames
        assert producer.put(bytes([i]) * 40)
        assert consumer.take() == [bytes([i]) * 40]
    # the read position is past everything; the bytes of old frames are still there
    assert consumer.take() == []
    consumer.close()
    producer.close()


def test_another_process_takes_what_this_one_puts(tmp_path):
    producer = SharedRing(4096)
    frames = [f"row-{i}".encode() * (i % 7 + 1) for i in range(2000)]
    script = textwrap.dedent(
        f"""
        import sys, time
        from abkit.ingest.ring import SharedRing
        ring = SharedRing({producer.capacity}, fd={producer.fd})
        got = []
        deadline = time.monotonic() + 60
        while len(got) < {len(frames)} and time.monotonic() < deadline:
            got += ring.take()
            time.sleep(0.001)
        sys.stdout.write("\\n".join(f.decode() for f in got))
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        pass_fds=(producer.fd,),
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    for frame in frames:  # a 4 KiB ring: the producer waits for room many times
        while not producer.put(frame):
            pass
    out, _ = child.communicate(timeout=90)
    assert child.returncode == 0
    assert out.split("\n") == [f.decode() for f in frames]
    producer.close()
