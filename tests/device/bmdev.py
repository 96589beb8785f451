"""Helpers for the device tests: a barmap under qtest with its BARs assigned.

(A module of its own rather than conftest.py, so that ``from bmdev import``
cannot pick up another directory's conftest.)
"""

from __future__ import annotations

from typing import Any

from barmap.abi import regs
from barmap.qtest import QTest

R = regs()

# DMA register bits, shared by the DMA and random-operation tests
DMA_BUSY = R["BARMAP_DMA_STATUS_BUSY"]
DMA_DONE = R["BARMAP_DMA_STATUS_DONE"]
DMA_ERROR = R["BARMAP_DMA_STATUS_ERROR"]
DMA_ERR_SHIFT = R["BARMAP_DMA_STATUS_ERR_SHIFT"]
DMA_START = R["BARMAP_DMA_CMD_START"]
DMA_FROM_DEV = R["BARMAP_DMA_CMD_FROM_DEV"]
DMA_CMD_IRQ = R["BARMAP_DMA_CMD_IRQ"]
DMA_MAX_LEN = R["BARMAP_DMA_MAX_LEN"]

SLOT = 4
DEVFN = SLOT << 3
DEV_ID = "bm"
QOM = f"/machine/peripheral/{DEV_ID}"
REGS = 0xFEBF0000  # BAR0, in the 32-bit PCI hole
MEM = 0x4_0000_0000  # BAR2, 64-bit, aligned for any BAR2 size
GUEST_RAM = 128 << 20  # -m default on pc
PIIX3_DEVFN = 1 << 3  # 00:01.0, PIRQ routing registers 0x60..0x63
INTX_GSI = 11  # where the tests route the device's INTA#

# PCI config offsets
PCI_COMMAND = 0x04
PCI_COMMAND_MEMORY = 0x2
PCI_COMMAND_MASTER = 0x4
PCI_BAR0 = 0x10
PCI_BAR2 = 0x18
PCI_CAP_ID_MSI = 0x05


class Barmap:
    """A QEMU under qtest with one barmap, BARs assigned and enabled."""

    def __init__(
        self,
        props: str = "",
        args: list[str] | None = None,
        *,
        setup: bool = True,
        machine: str = "pc",
    ) -> None:
        dev = f"barmap,id={DEV_ID},addr={SLOT:02x}.0"
        if props:
            dev += "," + props
        self.qt = QTest([*(args or []), "-device", dev], machine=machine)
        self.size = 0
        self._setup = setup

    def start(self) -> Barmap:
        self.qt.start()
        if self._setup:
            self.setup()
        return self

    def setup(self, devfn: int = DEVFN, regs_at: int = REGS, mem_at: int = MEM) -> None:
        qt = self.qt
        qt.cfg_write(devfn, PCI_BAR0, regs_at)
        qt.cfg_write(devfn, PCI_BAR2, mem_at & 0xFFFFFFFF)
        qt.cfg_write(devfn, PCI_BAR2 + 4, mem_at >> 32)
        qt.cfg_write(devfn, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2)
        self.size = self.reg("MEM_SIZE_LO") | self.reg("MEM_SIZE_HI") << 32
        assert self.reg("ID") == R["BARMAP_ID_MAGIC"], "BAR0 not where the test put it"

    def close(self) -> int | None:
        return self.qt.close()

    # registers

    def reg(self, name: str) -> int:
        return self.qt.readl(REGS + R[f"BARMAP_REG_{name}"])

    def wreg(self, name: str, val: int) -> None:
        self.qt.writel(REGS + R[f"BARMAP_REG_{name}"], val)

    # QOM

    def qom_set(self, prop: str, value: Any) -> None:
        self.qt.qmp("qom-set", path=QOM, property=prop, value=value)

    def qom_get(self, prop: str) -> Any:
        return self.qt.qmp("qom-get", path=QOM, property=prop)

    # DMA

    def dma_program(self, bus: int, off: int, length: int) -> None:
        self.qt.writeq(REGS + R["BARMAP_REG_DMA_BUS_LO"], bus)
        self.qt.writeq(REGS + R["BARMAP_REG_DMA_OFF_LO"], off)
        self.wreg("DMA_LEN", length)

    def dma(self, bus: int, off: int, length: int, *, from_dev: bool, irq: bool = False) -> int:
        """Run one transfer to completion; return DMA_STATUS."""
        self.dma_program(bus, off, length)
        cmd = R["BARMAP_DMA_CMD_START"]
        if from_dev:
            cmd |= R["BARMAP_DMA_CMD_FROM_DEV"]
        if irq:
            cmd |= R["BARMAP_DMA_CMD_IRQ"]
        self.wreg("DMA_CMD", cmd)
        self.dma_wait()
        return self.reg("DMA_STATUS")

    def dma_wait(self) -> None:
        for _ in range(100):
            if not self.reg("DMA_STATUS") & R["BARMAP_DMA_STATUS_BUSY"]:
                return
            self.qt.clock_step()
        raise AssertionError("DMA never finished")

    # interrupts

    def route_intx(self) -> None:
        """Route INTA# of slot SLOT to GSI INTX_GSI and intercept the IOAPIC inputs."""
        pirq = (SLOT - 1) & 3  # PIIX: INTA# of slot N is PIRQ (N - 1) mod 4
        self.qt.cfg_write(PIIX3_DEVFN, 0x60 + pirq, INTX_GSI, 1)
        self.qt.irq_intercept_in("ioapic")

    def intx(self) -> bool:
        return self.qt.irq(INTX_GSI)

    def msi_cap(self, devfn: int = DEVFN) -> int:
        ptr = self.qt.cfg_read(devfn, 0x34, 1)
        while ptr:
            if self.qt.cfg_read(devfn, ptr, 1) == PCI_CAP_ID_MSI:
                return ptr
            ptr = self.qt.cfg_read(devfn, ptr + 1, 1)
        raise AssertionError("no MSI capability")

    def enable_msi(self, addr: int, data: int) -> None:
        """Enable MSI with its message going to guest RAM at ``addr`` (observable)."""
        cap = self.msi_cap()
        self.qt.cfg_write(DEVFN, cap + 4, addr & 0xFFFFFFFF)
        self.qt.cfg_write(DEVFN, cap + 8, addr >> 32)
        self.qt.cfg_write(DEVFN, cap + 12, data, 2)
        flags = self.qt.cfg_read(DEVFN, cap + 2, 2)
        self.qt.cfg_write(DEVFN, cap + 2, flags | 1, 2)


def pattern(off: int, length: int, salt: int = 0) -> bytes:
    """Offset-encoded bytes: every 4-byte word holds its own offset (xor salt)."""
    start = off & ~3
    words = range(start, off + length + 4, 4)
    raw = b"".join(((w ^ salt) & 0xFFFFFFFF).to_bytes(4, "little") for w in words)
    return raw[off - start : off - start + length]
