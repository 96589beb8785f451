"""FAULT_ALL_ONES is a dead link: config space reads all-ones too (vendor 0xffff)
and drops writes, while QEMU's own view of config space (BAR mappings, MSI,
migration, reset, hot-unplug, ``info pci``) stays the real one."""

from __future__ import annotations

from pathlib import Path

import pytest
from bmdev import (
    D0,
    D3HOT,
    DEVFN,
    PCI_BAR0,
    PCI_BAR2,
    PCI_COMMAND,
    PMCSR,
    Barmap,
    R,
    migrate,
    pattern,
)

from barmap.qtest.machine import QTest

ALL_ONES = R["BARMAP_FAULT_ALL_ONES"]
ID = R["BARMAP_PCI_DEVICE_ID"] << 16 | R["BARMAP_PCI_VENDOR_ID"]
# offsets across the header and both capabilities, and the last dword
OFFSETS = [0x00, 0x02, 0x04, 0x08, 0x0E, 0x10, 0x18, 0x2C, 0x34, 0x3C, 0x40, 0x50, 0x54, 0xFC]


def config(qt: QTest) -> dict[int, int]:
    """The first 256 bytes of config space, as the guest reads them (dwords)."""
    return {off: qt.cfg_read(DEVFN, off) for off in range(0, 0x100, 4)}


def set_dead(d: Barmap, on: bool, how: str) -> None:
    if how == "register":
        d.wreg("FAULT", ALL_ONES if on else 0)
    else:
        d.qom_set("fault-all-ones", on)


@pytest.mark.parametrize("how", ["register", "qom"])
def test_config_reads_all_ones_and_comes_back(dev: Barmap, how: str) -> None:
    qt = dev.qt
    before = config(qt)
    assert before[0] == ID
    set_dead(dev, True, how)
    for off in OFFSETS:
        for size in (1, 2, 4):
            if off % size == 0:
                assert qt.cfg_read(DEVFN, off, size) == (1 << 8 * size) - 1, (off, size)
    assert not dev.pci.present()
    assert set(config(qt).values()) == {0xFFFFFFFF}
    # QEMU's own view is the real one: the BARs stay mapped, info pci has the ids
    assert dev.reg("ID") == R["BARMAP_ID_MAGIC"]
    info = qt.hmp("info pci")
    assert "1234:ba12" in info, info
    set_dead(dev, False, how)
    assert config(qt) == before


def test_config_writes_are_dropped(dev: Barmap) -> None:
    qt = dev.qt
    before = config(qt)
    dev.wreg("FAULT", ALL_ONES)
    qt.cfg_write(DEVFN, PCI_COMMAND, 0, 2)  # would turn decoding off
    qt.cfg_write(DEVFN, PCI_BAR0, 0xF0000000)  # would move BAR0
    qt.cfg_write(DEVFN, PCI_BAR2, 0xFFFFFFFF)  # would start a BAR sizing
    qt.cfg_write(DEVFN, PMCSR, D3HOT, 2)  # would power it down
    qt.cfg_write(DEVFN, 0x3C, 0xAB, 1)  # interrupt line
    msi = R["BARMAP_CFG_MSI"]
    qt.cfg_write(DEVFN, msi + 2, 1, 2)  # would enable MSI
    for off in range(0, 0x100, 1):
        qt.cfg_write(DEVFN, off, 0xA5, 1)
    assert dev.reg("ID") == R["BARMAP_ID_MAGIC"], "BAR0 moved or lost decoding"
    assert not dev.reg("STATUS") & R["BARMAP_STATUS_MSI_ENABLED"]
    dev.wreg("FAULT", 0)
    assert config(qt) == before
    assert dev.power() == D0


def test_internal_msi_and_dma_work_under_the_fault(dev: Barmap) -> None:
    """MSI (its address and data) and bus mastering are read from QEMU's copy of
    config space, which the fault does not touch."""
    dev.enable_msi(0x7000, 0x44)
    dev.wreg("IRQ_MASK", R["BARMAP_IRQ_SOFT"])
    dev.qom_set("fault-all-ones", True)
    dev.wreg("IRQ_RAISE", R["BARMAP_IRQ_SOFT"])
    assert dev.qt.readl(0x7000) == 0x44
    dev.qt.write(0x300000, b"dead link dma")
    assert dev.dma(0x300000, 0x80, 13, from_dev=False) == R["BARMAP_DMA_STATUS_DONE"]
    dev.qom_set("fault-all-ones", False)
    assert dev.qt.read(dev.mem_addr + 0x80, 13) == b"dead link dma"


def test_migrate_with_the_dead_link(make_dev, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src: Barmap = make_dev("size=1M")
    src.qt.write(src.mem_addr, pattern(0x10000, 0xDEAD))
    src.wreg("SCRATCH", 0xDEAD)
    before = config(src.qt)
    src.qom_set("fault-all-ones", True)
    dst = migrate(make_dev, src, "size=1M", tmp_path)
    # read_bars() read all-ones: take the addresses from the source instead
    dst.regs_addr, dst.mem_addr = src.regs_addr, src.mem_addr
    assert dst.qom_get("fault-all-ones") is True
    assert set(config(dst.qt).values()) == {0xFFFFFFFF}
    assert dst.qt.readl(dst.mem_addr) == 0xFFFFFFFF  # BAR2's overlay too
    assert dst.reg("SCRATCH") == 0xDEAD  # BAR0 mapped where the stream said
    dst.qom_set("fault-all-ones", False)
    assert config(dst.qt) == before
    assert dst.qt.read(dst.mem_addr, 0x10000) == pattern(0x10000, 0xDEAD)


def test_system_reset_with_the_dead_link(dev: Barmap) -> None:
    dev.qt.write(dev.mem_addr, b"survives")
    dev.set_power(D3HOT)
    dev.qom_set("fault-all-ones", True)
    dev.qt.qmp("system_reset")
    assert dev.qt.alive(), dev.qt.stderr()
    assert not dev.pci.present()  # FAULT survives reset: still dead
    dev.qom_set("fault-all-ones", False)
    # the PCI core reset config space underneath: BARs unassigned, decoding off, D0
    assert dev.qt.cfg_read(DEVFN, 0) == ID
    assert dev.qt.cfg_read(DEVFN, PCI_COMMAND, 2) == 0
    assert dev.pci.bar_address(R["BARMAP_REG_BAR"]) == 0
    assert dev.power() == D0
    dev.setup()
    assert dev.qt.read(dev.mem_addr, 8) == b"survives"


def test_dead_from_the_command_line_is_invisible(make_dev) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev("fault-all-ones=on", setup=False)
    assert not d.pci.present()
    assert d.qt.cfg_read(DEVFN, 0x10) == 0xFFFFFFFF
    d.qom_set("fault-all-ones", False)
    assert d.pci.present()
    d.setup()
    assert d.reg("FAULT") == 0


def test_hot_unplug_with_the_dead_link() -> None:
    with QTest() as qt:
        qt.qmp("device_add", driver="barmap", id="hp", bus="pci.0", addr="0x6", size=0x10000)
        pci = qt.pci.device(6 << 3)
        assert pci.cfg_read(0) == ID
        qt.qmp("qom-set", path="/machine/peripheral/hp", property="fault-all-ones", value=True)
        assert not pci.present()
        qt.qmp("device_del", id="hp")
        qt.acpi_eject(6)
        qt.monitor.event_wait("DEVICE_DELETED", {"device": "hp"}, timeout=10)
        assert "barmap" not in qt.hmp("info ramblock")
        # plugged again, dead from the start: the slot shows nothing
        qt.qmp("device_add", driver="barmap", id="hp", bus="pci.0", addr="0x6")
        qt.qmp("qom-set", path="/machine/peripheral/hp", property="fault-all-ones", value=True)
        assert not pci.present()
        qt.qmp("device_del", id="hp")
        qt.acpi_eject(6)
        qt.monitor.event_wait("DEVICE_DELETED", {"device": "hp"}, timeout=10)
        assert qt.alive()


def test_q35_dead_link(make_dev) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev("size=1M", machine="q35")
    assert d.qt.cfg_read(DEVFN, 0) == ID
    d.qom_set("fault-all-ones", True)
    assert d.qt.cfg_read(DEVFN, 0) == 0xFFFFFFFF
    assert d.qt.readl(d.mem_addr) == 0xFFFFFFFF
    d.qom_set("fault-all-ones", False)
    assert d.qt.cfg_read(DEVFN, 0) == ID
