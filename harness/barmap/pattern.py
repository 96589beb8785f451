"""The offset-encoded pattern, for the device tests and the guest checks alike.

It is what ``barmap-check`` writes (guest-driver/tools/check/pattern.c): each
32-bit little-endian word holds its own byte offset XOR a seed.  Neither
all-0x00 nor all-0xff memory (what a wrong mapping reads) can match it, and a
word moved to another offset does not match either.
"""

from __future__ import annotations

import struct

DEFAULT_SEED = 0x5EED1234  # what the harness passes as --seed unless told otherwise


def pattern(length: int, seed: int = DEFAULT_SEED, *, offset: int = 0) -> bytes:
    """The ``length`` pattern bytes that belong at byte ``offset`` (any alignment)."""
    first = offset & ~3
    count = (offset + length - first + 3) // 4
    raw = struct.pack(f"<{count}I", *(((first + 4 * i) ^ seed) & 0xFFFFFFFF for i in range(count)))
    return raw[offset - first : offset - first + length]
