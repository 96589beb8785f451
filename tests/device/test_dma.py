"""The DMA engine: both directions, asynchrony, and every refused request."""

from __future__ import annotations

import pytest
from bmdev import DEVFN, PCI_COMMAND, Barmap, R, pattern
from bmdev import DMA_BUSY as BUSY
from bmdev import DMA_DONE as DONE
from bmdev import DMA_ERR_SHIFT as SHIFT
from bmdev import DMA_ERROR as ERROR
from bmdev import DMA_FROM_DEV as FROM_DEV
from bmdev import DMA_MAX_LEN as MAX
from bmdev import DMA_START as START

SIZE = 16 << 20
BUF = 0x200000  # guest RAM used as the DMA target/source
GUARD = 0x1000


def err(code: str) -> int:
    return ERROR | R[f"BARMAP_DMA_ERR_{code}"] << SHIFT


def fill(d: Barmap) -> tuple[bytes, bytes]:
    """Known contents: guest RAM around BUF and all of BAR2's first 2 MiB + last 64 KiB."""
    ram = pattern(MAX + 2 * GUARD, 0x11110000, offset=BUF - GUARD)
    d.qt.write(BUF - GUARD, ram)
    bar = pattern(2 << 20, 0x22220000)
    d.qt.write(d.mem_addr, bar)
    d.qt.write(d.mem_addr + SIZE - 0x10000, pattern(0x10000, 0x33330000, offset=SIZE - 0x10000))
    return ram, bar


def unchanged(d: Barmap, ram: bytes, bar: bytes) -> None:
    assert d.qt.read(BUF - GUARD, len(ram)) == ram, "guest RAM changed"
    assert d.qt.read(d.mem_addr, len(bar)) == bar, "BAR2 changed"
    tail = pattern(0x10000, 0x33330000, offset=SIZE - 0x10000)
    assert d.qt.read(d.mem_addr + SIZE - 0x10000, 0x10000) == tail, "BAR2 end changed"


@pytest.mark.parametrize("length", [1, 3, 0x1000, 0x12345, MAX])
def test_dma_to_device(dev: Barmap, length: int) -> None:
    ram, bar = fill(dev)
    off = 0x1003
    assert dev.dma(BUF, off, length, from_dev=False) == DONE
    new = ram[GUARD : GUARD + length]
    assert dev.qt.read(dev.mem_addr + off, length) == new
    assert dev.qt.read(dev.mem_addr, off) == bar[:off]
    assert (
        dev.qt.read(dev.mem_addr + off + length, 0x1000)
        == bar[off + length : off + length + 0x1000]
    )
    assert dev.qt.read(BUF - GUARD, len(ram)) == ram  # source untouched


@pytest.mark.parametrize("length", [1, 7, 0x1000, 0x12345, MAX])
def test_dma_from_device(dev: Barmap, length: int) -> None:
    ram, bar = fill(dev)
    off = 0x2001
    assert dev.dma(BUF, off, length, from_dev=True) == DONE
    assert dev.qt.read(BUF, length) == bar[off : off + length]
    assert dev.qt.read(BUF - GUARD, GUARD) == ram[:GUARD]
    after = GUARD + length
    assert dev.qt.read(BUF + length, GUARD) == ram[after : after + GUARD]
    assert dev.qt.read(dev.mem_addr, len(bar)) == bar


def test_dma_last_bytes_of_bar2(dev: Barmap) -> None:
    fill(dev)
    dev.qt.write(BUF, b"tail!")
    assert dev.dma(BUF, SIZE - 5, 5, from_dev=False) == DONE
    assert dev.qt.read(dev.mem_addr + SIZE - 5, 5) == b"tail!"
    dev.qt.memset(BUF, 16, 0)
    assert dev.dma(BUF, SIZE - 5, 5, from_dev=True) == DONE
    assert dev.qt.read(BUF, 6) == b"tail!\0"


def test_dma_is_asynchronous_and_latched(dev: Barmap) -> None:
    ram, bar = fill(dev)
    dev.dma_program(BUF, 0x100, 0x100)
    dev.wreg("DMA_CMD", START)
    assert dev.reg("DMA_STATUS") == BUSY
    assert dev.reg("STATUS") & R["BARMAP_STATUS_DMA_BUSY"]
    assert dev.qt.read(dev.mem_addr + 0x100, 0x100) == bar[0x100:0x200]  # not yet
    # rewriting the registers while busy does not change the running transfer
    dev.dma_program(BUF + 0x1000, 0x5000, 0x10)
    # and a second START is refused without disturbing it
    dev.wreg("DMA_CMD", START | FROM_DEV)
    assert dev.reg("DMA_STATUS") == BUSY | err("BUSY")
    dev.dma_wait()
    assert dev.reg("DMA_STATUS") == DONE
    assert not dev.reg("STATUS") & R["BARMAP_STATUS_DMA_BUSY"]
    assert dev.qt.read(dev.mem_addr + 0x100, 0x100) == ram[GUARD : GUARD + 0x100]
    assert dev.qt.read(dev.mem_addr + 0x5000, 0x10) == bar[0x5000:0x5010]
    assert dev.qt.read(BUF + 0x1000, 0x10) == ram[GUARD + 0x1000 : GUARD + 0x1010]


def test_reset_abandons_running_dma(dev: Barmap) -> None:
    _, bar = fill(dev)
    dev.dma_program(BUF, 0, 0x1000)
    dev.wreg("DMA_CMD", START)
    dev.qt.qmp("system_reset")
    dev.setup()
    dev.qt.clock_step(10_000_000)
    assert dev.reg("DMA_STATUS") == 0
    assert dev.qt.read(dev.mem_addr, len(bar)) == bar


U64 = (1 << 64) - 1
REFUSED = [
    # (name, props, bus, off, len, code)
    ("len0", "", BUF, 0, 0, "LEN"),
    ("len-max+1", "", BUF, 0, MAX + 1, "LEN"),
    ("len-huge", "", BUF, 0, 0xFFFFFFFF, "LEN"),
    ("off-at-end", "", BUF, SIZE, 1, "RANGE"),
    ("off+len-past-end", "", BUF, SIZE - 0x10, 0x11, "RANGE"),
    ("off-huge", "", BUF, 1 << 40, 0x10, "RANGE"),
    ("off-overflow", "", BUF, U64 - 7, 0x10, "RANGE"),
    ("bus-wraps", "", U64 - 0xF, 0, 0x20, "MASK"),
    ("bus-over-mask", "dma-mask=0xffffff", 0x1000000, 0, 0x10, "MASK"),
    ("bus-end-over-mask", "dma-mask=0xffffff", 0xFFFFF0, 0, 0x20, "MASK"),
    ("bus-unmapped", "", 0x80_0000_0000, 0, 0x100, "BUS"),
    ("bus-partly-unmapped", "", (128 << 20) - 0x80, 0, 0x100, "BUS"),
]


@pytest.mark.parametrize(
    "props,bus,off,length,code", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
@pytest.mark.parametrize("from_dev", [False, True], ids=["to-dev", "from-dev"])
def test_refused_dma_copies_nothing(  # type: ignore[no-untyped-def]
    make_dev, props: str, bus: int, off: int, length: int, code: str, from_dev: bool
) -> None:
    d: Barmap = make_dev(props)
    ram, bar = fill(d)
    edge = (128 << 20) - 0x1000
    d.qt.write(edge, pattern(0x1000, 9, offset=edge))
    status = d.dma(bus, off, length, from_dev=from_dev)
    assert status == err(code)
    unchanged(d, ram, bar)
    assert d.qt.read(edge, 0x1000) == pattern(0x1000, 9, offset=edge)
    # the engine still works afterwards
    assert d.dma(BUF, 0, 0x10, from_dev=False) == DONE


@pytest.mark.parametrize("from_dev", [False, True], ids=["to-dev", "from-dev"])
def test_refused_without_bus_master(dev: Barmap, from_dev: bool) -> None:
    ram, bar = fill(dev)
    dev.qt.cfg_write(DEVFN, PCI_COMMAND, 0x2, 2)  # memory on, master off
    assert dev.dma(BUF, 0, 0x1000, from_dev=from_dev) == err("NO_MASTER")
    unchanged(dev, ram, bar)
    # dropping bus mastering while a transfer is pending fails it too
    dev.qt.cfg_write(DEVFN, PCI_COMMAND, 0x6, 2)
    dev.dma_program(BUF, 0, 0x1000)
    dev.wreg("DMA_CMD", START | (FROM_DEV if from_dev else 0))
    dev.qt.cfg_write(DEVFN, PCI_COMMAND, 0x2, 2)
    dev.dma_wait()
    assert dev.reg("DMA_STATUS") == err("NO_MASTER")
    unchanged(dev, ram, bar)


@pytest.mark.parametrize("how", ["register", "qom"])
def test_refused_with_injected_fault(dev: Barmap, how: str) -> None:
    ram, bar = fill(dev)
    if how == "register":
        dev.wreg("FAULT", R["BARMAP_FAULT_DMA_ERROR"])
    else:
        dev.qom_set("fault-dma-error", True)
    assert dev.reg("FAULT") == R["BARMAP_FAULT_DMA_ERROR"]
    assert dev.qom_get("fault-dma-error") is True
    for from_dev in (False, True):
        assert dev.dma(BUF, 0, 0x1000, from_dev=from_dev) == err("INJECTED")
    unchanged(dev, ram, bar)
    # injected while a transfer is pending
    dev.wreg("FAULT", 0)
    dev.dma_program(BUF, 0, 0x1000)
    dev.wreg("DMA_CMD", START)
    dev.qom_set("fault-dma-error", True)
    dev.dma_wait()
    assert dev.reg("DMA_STATUS") == err("INJECTED")
    unchanged(dev, ram, bar)
    dev.qom_set("fault-dma-error", False)
    assert dev.dma(BUF, 0, 0x1000, from_dev=False) == DONE
    assert dev.qt.read(dev.mem_addr, 0x1000) == ram[GUARD : GUARD + 0x1000]


def test_check_order(make_dev) -> None:  # type: ignore[no-untyped-def]
    """LEN before RANGE before MASK before NO_MASTER before INJECTED."""
    d: Barmap = make_dev("dma-mask=0xffff")
    d.wreg("FAULT", R["BARMAP_FAULT_DMA_ERROR"])
    d.qt.cfg_write(DEVFN, PCI_COMMAND, 0x2, 2)
    assert d.dma(1 << 20, SIZE, 0, from_dev=False) == err("LEN")
    assert d.dma(1 << 20, SIZE, 1, from_dev=False) == err("RANGE")
    assert d.dma(1 << 20, 0, 1, from_dev=False) == err("MASK")
    assert d.dma(0x100, 0, 1, from_dev=False) == err("NO_MASTER")
    d.qt.cfg_write(DEVFN, PCI_COMMAND, 0x6, 2)
    assert d.dma(0x100, 0, 1, from_dev=False) == err("INJECTED")


def test_dma_between_guest_ram_and_bar2_in_64bit_register_pairs(dev: Barmap) -> None:
    """The 8-byte write to DMA_LEN/DMA_CMD starts the transfer (low half first)."""
    dev.qt.write(BUF, b"0123456789abcdef")
    dev.qt.writeq(dev.regs_addr + R["BARMAP_REG_DMA_BUS_LO"], BUF)
    dev.qt.writeq(dev.regs_addr + R["BARMAP_REG_DMA_OFF_LO"], 0x40)
    dev.qt.writeq(dev.regs_addr + R["BARMAP_REG_DMA_LEN"], 16 | START << 32)
    dev.dma_wait()
    assert dev.reg("DMA_STATUS") == DONE
    assert dev.qt.read(dev.mem_addr + 0x40, 16) == b"0123456789abcdef"


def test_dma_peer_to_peer_with_own_bars(dev: Barmap) -> None:
    """Bus addresses may be barmap's own BARs; nothing breaks."""
    # BAR0 -> BAR2: register values land in BAR2
    assert dev.dma(dev.regs_addr, 0x100, 8, from_dev=False) == DONE
    assert dev.qt.readq(dev.mem_addr + 0x100) == R["BARMAP_ID_MAGIC"] | R["BARMAP_VERSION"] << 32
    # BAR2 -> BAR0 over CAPS, SCRATCH, MEM_SIZE_LO: only SCRATCH takes the value
    dev.qt.writeq(dev.mem_addr + 0x200, 0x0000000012345678)
    assert dev.dma(dev.regs_addr + 8, 0x1FC, 12, from_dev=True) == DONE
    assert dev.reg("SCRATCH") == 0x12345678
    assert dev.reg("MEM_SIZE_LO") == SIZE
    # BAR2 -> BAR2 (overlapping copy through the bounce buffer)
    dev.qt.write(dev.mem_addr, pattern(0x100, 7))
    assert dev.dma(dev.mem_addr, 0x10, 0x100, from_dev=False) == DONE
    assert dev.qt.read(dev.mem_addr + 0x10, 0x100) == pattern(0x100, 7)
    # BAR2 -> BAR0 DMA_LEN/DMA_CMD: a START written by the transfer itself is refused
    dev.qt.writeq(dev.mem_addr + 0x300, 0x10 | START << 32)
    assert dev.dma(dev.regs_addr + R["BARMAP_REG_DMA_LEN"], 0x300, 8, from_dev=True) == DONE
    assert dev.reg("DMA_LEN") == 0x10
    assert dev.qt.alive()
