"""A small client for QEMU's qtest protocol, with just enough QMP to go with it.

qtest (``-accel qtest -qtest unix:PATH``) lets a test drive a machine without a
guest: read and write guest-physical memory and I/O ports, step the virtual
clock, and watch interrupt lines.  This module starts QEMU the way libqtest
does: the test side listens on two Unix sockets (qtest and QMP), QEMU connects
to both, and nothing is driven before QMP has answered, because QEMU answers
qtest commands before its first system reset has run (a BAR programmed before
that reset is silently undone).

Only the standard library is used.

    with QTest(binary, ["-device", "barmap,addr=04.0"]) as qt:
        qt.writel(0xFEBF0000 + 0x0C, 0x1234)
        assert qt.readl(0xFEBF0000 + 0x0C) == 0x1234
        qt.qmp("qom-set", path="/machine/peripheral-anon/device[0]", ...)
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_QEMU = Path.home() / ".cache/barmap/qemu/bookworm/build/qemu-system-x86_64"
FIRMWARE_DIRS = ("/usr/share/qemu", "/usr/share/seabios")

# PCI configuration mechanism #1
PCI_CONFIG_ADDRESS = 0xCF8
PCI_CONFIG_DATA = 0xCFC

# PIIX4 ACPI PCI hotplug: writing 1 << slot here ejects the slot (pc machine)
ACPI_PCIHP_EJECT = 0xAE00 + 0x0008

# Never send more commands than this before reading their answers: a full
# socket in both directions would deadlock QEMU and us.
BATCH_CHUNK = 512


class QTestError(RuntimeError):
    """A qtest or QMP command failed, or QEMU went away."""


def qemu_binary() -> Path:
    """The QEMU to test: ``$BARMAP_QEMU``, else the cached bookworm build."""
    env = os.environ.get("BARMAP_QEMU")
    return Path(env).expanduser() if env else DEFAULT_QEMU


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


class QMP:
    """A minimal synchronous QMP client (events are queued in ``events``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lines = _Lines(sock)
        self.events: list[dict[str, Any]] = []
        greeting = json.loads(self.lines.readline())
        if "QMP" not in greeting:
            raise QTestError(f"not a QMP greeting: {greeting}")
        self.command("qmp_capabilities")

    def command(self, name: str, **args: Any) -> Any:
        """Run a command; return its ``return`` value or raise QTestError."""
        msg: dict[str, Any] = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = json.loads(self.lines.readline())
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                err = reply["error"]
                raise QTestError(f"{name}: {err.get('class')}: {err.get('desc')}")
            return reply.get("return")

    def hmp(self, line: str) -> str:
        """A human monitor command; its output."""
        return str(self.command("human-monitor-command", **{"command-line": line}))

    def wait_event(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for (and consume) the first event called ``name``."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise QTestError(f"no {name} event within {timeout} s")
            self.sock.settimeout(left)
            try:
                reply = json.loads(self.lines.readline())
            except socket.timeout as exc:
                raise QTestError(f"no {name} event within {timeout} s") from exc
            finally:
                self.sock.settimeout(None)
            if "event" in reply:
                self.events.append(reply)


class QTest:
    """One QEMU process under qtest, with its QMP monitor.

    ``args`` are added to a fixed command line: ``-accel qtest -M pc
    -display none -nodefaults`` and the firmware directories.
    """

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        binary: Path | str | None = None,
        machine: str = "pc",
        timeout: float = 30.0,
        stderr_path: Path | None = None,
    ) -> None:
        self.binary = Path(binary) if binary else qemu_binary()
        self.args = list(args)
        self.machine = machine
        self.timeout = timeout
        self.tmpdir = Path(tempfile.mkdtemp(prefix="barmap-qtest-"))
        self.stderr_path = stderr_path or self.tmpdir / "stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.irq_level: dict[int, bool] = {}
        self.irq_log: list[tuple[str, int]] = []
        self._qt: socket.socket | None = None
        self._lines: _Lines | None = None
        self._qmp: QMP | None = None

    # life cycle

    def command_line(self, qtest_path: Path, qmp_path: Path) -> list[str]:
        cmd = [str(self.binary), "-accel", "qtest", "-M", self.machine]
        for d in FIRMWARE_DIRS:
            cmd += ["-L", d]
        cmd += [
            "-display",
            "none",
            "-nodefaults",
            "-qtest",
            f"unix:{qtest_path}",
            "-qtest-log",
            "/dev/null",
        ]
        cmd += ["-chardev", f"socket,path={qmp_path},id=qmp0", "-mon", "chardev=qmp0,mode=control"]
        return cmd + self.args

    def start(self) -> QTest:
        qtest_path = self.tmpdir / "qtest.sock"
        qmp_path = self.tmpdir / "qmp.sock"
        listeners = []
        for path in (qtest_path, qmp_path):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(str(path))
            s.listen(1)
            listeners.append(s)
        err = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen(
                self.command_line(qtest_path, qmp_path),
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
            )
        finally:
            err.close()
        deadline = time.monotonic() + self.timeout
        try:
            socks = []
            for s in listeners:
                s.settimeout(0.1)
                while True:
                    try:
                        conn, _ = s.accept()
                        break
                    except socket.timeout:
                        if self.proc.poll() is not None:
                            raise QTestError("QEMU exited") from None
                        if time.monotonic() > deadline:
                            raise
                conn.settimeout(None)
                socks.append(conn)
        except (OSError, QTestError) as exc:
            msg = f"QEMU did not start: {exc}: {self.stderr()}"
            self.close()
            raise QTestError(msg) from exc
        finally:
            for s in listeners:
                s.close()
        self._qt = socks[0]
        self._lines = _Lines(self._qt)
        try:
            self._qmp = QMP(socks[1])
            # libqtest does the same: only drive the machine once QMP answers.
            self.qmp("query-status")
        except (OSError, ValueError, QTestError) as exc:
            socks[1].close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            msg = f"QEMU did not start: {exc}: {self.stderr()}"
            self.close()
            raise QTestError(msg) from exc
        return self

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace").strip()
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> int | None:
        """Quit QEMU (QMP quit, then kill); return its exit status."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None and self._qmp is not None:
                try:
                    self._qmp.command("quit")
                except (QTestError, OSError, ValueError):
                    pass
            try:
                rc = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        for s in (self._qt, self._qmp.sock if self._qmp else None):
            if s is not None:
                s.close()
        self._qt = None
        self._qmp = None
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return rc

    def __enter__(self) -> QTest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # QMP

    @property
    def qmp_client(self) -> QMP:
        if self._qmp is None:
            raise QTestError("not started")
        return self._qmp

    def qmp(self, name: str, **args: Any) -> Any:
        return self.qmp_client.command(name, **args)

    def hmp(self, line: str) -> str:
        return self.qmp_client.hmp(line)

    # the qtest wire

    def _readline(self) -> str:
        assert self._lines is not None
        while True:
            line = self._lines.readline()
            if line.startswith("IRQ "):
                _, what, num = line.split()
                self.irq_level[int(num)] = what == "raise"
                self.irq_log.append((what, int(num)))
                continue
            return line

    def _send(self, text: str) -> None:
        if self._qt is None:
            raise QTestError("not started")
        try:
            self._qt.sendall(text.encode())
        except OSError as exc:
            raise QTestError(f"QEMU went away: {exc}; {self.stderr()}") from exc

    def _answer(self, cmd: str) -> str:
        try:
            line = self._readline()
        except (OSError, QTestError) as exc:
            rc = self.proc.poll() if self.proc else None
            raise QTestError(
                f"{cmd!r}: QEMU went away (exit {rc}): {exc}; {self.stderr()}"
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

    # PCI configuration space (mechanism #1)

    @staticmethod
    def _cfg_addr(devfn: int, off: int, bus: int = 0) -> int:
        return 0x80000000 | (bus << 16) | (devfn << 8) | (off & 0xFC)

    def cfg_read(self, devfn: int, off: int, size: int = 4) -> int:
        self.outl(PCI_CONFIG_ADDRESS, self._cfg_addr(devfn, off))
        port = PCI_CONFIG_DATA + (off & 3)
        return {1: self.inb, 2: self.inw, 4: self.inl}[size](port)

    def cfg_write(self, devfn: int, off: int, val: int, size: int = 4) -> None:
        self.outl(PCI_CONFIG_ADDRESS, self._cfg_addr(devfn, off))
        port = PCI_CONFIG_DATA + (off & 3)
        {1: self.outb, 2: self.outw, 4: self.outl}[size](port, val)

    def acpi_eject(self, slot: int) -> None:
        """Eject PCI slot ``slot`` as a guest's ACPI would after device_del (pc)."""
        self.outl(ACPI_PCIHP_EJECT, 1 << slot)
