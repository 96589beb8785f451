"""Connect the user's terminal to the guest's serial console (``barmap run``/``debug``).

Keys, as in QEMU's own ``-nographic`` console: ``Ctrl-a c`` switches to the QEMU
monitor (HMP: ``info pci``, ``info mtree``, ``xp``, ``qom-set``...; an empty line
switches back), ``Ctrl-a x`` or ``Ctrl-]`` quits, ``Ctrl-a a`` sends a Ctrl-a,
``Ctrl-a h`` lists the keys.  While the monitor is in use the guest runs on and
its console output is held back, then shown.  With a trace file (``--trace``),
QEMU's trace events are shown as they come, each line marked ``trace:``.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import tty
from pathlib import Path
from typing import BinaryIO

from barmap.guest.machine import Machine

ESCAPE = b"\x1d"  # Ctrl-]: quit at once
PREFIX = b"\x01"  # Ctrl-a, then a key
KEYS_HELP = (
    "Ctrl-a c  QEMU monitor (an empty line returns)   Ctrl-a x or Ctrl-]  quit\r\n"
    "Ctrl-a a  send Ctrl-a                             Ctrl-a h  these keys\r\n"
)


class _Trace:
    """New lines of QEMU's trace log, as they are written (the file is opened once)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._partial = b""

    def poll(self) -> bytes:
        if self.path is None:
            return b""
        if self._file is None:
            try:
                self._file = open(self.path, "rb")  # kept open: tailed
            except OSError:
                return b""  # QEMU has not written it yet
        data = self._partial + self._file.read()
        lines, _, self._partial = data.rpartition(b"\n")
        if not lines:
            return b""
        return b"".join(b"trace: " + ln + b"\r\n" for ln in lines.split(b"\n"))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Terminal:
    def __init__(
        self,
        vm: Machine,
        trace: Path | None,
        stdin: int | None = None,
        out: BinaryIO | None = None,
    ) -> None:
        self.vm = vm
        self.out = out if out is not None else sys.stdout.buffer
        self.stdin = stdin if stdin is not None else sys.stdin.fileno()
        self.is_tty = os.isatty(self.stdin)
        self.saved = termios.tcgetattr(self.stdin) if self.is_tty else None
        self.trace = _Trace(trace)
        self.held: list[bytes] = []  # console output while the monitor is in use
        self.in_monitor = False
        self.after_prefix = False

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.out.flush()

    def raw(self) -> None:
        if self.is_tty:
            tty.setraw(self.stdin)

    def cooked(self) -> None:
        if self.saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.stdin, termios.TCSADRAIN, self.saved)

    def monitor_on(self) -> None:
        self.in_monitor = True
        self.cooked()
        self.write(b"\r\nbarmap: QEMU monitor (HMP); an empty line returns to the console\n(qemu) ")

    def monitor_off(self) -> None:
        self.in_monitor = False
        self.write(b"barmap: back to the serial console\r\n")
        self.raw()
        for chunk in self.held:
            self.write(chunk)
        self.held.clear()

    def monitor_line(self, data: bytes) -> None:
        line = data.decode("utf-8", "replace").strip()
        if not line:
            self.monitor_off()
            return
        try:
            answer = self.vm.qmp.hmp(line)
        except Exception as exc:  # an HMP error is an answer, not the session's end
            answer = f"error: {exc}\n"
        # the terminal is cooked here: it turns each newline into CR LF itself
        self.write(answer.replace("\r\n", "\n").encode() + b"(qemu) ")

    def keys(self, data: bytes) -> bool:
        """Handle keys typed on the console; False to quit."""
        send = bytearray()
        for byte in data:
            key = bytes([byte])
            if self.after_prefix:
                self.after_prefix = False
                if key == b"c":
                    if send:
                        self.vm.console.send(bytes(send))
                    self.monitor_on()
                    return True  # the rest of this read is not for the guest
                if key == b"x":
                    break
                if key == b"h":
                    self.write(b"\r\n" + KEYS_HELP.encode())
                    continue
                send += PREFIX if key == b"a" else PREFIX + key
                continue
            if key == ESCAPE:
                if send:
                    self.vm.console.send(bytes(send))
                return False
            if key == PREFIX:
                self.after_prefix = True
                continue
            send += key
        else:
            if send:
                self.vm.console.send(bytes(send))
            return True
        if send:
            self.vm.console.send(bytes(send))
        return False


def attach(vm: Machine, banner: str = "", trace: Path | None = None) -> None:
    """Pass bytes both ways until the user quits or the VM ends; the console log keeps all."""
    term = _Terminal(vm, trace)
    rfd = vm.drain.read_fd
    if banner:
        term.write(banner.encode() + b"\r\n")
    # what pexpect already read past the boot marker (the first prompt)
    pending = vm.console.buffered()
    if pending:
        term.write(pending.encode())
    try:
        term.raw()
        while vm.is_running():
            ready, _, _ = select.select([term.stdin, rfd], [], [], 0.2)
            traced = term.trace.poll()
            if traced:
                (term.held.append if term.in_monitor else term.write)(traced)
            if rfd in ready:
                data = os.read(rfd, 65536)
                if not data:
                    break
                (term.held.append if term.in_monitor else term.write)(data)
            if term.stdin in ready:
                data = os.read(term.stdin, 1024)
                if not data:
                    break
                if term.in_monitor:
                    term.monitor_line(data)
                elif not term.keys(data):
                    break
    finally:
        term.trace.close()
        term.cooked()
        term.write(b"\r\n")
