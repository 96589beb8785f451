"""QEMU core paths a barmap guest reaches, and the fixes barmap carries for them
(qemu-device/patches/SUITE/*.patch, applied by scripts/qemu.sh)."""

from __future__ import annotations

from bmdev import DEVFN, Barmap, R

SOFT = R["BARMAP_IRQ_SOFT"]
PCI_COMMAND_INTX_DISABLE = 0x400


def test_intx_disable_cleared_by_a_byte_write_then_reset(dev: Barmap) -> None:
    """INTx Disable is in COMMAND's upper byte: a 1-byte write there must move the
    line like a 2-byte write does, or the next reset trips pcibus_reset's
    ``irq_count == 0`` assertion (QEMU 7.2; patch 0001 for bookworm)."""
    dev.route_intx()
    dev.qt.cfg_write(DEVFN, 0x04, 0x6 | PCI_COMMAND_INTX_DISABLE, 2)
    dev.wreg("IRQ_MASK", SOFT)
    dev.wreg("IRQ_RAISE", SOFT)
    assert not dev.intx(), "INTx Disable set, yet the line is asserted"
    dev.qt.cfg_write(DEVFN, 0x05, 0, 1)
    assert dev.intx(), "clearing INTx Disable with a 1-byte write left the line low"
    dev.qt.cfg_write(DEVFN, 0x05, PCI_COMMAND_INTX_DISABLE >> 8, 1)
    assert not dev.intx(), "setting INTx Disable with a 1-byte write left the line high"
    dev.qt.cfg_write(DEVFN, 0x05, 0, 1)
    dev.qt.qmp("system_reset")
    assert dev.qt.alive(), dev.qt.stderr()
    assert not dev.intx()
    dev.setup()
    assert dev.reg("IRQ_STATUS") == 0
