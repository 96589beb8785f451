"""Hot-plug and hot-unplug (device_add / device_del + ACPI eject on pc)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bmdev import R, pattern

from barmap.qtest.machine import QTest

SLOT = 6
DEVFN = SLOT << 3
ID = R["BARMAP_PCI_DEVICE_ID"] << 16 | R["BARMAP_PCI_VENDOR_ID"]


@dataclass(frozen=True)
class Plugged:
    regs: int  # BAR0
    mem: int  # BAR2


def plug(qt: QTest, props: dict[str, object]) -> Plugged:
    """device_add at SLOT; its BARs placed by the allocator, decoding on."""
    qt.qmp("device_add", driver="barmap", id="hp", bus="pci.0", addr=f"0x{SLOT:x}", **props)
    pci = qt.pci.device(DEVFN)
    assert pci.cfg_read(0) == ID
    dev = Plugged(pci.iomap(R["BARMAP_REG_BAR"]), pci.iomap(R["BARMAP_MEM_BAR"]))
    pci.enable()
    assert qt.readl(dev.regs + R["BARMAP_REG_ID"]) == R["BARMAP_ID_MAGIC"]
    return dev


def unplug(qt: QTest, dev: Plugged) -> None:
    qt.qmp("device_del", id="hp")
    qt.acpi_eject(SLOT)
    qt.monitor.event_wait("DEVICE_DELETED", {"device": "hp"}, timeout=10)
    assert not qt.pci.device(DEVFN).present()
    assert qt.readl(dev.regs + R["BARMAP_REG_ID"]) != R["BARMAP_ID_MAGIC"]


def test_hotplug_unplug_repeatedly() -> None:
    with QTest() as qt:
        for i in range(4):
            dev = plug(qt, {"size": 0x10000 << i})
            assert qt.readl(dev.regs + R["BARMAP_REG_MEM_SIZE_LO"]) == 0x10000 << i
            qt.write(dev.mem, pattern(0x1000, i))
            assert qt.read(dev.mem, 0x1000) == pattern(0x1000, i)
            # a fresh device: no state left from the previous one
            assert qt.readl(dev.regs + R["BARMAP_REG_SCRATCH"]) == 0
            assert qt.readl(dev.mem + 0x1000) == 0
            qt.writel(dev.regs + R["BARMAP_REG_SCRATCH"], 0xABC)
            assert f"00:{SLOT:02x}.0/barmap.ram" in qt.hmp("info ramblock")
            unplug(qt, dev)
            # the device and its RAMBlock are gone (DEVICE_DELETED comes at finalize)
            assert "barmap" not in qt.hmp("info ramblock")
        assert "hp" not in qt.hmp("info pci")


def test_unplug_with_dma_pending() -> None:
    with QTest() as qt:
        dev = plug(qt, {})
        qt.writeq(dev.regs + R["BARMAP_REG_DMA_BUS_LO"], 0x100000)
        qt.writel(dev.regs + R["BARMAP_REG_DMA_LEN"], 0x1000)
        qt.writel(dev.regs + R["BARMAP_REG_DMA_CMD"], R["BARMAP_DMA_CMD_START"])
        unplug(qt, dev)
        qt.clock_step(100_000_000)  # the cancelled timer must not fire
        dev = plug(qt, {})
        assert qt.readl(dev.regs + R["BARMAP_REG_DMA_STATUS"]) == 0
        assert qt.alive()


def test_hotplug_memdev_is_released_on_unplug(tmp_path: Path) -> None:
    path = tmp_path / "m"
    args = ["-object", f"memory-backend-file,id=hm,size=64K,mem-path={path},share=on"]
    with QTest(args) as qt:
        dev = plug(qt, {"memdev": "hm"})
        qt.write(dev.mem, b"kept in the backend")
        unplug(qt, dev)
        # the backend is free again and still holds the bytes
        dev = plug(qt, {"memdev": "hm"})
        assert qt.read(dev.mem, 19) == b"kept in the backend"
        qt.writel(dev.regs + R["BARMAP_REG_FAULT"], R["BARMAP_FAULT_NO_DECODE"])
        unplug(qt, dev)
        # unplugged with NO_DECODE set: the backend's region is usable (enabled) again
        dev = plug(qt, {"memdev": "hm"})
        assert qt.read(dev.mem, 19) == b"kept in the backend"
        unplug(qt, dev)
