"""PCI power management: the PM capability, D0 and D3hot.

In D3hot the function answers config cycles only: BAR0, BAR2 (and the I/O BAR)
read all-ones and drop writes, the DMA engine moves nothing, no interrupt is
signalled; back in D0 (No_Soft_Reset: no internal reset) everything is as it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bmdev import (
    D0,
    D3HOT,
    DEVFN,
    PCI_CAP_ID_MSI,
    PCI_CAP_ID_PM,
    PCI_COMMAND,
    PMCSR,
    Barmap,
    R,
    migrate,
    pattern,
)
from bmdev import DMA_DONE as DONE
from bmdev import DMA_ERR_SHIFT as SHIFT
from bmdev import DMA_ERROR as ERROR
from bmdev import DMA_START as START

PM = R["BARMAP_CFG_PM"]
NO_SOFT_RESET = R["BARMAP_PM_NO_SOFT_RESET"]
ERR_POWER = ERROR | R["BARMAP_DMA_ERR_POWER"] << SHIFT
SOFT = R["BARMAP_IRQ_SOFT"]
ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: (1 << 64) - 1}
SPAN = 0x2000


def reads(d: Barmap, addr: int) -> dict[int, int]:
    qt = d.qt
    return {1: qt.readb(addr), 2: qt.readw(addr), 4: qt.readl(addr), 8: qt.readq(addr)}


def test_capability_layout(dev: Barmap) -> None:
    pci = dev.pci
    assert pci.find_capability(PCI_CAP_ID_PM) == PM == 0x50
    assert pci.find_capability(PCI_CAP_ID_MSI) == R["BARMAP_CFG_MSI"] == 0x40
    # the list: 0x34 -> MSI (0x40) -> PM (0x50) -> end
    assert dev.qt.cfg_read(DEVFN, 0x34, 1) == 0x40
    assert dev.qt.cfg_read(DEVFN, 0x41, 1) == PM
    assert dev.qt.cfg_read(DEVFN, PM + 1, 1) == 0
    assert dev.qt.cfg_read(DEVFN, PM + 2, 2) == R["BARMAP_PM_PMC"]  # version 3, D3hot only
    assert dev.qt.cfg_read(DEVFN, PMCSR, 2) == NO_SOFT_RESET | D0
    assert dev.qt.cfg_read(DEVFN, PM + 6, 2) == 0  # no bridge extensions, no data


def test_pmcsr_writable_bits_are_the_state(dev: Barmap) -> None:
    """Only bits 1..0 take a write: No_Soft_Reset stays 1, PME_En and PME_Status 0."""
    dev.qt.cfg_write(DEVFN, PMCSR, 0xFFFC, 2)
    assert dev.qt.cfg_read(DEVFN, PMCSR, 2) == NO_SOFT_RESET
    dev.qt.cfg_write(DEVFN, PMCSR, 0xFFFF, 2)
    assert dev.qt.cfg_read(DEVFN, PMCSR, 2) == NO_SOFT_RESET | D3HOT
    dev.qt.cfg_write(DEVFN, PMCSR, 0, 1)  # a byte write reaches it too
    assert dev.power() == D0


@pytest.mark.parametrize("state", [1, 2])
def test_d1_d2_are_refused(dev: Barmap, state: int) -> None:
    """An unsupported state is discarded: the function stays where it was."""
    dev.set_power(state)
    assert dev.power() == D0
    assert dev.reg("ID") == R["BARMAP_ID_MAGIC"]
    dev.set_power(D3HOT)
    dev.set_power(state)
    assert dev.power() == D3HOT
    assert dev.qt.readl(dev.regs_addr) == ONES[4]


def test_d3hot_bars_read_all_ones_and_drop_writes(dev: Barmap) -> None:
    data = pattern(SPAN, 0x0D3D3000)
    dev.qt.write(dev.mem_addr, data)
    dev.wreg("SCRATCH", 0x5C5C)
    dev.wreg("IRQ_MASK", SOFT)
    dev.set_power(D3HOT)
    assert dev.power() == D3HOT
    # memory BARs: all-ones at every width, the registers included
    for addr in (dev.regs_addr, dev.regs_addr + R["BARMAP_REG_SCRATCH"], dev.mem_addr):
        assert reads(dev, addr) == ONES, hex(addr)
    assert reads(dev, dev.mem_addr + dev.size - 8) == ONES
    assert dev.qt.read(dev.mem_addr + 3, 13) == b"\xff" * 13
    # writes are dropped: BAR2 bytes, SCRATCH, and a FAULT write that would matter
    dev.qt.write(dev.mem_addr, b"\0" * 0x100)
    dev.qt.writel(dev.mem_addr + 0x1000, 0)
    dev.wreg("SCRATCH", 0)
    dev.wreg("FAULT", R["BARMAP_FAULT_NO_DECODE"])
    dev.wreg("IRQ_MASK", 0)
    # config space keeps answering, QOM sees the state as it is
    assert dev.qt.cfg_read(DEVFN, 0, 2) == R["BARMAP_PCI_VENDOR_ID"]
    assert dev.qt.cfg_read(DEVFN, PCI_COMMAND, 2) & 0x6 == 0x6
    assert dev.qom_get("fault-no-decode") is False
    # back to D0: nothing was reset (No_Soft_Reset), nothing was written
    dev.set_power(D0)
    assert dev.reg("ID") == R["BARMAP_ID_MAGIC"]
    assert dev.reg("SCRATCH") == 0x5C5C
    assert dev.reg("IRQ_MASK") == SOFT
    assert dev.reg("FAULT") == 0
    assert dev.qt.read(dev.mem_addr, SPAN) == data
    assert dev.pci.bar_address(R["BARMAP_MEM_BAR"]) == dev.mem_addr


def test_d3hot_wins_over_no_decode(dev: Barmap) -> None:
    dev.qt.writel(dev.mem_addr, 0x11223344)
    dev.qom_set("fault-no-decode", True)
    assert dev.qt.readl(dev.mem_addr) == 0
    dev.set_power(D3HOT)
    assert dev.qt.readl(dev.mem_addr) == ONES[4]
    dev.set_power(D0)
    assert dev.qt.readl(dev.mem_addr) == 0
    dev.qom_set("fault-no-decode", False)
    assert dev.qt.readl(dev.mem_addr) == 0x11223344


def test_dma_pending_at_d3hot_is_refused_and_copies_nothing(dev: Barmap) -> None:
    """A START cannot reach the engine in D3hot (BAR0 drops writes); a transfer
    started in D0 whose timer fires in D3hot is refused with DMA_ERR_POWER."""
    src = pattern(0x1000, 0x5A5A0000, offset=0x300000)
    dev.qt.write(0x300000, src)
    bar = pattern(0x1000, 0x0BA20000)
    dev.qt.write(dev.mem_addr, bar)
    dev.wreg("IRQ_MASK", R["BARMAP_IRQ_DMA_ERROR"])
    dev.dma_program(0x300000, 0, 0x1000)
    dev.wreg("DMA_CMD", START | R["BARMAP_DMA_CMD_IRQ"])
    assert dev.reg("DMA_STATUS") == R["BARMAP_DMA_STATUS_BUSY"]
    dev.set_power(D3HOT)
    dev.qt.clock_step(100_000)
    dev.set_power(D0)
    assert dev.reg("DMA_STATUS") == ERR_POWER
    assert dev.reg("IRQ_STATUS") == R["BARMAP_IRQ_DMA_ERROR"]
    assert dev.qt.read(dev.mem_addr, 0x1000) == bar, "BAR2 written in D3hot"
    # BAR2 -> bus, the other direction
    dev.dma_program(0x300000, 0, 0x1000)
    dev.wreg("DMA_CMD", START | R["BARMAP_DMA_CMD_FROM_DEV"])
    dev.set_power(D3HOT)
    dev.qt.clock_step(100_000)
    dev.set_power(D0)
    assert dev.reg("DMA_STATUS") == ERR_POWER
    assert dev.qt.read(0x300000, 0x1000) == src, "guest RAM written in D3hot"
    # and in D0 the engine works again
    assert dev.dma(0x300000, 0, 0x1000, from_dev=False) == DONE
    assert dev.qt.read(dev.mem_addr, 0x1000) == src


def test_dma_whose_timer_fires_back_in_d0_runs(dev: Barmap) -> None:
    dev.qt.write(0x300000, b"after D3hot")
    dev.dma_program(0x300000, 0x40, 11)
    dev.wreg("DMA_CMD", START)
    dev.set_power(D3HOT)
    dev.set_power(D0)
    dev.dma_wait()
    assert dev.reg("DMA_STATUS") == DONE
    assert dev.qt.read(dev.mem_addr + 0x40, 11) == b"after D3hot"


def test_d3hot_signals_no_intx(dev: Barmap) -> None:
    dev.route_intx()
    dev.wreg("IRQ_MASK", SOFT)
    dev.wreg("IRQ_RAISE", SOFT)
    assert dev.intx()
    dev.set_power(D3HOT)
    assert not dev.intx(), "INTx asserted in D3hot"
    dev.set_power(D0)
    assert dev.intx(), "the pending level is back in D0"
    dev.wreg("IRQ_ACK", SOFT)
    assert not dev.intx()


def test_d3hot_signals_no_msi(dev: Barmap) -> None:
    """The cause is recorded in D3hot but no message goes out; the edge stays lost."""
    dev.enable_msi(0x7000, 0x33)
    dev.wreg("IRQ_MASK", R["BARMAP_IRQ_DMA_ERROR"] | SOFT)
    dev.dma_program(0x300000, 0, 1)
    dev.wreg("DMA_CMD", START | R["BARMAP_DMA_CMD_IRQ"])
    dev.set_power(D3HOT)
    dev.qt.clock_step(100_000)  # refused in D3hot, raising IRQ_DMA_ERROR
    assert dev.qt.readl(0x7000) == 0, "MSI sent in D3hot"
    dev.set_power(D0)
    assert dev.reg("IRQ_STATUS") == R["BARMAP_IRQ_DMA_ERROR"]
    assert dev.qt.readl(0x7000) == 0, "an MSI edge lost in D3hot stays lost"
    dev.wreg("IRQ_ACK", 0xFFFFFFFF)
    dev.wreg("IRQ_RAISE", SOFT)
    assert dev.qt.readl(0x7000) == 0x33, "no MSI in D0"


def test_io_bar_in_d3hot(make_dev) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev("io-bar-size=256")
    assert d.qt.inl(d.io_addr) == R["BARMAP_ID_MAGIC"]
    d.set_power(D3HOT)
    assert d.qt.inl(d.io_addr) == ONES[4]
    assert d.qt.inb(d.io_addr + 1) == ONES[1]
    d.qt.outl(d.io_addr + R["BARMAP_REG_SCRATCH"], 0x77)  # dropped
    d.set_power(D0)
    assert d.qt.inl(d.io_addr + R["BARMAP_REG_SCRATCH"]) == 0


def test_system_reset_returns_to_d0(dev: Barmap) -> None:
    dev.qt.write(dev.mem_addr, b"kept over reset")
    dev.set_power(D3HOT)
    dev.qt.qmp("system_reset")
    assert dev.qt.alive(), dev.qt.stderr()
    assert dev.qt.cfg_read(DEVFN, PMCSR, 2) == NO_SOFT_RESET | D0
    dev.setup()
    assert dev.qt.read(dev.mem_addr, 15) == b"kept over reset"


def test_migrate_in_d3hot(make_dev, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src: Barmap = make_dev("size=1M")
    src.qt.write(src.mem_addr, pattern(0x10000, 0xD3))
    src.wreg("SCRATCH", 0xD3D3)
    src.set_power(D3HOT)
    dst = migrate(make_dev, src, "size=1M", tmp_path)
    assert dst.power() == D3HOT
    assert dst.qt.readl(dst.mem_addr) == ONES[4], "D3hot not in force after migration"
    assert dst.qt.readl(dst.regs_addr) == ONES[4]
    dst.set_power(D0)
    assert dst.reg("SCRATCH") == 0xD3D3
    assert dst.qt.read(dst.mem_addr, 0x10000) == pattern(0x10000, 0xD3)


def test_q35_d3hot(make_dev) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev("size=1M", machine="q35")
    d.qt.writel(d.mem_addr, 0x35)
    d.set_power(D3HOT)
    assert d.qt.readl(d.mem_addr) == ONES[4]
    assert d.qt.readl(d.regs_addr) == ONES[4]
    d.set_power(D0)
    assert d.qt.readl(d.mem_addr) == 0x35
