"""BAR2: RAM of `size` bytes at every access width, and the memdev host view."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest
from bmdev import Barmap, pattern

WIDTHS = {"b": 1, "w": 2, "l": 4, "q": 8}


@pytest.mark.parametrize("size", [0x1000, 0x10000, 0x1000000, 0x10000000])
def test_offset_encoded_pattern(make_dev, size: int) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev(f"size={size}")
    qt = d.qt
    assert d.size == size
    # bulk: the whole BAR for small sizes, the first/last 64 KiB and a middle slice otherwise
    spans = (
        [(0, size)]
        if size <= 0x10000
        else [(0, 0x10000), (size // 2, 0x1000), (size - 0x10000, 0x10000)]
    )
    for off, length in spans:
        qt.write(d.mem_addr + off, pattern(length, size, offset=off))
    for off, length in spans:
        assert qt.read(d.mem_addr + off, length) == pattern(length, size, offset=off)
    # every width at the start, the middle and the very end of the BAR
    probes = [0, 8, size // 2, size - 16, size - 8]
    for w, n in WIDTHS.items():
        for i, off in enumerate(probes):
            val = int.from_bytes(pattern(n, 0x5A5A0000 + i * n, offset=off), "little")
            qt.cmd(f"write{w} 0x{d.mem_addr + off:x} 0x{val:x}")
            assert int(qt.cmd(f"read{w} 0x{d.mem_addr + off:x}"), 16) == val
            # the same bytes through the other widths
            for w2, n2 in WIDTHS.items():
                if n2 <= n:
                    got = int(qt.cmd(f"read{w2} 0x{d.mem_addr + off:x}"), 16)
                    assert got == val & ((1 << (8 * n2)) - 1)
    # nothing outside the BAR: the byte after it is not BAR2 RAM
    qt.writeb(d.mem_addr + size, 0xAB)
    assert qt.readb(d.mem_addr + size) == 0


def test_bar2_unmapped_when_memory_decoding_off(dev: Barmap) -> None:
    dev.qt.writel(dev.mem_addr, 0xCAFEF00D)
    dev.qt.cfg_write(4 << 3, 0x04, 0, 2)
    assert dev.qt.readl(dev.mem_addr) == 0
    dev.qt.cfg_write(4 << 3, 0x04, 0x6, 2)
    assert dev.qt.readl(dev.mem_addr) == 0xCAFEF00D


def _memdev_args(path: Path, size: int, share: bool = True) -> list[str]:
    return [
        "-object",
        f"memory-backend-file,id=hm,size={size},mem-path={path},share={'on' if share else 'off'}",
    ]


def test_memdev_host_view(make_dev, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    size = 1 << 20
    path = tmp_path / "bar2.bin"
    d: Barmap = make_dev("memdev=hm", args=_memdev_args(path, size))
    assert d.size == size
    assert d.reg("CAPS") & 0x8  # BARMAP_CAP_MEMDEV
    assert d.qom_get("memdev").endswith("hm")
    qt = d.qt
    fd = os.open(path, os.O_RDWR)
    try:
        with mmap.mmap(fd, size) as m:
            # guest writes, host reads
            qt.write(d.mem_addr + 0x1000, pattern(0x2000, 1, offset=0x1000))
            assert m[0x1000:0x3000] == pattern(0x2000, 1, offset=0x1000)
            qt.writeq(d.mem_addr + size - 8, 0x0102030405060708)
            assert m[size - 8 : size] == bytes.fromhex("0807060504030201")
            # host writes, guest reads
            m[0x8000:0x8010] = b"written by host!"
            assert qt.read(d.mem_addr + 0x8000, 16) == b"written by host!"
            assert qt.readl(d.mem_addr + 0x8000) == int.from_bytes(b"writ", "little")
    finally:
        os.close(fd)
    # the file itself (not only the shared mapping) has the bytes
    assert path.read_bytes()[0x1000:0x1010] == pattern(16, 1, offset=0x1000)


def test_memdev_memfd(make_dev) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev(
        "memdev=hm", args=["-object", "memory-backend-memfd,id=hm,size=64K,share=on"]
    )
    assert d.size == 0x10000
    d.qt.write(d.mem_addr, b"memfd")
    assert d.qt.read(d.mem_addr, 5) == b"memfd"


def test_memdev_size_mismatch_and_bad_size(make_dev, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception, match="does not match"):
        make_dev("memdev=hm,size=2M", args=_memdev_args(tmp_path / "a", 1 << 20))
    with pytest.raises(Exception, match="power of two"):
        make_dev("memdev=hm", args=_memdev_args(tmp_path / "b", 3 << 20))
    # explicit size equal to the backend's is fine
    d = make_dev("memdev=hm,size=1M", args=_memdev_args(tmp_path / "c", 1 << 20))
    assert d.size == 1 << 20


def test_memdev_cannot_be_shared_by_two_devices(tmp_path: Path) -> None:
    from barmap.qtest.machine import QTest

    args = _memdev_args(tmp_path / "x", 1 << 20)
    args += ["-device", "barmap,memdev=hm,addr=04.0", "-device", "barmap,memdev=hm,addr=05.0"]
    with pytest.raises(Exception, match="in use"):
        QTest(args).start()
