"""Fault injection, by the FAULT register and by QMP qom-set, and both views agree."""

from __future__ import annotations

import pytest
from bmdev import Barmap, R, pattern

ALL_ONES = R["BARMAP_FAULT_ALL_ONES"]
NO_DECODE = R["BARMAP_FAULT_NO_DECODE"]
DMA_ERROR = R["BARMAP_FAULT_DMA_ERROR"]
IRQ_LOST = R["BARMAP_FAULT_IRQ_LOST"]
DMA_ERR_FLAG = R["BARMAP_DMA_STATUS_ERROR"]
PROPS = {
    ALL_ONES: "fault-all-ones",
    NO_DECODE: "fault-no-decode",
    DMA_ERROR: "fault-dma-error",
    IRQ_LOST: "fault-irq-lost",
}
SPAN = 0x4000


def set_fault(d: Barmap, bit: int, on: bool, how: str) -> None:
    if how == "register":
        cur = d.reg("FAULT")
        d.wreg("FAULT", cur | bit if on else cur & ~bit)
    else:
        d.qom_set(PROPS[bit], on)
    # both views agree
    assert bool(d.reg("FAULT") & bit) == on
    assert d.qom_get(PROPS[bit]) is on


def widths(d: Barmap, off: int) -> list[int]:
    qt, addr = d.qt, d.mem_addr + off
    return [qt.readb(addr), qt.readw(addr), qt.readl(addr), qt.readq(addr)]


# (fault, what every read gives, whether the BAR still counts as decoded)
FAULTS = {"all-ones": (ALL_ONES, 0xFF, True), "no-decode": (NO_DECODE, 0x00, False)}


@pytest.mark.parametrize("how", ["register", "qom"])
@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_answers_every_read_and_drops_writes(dev: Barmap, fault: str, how: str) -> None:
    """Under all-ones a dead link answers 0xff (BAR0 still answers), under no-decode
    nothing decodes and reads give 0x00; writes are dropped; clearing brings the data back."""
    bit, byte, decoded = FAULTS[fault]
    data = pattern(SPAN, 0xABCD0000 + bit)
    dev.qt.write(dev.mem_addr, data)
    set_fault(dev, bit, True, how)
    full = [int.from_bytes(bytes([byte]) * n, "little") for n in (1, 2, 4, 8)]
    assert widths(dev, 0x10) == full
    assert widths(dev, dev.size - 8) == full
    assert dev.qt.read(dev.mem_addr + 1, 7) == bytes([byte]) * 7
    dev.qt.writel(dev.mem_addr, 0x5A5A5A5A)  # dropped
    dev.qt.write(dev.mem_addr + 0x100, bytes([byte ^ 0xFF]) * 0x100)
    assert dev.qt.read(dev.mem_addr, 0x200) == bytes([byte]) * 0x200
    assert bool(dev.reg("STATUS") & R["BARMAP_STATUS_MEM_DECODED"]) is decoded
    assert dev.reg("ID") == R["BARMAP_ID_MAGIC"]  # BAR0 answers either way
    set_fault(dev, bit, False, how)
    assert dev.reg("STATUS") & R["BARMAP_STATUS_MEM_DECODED"]
    assert dev.qt.read(dev.mem_addr, SPAN) == data


def test_all_ones_wins_over_no_decode(dev: Barmap) -> None:
    dev.qt.writel(dev.mem_addr, 0x11223344)
    set_fault(dev, NO_DECODE, True, "register")
    set_fault(dev, ALL_ONES, True, "qom")
    assert dev.reg("FAULT") == ALL_ONES | NO_DECODE
    assert dev.qt.readl(dev.mem_addr) == 0xFFFFFFFF
    set_fault(dev, ALL_ONES, False, "register")
    assert dev.qt.readl(dev.mem_addr) == 0
    set_fault(dev, NO_DECODE, False, "qom")
    assert dev.qt.readl(dev.mem_addr) == 0x11223344


def test_dma_still_reaches_bar2_under_bar_faults(dev: Barmap) -> None:
    """ALL_ONES/NO_DECODE are about the CPU's view of BAR2; the DMA engine is inside."""
    dev.qt.write(0x100000, b"dma under fault")
    dev.wreg("FAULT", ALL_ONES | NO_DECODE)
    assert dev.dma(0x100000, 0x40, 15, from_dev=False) == R["BARMAP_DMA_STATUS_DONE"]
    dev.wreg("FAULT", 0)
    assert dev.qt.read(dev.mem_addr + 0x40, 15) == b"dma under fault"


@pytest.mark.parametrize("how", ["register", "qom"])
def test_irq_lost(dev: Barmap, how: str) -> None:
    dev.route_intx()
    dev.wreg("IRQ_MASK", R["BARMAP_IRQ_ALL"])
    set_fault(dev, IRQ_LOST, True, how)
    dev.wreg("IRQ_RAISE", R["BARMAP_IRQ_SOFT"])
    dev.dma(0x100000, 0, 0x10, from_dev=False, irq=True)
    assert dev.reg("IRQ_STATUS") == R["BARMAP_IRQ_SOFT"] | R["BARMAP_IRQ_DMA_DONE"]
    assert not dev.intx()
    # level-triggered INTx: clearing the fault shows the still-pending status
    set_fault(dev, IRQ_LOST, False, how)
    assert dev.intx()
    set_fault(dev, IRQ_LOST, True, how)
    assert not dev.intx()


def test_irq_lost_msi(dev: Barmap) -> None:
    dev.enable_msi(0x7000, 0x77)
    dev.wreg("IRQ_MASK", R["BARMAP_IRQ_SOFT"])
    dev.qom_set("fault-irq-lost", True)
    dev.wreg("IRQ_RAISE", R["BARMAP_IRQ_SOFT"])
    assert dev.qt.readl(0x7000) == 0
    dev.qom_set("fault-irq-lost", False)
    assert dev.qt.readl(0x7000) == 0, "a lost MSI must stay lost"
    dev.wreg("IRQ_ACK", R["BARMAP_IRQ_SOFT"])
    dev.wreg("IRQ_RAISE", R["BARMAP_IRQ_SOFT"])
    assert dev.qt.readl(0x7000) == 0x77


def test_faults_from_command_line(make_dev) -> None:  # type: ignore[no-untyped-def]
    d: Barmap = make_dev("fault-no-decode=on,fault-irq-lost=on")
    assert d.reg("FAULT") == NO_DECODE | IRQ_LOST
    assert d.qt.readl(d.mem_addr) == 0
    d.qt.writel(d.mem_addr, 5)
    d.qom_set("fault-no-decode", False)
    assert d.qt.readl(d.mem_addr) == 0
    d.qt.writel(d.mem_addr, 5)
    assert d.qt.readl(d.mem_addr) == 5


def test_fault_register_ignores_undefined_bits(dev: Barmap) -> None:
    dev.wreg("FAULT", 0xFFFFFFFF)
    assert dev.reg("FAULT") == R["BARMAP_FAULT_ALL"]
    assert all(dev.qom_get(p) is True for p in PROPS.values())
    dev.wreg("FAULT", 0)
    assert not any(dev.qom_get(p) for p in PROPS.values())


def test_all_ones_answers_only_inside_bar2(make_dev) -> None:  # type: ignore[no-untyped-def]
    """An access that starts in BAR2's last bytes and runs past its end: only the
    bytes inside BAR2 are the overlay's; the rest are whatever decodes there."""
    d: Barmap = make_dev("size=1M")
    qt, end = d.qt, d.mem_addr + d.size
    qt.write(end - 4, b"\x11\x22\x33\x44")
    plain = {n: qt.readl(end - n) for n in (1, 2, 3)}
    dma_plain = d.dma(end - 2, 0, 4, from_dev=False)
    assert dma_plain & DMA_ERR_FLAG, "a DMA reading past BAR2's end should fail"
    d.qom_set("fault-all-ones", True)
    for n, value in plain.items():
        inside = (1 << 8 * n) - 1
        assert qt.readl(end - n) == (value & ~inside) | inside, f"{n} byte(s) inside"
    # a DMA reading across the end fails as it does without the fault
    assert d.dma(end - 2, 0, 4, from_dev=False) == dma_plain
