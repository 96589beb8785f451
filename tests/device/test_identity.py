"""Identity and layout properties: the device posing as another card.

vendor-id, device-id, subsystem-vendor-id, subsystem-id, class-code, revision;
reg-size (BAR0), bar2-64bit, bar2-prefetch, io-bar-size (BAR4). Defaults are
test_config.py's; here each property is read back through config space and BAR
sizing, and every invalid value is refused at realize with a message.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bmdev import DEVFN, PCI_BAR0, PCI_BAR2, PCI_BAR4, Barmap, R, migrate, pattern

from barmap.qtest.machine import QTest
from barmap.qtest.pci import BarInfo

MAGIC = R["BARMAP_ID_MAGIC"]
POSE = (
    "vendor-id=0x8086,device-id=0x10d3,subsystem-vendor-id=0x15d9,"
    "subsystem-id=0x0605,class-code=0x020000,revision=0x42"
)


def test_pose_as_another_card(make_dev) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev(POSE)
    qt = d.qt
    assert qt.cfg_read(DEVFN, 0x00) == 0x10D3_8086
    assert qt.cfg_read(DEVFN, 0x08) == 0x0200_0042  # class 02 00, prog-if 00, rev 42
    assert qt.cfg_read(DEVFN, 0x2C) == 0x0605_15D9
    assert qt.cfg_read(DEVFN, 0x0E, 1) == 0  # header type 0, single function
    # the driver's registers are where they always are
    assert d.reg("ID") == MAGIC
    assert d.size == R["BARMAP_MEM_SIZE_DEFAULT"]


def test_prog_if_and_class_readback(make_dev) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev("class-code=0x0c0330,revision=0")  # an xHCI's class
    assert d.qt.cfg_read(DEVFN, 0x08) == 0x0C03_3000
    assert d.qom_get("class-code") == 0x0C0330


def test_identity_is_read_only(make_dev) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev(POSE)
    for off in (0x00, 0x08, 0x2C):
        before = d.qt.cfg_read(DEVFN, off)
        d.qt.cfg_write(DEVFN, off, 0)
        assert d.qt.cfg_read(DEVFN, off) == before


@pytest.mark.parametrize("size", [0x1000, 0x10000, 0x100000, 0x10000000])
def test_reg_size(make_dev, size: int) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev(f"reg-size={size:#x}")
    assert d.pci.probe(R["BARMAP_REG_BAR"]) == BarInfo(size, is_64=False, prefetch=False)
    assert d.reg("ID") == MAGIC
    assert d.reg("MEM_SIZE_LO") == R["BARMAP_MEM_SIZE_DEFAULT"]
    # above the register block: reserved, reads 0 and ignores writes
    for off in {0x1000, size // 2, size - 4} - {0x1000 - 4}:
        if off >= 0x1000:
            d.qt.writel(d.regs_addr + off, 0xFFFFFFFF)
            assert d.qt.readl(d.regs_addr + off) == 0, hex(off)
            assert d.qt.readq(d.regs_addr + (off & ~7)) == 0, hex(off)
    assert d.reg("SCRATCH") == 0


@pytest.mark.parametrize(
    "props,flags,info",
    [
        ("", 0xC, BarInfo(1 << 24, is_64=True, prefetch=True)),  # the default
        ("bar2-64bit=off", 0x8, BarInfo(1 << 24, is_64=False, prefetch=True)),
        ("bar2-prefetch=off", 0x4, BarInfo(1 << 24, is_64=True, prefetch=False)),
        ("bar2-64bit=off,bar2-prefetch=off", 0x0, BarInfo(1 << 24, is_64=False, prefetch=False)),
        ("bar2-64bit=off,size=256M", 0x8, BarInfo(1 << 28, is_64=False, prefetch=True)),
    ],
)
def test_bar2_flags(make_dev, props: str, flags: int, info: BarInfo) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev(props, setup=False)
    qt = d.qt
    assert qt.cfg_read(DEVFN, PCI_BAR2) & 0xF == flags
    assert d.pci.probe(R["BARMAP_MEM_BAR"]) == info
    if not info.is_64:
        assert qt.cfg_read(DEVFN, PCI_BAR2 + 4) == 0  # BAR3 unused
    d.setup()
    assert (d.mem_addr >= 1 << 32) == info.is_64
    qt.write(d.mem_addr + info.size - 0x1000, pattern(0x1000, 2))
    assert qt.read(d.mem_addr + info.size - 0x1000, 0x1000) == pattern(0x1000, 2)
    qt.write(0x300000, b"flags")
    assert d.dma(0x300000, 0x10, 5, from_dev=False) == R["BARMAP_DMA_STATUS_DONE"]
    assert qt.read(d.mem_addr + 0x10, 5) == b"flags"


@pytest.mark.parametrize("size", [4, 16, 256])
def test_io_bar(make_dev, size: int) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev(f"io-bar-size={size}")
    qt = d.qt
    assert qt.cfg_read(DEVFN, PCI_BAR4) & 0x3 == 0x1  # I/O space
    assert d.pci.probe(R["BARMAP_IO_BAR"]) == BarInfo(size, False, False, is_io=True)
    assert qt.cfg_read(DEVFN, PCI_BAR4 + 4) == 0  # BAR5 unused
    port = d.io_addr
    assert 0xC000 <= port < 0x10000
    assert qt.inl(port) == MAGIC
    assert qt.inw(port + 2) == MAGIC >> 16
    assert qt.inb(port + 1) == (MAGIC >> 8) & 0xFF
    if size > R["BARMAP_REG_SCRATCH"]:
        # the same registers as BAR0
        qt.outl(port + R["BARMAP_REG_SCRATCH"], 0xC0FFEE)
        assert d.reg("SCRATCH") == 0xC0FFEE
        d.wreg("SCRATCH", 0xBEEF)
        assert qt.inl(port + R["BARMAP_REG_SCRATCH"]) == 0xBEEF
        qt.outw(port + R["BARMAP_REG_SCRATCH"], 0)  # partial writes are dropped
        assert d.reg("SCRATCH") == 0xBEEF
    # past the BAR's end nothing decodes: x86's unassigned ports read all-ones
    assert qt.inl(port + size) == 0xFFFFFFFF
    # I/O decoding off: the ports go quiet
    d.pci.cfg_write(0x04, 0x6, 2)
    assert qt.inl(port) == 0xFFFFFFFF


def test_io_bar_dma_through_ports(make_dev) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev("io-bar-size=256")
    qt, port = d.qt, d.io_addr
    qt.write(0x300000, b"via ports")
    qt.outl(port + R["BARMAP_REG_DMA_BUS_LO"], 0x300000)
    qt.outl(port + R["BARMAP_REG_DMA_LEN"], 9)
    qt.outl(port + R["BARMAP_REG_DMA_CMD"], R["BARMAP_DMA_CMD_START"])
    d.dma_wait()
    assert qt.inl(port + R["BARMAP_REG_DMA_STATUS"]) == R["BARMAP_DMA_STATUS_DONE"]
    assert qt.read(d.mem_addr, 9) == b"via ports"


def test_default_has_no_io_bar(dev: Barmap) -> None:
    assert dev.qt.cfg_read(DEVFN, PCI_BAR4) == 0
    assert dev.io_addr == 0
    # and BAR0 stays the 4 KiB register block
    assert dev.pci.probe(0) == BarInfo(R["BARMAP_REG_BAR_SIZE"], is_64=False, prefetch=False)
    assert dev.qt.cfg_read(DEVFN, PCI_BAR0) & 0xF == 0


def test_pose_and_layout_migrate(make_dev, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    props = f"{POSE},reg-size=64K,bar2-64bit=off,bar2-prefetch=off,io-bar-size=32,size=1M"
    src: Barmap = make_dev(props)
    src.qt.write(src.mem_addr, pattern(0x1000, 28))
    src.wreg("SCRATCH", 28)
    dst = migrate(make_dev, src, props, tmp_path)
    assert (dst.regs_addr, dst.mem_addr) == (src.regs_addr, src.mem_addr)
    assert dst.qt.cfg_read(DEVFN, 0) == 0x10D3_8086
    assert dst.qt.inl(src.io_addr + R["BARMAP_REG_SCRATCH"]) == 28
    assert dst.qt.read(dst.mem_addr, 0x1000) == pattern(0x1000, 28)


def test_migrate_refuses_another_identity(make_dev, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The ids are read-only config bytes, which QEMU compares on load."""
    src: Barmap = make_dev("size=64K")
    dst = migrate(make_dev, src, "size=64K,device-id=0x1111", tmp_path, wait=False)
    dst.qt.proc.wait(timeout=30)  # type: ignore[union-attr]
    assert dst.qt.proc is not None and dst.qt.proc.returncode not in (0, None)
    assert "barmap" in dst.qt.stderr() or "0000:00:04.0" in dst.qt.stderr()


INVALID = [
    ("reg-size=0x800", "reg-size 0x800 is invalid"),
    ("reg-size=3K", "reg-size 0xc00 is invalid"),
    ("reg-size=512M", "reg-size 0x20000000 is invalid"),
    ("io-bar-size=2", "io-bar-size 0x2 is invalid"),
    ("io-bar-size=48", "io-bar-size 0x30 is invalid"),
    ("io-bar-size=512", "io-bar-size 0x200 is invalid"),
    ("vendor-id=0xffff", "vendor-id 0xffff is invalid"),
    ("vendor-id=0", "vendor-id 0x0000 is invalid"),
    ("class-code=0x1000000", "class-code 0x1000000 is invalid"),
    ("class-code=0x060400", "class-code 0x060400 is invalid"),
    ("bar2-64bit=off,size=512M", "a 32-bit (bar2-64bit=off) BAR2 size must be a power of two"),
    ("vendor-id=0x10000", "vendor-id"),  # the property's own range check
    ("revision=256", "revision"),
]


@pytest.mark.parametrize("props,message", INVALID, ids=[p for p, _ in INVALID])
def test_invalid_values_are_refused(props: str, message: str) -> None:
    qt = QTest(["-device", f"barmap,{props}"])
    with pytest.raises(Exception) as exc:
        qt.start()
    text = f"{exc.value} {qt.stderr()}"
    assert message in text, text
    # refused cleanly: exit status 1, not an abort
    assert qt.proc is not None and qt.proc.returncode == 1, qt.proc.returncode


HOTPLUG_INVALID = [
    ({"reg-size": 0x800}, "reg-size 0x800 is invalid"),
    ({"io-bar-size": 512}, "io-bar-size 0x200 is invalid"),
    ({"vendor-id": 0xFFFF}, "vendor-id 0xffff is invalid"),
    ({"class-code": 0x060400}, "class-code 0x060400 is invalid"),
    ({"bar2-64bit": False, "size": 512 << 20}, "a 32-bit (bar2-64bit=off) BAR2 size"),
]


@pytest.mark.parametrize("props,message", HOTPLUG_INVALID)
def test_invalid_values_refused_on_hotplug(props: dict[str, object], message: str) -> None:
    with QTest() as qt:
        with pytest.raises(Exception) as exc:
            qt.qmp("device_add", driver="barmap", id="bad", bus="pci.0", addr="0x6", **props)
        assert message in str(exc.value), exc.value
        assert qt.alive()
        assert not qt.pci.device(6 << 3).present()
        # the slot is free for a good one
        qt.qmp("device_add", driver="barmap", id="good", bus="pci.0", addr="0x6")
        assert qt.pci.device(6 << 3).present()


def test_hotplug_and_unplug_a_posing_device() -> None:
    """Every region of the new layout is released: the unplug completes (DEVICE_DELETED)."""
    props = {
        "vendor-id": 0x8086,
        "device-id": 0x10D3,
        "reg-size": 0x10000,
        "bar2-64bit": False,
        "size": 0x100000,
        "io-bar-size": 256,
    }
    with QTest() as qt:
        for _ in range(2):
            qt.qmp("device_add", driver="barmap", id="hp", bus="pci.0", addr="0x6", **props)
            pci = qt.pci.device(6 << 3)
            assert pci.cfg_read(0) == 0x10D3_8086
            port = pci.iomap(R["BARMAP_IO_BAR"])
            pci.enable(io=True)
            assert qt.inl(port) == MAGIC
            qt.qmp("device_del", id="hp")
            qt.acpi_eject(6)
            qt.monitor.event_wait("DEVICE_DELETED", {"device": "hp"}, timeout=10)
            assert not pci.present()
            assert qt.inl(port) == 0xFFFFFFFF
