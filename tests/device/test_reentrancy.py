"""A DMA that reaches a device which resets or removes barmap, in the middle of the copy.

q35 with barmap behind a ``pcie-root-port``: the root port's Slot Control and
Bridge Control are in the MMCONFIG window, which barmap's DMA engine can
write like any other bus address.  Writing Slot Control "power off, indicator
off" unplugs barmap inside its own ``pci_dma_write``; writing Bridge Control's
Secondary Bus Reset resets it there.  The device must come out of both
without touching what the unplug freed or the reset cleared
(docs/device.md, "The DMA engine").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from bmdev import DMA_CMD_IRQ, DMA_DONE, DMA_FROM_DEV, DMA_START, R

from barmap.qtest.machine import QTest

MCFG = 0xB000_0000  # where the test opens q35's MMCONFIG window (MCH PCIEXBAR)
MCH_PCIEXBAR = 0x60
RP_DEVFN = 2 << 3  # the root port, 00:02.0
SEC_BUS = 1  # barmap is 01:00.0
REGS = 0xE000_0000  # barmap's BAR0, in the root port's memory window
MEM = 0xE080_0000  # barmap's BAR2 (1 MiB), in its prefetchable window
PCI_CAP_ID_EXP = 0x10
PCI_EXP_SLTCTL = 0x18
PCI_EXP_SLTSTA = 0x1A
PCI_EXP_SLTSTA_PDS = 0x40
SLTCTL_POWER_OFF = 0x700  # power controller off, power indicator off
PCI_BRIDGE_CONTROL = 0x3E
PCI_BRIDGE_CTL_BUS_RESET = 0x40


@dataclass
class BehindRootPort:
    qt: QTest

    def cfg_read(self, off: int, size: int = 4) -> int:
        return self.qt.cfg_read(0, off, size, bus=SEC_BUS)

    def reg(self, name: str) -> int:
        return self.qt.readl(REGS + R[f"BARMAP_REG_{name}"])

    def wreg(self, name: str, val: int) -> None:
        self.qt.writel(REGS + R[f"BARMAP_REG_{name}"], val)

    def setup_barmap(self) -> None:
        """BARs at REGS and MEM, decoding and bus mastering on (again after a reset)."""
        qt = self.qt
        qt.cfg_write(0, 0x10, REGS, bus=SEC_BUS)
        qt.cfg_write(0, 0x18, MEM, bus=SEC_BUS)
        qt.cfg_write(0, 0x1C, 0, bus=SEC_BUS)
        qt.cfg_write(0, 0x04, 0x6, 2, bus=SEC_BUS)
        assert self.reg("ID") == R["BARMAP_ID_MAGIC"]

    def root_port_cap(self) -> int:
        cap = self.qt.pci.device(RP_DEVFN).find_capability(PCI_CAP_ID_EXP)
        assert cap is not None, "the root port has no PCI Express capability"
        return cap

    def dma_to_root_port(self, reg: int, value: int) -> None:
        """Start a 2-byte DMA from BAR2 that writes ``value`` to the root port's
        config register ``reg`` through MMCONFIG, and let it run."""
        self.qt.write(MEM, value.to_bytes(2, "little"))
        self.qt.writeq(REGS + R["BARMAP_REG_DMA_BUS_LO"], MCFG | RP_DEVFN << 12 | reg)
        self.qt.writeq(REGS + R["BARMAP_REG_DMA_OFF_LO"], 0)
        self.wreg("DMA_LEN", 2)
        self.wreg("IRQ_MASK", R["BARMAP_IRQ_ALL"])
        self.wreg("DMA_CMD", DMA_START | DMA_FROM_DEV | DMA_CMD_IRQ)
        self.qt.clock_step()


def open_root_port(qt: QTest) -> None:
    """MMCONFIG on (256 buses), then the root port's bus numbers and windows (BAR0's
    1 MiB; 2 MiB prefetchable for BAR2 and a place to move it to), decoding on."""
    qt.cfg_write(0, MCH_PCIEXBAR + 4, 0)
    qt.cfg_write(0, MCH_PCIEXBAR, MCFG | 1)
    qt.cfg_write(RP_DEVFN, 0x18, SEC_BUS << 16 | SEC_BUS << 8)
    qt.cfg_write(RP_DEVFN, 0x20, (REGS >> 16) | (REGS >> 16) << 16)
    qt.cfg_write(RP_DEVFN, 0x24, (MEM >> 16) | ((MEM + (2 << 20) - 1) >> 16 & 0xFFF0) << 16)
    qt.cfg_write(RP_DEVFN, 0x28, 0)
    qt.cfg_write(RP_DEVFN, 0x2C, 0)
    qt.cfg_write(RP_DEVFN, 0x04, 0x6, 2)


@pytest.fixture
def rp() -> Iterator[BehindRootPort]:
    args = [
        # native PCIe hot-plug on the root port (q35 defaults to ACPI hot-plug)
        "-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
        "-device", "pcie-root-port,id=rp,bus=pcie.0,addr=0x2,chassis=1,slot=1",
        "-device", "barmap,id=bm,bus=rp,size=1M",
    ]  # fmt: skip
    with QTest(args, machine="q35") as qt:
        open_root_port(qt)
        dev = BehindRootPort(qt)
        dev.setup_barmap()
        yield dev


def test_dma_that_unplugs_its_own_device(rp: BehindRootPort) -> None:
    qt = rp.qt
    sltctl = rp.root_port_cap() + PCI_EXP_SLTCTL
    assert qt.cfg_read(RP_DEVFN, sltctl + 2, 2) & PCI_EXP_SLTSTA_PDS, "slot shows no device"
    rp.dma_to_root_port(sltctl, qt.cfg_read(RP_DEVFN, sltctl, 2) | SLTCTL_POWER_OFF)
    assert qt.alive(), qt.stderr()
    # the unplug went through: the device is finalized (once the DMA let go of
    # it) and 01:00.0 answers like an empty slot
    qt.monitor.event_wait("DEVICE_DELETED", {"device": "bm"}, timeout=10)
    assert rp.cfg_read(0, 2) == 0xFFFF
    assert "barmap" not in qt.hmp("info pci")
    assert qt.alive(), qt.stderr()


def test_dma_that_resets_its_own_device(rp: BehindRootPort) -> None:
    qt = rp.qt
    bctl = qt.cfg_read(RP_DEVFN, PCI_BRIDGE_CONTROL, 2)
    rp.dma_to_root_port(PCI_BRIDGE_CONTROL, bctl | PCI_BRIDGE_CTL_BUS_RESET)
    assert qt.alive(), qt.stderr()
    # the reset happened (BARs cleared) ...
    assert rp.cfg_read(0x10) == 0
    qt.cfg_write(RP_DEVFN, PCI_BRIDGE_CONTROL, bctl, 2)
    rp.setup_barmap()
    # ... and the transfer went with it: no DONE, no completion interrupt
    assert rp.reg("DMA_STATUS") == 0
    assert rp.reg("IRQ_STATUS") == 0
    assert not rp.reg("STATUS") & R["BARMAP_STATUS_DMA_BUSY"]


def test_dma_to_the_root_port_that_changes_nothing_completes(rp: BehindRootPort) -> None:
    """The same path with a harmless value: the transfer ends normally (the tests
    above fail for the reason they name, not because such a DMA never works)."""
    qt = rp.qt
    sltctl = rp.root_port_cap() + PCI_EXP_SLTCTL
    value = qt.cfg_read(RP_DEVFN, sltctl, 2)
    rp.dma_to_root_port(sltctl, value)
    assert rp.reg("DMA_STATUS") == DMA_DONE
    assert rp.reg("IRQ_STATUS") == R["BARMAP_IRQ_DMA_DONE"]
    assert rp.cfg_read(0, 2) == R["BARMAP_PCI_VENDOR_ID"]


@pytest.mark.parametrize(
    ("reg", "value"),
    [
        (0x18, (MEM + (1 << 20)).to_bytes(4, "little")),  # move BAR2, the copy's source
        (0x10, (REGS + 0x10000).to_bytes(4, "little")),  # move BAR0
        (0x04, bytes(2)),  # memory decoding and bus mastering off
        (0x04, (0x406).to_bytes(2, "little")),  # INTx Disable, the completion IRQ pending
        (0x00, bytes(range(64))),  # the whole header, garbage
    ],
    ids=["bar2", "bar0", "command-off", "intx-disable", "header"],
)
def test_dma_that_rewrites_its_own_config_space(rp: BehindRootPort, reg: int, value: bytes) -> None:
    """The engine writes barmap's own config space (01:00.0 in MMCONFIG) during the
    copy: QEMU survives, and after a system reset the device works again."""
    qt = rp.qt
    qt.write(MEM, value)
    qt.writeq(REGS + R["BARMAP_REG_DMA_BUS_LO"], MCFG | SEC_BUS << 20 | reg)
    qt.writeq(REGS + R["BARMAP_REG_DMA_OFF_LO"], 0)
    rp.wreg("DMA_LEN", len(value))
    rp.wreg("IRQ_MASK", R["BARMAP_IRQ_ALL"])
    rp.wreg("DMA_CMD", DMA_START | DMA_FROM_DEV | DMA_CMD_IRQ)
    qt.clock_step()
    assert qt.alive(), qt.stderr()
    qt.qmp("system_reset")
    open_root_port(qt)
    rp.setup_barmap()
    assert rp.reg("DMA_STATUS") == 0
