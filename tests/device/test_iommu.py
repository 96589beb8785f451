"""DMA goes through the device's bus-master address space, so a vIOMMU applies."""

from __future__ import annotations

from bmdev import Barmap, R

VTD = 0xFED90000  # intel-iommu registers on q35
VTD_GCMD, VTD_GSTS, VTD_RTADDR = 0x18, 0x1C, 0x20
GCMD_TE, GCMD_SRTP = 1 << 31, 1 << 30
ERR_BUS = R["BARMAP_DMA_STATUS_ERROR"] | R["BARMAP_DMA_ERR_BUS"] << 8
DONE = R["BARMAP_DMA_STATUS_DONE"]


def test_iommu_without_mappings_faults_the_dma(make_dev) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev("size=64K", args=["-device", "intel-iommu"], machine="q35")
    qt = d.qt
    qt.write(0x300000, b"hello iommu")
    # translation off: DMA addresses are guest-physical
    assert d.dma(0x300000, 0, 11, from_dev=False) == DONE
    assert qt.read(d.mem_addr, 11) == b"hello iommu"
    # translation on with an empty root table: every DMA faults
    qt.write(0x10000, bytes(4096))
    qt.writeq(VTD + VTD_RTADDR, 0x10000)
    qt.writel(VTD + VTD_GCMD, GCMD_SRTP)
    qt.writel(VTD + VTD_GCMD, GCMD_TE)
    assert qt.readl(VTD + VTD_GSTS) & GCMD_TE
    qt.write(0x300000, b"HELLO IOMMU")
    assert d.dma(0x300000, 0x100, 11, from_dev=False) == ERR_BUS
    assert qt.read(d.mem_addr + 0x100, 11) == bytes(11)
    assert d.dma(0x300000, 0, 11, from_dev=True) == ERR_BUS
    assert qt.read(0x300000, 11) == b"HELLO IOMMU"
    assert "translation failure" in qt.stderr()
