"""PCI devices under qtest: BAR sizing and assignment, after libqos's ``qpci_iomap``.

A test asks for a BAR and gets its address; nothing hard-codes where BARs
are.  ``PCIBus`` allocates from three windows, as firmware would: 32-bit memory
BARs below the IOAPIC (from 0xE0000000, where libqos starts too), 64-bit ones
above 16 GiB, clear of any guest RAM a test machine has, and I/O BARs from
port 0xC000 (libqos's pc I/O window).  The allocator never frees (nor does
libqos's): a machine lives for one test.

    dev = qt.pci.device(devfn)
    regs = dev.iomap(0)          # sized, placed, programmed (an I/O BAR: its port)
    dev.enable()                 # memory decoding and bus mastering on (io=True: I/O too)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

PCI_VENDOR_ID = 0x00
PCI_COMMAND = 0x04
PCI_COMMAND_IO = 0x1
PCI_COMMAND_MEMORY = 0x2
PCI_COMMAND_MASTER = 0x4
PCI_STATUS = 0x06
PCI_STATUS_CAP_LIST = 0x10
PCI_BASE_ADDRESS_0 = 0x10
PCI_BASE_ADDRESS_SPACE_IO = 0x1
PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x4
PCI_BASE_ADDRESS_MEM_PREFETCH = 0x8
PCI_CAPABILITY_LIST = 0x34

MMIO32_WINDOW = (0xE000_0000, 0xFEC0_0000)
MMIO64_WINDOW = (0x4_0000_0000, 0x100_0000_0000)
IO_WINDOW = (0xC000, 0x1_0000)


@dataclass(frozen=True)
class BarInfo:
    """What a BAR's size probe tells: its size and kind."""

    size: int
    is_64: bool
    prefetch: bool
    is_io: bool = False


def decode_bar(lo: int, hi: int = 0) -> BarInfo | None:
    """A memory BAR's info from what reads back after writing all-ones (``hi``: the
    upper half of a 64-bit BAR); None for an unimplemented BAR.  I/O BARs are refused."""
    if lo & PCI_BASE_ADDRESS_SPACE_IO:
        raise ValueError("I/O BARs are not supported")
    is_64 = bool(lo & PCI_BASE_ADDRESS_MEM_TYPE_64)
    bits = (lo & 0xFFFF_FFF0) | (hi << 32 if is_64 else 0)
    if bits == 0:
        return None
    if not is_64:
        bits |= 0xFFFF_FFFF_0000_0000
    size = (~bits & 0xFFFF_FFFF_FFFF_FFFF) + 1
    return BarInfo(size, is_64, bool(lo & PCI_BASE_ADDRESS_MEM_PREFETCH))


def decode_io_bar(val: int) -> BarInfo | None:
    """An I/O BAR's info from what reads back after writing all-ones."""
    if not val & PCI_BASE_ADDRESS_SPACE_IO:
        raise ValueError("not an I/O BAR")
    bits = val & 0xFFFF_FFFC
    if bits == 0:
        return None
    return BarInfo((~bits & 0xFFFF_FFFF) + 1, is_64=False, prefetch=False, is_io=True)


class Window:
    """A bump allocator over [start, end): each block aligned to its (power-of-two) size."""

    def __init__(self, start: int, end: int) -> None:
        self.start = self.next = start
        self.end = end

    def alloc(self, size: int) -> int:
        if size <= 0 or size & (size - 1):
            raise ValueError(f"BAR size {size:#x} is not a power of two")
        addr = (self.next + size - 1) & ~(size - 1)
        if addr + size > self.end:
            raise MemoryError(
                f"no room for {size:#x} bytes in [{self.start:#x}, {self.end:#x}) "
                f"(next free {self.next:#x})"
            )
        self.next = addr + size
        return addr


class ConfigSpace(Protocol):
    """What the bus needs of a machine: config cycles (``QTest`` gives them)."""

    def cfg_read(self, devfn: int, off: int, size: int = 4, *, bus: int = 0) -> int: ...

    def cfg_write(self, devfn: int, off: int, val: int, size: int = 4, *, bus: int = 0) -> None: ...


class PCIBus:
    """Bus 0 of a qtest machine (``QTest.pci``): config access and the BAR windows."""

    def __init__(self, qt: ConfigSpace) -> None:
        self.qt = qt
        self.mmio32 = Window(*MMIO32_WINDOW)
        self.mmio64 = Window(*MMIO64_WINDOW)
        self.io = Window(*IO_WINDOW)
        # (devfn, bar) -> (address, size) of what iomap placed
        self.assigned: dict[tuple[int, int], tuple[int, int]] = {}

    def device(self, devfn: int) -> PCIDevice:
        return PCIDevice(self, devfn)


class PCIDevice:
    """One function on bus 0, by ``devfn`` (slot << 3 | function)."""

    def __init__(self, bus: PCIBus, devfn: int) -> None:
        self.bus = bus
        self.devfn = devfn

    def cfg_read(self, off: int, size: int = 4) -> int:
        return self.bus.qt.cfg_read(self.devfn, off, size)

    def cfg_write(self, off: int, val: int, size: int = 4) -> None:
        self.bus.qt.cfg_write(self.devfn, off, val, size)

    def present(self) -> bool:
        return self.cfg_read(PCI_VENDOR_ID, 2) != 0xFFFF

    def probe(self, bar: int) -> BarInfo | None:
        """Size BAR ``bar`` (write all-ones, read back); its old value is written back."""
        reg = PCI_BASE_ADDRESS_0 + 4 * bar
        old_lo = self.cfg_read(reg)
        self.cfg_write(reg, 0xFFFF_FFFF)
        lo = self.cfg_read(reg)
        self.cfg_write(reg, old_lo)
        if lo & PCI_BASE_ADDRESS_SPACE_IO:
            return decode_io_bar(lo)
        hi = 0
        if lo & PCI_BASE_ADDRESS_MEM_TYPE_64:
            old_hi = self.cfg_read(reg + 4)
            self.cfg_write(reg + 4, 0xFFFF_FFFF)
            hi = self.cfg_read(reg + 4)
            self.cfg_write(reg + 4, old_hi)
        return decode_bar(lo, hi)

    def bar_address(self, bar: int) -> int:
        """Where BAR ``bar`` is programmed now (0: not placed; an I/O BAR: its port)."""
        reg = PCI_BASE_ADDRESS_0 + 4 * bar
        lo = self.cfg_read(reg)
        if lo & PCI_BASE_ADDRESS_SPACE_IO:
            return lo & 0xFFFF_FFFC
        hi = self.cfg_read(reg + 4) if lo & PCI_BASE_ADDRESS_MEM_TYPE_64 else 0
        return (hi << 32) | (lo & 0xFFFF_FFF0)

    def iomap(self, bar: int) -> int:
        """Place BAR ``bar`` in its window and program it; its address (I/O: its port).

        A BAR this bus placed before, still of the same size (say after a system
        reset cleared it), gets its old address back.
        """
        info = self.probe(bar)
        if info is None:
            raise ValueError(f"{self.devfn >> 3:02x}.{self.devfn & 7} has no BAR {bar}")
        key = (self.devfn, bar)
        old = self.bus.assigned.get(key)
        if old is not None and old[1] == info.size:
            addr = old[0]
        else:
            if info.is_io:
                window = self.bus.io
            else:
                window = self.bus.mmio64 if info.is_64 else self.bus.mmio32
            addr = window.alloc(info.size)
            self.bus.assigned[key] = (addr, info.size)
        reg = PCI_BASE_ADDRESS_0 + 4 * bar
        self.cfg_write(reg, addr & 0xFFFF_FFFF)
        if info.is_64:
            self.cfg_write(reg + 4, addr >> 32)
        return addr

    def enable(self, *, master: bool = True, io: bool = False) -> None:
        """Memory decoding on, bus mastering (DMA) unless ``master=False``, I/O
        decoding with ``io=True``."""
        cmd = self.cfg_read(PCI_COMMAND, 2) | PCI_COMMAND_MEMORY
        cmd = cmd | PCI_COMMAND_MASTER if master else cmd & ~PCI_COMMAND_MASTER
        if io:
            cmd |= PCI_COMMAND_IO
        self.cfg_write(PCI_COMMAND, cmd, 2)

    def find_capability(self, cap_id: int) -> int | None:
        """Config-space offset of the first capability ``cap_id``, or None."""
        if not self.cfg_read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST:
            return None
        ptr = self.cfg_read(PCI_CAPABILITY_LIST, 1) & ~3
        seen = set()
        while ptr and ptr not in seen:
            seen.add(ptr)
            if self.cfg_read(ptr, 1) == cap_id:
                return ptr
            ptr = self.cfg_read(ptr + 1, 1) & ~3
        return None
