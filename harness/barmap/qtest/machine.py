"""A client for QEMU's qtest protocol: the shared launcher with the qtest socket added.

qtest (``-accel qtest -qtest unix:PATH``) lets a test drive a machine without a
guest: read and write guest-physical memory and I/O ports, step the virtual
clock, and watch interrupt lines.  As QEMU's ``QEMUQtestMachine`` is its
``QEMUMachine`` plus qtest, ``QTest`` is a ``QEMUProcess`` (barmap.qemu.launcher:
the same start, stop, QMP ``Monitor``, stderr and runtime directory as a
guest's QEMU) plus one more socket.  Nothing is driven before QMP has
answered, as in libqtest: QEMU answers qtest commands before its first system
reset has run (a BAR programmed before that reset is silently undone).

    with QTest(["-device", "barmap,addr=04.0"]) as qt:
        bar0 = qt.pci.device(4 << 3).iomap(0)
        qt.writel(bar0 + 0x0C, 0x1234)
        qt.qmp("qom-set", path="/machine/peripheral-anon/device[0]", ...)
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from barmap.build.artifacts import find_qemu
from barmap.errors import MachineError
from barmap.qemu.accel import wants_huge_pages
from barmap.qemu.cmdline import build_qtest_cmdline
from barmap.qemu.launcher import QEMUProcess
from barmap.qtest.pci import PCIBus

# PCI configuration mechanism #1
PCI_CONFIG_ADDRESS = 0xCF8
PCI_CONFIG_DATA = 0xCFC

# PIIX4 ACPI PCI hotplug: writing 1 << slot here ejects the slot (pc machine)
ACPI_PCIHP_EJECT = 0xAE00 + 0x0008

# Never send more commands than this before reading their answers: a full
# socket in both directions would deadlock QEMU and us.
BATCH_CHUNK = 512


class QTestError(MachineError):
    """A qtest command failed, or QEMU went away."""


def qemu_binary() -> Path:
    """The QEMU to test (``$BARMAP_QEMU``, else the cached build): ``find_qemu()``."""
    return find_qemu()


class _Lines:
    """Line reader over a stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def readline(self) -> str:
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1 :]
                return line.decode()
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise QTestError("QEMU closed the connection")
            self.buf += chunk


class QTest(QEMUProcess):
    """One QEMU process under qtest, with its QMP monitor (``monitor``).

    ``args`` are added to a fixed command line (``cmdline.build_qtest_cmdline``):
    ``-accel qtest -M MACHINE``, the firmware directories, no display, no
    default devices.
    """

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        binary: Path | str | None = None,
        machine: str = "pc",
        timeout: float = 30.0,
    ) -> None:
        super().__init__()
        self.binary = find_qemu(binary)
        self.args = list(args)
        self.machine = machine
        self.connect_timeout = timeout
        self.irq_level: dict[int, bool] = {}
        self._lines: _Lines | None = None
        self._pci: PCIBus | None = None

    # life cycle

    def start(self) -> QTest:
        qtest_path = self.listen("qtest")
        qmp_path = self.listen_qmp()
        self.launch(
            build_qtest_cmdline(
                self.binary,
                machine=self.machine,
                qtest_socket=qtest_path,
                qmp_socket=qmp_path,
                args=self.args,
            ),
            huge_pages=wants_huge_pages("qtest"),
        )
        self._lines = _Lines(self.sockets["qtest"])
        try:
            # libqtest does the same: only drive the machine once QMP answers.
            self.qmp("query-status")
        except Exception as exc:  # the monitor went away with QEMU
            error = self.start_error(f"QMP did not answer: {exc}")
            self.stop(timeout=1.0)
            raise error from None
        return self

    def alive(self) -> bool:
        return self.is_running()

    def stderr(self) -> str:
        return super().stderr().strip()

    def close(self) -> int | None:
        """Quit QEMU (QMP quit, then signals); return its exit status."""
        self._lines = None
        return self.stop()

    def __enter__(self) -> QTest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # QMP

    def qmp(self, name: str, **args: Any) -> Any:
        """Run one QMP command; its ``return`` value (``qemu.qmp.ExecuteError`` if refused)."""
        return self.monitor.cmd(name, **args)

    def hmp(self, line: str) -> str:
        return self.monitor.hmp(line)

    # the qtest wire

    def _readline(self) -> str:
        if self._lines is None:
            raise QTestError("not started")
        while True:
            line = self._lines.readline()
            if line.startswith("IRQ "):
                _, what, num = line.split()
                self.irq_level[int(num)] = what == "raise"
                continue
            return line

    def _send(self, text: str) -> None:
        sock = self.sockets.get("qtest")
        if sock is None:
            raise QTestError("not started")
        try:
            sock.sendall(text.encode())
        except OSError as exc:
            raise QTestError(f"QEMU went away: {exc}; {self.stderr()}", **self.error_kw()) from exc

    def _answer(self, cmd: str) -> str:
        try:
            line = self._readline()
        except (OSError, QTestError) as exc:
            raise QTestError(
                f"{cmd!r}: QEMU went away (exit {self.returncode}): {exc}; {self.stderr()}",
                **self.error_kw(),
            ) from exc
        if not line.startswith("OK"):
            raise QTestError(f"{cmd!r}: {line}")
        return line[2:].strip()

    def cmd(self, line: str) -> str:
        """Send one qtest command, return what follows its ``OK``."""
        self._send(line + "\n")
        return self._answer(line)

    def batch(self, lines: Iterable[str]) -> list[str]:
        """Pipeline many commands; return their answers in order."""
        out: list[str] = []
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= BATCH_CHUNK:
                out += self._batch(chunk)
                chunk = []
        if chunk:
            out += self._batch(chunk)
        return out

    def _batch(self, lines: list[str]) -> list[str]:
        self._send("".join(line + "\n" for line in lines))
        return [self._answer(line) for line in lines]

    # memory and I/O

    def _read(self, width: str, addr: int) -> int:
        return int(self.cmd(f"read{width} 0x{addr:x}"), 16)

    def readb(self, addr: int) -> int:
        return self._read("b", addr)

    def readw(self, addr: int) -> int:
        return self._read("w", addr)

    def readl(self, addr: int) -> int:
        return self._read("l", addr)

    def readq(self, addr: int) -> int:
        return self._read("q", addr)

    def writeb(self, addr: int, val: int) -> None:
        self.cmd(f"writeb 0x{addr:x} 0x{val & 0xFF:x}")

    def writew(self, addr: int, val: int) -> None:
        self.cmd(f"writew 0x{addr:x} 0x{val & 0xFFFF:x}")

    def writel(self, addr: int, val: int) -> None:
        self.cmd(f"writel 0x{addr:x} 0x{val & 0xFFFFFFFF:x}")

    def writeq(self, addr: int, val: int) -> None:
        self.cmd(f"writeq 0x{addr:x} 0x{val & 0xFFFFFFFFFFFFFFFF:x}")

    def read(self, addr: int, size: int) -> bytes:
        """``size`` bytes of guest-physical memory (b64read)."""
        if size == 0:
            return b""
        return base64.b64decode(self.cmd(f"b64read 0x{addr:x} 0x{size:x}"))

    def write(self, addr: int, data: bytes) -> None:
        """Write ``data`` to guest-physical memory (b64write)."""
        if data:
            enc = base64.b64encode(data).decode()
            self.cmd(f"b64write 0x{addr:x} 0x{len(data):x} {enc}")

    def memset(self, addr: int, size: int, val: int) -> None:
        self.cmd(f"memset 0x{addr:x} 0x{size:x} 0x{val & 0xFF:x}")

    def inb(self, port: int) -> int:
        return int(self.cmd(f"inb 0x{port:x}"), 16)

    def inw(self, port: int) -> int:
        return int(self.cmd(f"inw 0x{port:x}"), 16)

    def inl(self, port: int) -> int:
        return int(self.cmd(f"inl 0x{port:x}"), 16)

    def outb(self, port: int, val: int) -> None:
        self.cmd(f"outb 0x{port:x} 0x{val & 0xFF:x}")

    def outw(self, port: int, val: int) -> None:
        self.cmd(f"outw 0x{port:x} 0x{val & 0xFFFF:x}")

    def outl(self, port: int, val: int) -> None:
        self.cmd(f"outl 0x{port:x} 0x{val & 0xFFFFFFFF:x}")

    # clock and interrupts

    def clock_step(self, ns: int | None = None) -> int:
        """Advance the virtual clock by ``ns`` (default: to the next timer); return it."""
        return int(self.cmd("clock_step" if ns is None else f"clock_step {ns}"))

    def irq_intercept_in(self, qom_path: str = "ioapic") -> None:
        """Report the input lines of ``qom_path`` as ``IRQ raise|lower N``."""
        self.cmd(f"irq_intercept_in {qom_path}")

    def irq(self, num: int) -> bool:
        """Whether intercepted line ``num`` is raised (after a round trip, so it is current)."""
        self.cmd("readb 0x0")
        return self.irq_level.get(num, False)

    # PCI configuration space (mechanism #1) and BAR assignment

    @staticmethod
    def _cfg_addr(devfn: int, off: int, bus: int = 0) -> int:
        return 0x80000000 | (bus << 16) | (devfn << 8) | (off & 0xFC)

    def cfg_read(self, devfn: int, off: int, size: int = 4, *, bus: int = 0) -> int:
        self.outl(PCI_CONFIG_ADDRESS, self._cfg_addr(devfn, off, bus))
        port = PCI_CONFIG_DATA + (off & 3)
        return {1: self.inb, 2: self.inw, 4: self.inl}[size](port)

    def cfg_write(self, devfn: int, off: int, val: int, size: int = 4, *, bus: int = 0) -> None:
        self.outl(PCI_CONFIG_ADDRESS, self._cfg_addr(devfn, off, bus))
        port = PCI_CONFIG_DATA + (off & 3)
        {1: self.outb, 2: self.outw, 4: self.outl}[size](port, val)

    @property
    def pci(self) -> PCIBus:
        """Bus 0, with the BAR allocator of this machine (``pci.device(devfn).iomap(bar)``)."""
        if self._pci is None:
            self._pci = PCIBus(self)
        return self._pci

    def acpi_eject(self, slot: int) -> None:
        """Eject PCI slot ``slot`` as a guest's ACPI would after device_del (pc)."""
        self.outl(ACPI_PCIHP_EJECT, 1 << slot)
