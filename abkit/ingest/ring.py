"""A byte ring in shared memory: one process puts frames, another takes them, no syscall.

Why. ``Tracker(worker="process")`` must hand rows from a service's request threads to its
storing child without making a request wait. A pipe costs a system call per write, and a
feeding thread in the service costs the request threads the interpreter lock whenever it
runs (a busy thread waits up to the 5 ms switch interval for it). A put here is a
``memcpy`` into shared memory and one 8-byte store, done by the request thread itself.

Layout (native byte order; the memory is a ``memfd`` on Linux, else an unlinked temporary
file, passed to the child as a file descriptor)::

    [0:8)    write position   (bytes ever put; only the producer stores it)
    [64:72)  read position    (bytes ever taken; only the consumer stores it)
    [72:80)  frames taken     (only the consumer stores it)
    [128:)   data, ``capacity`` bytes, frames 16-byte aligned:
             header (position: u64, length: u32, crc32: u32), then ``length`` bytes

A frame never straddles the end: when it does not fit, a skip frame (length 0xFFFFFFFF)
fills the rest and the frame starts at 0. Positions only grow, so ``write - read`` is the
bytes in use and the producer refuses a frame (``put`` returns False) rather than
overwrite what the consumer has not taken.

Ordering. The producer writes the frame, then the write position; the consumer reads the
write position, then the frame, and stores the read position after copying the frame out.
On x86-64 stores are seen in order, so that suffices. Where they may be seen out of order
(ARM), a frame carries its own position and a CRC-32 of its bytes seeded with it: the
consumer takes a frame only once both match, and otherwise tries again at its next take;
a frame left over from an earlier lap never matches, its position is wrong.

Single producer: callers serialise ``put`` (``Tracker`` holds a lock); single consumer.
"""

from __future__ import annotations

import mmap
import os
import struct
import tempfile
import time
import zlib

_HEADER = struct.Struct("@QII")  # position, length, crc32
_ALIGN = 16
_DATA = 128
_WRITE, _READ, _TAKEN = 0, 8, 9  # indexes of the u64 slots (offsets 0, 64, 72)
_SKIP = 0xFFFFFFFF
_pack = _HEADER.pack_into
_crc32 = zlib.crc32
# A frame the consumer cannot match for this long is not a late store but damage.
_STALL_SECONDS = 2.0


class RingCorrupted(RuntimeError):
    """A frame stayed unreadable (position or CRC mismatch) past ``_STALL_SECONDS``."""


class SharedRing:
    """The producer's or the consumer's view of one ring (module docstring)."""

    def __init__(self, capacity: int, fd: int | None = None) -> None:
        if capacity < 4 * _ALIGN or capacity % _ALIGN:
            raise ValueError(f"capacity must be a multiple of {_ALIGN} of at least {4 * _ALIGN}")
        self.capacity = capacity
        size = _DATA + capacity
        self._owner = fd is None
        if fd is None:
            fd = _shared_fd(size)
        self.fd = fd
        # Map every page now: a first touch of a shared page in the request path is a page
        # fault of several microseconds (one per 4 KiB, ~40 exposures), a p99 of its own.
        self._map = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
        self._slots = memoryview(self._map).cast("Q")  # aligned 8-byte loads and stores
        # the producer's copies of the two positions (the shared read one is re-read only
        # when the ring looks full)
        self._write = self._slots[_WRITE]
        self._read_seen = self._slots[_READ]
        self._stalled_since: float | None = None
        self.frames = 0  # frames this producer has put
        self._taken_at_close: int | None = None

    # -- producer -------------------------------------------------------------------
    def put(self, payload: bytes) -> bool:
        """Append one frame; False (nothing written) when the ring lacks room."""
        length = len(payload)
        size = (_HEADER.size + length + _ALIGN - 1) & -_ALIGN
        write = self._write
        capacity = self.capacity
        offset = write % capacity
        skip = capacity - offset if offset + size > capacity else 0
        end = write + skip + size
        if end - self._read_seen > capacity:
            self._read_seen = self._slots[_READ]
            if end - self._read_seen > capacity or size > capacity:
                return False
        mapped = self._map
        if skip:
            _pack(mapped, _DATA + offset, write, _SKIP, write & 0xFFFFFFFF)
            write += skip
            offset = 0
        start = _DATA + _HEADER.size + offset
        mapped[start : start + length] = payload
        _pack(mapped, _DATA + offset, write, length, _crc32(payload, write & 0xFFFFFFFF))
        self._write = end
        self._slots[_WRITE] = end
        self.frames += 1
        return True

    # -- consumer -------------------------------------------------------------------
    def take(self, limit: int = 1 << 30) -> list[bytes]:
        """Up to ``limit`` frames put since the last take, oldest first."""
        slots, mapped, capacity = self._slots, self._map, self.capacity
        write = slots[_WRITE]
        read = slots[_READ]
        out: list[bytes] = []
        while read < write and len(out) < limit:
            offset = read % capacity
            position, length, crc = _HEADER.unpack_from(mapped, _DATA + offset)
            if length == _SKIP:
                if position != read or crc != read & 0xFFFFFFFF:  # crc32 of b"" seeded
                    break
                read += capacity - offset
                continue
            start = _DATA + offset + _HEADER.size
            if position != read or start + length > _DATA + capacity:
                break
            payload = mapped[start : start + length]
            if zlib.crc32(payload, read & 0xFFFFFFFF) != crc:
                break
            out.append(payload)
            read += (_HEADER.size + length + _ALIGN - 1) & -_ALIGN
        self._check_progress(read < write and len(out) < limit and not out)
        slots[_TAKEN] += len(out)
        slots[_READ] = read
        return out

    def _check_progress(self, stuck: bool) -> None:
        if not stuck:
            self._stalled_since = None
            return
        now = time.monotonic()
        if self._stalled_since is None:
            self._stalled_since = now
        elif now - self._stalled_since > _STALL_SECONDS:
            raise RingCorrupted(
                f"the frame at position {self._slots[_READ]} of the shared ring stayed "
                f"unreadable for {_STALL_SECONDS:.0f} s"
            )

    # -- both -----------------------------------------------------------------------
    @property
    def written(self) -> int:
        """The write position: bytes ever put."""
        return int(self._slots[_WRITE])

    @property
    def consumed(self) -> int:
        """The read position: bytes ever taken (skips included)."""
        return int(self._slots[_READ])

    @property
    def taken(self) -> int:
        """Frames the consumer has taken so far (at closing, once closed)."""
        if self._taken_at_close is not None:
            return self._taken_at_close
        return int(self._slots[_TAKEN])

    def close(self) -> None:
        if self._taken_at_close is not None:
            return
        self._taken_at_close = int(self._slots[_TAKEN])
        self._slots.release()
        self._map.close()
        if self._owner:
            os.close(self.fd)


def _shared_fd(size: int) -> int:
    """A file descriptor of ``size`` zeroed bytes that no path names (memory, if we can)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("abkit-tracker-ring")
    else:  # macOS and others: an unlinked temporary file (the page cache backs the map)
        with tempfile.TemporaryFile() as handle:
            fd = os.dup(handle.fileno())
    os.ftruncate(fd, size)
    return fd
