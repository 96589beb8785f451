"""Interrupts: INTx level, mask/ack, DMA completion, MSI edges."""

from __future__ import annotations

from bmdev import DEVFN, Barmap, R

SOFT = R["BARMAP_IRQ_SOFT"]
DMA_DONE = R["BARMAP_IRQ_DMA_DONE"]
DMA_ERROR = R["BARMAP_IRQ_DMA_ERROR"]
MSI_ADDR = 0x7000  # guest RAM: an MSI there is a visible 4-byte write
MSI_DATA = 0x4B1D


def test_intx_raise_ack_mask(dev: Barmap) -> None:
    dev.route_intx()
    assert not dev.intx()
    dev.wreg("IRQ_RAISE", SOFT)
    assert dev.reg("IRQ_STATUS") == SOFT
    assert not dev.intx(), "masked interrupt asserted the line"
    dev.wreg("IRQ_MASK", SOFT)
    assert dev.intx()
    dev.wreg("IRQ_MASK", 0)
    assert not dev.intx()
    dev.wreg("IRQ_MASK", R["BARMAP_IRQ_ALL"])
    assert dev.intx()
    dev.wreg("IRQ_ACK", DMA_DONE)  # another bit: no change
    assert dev.intx() and dev.reg("IRQ_STATUS") == SOFT
    dev.wreg("IRQ_ACK", SOFT)
    assert not dev.intx()
    assert dev.reg("IRQ_STATUS") == 0
    # the config-space interrupt status bit follows the line
    dev.wreg("IRQ_RAISE", SOFT)
    assert dev.qt.cfg_read(DEVFN, 0x06, 2) & 0x8
    # INTx disable in COMMAND masks it at the PCI level
    dev.qt.cfg_write(DEVFN, 0x04, 0x6 | 0x400, 2)
    assert not dev.intx()
    dev.qt.cfg_write(DEVFN, 0x04, 0x6, 2)
    assert dev.intx()
    # device reset drops it
    dev.qt.qmp("system_reset")
    assert not dev.intx()


def test_dma_completion_interrupts(dev: Barmap) -> None:
    dev.route_intx()
    dev.wreg("IRQ_MASK", DMA_DONE | DMA_ERROR)
    status = dev.dma(0x100000, 0, 0x100, from_dev=False, irq=True)
    assert status == R["BARMAP_DMA_STATUS_DONE"]
    assert dev.reg("IRQ_STATUS") == DMA_DONE
    assert dev.intx()
    dev.wreg("IRQ_ACK", DMA_DONE)
    assert not dev.intx()
    # without CMD_IRQ nothing is raised
    dev.dma(0x100000, 0, 0x100, from_dev=True)
    assert dev.reg("IRQ_STATUS") == 0 and not dev.intx()
    # a refused request with CMD_IRQ raises DMA_ERROR at once
    dev.dma(0x100000, 0, 0, from_dev=False, irq=True)
    assert dev.reg("IRQ_STATUS") == DMA_ERROR
    assert dev.intx()
    dev.wreg("IRQ_ACK", 0xFFFFFFFF)
    assert not dev.intx()


def test_no_irq_before_completion(dev: Barmap) -> None:
    dev.route_intx()
    dev.wreg("IRQ_MASK", DMA_DONE)
    dev.dma_program(0x100000, 0, 0x100)
    dev.wreg("DMA_CMD", R["BARMAP_DMA_CMD_START"] | R["BARMAP_DMA_CMD_IRQ"])
    assert not dev.intx() and dev.reg("IRQ_STATUS") == 0
    dev.qt.clock_step()
    assert dev.intx() and dev.reg("IRQ_STATUS") == DMA_DONE


def _msi_count(dev: Barmap) -> int:
    """1 if an MSI landed since the last call (and re-arm), else 0."""
    got = dev.qt.readl(MSI_ADDR)
    dev.qt.writel(MSI_ADDR, 0)
    assert got in (0, MSI_DATA), hex(got)
    return 1 if got == MSI_DATA else 0


def test_msi(dev: Barmap) -> None:
    dev.route_intx()
    assert not dev.reg("STATUS") & R["BARMAP_STATUS_MSI_ENABLED"]
    dev.wreg("IRQ_MASK", R["BARMAP_IRQ_ALL"])
    dev.enable_msi(MSI_ADDR, MSI_DATA)
    assert dev.reg("STATUS") & R["BARMAP_STATUS_MSI_ENABLED"]
    assert _msi_count(dev) == 0
    dev.wreg("IRQ_RAISE", SOFT)
    assert _msi_count(dev) == 1
    assert not dev.intx(), "INTx asserted while MSI is enabled"
    # still pending: another source does not make a new edge
    dev.wreg("IRQ_RAISE", DMA_DONE)
    assert _msi_count(dev) == 0
    dev.wreg("IRQ_ACK", 0xFFFFFFFF)
    dev.dma(0x100000, 0, 0x10, from_dev=False, irq=True)
    assert _msi_count(dev) == 1
    # masked: no message; unmasking a pending one is an edge
    dev.wreg("IRQ_ACK", 0xFFFFFFFF)
    dev.wreg("IRQ_MASK", 0)
    dev.wreg("IRQ_RAISE", SOFT)
    assert _msi_count(dev) == 0
    dev.wreg("IRQ_MASK", SOFT)
    assert _msi_count(dev) == 1


def test_msi_to_intx_switch(dev: Barmap) -> None:
    """Disabling MSI with an interrupt pending moves it to the INTx line."""
    dev.route_intx()
    dev.enable_msi(MSI_ADDR, MSI_DATA)
    dev.wreg("IRQ_MASK", SOFT)
    dev.wreg("IRQ_RAISE", SOFT)
    assert _msi_count(dev) == 1 and not dev.intx()
    cap = dev.msi_cap()
    flags = dev.qt.cfg_read(DEVFN, cap + 2, 2)
    dev.qt.cfg_write(DEVFN, cap + 2, flags & ~1, 2)
    assert dev.intx()
    assert not dev.reg("STATUS") & R["BARMAP_STATUS_MSI_ENABLED"]
