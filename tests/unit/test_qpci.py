"""BAR sizing and placement for the device tests (the allocator's arithmetic)."""

from __future__ import annotations

import pytest

from barmap.qtest.pci import (
    IO_WINDOW,
    MMIO32_WINDOW,
    MMIO64_WINDOW,
    BarInfo,
    Window,
    decode_bar,
    decode_io_bar,
)


def test_decode_32bit_bar() -> None:
    assert decode_bar(0xFFFFF000) == BarInfo(0x1000, is_64=False, prefetch=False)


@pytest.mark.parametrize("size", [0x1000, 0x100000, 1 << 31, 1 << 32])
def test_decode_64bit_prefetchable_bar(size: int) -> None:
    mask = (~(size - 1)) & 0xFFFF_FFFF_FFFF_FFFF
    lo, hi = (mask & 0xFFFF_FFF0) | 0xC, mask >> 32
    assert decode_bar(lo, hi) == BarInfo(size, is_64=True, prefetch=True)


def test_unimplemented_and_io_bars() -> None:
    assert decode_bar(0) is None
    assert decode_bar(0x4, 0) is None  # 64-bit type, no size bits
    with pytest.raises(ValueError, match="I/O"):
        decode_bar(0xFFFFFF01)


def test_window_aligns_each_block_to_its_size() -> None:
    w = Window(0x1000, 0x100000)
    assert w.alloc(0x1000) == 0x1000
    assert w.alloc(0x10000) == 0x10000
    assert w.alloc(0x1000) == 0x20000
    assert w.alloc(0x80000) == 0x80000


def test_window_refuses_what_does_not_fit_and_bad_sizes() -> None:
    w = Window(0x1000, 0x4000)
    assert w.alloc(0x2000) == 0x2000
    with pytest.raises(MemoryError, match="no room"):
        w.alloc(0x2000)
    with pytest.raises(ValueError, match="power of two"):
        w.alloc(0x3000)


def test_windows_hold_a_4g_bar_and_stay_below_the_ioapic() -> None:
    assert Window(*MMIO64_WINDOW).alloc(1 << 32) == MMIO64_WINDOW[0]
    assert MMIO32_WINDOW[1] <= 0xFEC0_0000
    w = Window(*MMIO32_WINDOW)
    with pytest.raises(MemoryError):
        w.alloc(1 << 31)


def test_decode_io_bar() -> None:
    assert decode_io_bar(0xFFFFFF01) == BarInfo(0x100, is_64=False, prefetch=False, is_io=True)
    assert decode_io_bar(0xFFFFFFFD) == BarInfo(0x4, is_64=False, prefetch=False, is_io=True)
    assert decode_io_bar(0x1) is None
    with pytest.raises(ValueError, match="not an I/O BAR"):
        decode_io_bar(0xFFFFF000)


def test_io_window_is_libqos_pc_window() -> None:
    w = Window(*IO_WINDOW)
    assert w.alloc(0x100) == 0xC000
    assert IO_WINDOW[1] == 0x10000
