"""QEMU's human monitor (HMP) of a running session, from another terminal.

An interactive session gives its QEMU a second monitor, HMP on ``hmp.sock`` in its
runtime directory (the harness keeps QMP for itself: ``barmap.qemu.qmp``)::

    barmap monitor                       # the only running session, interactively
    barmap monitor debug-4242 -c 'info pci' -c 'xp /4xw 0xfe000000'
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from barmap.errors import BarmapError

HMP_SOCKET = "hmp.sock"
PROMPT = b"(qemu) "
# what QEMU's readline draws around an echoed line: cursor moves, erase to end of line
_TERMINAL_CODES = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]|\x1b[DEM]")


class HmpClient:
    """A connection to a session's HMP socket."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(str(path))
        except OSError as exc:
            self.sock.close()
            raise BarmapError(f"cannot connect to the monitor at {path}: {exc.strerror}") from None
        self.greeting = self._until_prompt()

    def _until_prompt(self) -> bytes:
        data = b""
        deadline = time.monotonic() + self.timeout
        while not data.endswith(PROMPT):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.sock], [], [], max(left, 0))
            if not ready:
                raise BarmapError(f"the monitor did not answer within {self.timeout:.0f} s")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BarmapError("the monitor closed the connection (QEMU gone?)")
            data += chunk
        return data

    def command(self, line: str) -> str:
        """Run one HMP command line; its output, without QEMU's echo of the line."""
        self.sock.sendall(line.encode() + b"\n")
        raw = _TERMINAL_CODES.sub(b"", self._until_prompt()[: -len(PROMPT)])
        text = raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "")
        first, _, rest = text.partition("\n")  # QEMU echoes the line first
        return rest if first.strip() == line.strip() else text

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def interactive(path: Path) -> int:
    """Relay the terminal to the HMP socket until Ctrl-D or ``quit``-like EOF."""
    client = HmpClient(path)
    out = sys.stdout.buffer
    out.write(client.greeting)
    out.flush()
    stdin = sys.stdin.fileno()
    try:
        for chunk in _relay(client.sock, stdin):
            out.write(chunk)
            out.flush()
    finally:
        client.close()
        out.write(b"\n")
        out.flush()
    return 0


def _relay(sock: socket.socket, stdin: int) -> Iterator[bytes]:
    while True:
        ready, _, _ = select.select([sock, stdin], [], [])
        if sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            yield data
        if stdin in ready:
            data = os.read(stdin, 4096)
            if not data:
                return
            sock.sendall(data)


def run_commands(path: Path, commands: Sequence[str]) -> int:
    client = HmpClient(path)
    try:
        for line in commands:
            sys.stdout.write(client.command(line))
            sys.stdout.flush()
    finally:
        client.close()
    return 0
