"""VMState: savevm/loadvm in one QEMU, and migration into a fresh QEMU."""

from __future__ import annotations

import time
from pathlib import Path

from bmdev import Barmap, R, migrate, pattern

from barmap.qtest.machine import QTest

SIZE = 1 << 20
START = R["BARMAP_DMA_CMD_START"]


def _job(qt: QTest, jid: str, **opts: object) -> None:
    qt.qmp("blockdev-create", **{"job-id": jid, "options": opts})
    deadline = time.monotonic() + 20
    while True:
        job = {j["id"]: j for j in qt.qmp("query-jobs")}[jid]
        if job["status"] == "concluded":
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.01)
    assert "error" not in job, job
    qt.qmp("job-dismiss", id=jid)


def add_qcow2(qt: QTest, path: Path) -> None:
    """A qcow2 image for savevm, made by the QEMU under test itself (no qemu-img)."""
    _job(qt, "mkfile", driver="file", filename=str(path), size=0)
    qt.qmp("blockdev-add", driver="file", filename=str(path), **{"node-name": "f"})
    _job(qt, "mkqcow2", driver="qcow2", file="f", size=64 << 20)
    qt.qmp("blockdev-add", driver="qcow2", file="f", **{"node-name": "disk"})


def snapshot_state(d: Barmap) -> dict[str, int]:
    names = ["SCRATCH", "DMA_BUS_LO", "DMA_BUS_HI", "DMA_OFF_LO", "DMA_OFF_HI", "DMA_LEN"]
    names += ["DMA_STATUS", "IRQ_STATUS", "IRQ_MASK", "FAULT", "STATUS", "MEM_SIZE_LO"]
    return {n: d.reg(n) for n in names}


def dirty(d: Barmap, salt: int) -> None:
    d.qt.write(d.mem_addr, pattern(SIZE, salt))
    d.wreg("SCRATCH", salt)
    d.qt.writeq(d.regs_addr + R["BARMAP_REG_DMA_BUS_LO"], 0x100000 + (salt & 0xFF000))
    d.qt.writeq(d.regs_addr + R["BARMAP_REG_DMA_OFF_LO"], salt & 0xFFF0)
    d.wreg("DMA_LEN", 0x100)
    d.wreg("IRQ_MASK", R["BARMAP_IRQ_SOFT"] if salt & 1 else R["BARMAP_IRQ_DMA_DONE"])
    d.wreg("IRQ_ACK", 0xFFFFFFFF)
    d.wreg("IRQ_RAISE", R["BARMAP_IRQ_SOFT"] if salt & 2 else 0)
    d.wreg("FAULT", R["BARMAP_FAULT_IRQ_LOST"] if salt & 4 else R["BARMAP_FAULT_DMA_ERROR"])


def test_savevm_loadvm(make_dev, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev(f"size={SIZE}")
    add_qcow2(d.qt, tmp_path / "snap.qcow2")
    dirty(d, 0x11110007)
    saved = snapshot_state(d)
    assert d.qt.hmp("savevm s1").strip() == ""
    dirty(d, 0x22220000)
    assert snapshot_state(d) != saved
    assert d.qt.hmp("loadvm s1").strip() == ""
    assert snapshot_state(d) == saved
    assert d.qt.read(d.mem_addr, SIZE) == pattern(SIZE, 0x11110007)
    # the restored fault is in force, not just in the register
    d.qom_set("fault-no-decode", True)
    assert d.qt.hmp("loadvm s1").strip() == ""
    assert d.qt.readl(d.mem_addr) == 0x11110007
    assert d.qom_get("fault-no-decode") is False


def test_savevm_with_dma_in_flight(make_dev, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev(f"size={SIZE}")
    add_qcow2(d.qt, tmp_path / "snap.qcow2")
    d.qt.write(0x100000, b"in flight")
    d.dma_program(0x100000, 0x80, 9)
    d.wreg("DMA_CMD", START)
    assert d.reg("DMA_STATUS") == R["BARMAP_DMA_STATUS_BUSY"]
    assert d.qt.hmp("savevm busy").strip() == ""
    d.dma_wait()
    assert d.qt.read(d.mem_addr + 0x80, 9) == b"in flight"
    d.qt.write(d.mem_addr + 0x80, b"\0" * 9)
    assert d.qt.hmp("loadvm busy").strip() == ""
    # BAR2 went back to before the transfer and the restored timer (already
    # expired: qtest's clock does not go back) runs the transfer again; were
    # it not restored, the engine would stay BUSY forever
    d.dma_wait()
    assert d.reg("DMA_STATUS") == R["BARMAP_DMA_STATUS_DONE"]
    assert d.qt.read(d.mem_addr + 0x80, 9) == b"in flight"


def test_migrate_to_a_fresh_qemu(make_dev, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src: Barmap = make_dev(f"size={SIZE}")
    dirty(src, 0x33330003)
    saved = snapshot_state(src)
    dst = migrate(make_dev, src, f"size={SIZE}", tmp_path)
    # config space (and so the BAR addresses) came along
    assert (dst.regs_addr, dst.mem_addr) == (src.regs_addr, src.mem_addr)
    assert snapshot_state(dst) == saved
    assert dst.qt.read(dst.mem_addr, SIZE) == pattern(SIZE, 0x33330003)


def test_migrate_refuses_a_different_size(make_dev, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src: Barmap = make_dev("size=64K")
    dst = migrate(make_dev, src, "size=128K", tmp_path, wait=False)
    deadline = time.monotonic() + 30
    while dst.qt.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    # QEMU refuses the stream (the RAMBlock length differs) and exits non-zero
    assert not dst.qt.alive()
    assert dst.qt.proc is not None and dst.qt.proc.returncode != 0


def test_migrate_with_dma_in_flight(make_dev, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src: Barmap = make_dev(f"size={SIZE}")
    src.qt.write(0x100000, b"in flight")
    src.dma_program(0x100000, 0x80, 9)
    src.wreg("IRQ_MASK", R["BARMAP_IRQ_DMA_DONE"])
    src.wreg("DMA_CMD", START | R["BARMAP_DMA_CMD_IRQ"])
    dst = migrate(make_dev, src, f"size={SIZE}", tmp_path)
    assert dst.reg("DMA_STATUS") == R["BARMAP_DMA_STATUS_BUSY"]
    assert dst.qt.read(dst.mem_addr + 0x80, 9) == b"\0" * 9
    dst.dma_wait()
    assert dst.reg("DMA_STATUS") == R["BARMAP_DMA_STATUS_DONE"]
    assert dst.reg("IRQ_STATUS") == R["BARMAP_IRQ_DMA_DONE"]
    assert dst.qt.read(dst.mem_addr + 0x80, 9) == b"in flight"
