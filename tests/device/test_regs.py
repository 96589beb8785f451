"""BAR0: reset values, read/write semantics, unknown offsets, access widths, reset."""

from __future__ import annotations

from bmdev import Barmap, R

CAPS = R["BARMAP_CAP_DMA"] | R["BARMAP_CAP_INTX"] | R["BARMAP_CAP_MSI"] | R["BARMAP_CAP_FAULT"]
KNOWN = {v for k, v in R.items() if k.startswith("BARMAP_REG_") and k != "BARMAP_REG_BAR"}
KNOWN.discard(R["BARMAP_REG_BAR_SIZE"])

RESET = {
    "ID": R["BARMAP_ID_MAGIC"],
    "VERSION": R["BARMAP_VERSION"],
    "CAPS": CAPS,
    "SCRATCH": 0,
    "MEM_SIZE_LO": 16 << 20,
    "MEM_SIZE_HI": 0,
    "STATUS": R["BARMAP_STATUS_MEM_DECODED"],
    "DMA_BUS_LO": 0,
    "DMA_BUS_HI": 0,
    "DMA_OFF_LO": 0,
    "DMA_OFF_HI": 0,
    "DMA_LEN": 0,
    "DMA_CMD": 0,
    "DMA_STATUS": 0,
    "IRQ_STATUS": 0,
    "IRQ_RAISE": 0,
    "IRQ_ACK": 0,
    "IRQ_MASK": 0,
    "FAULT": 0,
}


def test_reset_values(dev: Barmap) -> None:
    assert {name: dev.reg(name) for name in RESET} == RESET


def test_mem_size_registers_4g(make_dev) -> None:  # type: ignore[no-untyped-def]
    d = make_dev("size=4G")
    assert d.reg("MEM_SIZE_LO") == 0 and d.reg("MEM_SIZE_HI") == 1


def test_scratch_rw(dev: Barmap) -> None:
    for val in (0xFFFFFFFF, 0, 0xDEADBEEF, 0x12345678, 1 << 31):
        dev.wreg("SCRATCH", val)
        assert dev.reg("SCRATCH") == val


def test_read_only_registers_ignore_writes(dev: Barmap) -> None:
    ro = ["ID", "VERSION", "CAPS", "MEM_SIZE_LO", "MEM_SIZE_HI", "STATUS", "DMA_STATUS"]
    ro.append("IRQ_STATUS")
    for name in ro:
        dev.wreg(name, 0xA5A5A5A5)
    assert {n: dev.reg(n) for n in ro} == {n: RESET[n] for n in ro}


def test_rw_registers_and_masks(dev: Barmap) -> None:
    dev.wreg("DMA_BUS_LO", 0x89ABCDEF)
    dev.wreg("DMA_BUS_HI", 0x01234567)
    dev.wreg("DMA_OFF_LO", 0x1000)
    dev.wreg("DMA_OFF_HI", 0xFFFFFFFF)
    dev.wreg("DMA_LEN", 0xFFFFFFFF)
    regs = dev.regs_addr
    assert dev.qt.readq(regs + R["BARMAP_REG_DMA_BUS_LO"]) == 0x0123456789ABCDEF
    assert dev.qt.readq(regs + R["BARMAP_REG_DMA_OFF_LO"]) == 0xFFFFFFFF00001000
    assert dev.reg("DMA_LEN") == 0xFFFFFFFF
    dev.wreg("IRQ_MASK", 0xFFFFFFFF)
    assert dev.reg("IRQ_MASK") == R["BARMAP_IRQ_ALL"]
    dev.wreg("FAULT", 0xFFFFFFF0)  # no defined bit
    assert dev.reg("FAULT") == 0
    dev.wreg("IRQ_RAISE", 0xFFFFFFFF)
    assert dev.reg("IRQ_STATUS") == R["BARMAP_IRQ_ALL"]
    dev.wreg("IRQ_ACK", R["BARMAP_IRQ_SOFT"])
    assert dev.reg("IRQ_STATUS") == R["BARMAP_IRQ_ALL"] & ~R["BARMAP_IRQ_SOFT"]


def test_unknown_offsets_read_zero_and_ignore_writes(dev: Barmap) -> None:
    qt, regs = dev.qt, dev.regs_addr
    unknown = [off for off in range(0, R["BARMAP_REG_BAR_SIZE"], 4) if off not in KNOWN]
    assert len(unknown) > 1000
    qt.batch(f"writel 0x{regs + off:x} 0xffffffff" for off in unknown)
    vals = qt.batch(f"readl 0x{regs + off:x}" for off in unknown)
    assert all(int(v, 16) == 0 for v in vals)
    assert {name: dev.reg(name) for name in RESET} == RESET
    assert qt.alive()


def test_access_widths(dev: Barmap) -> None:
    qt, regs = dev.qt, dev.regs_addr
    magic = R["BARMAP_ID_MAGIC"]
    # 1- and 2-byte reads return the bytes of the register that holds them
    assert [qt.readb(regs + i) for i in range(4)] == list(magic.to_bytes(4, "little"))
    assert qt.readw(regs + 2) == magic >> 16
    # 8 bytes: two registers, low first
    assert qt.readq(regs) == magic | R["BARMAP_VERSION"] << 32
    qt.writeq(regs + R["BARMAP_REG_DMA_BUS_LO"], 0x1122334455667788)
    assert dev.reg("DMA_BUS_LO") == 0x55667788 and dev.reg("DMA_BUS_HI") == 0x11223344
    # 1- and 2-byte writes are dropped
    dev.wreg("SCRATCH", 0x11223344)
    qt.writeb(regs + R["BARMAP_REG_SCRATCH"], 0xFF)
    qt.writew(regs + R["BARMAP_REG_SCRATCH"] + 2, 0xFFFF)
    assert dev.reg("SCRATCH") == 0x11223344
    # an unaligned access reaches the device split into aligned 1/2-byte
    # pieces (a CPU access the memory core refuses instead): reads give the
    # bytes at that address, writes are dropped
    assert qt.readl(regs + 1) == (qt.readq(regs) >> 8) & 0xFFFFFFFF
    qt.writel(regs + R["BARMAP_REG_SCRATCH"] + 2, 0)
    assert dev.reg("SCRATCH") == 0x11223344
    # 8-byte write at an 8-aligned pair with an unknown half
    qt.writeq(regs + 0x58, 0xFFFFFFFFFFFFFFFF)
    assert qt.readq(regs + 0x58) == 0
    assert qt.alive()


def test_system_reset_restores_reset_values(dev: Barmap) -> None:
    dev.wreg("SCRATCH", 0x1234)
    dev.wreg("IRQ_MASK", R["BARMAP_IRQ_ALL"])
    dev.wreg("IRQ_RAISE", R["BARMAP_IRQ_SOFT"])
    dev.dma_program(0x100000, 0x10, 0x20)
    dev.wreg("FAULT", R["BARMAP_FAULT_IRQ_LOST"])
    dev.qt.write(dev.mem_addr + 0x100, b"survives reset")
    dev.qt.qmp("system_reset")
    assert dev.pci.bar_address(R["BARMAP_REG_BAR"]) == 0  # reset unassigned the BARs
    dev.setup()
    expect = dict(RESET, FAULT=R["BARMAP_FAULT_IRQ_LOST"])
    assert {name: dev.reg(name) for name in RESET} == expect
    assert dev.qom_get("fault-irq-lost") is True
    assert dev.qt.read(dev.mem_addr + 0x100, 14) == b"survives reset"


def test_guest_errors_logged_and_traced(make_dev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "qemu.log"
    d: Barmap = make_dev(args=["-d", "guest_errors", "-D", str(log), "-trace", "barmap_*"])
    regs = d.regs_addr
    d.qt.writel(regs + 0x800, 0x1234)
    d.qt.writel(regs + R["BARMAP_REG_ID"], 0)
    d.qt.writeb(regs + R["BARMAP_REG_SCRATCH"], 1)
    assert d.qt.readl(regs + 0xFFC) == 0
    d.dma(0x100000, 0, 16, from_dev=False)
    d.close()
    text = log.read_text()
    assert "barmap: write 0x1234 to unknown register 0x800 ignored" in text
    assert "barmap: write 0x0 to read-only register 0x0 ignored" in text
    assert "barmap: 1-byte write to 0xc ignored" in text
    assert "barmap: read of unknown register 0xffc" in text
    for event in ("barmap_mmio_write", "barmap_mmio_bad", "barmap_dma_start", "barmap_dma_done"):
        assert event in text, event
