"""QEMU's human monitor (HMP) of a running barmap session, from another terminal.

An interactive session (``barmap run``, ``barmap debug``) gives its QEMU a
second monitor, HMP on ``hmp.sock`` in its runtime directory (the harness keeps
QMP for itself), and describes itself in ``session.json`` there: its name, the
harness's and QEMU's process ids, the gdb port, the log directory.
``barmap monitor [NAME]`` finds the live sessions of this user (a runtime
directory whose lock is held) and connects to one::

    barmap monitor                       # the only running session, interactively
    barmap monitor debug-4242 -c 'info pci' -c 'xp /4xw 0xfe000000'
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from barmap.errors import BarmapError
from barmap.rundir import LOCK, PREFIX

SESSION_FILE = "session.json"
HMP_SOCKET = "hmp.sock"
PROMPT = b"(qemu) "
# what QEMU's readline draws around an echoed line: cursor moves, erase to end of line
_TERMINAL_CODES = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]|\x1b[DEM]")


@dataclass(frozen=True)
class SessionInfo:
    name: str
    rundir: Path
    harness_pid: int
    qemu_pid: int
    gdb_port: int | None
    log_dir: str
    command: str

    @property
    def hmp_socket(self) -> Path:
        return self.rundir / HMP_SOCKET


def write_session(rundir: Path, **fields: object) -> Path:
    """Describe a running session in its runtime directory (``session.json``)."""
    path = rundir / SESSION_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(fields))
    tmp.replace(path)
    return path


def _live(rundir: Path) -> bool:
    """Whether a harness still holds the directory's lock."""
    try:
        fd = os.open(rundir / LOCK, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def sessions(parent: Path | None = None) -> list[SessionInfo]:
    """This user's running sessions that have a monitor, oldest first."""
    found = []
    for rundir in Path(parent or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            if rundir.stat().st_uid != os.getuid():
                continue
            data = json.loads((rundir / SESSION_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not _live(rundir) or not (rundir / HMP_SOCKET).exists():
            continue
        found.append(
            SessionInfo(
                name=str(data.get("name", rundir.name)),
                rundir=rundir,
                harness_pid=int(data.get("harness_pid", 0)),
                qemu_pid=int(data.get("qemu_pid", 0)),
                gdb_port=data.get("gdb_port"),
                log_dir=str(data.get("log_dir", "")),
                command=str(data.get("command", "")),
            )
        )
    return sorted(found, key=lambda s: (s.rundir.stat().st_mtime, s.name))


def find_session(name: str | None, parent: Path | None = None) -> SessionInfo:
    """The session called ``name`` (or whose name starts with it); the only one without."""
    live = sessions(parent)
    listing = ", ".join(s.name for s in live) or "none"
    if name is None:
        if len(live) == 1:
            return live[0]
        if not live:
            raise BarmapError("no barmap session with a monitor is running (barmap run/debug)")
        raise BarmapError(f"{len(live)} sessions are running, name one: {listing}")
    exact = [s for s in live if s.name == name]
    if exact:
        return exact[0]
    prefix = [s for s in live if s.name.startswith(name)]
    if len(prefix) == 1:
        return prefix[0]
    raise BarmapError(f"no single session named {name!r} (running: {listing})")


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
