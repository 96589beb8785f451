"""What QEMU itself gives for a BAR whose decoding is off in COMMAND.

Measured, not the device's doing: with Memory Space Enable (COMMAND bit 1)
clear QEMU's PCI core unmaps every memory BAR (pci_bar_address() returns
PCI_BAR_UNMAPPED), so an access at the BAR's address reaches whatever is
behind it: on pc and q35 with nothing else there, unassigned memory, which
reads 0 and drops writes (QEMU 7.2 and 10.0 alike). That is not real PCIe,
where a request nothing claims ends in Unsupported Request and reads all-ones
(docs/device.md). I/O Space Enable off is different on x86: the unassigned
I/O ports read all-ones. The BAR registers keep their addresses throughout.
"""

from __future__ import annotations

import pytest
from bmdev import DEVFN, PCI_COMMAND, Barmap, R, pattern

MEM = 0x2
IO = 0x1
MASTER = 0x4


@pytest.mark.parametrize("machine", ["pc", "q35"])
@pytest.mark.parametrize("props", ["", "bar2-64bit=off"], ids=["bar2-64bit", "bar2-32bit"])
def test_memory_space_enable_off_reads_zero(make_dev, machine: str, props: str) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev(props, machine=machine)
    qt = d.qt
    data = pattern(0x1000, 0x3E3E0000)
    qt.write(d.mem_addr, data)
    d.wreg("SCRATCH", 0x5CA7)
    bars = (d.regs_addr, d.mem_addr)
    qt.cfg_write(DEVFN, PCI_COMMAND, MASTER, 2)  # Memory Space Enable off
    assert (d.pci.bar_address(0), d.pci.bar_address(2)) == bars  # addresses kept
    for addr in (d.regs_addr, d.regs_addr + R["BARMAP_REG_SCRATCH"], d.mem_addr):
        got = [qt.readb(addr), qt.readw(addr), qt.readl(addr), qt.readq(addr)]
        assert got == [0, 0, 0, 0], (hex(addr), [hex(v) for v in got])
    assert qt.read(d.mem_addr, 0x100) == b"\0" * 0x100
    # writes go nowhere
    qt.writel(d.regs_addr + R["BARMAP_REG_SCRATCH"], 0)
    qt.write(d.mem_addr, b"\xee" * 0x100)
    qt.cfg_write(DEVFN, PCI_COMMAND, MASTER | MEM, 2)
    assert d.reg("SCRATCH") == 0x5CA7
    assert qt.read(d.mem_addr, 0x1000) == data


def test_io_space_enable_off_reads_all_ones(make_dev) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev("io-bar-size=256")
    qt = d.qt
    assert qt.inl(d.io_addr) == R["BARMAP_ID_MAGIC"]
    qt.cfg_write(DEVFN, PCI_COMMAND, MASTER | MEM, 2)  # I/O Space Enable off
    assert [qt.inb(d.io_addr), qt.inw(d.io_addr), qt.inl(d.io_addr)] == [
        0xFF,
        0xFFFF,
        0xFFFFFFFF,
    ]
    qt.cfg_write(DEVFN, PCI_COMMAND, MASTER | MEM | IO, 2)
    assert qt.inl(d.io_addr) == R["BARMAP_ID_MAGIC"]
