"""PCI identity, BARs and the capability list, read through config space."""

from __future__ import annotations

import pytest
from bmdev import DEVFN, PCI_BAR0, PCI_BAR2, Barmap, R


def test_ids_class_subsystem(dev: Barmap) -> None:
    qt = dev.qt
    assert qt.cfg_read(DEVFN, 0x00, 2) == R["BARMAP_PCI_VENDOR_ID"]
    assert qt.cfg_read(DEVFN, 0x02, 2) == R["BARMAP_PCI_DEVICE_ID"]
    assert qt.cfg_read(DEVFN, 0x08, 1) == R["BARMAP_PCI_REVISION"]
    assert qt.cfg_read(DEVFN, 0x0A, 2) == R["BARMAP_PCI_CLASS"]
    assert qt.cfg_read(DEVFN, 0x09, 1) == 0  # prog-if
    assert qt.cfg_read(DEVFN, 0x2C, 2) == R["BARMAP_PCI_SUBVENDOR_ID"]
    assert qt.cfg_read(DEVFN, 0x2E, 2) == R["BARMAP_PCI_SUBDEVICE_ID"]
    assert qt.cfg_read(DEVFN, 0x3D, 1) == 1  # INTA#
    assert qt.cfg_read(DEVFN, 0x06, 2) & 0x10  # capability list
    assert dev.msi_cap() >= 0x40


def _bar_probe(qt, off: int) -> int:  # type: ignore[no-untyped-def]
    old = qt.cfg_read(DEVFN, off)
    qt.cfg_write(DEVFN, off, 0xFFFFFFFF)
    val = qt.cfg_read(DEVFN, off)
    qt.cfg_write(DEVFN, off, old)
    return val


@pytest.mark.parametrize("size", [0x1000, 0x10000, 0x1000000, 0x100000000])
def test_bar_sizes_and_flags(make_dev, size: int) -> None:  # type: ignore[no-untyped-def]
    d = make_dev(f"size={size}", setup=False)
    qt = d.qt
    bar0 = _bar_probe(qt, PCI_BAR0)
    assert bar0 & 0xF == 0  # memory, 32-bit, not prefetchable
    assert (~(bar0 & ~0xF) & 0xFFFFFFFF) + 1 == R["BARMAP_REG_BAR_SIZE"]
    assert qt.cfg_read(DEVFN, 0x14) == 0  # BAR1 unused
    lo = _bar_probe(qt, PCI_BAR2)
    hi = _bar_probe(qt, PCI_BAR2 + 4)
    assert lo & 0xF == 0xC  # memory, 64-bit (type 10b), prefetchable
    mask = (hi << 32) | (lo & ~0xF)
    assert (~mask & 0xFFFFFFFFFFFFFFFF) + 1 == size
    for off in (0x20, 0x24):  # BAR4/BAR5 unused
        assert qt.cfg_read(DEVFN, off) == 0
    d.setup()
    assert d.size == size


def test_default_size_is_16m(dev: Barmap) -> None:
    assert dev.size == R["BARMAP_MEM_SIZE_DEFAULT"] == 16 << 20
    assert dev.qom_get("size") == 16 << 20


@pytest.mark.parametrize("size", ["0x800", "3000", "12K", "8G", "1"])
def test_invalid_size_is_a_clear_error(make_dev, size: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception) as exc:
        make_dev(f"size={size}")
    msg = str(exc.value)
    assert "barmap" in msg and "power of two" in msg, msg
