"""Helpers for the device tests: a barmap under qtest with its BARs assigned.

(A module of its own rather than conftest.py, so that ``from bmdev import``
cannot pick up another directory's conftest.)

The BARs are placed by the qtest PCI allocator (``barmap.qtest.pci``, after libqos's
``qpci_iomap``): a test reads them from ``dev.regs_addr`` and ``dev.mem_addr``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from barmap.abi import regs
from barmap.pattern import pattern as pattern
from barmap.qtest.machine import QTest
from barmap.qtest.pci import MMIO32_WINDOW, MMIO64_WINDOW, PCIDevice

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
# Where the allocator puts the BARs of the first device set up on a machine
# (each window's start).  Kept for tests that predate the allocator: new tests
# use dev.regs_addr and dev.mem_addr.
REGS = MMIO32_WINDOW[0]
MEM = MMIO64_WINDOW[0]
GUEST_RAM = 128 << 20  # -m default on pc
PIIX3_DEVFN = 1 << 3  # 00:01.0, PIRQ routing registers 0x60..0x63
INTX_GSI = 11  # where the tests route the device's INTA#

# PCI config offsets
PCI_COMMAND = 0x04
PCI_COMMAND_MEMORY = 0x2
PCI_COMMAND_MASTER = 0x4
PCI_BAR0 = 0x10
PCI_BAR2 = 0x18
PCI_BAR4 = 0x20
PCI_CAP_ID_MSI = 0x05
PCI_CAP_ID_PM = 0x01
PMCSR = R["BARMAP_CFG_PM_CSR"]
D0 = R["BARMAP_PM_STATE_D0"]
D3HOT = R["BARMAP_PM_STATE_D3HOT"]


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
        self.regs_addr = 0  # BAR0 and BAR2 once setup() has placed them
        self.mem_addr = 0
        self.io_addr = 0  # BAR4's port, when the device has one (io-bar-size)
        self._setup = setup

    def start(self) -> Barmap:
        self.qt.start()
        if self._setup:
            self.setup()
        return self

    @property
    def pci(self) -> PCIDevice:
        return self.qt.pci.device(DEVFN)

    def setup(self) -> None:
        """Place and program both BARs (again at the same addresses, say after a reset),
        enable memory decoding and bus mastering."""
        pci = self.pci
        bars = (R["BARMAP_REG_BAR"], R["BARMAP_MEM_BAR"], R["BARMAP_IO_BAR"])
        sizes = {bar: info.size for bar in bars if (info := pci.probe(bar)) is not None}
        # largest first, as firmware does: a 256 MiB 32-bit BAR2 fits below the IOAPIC
        addrs = {bar: pci.iomap(bar) for bar in sorted(sizes, key=lambda b: -sizes[b])}
        self.regs_addr = addrs[R["BARMAP_REG_BAR"]]
        self.mem_addr = addrs[R["BARMAP_MEM_BAR"]]
        self.io_addr = addrs.get(R["BARMAP_IO_BAR"], 0)
        pci.enable(io=bool(self.io_addr))
        self.size = self.reg("MEM_SIZE_LO") | self.reg("MEM_SIZE_HI") << 32
        assert self.reg("ID") == R["BARMAP_ID_MAGIC"], "BAR0 does not decode where it was put"

    def read_bars(self) -> None:
        """Take the BAR addresses as they are programmed (say, by a migration stream)."""
        self.regs_addr = self.pci.bar_address(R["BARMAP_REG_BAR"])
        self.mem_addr = self.pci.bar_address(R["BARMAP_MEM_BAR"])

    # power management (PMCSR, in config space)

    def set_power(self, state: int) -> None:
        """Write the D-state to PMCSR as ``setpci CAP_PM+4.w=STATE`` does (a word write)."""
        self.qt.cfg_write(DEVFN, PMCSR, state, 2)

    def power(self) -> int:
        return self.qt.cfg_read(DEVFN, PMCSR, 2) & R["BARMAP_PM_STATE_MASK"]

    def close(self) -> int | None:
        return self.qt.close()

    # registers

    def reg(self, name: str) -> int:
        return self.qt.readl(self.regs_addr + R[f"BARMAP_REG_{name}"])

    def wreg(self, name: str, val: int) -> None:
        self.qt.writel(self.regs_addr + R[f"BARMAP_REG_{name}"], val)

    # QOM

    def qom_set(self, prop: str, value: Any) -> None:
        self.qt.qmp("qom-set", path=QOM, property=prop, value=value)

    def qom_get(self, prop: str) -> Any:
        return self.qt.qmp("qom-get", path=QOM, property=prop)

    # DMA

    def dma_program(self, bus: int, off: int, length: int) -> None:
        self.qt.writeq(self.regs_addr + R["BARMAP_REG_DMA_BUS_LO"], bus)
        self.qt.writeq(self.regs_addr + R["BARMAP_REG_DMA_OFF_LO"], off)
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

    def msi_cap(self) -> int:
        cap = self.pci.find_capability(PCI_CAP_ID_MSI)
        assert cap is not None, "no MSI capability"
        return cap

    def enable_msi(self, addr: int, data: int) -> None:
        """Enable MSI with its message going to guest RAM at ``addr`` (observable)."""
        cap = self.msi_cap()
        self.qt.cfg_write(DEVFN, cap + 4, addr & 0xFFFFFFFF)
        self.qt.cfg_write(DEVFN, cap + 8, addr >> 32)
        self.qt.cfg_write(DEVFN, cap + 12, data, 2)
        flags = self.qt.cfg_read(DEVFN, cap + 2, 2)
        self.qt.cfg_write(DEVFN, cap + 2, flags | 1, 2)


# migration: one QEMU's state through a stream file into a fresh QEMU


def wait_migration(qt: QTest) -> None:
    deadline = time.monotonic() + 30
    while True:
        st = qt.qmp("query-migrate").get("status")
        if st == "completed":
            return
        assert st not in ("failed", "cancelled"), qt.qmp("query-migrate")
        assert time.monotonic() < deadline, st
        time.sleep(0.02)


def migrate(
    make_dev: Callable[..., Barmap], src: Barmap, props: str, tmp_path: Path, wait: bool = True
) -> Barmap:
    """Save ``src`` to a stream and load it into a new QEMU with ``props``."""
    stream = tmp_path / "vmstate"
    src.qt.qmp("migrate", uri=f"exec:cat > {stream}")
    wait_migration(src.qt)
    dst: Barmap = make_dev(props, args=["-incoming", "defer"], setup=False)
    dst.qt.qmp("migrate-incoming", uri=f"exec:cat {stream}")
    if wait:
        wait_migration(dst.qt)
        dst.read_bars()
    return dst
