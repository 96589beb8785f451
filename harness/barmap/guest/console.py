"""The serial console: a drain thread that logs every byte, pexpect, and shell commands.

QEMU connects to a socket the harness listens on.  One thread reads that
socket for the VM's whole life, appends every byte to the console log, scans
for kernel failure markers and feeds a pipe that pexpect reads.  Commands are
written to the socket.  Each command is framed by markers that the shell
prints but that do not appear in the typed text, so kernel messages
interleaving with the output cannot be taken for the end of a command.

``Shell`` runs commands on whatever shell is at the other end of the socket
(the guest's, or any ``sh`` in the unit tests) and turns a kernel failure
report seen on the console into ``GuestCrash``.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pexpect
import pexpect.fdpexpect

from barmap.errors import CommandFailed, ConsoleTimeout, GuestCrash, MachineDied
from barmap.guest.crash import ANY_MARKER, CrashReport, find_crash

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# a terminal query (busybox's line editing asks for the cursor position after each
# prompt): nothing a reader of the log wants; and the unfinished start of a sequence
_QUERY = re.compile(rb"\x1b\[[0-9;?]*[nc]")
_PARTIAL = re.compile(rb"\x1b(\[[0-9;?]*)?$")


class LogFilter:
    """The console's bytes as the log keeps them: terminal queries left out, even when a
    read splits one (its start is held back until the next read)."""

    def __init__(self) -> None:
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        data = _QUERY.sub(b"", self._held + data)
        m = _PARTIAL.search(data[-16:])
        cut = len(data) - (len(m.group(0)) if m else 0)
        self._held = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held


class ConsoleDrain(threading.Thread):
    """Reads the console socket until EOF; every byte goes to the log and the pipe."""

    def __init__(
        self, sock: socket.socket, log_path: Path, milestones: tuple[str, ...] = ()
    ) -> None:
        """``milestones``: console strings whose first arrival time to note (``seen``)."""
        super().__init__(name="barmap-console-drain", daemon=True)
        self._sock = sock
        self._log = open(log_path, "ab", buffering=0)
        self._log_filter = LogFilter()
        rfd, wfd = os.pipe()
        self.read_fd = rfd
        self._write_fd = wfd
        self._lock = threading.Lock()
        self._chunks: list[str] = []
        self._window = ""  # the unscanned tail, with some overlap for split markers
        self._crash_text: list[str] = []  # the text from the first marker on
        self.crash: CrashReport | None = None
        self.eof = threading.Event()
        # time.monotonic() of the first byte ("") and of each milestone's first arrival
        self.seen: dict[str, float] = {}
        self._pending = list(milestones)
        self._scan = ""  # the unscanned tail for milestones, with overlap

    def run(self) -> None:
        try:
            while True:
                try:
                    data = self._sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                self._log.write(self._log_filter.feed(data))
                self._keep(data.decode("utf-8", "replace"))
                try:
                    os.write(self._write_fd, data)
                except OSError:
                    pass
        finally:
            self.eof.set()
            self._log.write(self._log_filter.flush())
            self._log.close()
            os.close(self._write_fd)

    def _keep(self, text: str) -> None:
        with self._lock:
            self._note(text)
            self._chunks.append(text)
            if self.crash is not None:
                self._crash_text.append(text)
                return
            self._window = self._window[-200:] + text
            if ANY_MARKER.search(self._window):
                self.crash = find_crash(self._window)
                self._crash_text = [self._window]

    def _note(self, text: str) -> None:
        now = time.monotonic()
        self.seen.setdefault("", now)
        if not self._pending:
            return
        self._scan = self._scan[-200:] + text
        for milestone in [m for m in self._pending if m in self._scan]:
            self.seen[milestone] = now
            self._pending.remove(milestone)

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

    def buffered(self) -> str:
        """What pexpect has read from the console but no ``expect`` consumed yet."""
        return str(self._exp.buffer)

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


@dataclass(frozen=True)
class CommandResult:
    status: int
    output: str

    def __iter__(self) -> Any:  # (status, output) unpacking
        return iter((self.status, self.output))


def _console_closed(what: str) -> NoReturn:
    raise MachineDied(f"{what}: the console closed")


class Shell:
    """Shell commands over a ``Console``: framed, bounded in time, checked for kernel reports.

    ``alive`` says whether the other end (QEMU) still runs; ``died(what)``
    raises the error for its end; ``error_kw()`` adds context (command line,
    log path...) to every error.  A report is raised once per ``Shell``.
    """

    def __init__(
        self,
        console: Console,
        *,
        command_timeout: float = 60.0,
        timeout_scale: float = 1.0,
        alive: Callable[[], bool] = lambda: True,
        died: Callable[[str], NoReturn] = _console_closed,
        error_kw: Callable[[], dict[str, Any]] = dict,
        crash_settle: float = 2.0,
    ) -> None:
        self.console = console
        self.command_timeout = command_timeout
        self.timeout_scale = timeout_scale
        self._alive = alive
        self._died = died
        self._error_kw = error_kw
        self._crash_settle = crash_settle
        self._crash_reported = False

    def _kw(self) -> dict[str, Any]:
        return {"console_tail": self.console.drain.tail(), **self._error_kw()}

    @property
    def crash_pending(self) -> bool:
        """The kernel reported a failure that no GuestCrash has carried yet."""
        return self.console.drain.crash is not None and not self._crash_reported

    def take_crash(self, settle: float | None = None) -> CrashReport | None:
        """The report no GuestCrash carried (marked carried now), after its call trace had
        ``settle`` seconds (default: the shell's) to arrive; None if there is none."""
        drain = self.console.drain
        if not self.crash_pending:
            return None
        deadline = time.monotonic() + (self._crash_settle if settle is None else settle)
        while time.monotonic() < deadline and not drain.eof.is_set():
            time.sleep(0.1)
        self._crash_reported = True
        return drain.crash_report()

    def check_crash(self) -> None:
        """Raise GuestCrash if the kernel has reported a failure on the console."""
        drain = self.console.drain
        if drain.crash is None or self._crash_reported:
            return
        # let the rest of the report (call trace) arrive
        deadline = time.monotonic() + self._crash_settle
        while time.monotonic() < deadline and not drain.eof.is_set():
            time.sleep(0.1)
        report = drain.crash_report()
        assert report is not None
        self._crash_reported = True
        raise GuestCrash(str(report), marker=report.kind, excerpt=report.excerpt, **self._kw())

    def expect(self, pattern: Any, timeout: float, *, what: str, command: str = "") -> int:
        """Wait for ``pattern`` (or a list: the index of the one seen); GuestCrash,
        ConsoleTimeout or ``died`` on the way.

        ``timeout`` is for the distribution's kernel, scaled by ``timeout_scale`` (the
        config's: the debug kernel is much slower)."""
        timeout *= self.timeout_scale
        deadline = time.monotonic() + timeout
        while True:
            self.check_crash()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConsoleTimeout(
                    f"{what}: no answer within {timeout:.0f} s",
                    command=command,
                    timeout=timeout,
                    **self._kw(),
                )
            try:
                return self.console.expect(pattern, timeout=min(0.5, remaining))
            except pexpect.TIMEOUT:
                if not self._alive():
                    self._died(what)
            except pexpect.EOF:
                self.check_crash()
                self._died(what)

    def converse(
        self,
        command: str,
        prompt: re.Pattern[str] | None,
        answer: Callable[[re.Match[str]], str | None] = lambda m: None,
        *,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run one command line that asks the host for things: each output line
        ``prompt`` matches goes to ``answer``, whose string (if any) is typed to the
        command's stdin.  ``timeout`` bounds each wait, not the whole command;
        the output has the prompts in it.  ``run`` is this without a prompt."""
        if "\n" in command:
            raise ValueError("a command is a single command line")
        timeout = self.command_timeout if timeout is None else timeout
        console = self.console
        line, start, end = console.framed(command)
        what = f"command {command!r}"
        try:
            console.send(line)
        except OSError:  # the other end closed the console: it is gone or going
            self._died(what)
        self.expect(start, timeout, what=what, command=command)
        chunks: list[str] = []
        while True:
            seen = self.expect([end, prompt] if prompt else end, timeout, what=what,
                               command=command)  # fmt: skip
            chunks.append(console.before)
            if seen == 0:
                break
            chunks.append(console.match.group(0))
            reply = answer(console.match)
            if reply is not None:
                console.send(reply)
        status = int(console.match.group(1))
        self.check_crash()
        output = "".join(chunks).replace("\r\n", "\n").replace("\r", "")
        return CommandResult(status, output)

    def run(
        self, command: str, *, timeout: float | None = None, check: bool = False
    ) -> CommandResult:
        """Run one command line: (exit status, output).  See ``Machine.run``."""
        status, output = self.converse(command, None, timeout=timeout)
        if check and status != 0:
            raise CommandFailed(
                f"command {command!r} exited with status {status}: {output.strip()[-500:]}",
                command=command,
                status=status,
                output=output,
                **self._kw(),
            )
        return CommandResult(status, output)
