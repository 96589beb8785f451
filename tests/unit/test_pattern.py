"""The offset-encoded pattern shared by the device tests and the guest checks."""

from __future__ import annotations

import struct

import pytest

from barmap.guest import checks
from barmap.pattern import DEFAULT_SEED, pattern


def test_each_word_is_its_offset_xor_the_seed() -> None:
    data = pattern(64, 0xA5A5A5A5)
    words = struct.unpack("<16I", data)
    assert words == tuple((4 * i) ^ 0xA5A5A5A5 for i in range(16))


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4, 5, 4093, 0x10000])
@pytest.mark.parametrize("length", [0, 1, 3, 4, 7, 64])
def test_any_slice_is_the_whole_patterns_slice(offset: int, length: int) -> None:
    whole = pattern(0x10100, 0x1234)
    assert pattern(length, 0x1234, offset=offset) == whole[offset : offset + length]


def test_nothing_there_never_matches() -> None:
    for seed in (0, DEFAULT_SEED, 0xFFFFFFFF):
        data = pattern(4096, seed)
        assert data != bytes(4096) and data != b"\xff" * 4096
    assert pattern(4096, 1) != pattern(4096, 2)


def test_offsets_wrap_at_32_bits() -> None:
    word = pattern(4, 0, offset=(1 << 32) + 8)
    assert word == (8).to_bytes(4, "little")


def test_the_guest_checks_use_the_same_function() -> None:
    assert checks.pattern is pattern and checks.DEFAULT_SEED == DEFAULT_SEED
