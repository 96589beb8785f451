"""The serial console: a drain thread that logs every byte, and pexpect for commands.

QEMU connects to a socket the harness listens on.  One thread reads that
socket for the VM's whole life, appends every byte to the console log, scans
for kernel failure markers and feeds a pipe that pexpect reads.  Commands are
written to the socket.  Each command is framed by markers that the shell
prints but that do not appear in the typed text, so kernel messages
interleaving with the output cannot be taken for the end of a command.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import threading
from pathlib import Path

import pexpect
import pexpect.fdpexpect

from barmap.crash import ANY_MARKER, CrashReport, find_crash

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class ConsoleDrain(threading.Thread):
    """Reads the console socket until EOF; every byte goes to the log and the pipe."""

    def __init__(self, sock: socket.socket, log_path: Path) -> None:
        super().__init__(name="barmap-console-drain", daemon=True)
        self._sock = sock
        self._log = open(log_path, "ab", buffering=0)
        rfd, wfd = os.pipe()
        self.read_fd = rfd
        self._write_fd = wfd
        self._lock = threading.Lock()
        self._chunks: list[str] = []
        self._window = ""  # the unscanned tail, with some overlap for split markers
        self._crash_text: list[str] = []  # the text from the first marker on
        self.crash: CrashReport | None = None
        self.crash_event = threading.Event()
        self.eof = threading.Event()

    def run(self) -> None:
        try:
            while True:
                try:
                    data = self._sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                self._log.write(data)
                self._keep(data.decode("utf-8", "replace"))
                try:
                    os.write(self._write_fd, data)
                except OSError:
                    pass
        finally:
            self.eof.set()
            self._log.close()
            os.close(self._write_fd)

    def _keep(self, text: str) -> None:
        with self._lock:
            self._chunks.append(text)
            if self.crash is not None:
                self._crash_text.append(text)
                return
            self._window = self._window[-200:] + text
            if ANY_MARKER.search(self._window):
                self.crash = find_crash(self._window)
                self._crash_text = [self._window]
                self.crash_event.set()

    def text(self) -> str:
        """Everything the console said so far."""
        with self._lock:
            if len(self._chunks) > 1:
                self._chunks = ["".join(self._chunks)]
            return self._chunks[0] if self._chunks else ""

    def tail(self, chars: int = 4000) -> str:
        return _ANSI.sub("", self.text()[-chars:])

    def crash_report(self) -> CrashReport | None:
        """The first failure report, with the lines that arrived after its first marker."""
        with self._lock:
            if self.crash is None:
                return None
            return find_crash("".join(self._crash_text)) or self.crash


class Console:
    """Commands on the guest's serial shell."""

    def __init__(self, sock: socket.socket, drain: ConsoleDrain) -> None:
        self._sock = sock
        self.drain = drain
        self._exp = pexpect.fdpexpect.fdspawn(
            drain.read_fd, timeout=30, encoding="utf-8", codec_errors="replace"
        )
        self._seq = itertools.count(1)

    def send(self, data: str | bytes) -> None:
        self._sock.sendall(data.encode() if isinstance(data, str) else data)

    def expect(self, pattern: str | list[str], timeout: float) -> int:
        """pexpect's expect on the console stream (raises pexpect.TIMEOUT / pexpect.EOF)."""
        return self._exp.expect(pattern, timeout=timeout)

    @property
    def before(self) -> str:
        return str(self._exp.before)

    @property
    def match(self) -> re.Match[str]:
        return self._exp.match  # type: ignore[no-any-return]

    def framed(self, command: str) -> tuple[str, re.Pattern[str], re.Pattern[str]]:
        """The line to type for ``command`` and the regexes of its start and end markers."""
        n = next(self._seq)
        command = command.rstrip()
        # "cmd &" is already terminated: "cmd &; echo" would be a syntax error
        sep = " " if command.endswith("&") and not command.endswith("&&") else "; "
        line = f"echo BM''START-{n}; {command}{sep}echo BM''END-{n}-$?\n"
        start = re.compile(rf"BMSTART-{n}\r?\n")
        end = re.compile(rf"BMEND-{n}-(\d+)\r?\n")
        return line, start, end

    def close(self) -> None:
        try:
            os.close(self.drain.read_fd)
        except OSError:
            pass
