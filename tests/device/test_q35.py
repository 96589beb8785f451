"""The same device on q35 (PCI Express root bus): identity, BARs, DMA, MSI."""

from __future__ import annotations

from bmdev import DEVFN, Barmap, R, pattern


def test_q35_smoke(make_dev) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev("size=1M", machine="q35")
    qt = d.qt
    assert qt.cfg_read(DEVFN, 0) == R["BARMAP_PCI_DEVICE_ID"] << 16 | R["BARMAP_PCI_VENDOR_ID"]
    assert d.size == 1 << 20
    qt.write(d.mem_addr, pattern(0x10000, 35))
    assert qt.read(d.mem_addr, 0x10000) == pattern(0x10000, 35)
    qt.write(0x300000, b"q35 dma")
    assert d.dma(0x300000, 0x100, 7, from_dev=False) == R["BARMAP_DMA_STATUS_DONE"]
    assert qt.read(d.mem_addr + 0x100, 7) == b"q35 dma"
    assert d.dma(0x300100, 0x100, 7, from_dev=True) == R["BARMAP_DMA_STATUS_DONE"]
    assert qt.read(0x300100, 7) == b"q35 dma"
    d.enable_msi(0x7000, 0x35)
    d.wreg("IRQ_MASK", R["BARMAP_IRQ_SOFT"])
    d.wreg("IRQ_RAISE", R["BARMAP_IRQ_SOFT"])
    assert qt.readl(0x7000) == 0x35
    d.qom_set("fault-all-ones", True)
    assert qt.readq(d.mem_addr) == (1 << 64) - 1
