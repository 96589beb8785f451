"""Hot-plug and hot-unplug (device_add / device_del + ACPI eject on pc)."""

from __future__ import annotations

from pathlib import Path

from bmdev import R, pattern

from barmap.qtest import QTest

SLOT = 6
DEVFN = SLOT << 3
REGS = 0xFEBE0000
MEM = 0x8_0000_0000


def plug(qt: QTest, props: dict[str, object]) -> None:
    qt.qmp("device_add", driver="barmap", id="hp", bus="pci.0", addr=f"0x{SLOT:x}", **props)
    assert qt.cfg_read(DEVFN, 0) == R["BARMAP_PCI_DEVICE_ID"] << 16 | R["BARMAP_PCI_VENDOR_ID"]
    qt.cfg_write(DEVFN, 0x10, REGS)
    qt.cfg_write(DEVFN, 0x18, MEM & 0xFFFFFFFF)
    qt.cfg_write(DEVFN, 0x1C, MEM >> 32)
    qt.cfg_write(DEVFN, 0x04, 0x6, 2)
    assert qt.readl(REGS) == R["BARMAP_ID_MAGIC"]


def unplug(qt: QTest) -> None:
    qt.qmp("device_del", id="hp")
    qt.acpi_eject(SLOT)
    ev = qt.qmp_client.wait_event("DEVICE_DELETED")
    assert ev["data"].get("device") in ("hp", None)
    assert qt.cfg_read(DEVFN, 0) == 0xFFFFFFFF
    assert qt.readl(REGS) != R["BARMAP_ID_MAGIC"]


def test_hotplug_unplug_repeatedly() -> None:
    with QTest() as qt:
        for i in range(4):
            plug(qt, {"size": 0x10000 << i})
            assert qt.readl(REGS + R["BARMAP_REG_MEM_SIZE_LO"]) == 0x10000 << i
            qt.write(MEM, pattern(0, 0x1000, salt=i))
            assert qt.read(MEM, 0x1000) == pattern(0, 0x1000, salt=i)
            # a fresh device: no state left from the previous one
            assert qt.readl(REGS + R["BARMAP_REG_SCRATCH"]) == 0
            assert qt.readl(MEM + 0x1000) == 0
            qt.writel(REGS + R["BARMAP_REG_SCRATCH"], 0xABC)
            assert f"00:{SLOT:02x}.0/barmap.ram" in qt.hmp("info ramblock")
            unplug(qt)
            # the device and its RAMBlock are gone (DEVICE_DELETED comes at finalize)
            assert "barmap" not in qt.hmp("info ramblock")
        assert "hp" not in qt.hmp("info pci")


def test_unplug_with_dma_pending() -> None:
    with QTest() as qt:
        plug(qt, {})
        qt.writeq(REGS + R["BARMAP_REG_DMA_BUS_LO"], 0x100000)
        qt.writel(REGS + R["BARMAP_REG_DMA_LEN"], 0x1000)
        qt.writel(REGS + R["BARMAP_REG_DMA_CMD"], R["BARMAP_DMA_CMD_START"])
        unplug(qt)
        qt.clock_step(100_000_000)  # the cancelled timer must not fire
        plug(qt, {})
        assert qt.readl(REGS + R["BARMAP_REG_DMA_STATUS"]) == 0
        assert qt.alive()


def test_hotplug_memdev_is_released_on_unplug(tmp_path: Path) -> None:
    path = tmp_path / "m"
    args = ["-object", f"memory-backend-file,id=hm,size=64K,mem-path={path},share=on"]
    with QTest(args) as qt:
        plug(qt, {"memdev": "hm"})
        qt.write(MEM, b"kept in the backend")
        unplug(qt)
        # the backend is free again and still holds the bytes
        plug(qt, {"memdev": "hm"})
        assert qt.read(MEM, 19) == b"kept in the backend"
        qt.writel(REGS + R["BARMAP_REG_FAULT"], R["BARMAP_FAULT_NO_DECODE"])
        unplug(qt)
        # unplugged with NO_DECODE set: the backend's region is usable (enabled) again
        plug(qt, {"memdev": "hm"})
        assert qt.read(MEM, 19) == b"kept in the backend"
        unplug(qt)
