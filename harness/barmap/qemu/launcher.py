"""The one way the harness starts a QEMU and the one way it stops it.

``QEMUProcess`` is one QEMU process (after QEMU's python/qemu/machine
``QEMUMachine``): the harness listens on Unix sockets in a private runtime
directory first, then starts QEMU, which connects to each of them as a client
(so no socket path is raced for and no early byte is lost); its QMP monitor is
a ``Monitor``, its stdout and stderr go to a file.  QEMU gets SIGKILL from the
kernel if the thread that started it dies (PR_SET_PDEATHSIG), so no QEMU
outlives the harness.  ``stop()`` is QMP ``quit``, then SIGTERM, then SIGKILL.

``Machine`` (a guest) runs its QEMUs with it and ``QTest`` (qtest, no guest)
is one, with the qtest socket added::

    proc = QEMUProcess()                  # or QEMUProcess(rundir) to keep the directory
    console, qmp = proc.listen("console"), proc.listen_qmp()
    proc.launch(build_cmdline(..., console_socket=console, qmp_socket=qmp))
    proc.sockets["console"], proc.monitor.cmd("cont"), ...
    proc.stop()
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qemu.qmp.legacy import QEMUMonitorProtocol

from barmap.errors import MachineError, QEMUStartError
from barmap.qemu.qmp import Monitor
from barmap.qemu.rundir import RunDir

CONNECT_TIMEOUT = 30.0
_PR_SET_PDEATHSIG = 1
_PR_SET_THP_DISABLE = 41

# A QEMU built with sanitizers (scripts/qemu.sh SUITE asan) stops at its first
# report, so that a UBSan finding fails the run instead of scrolling by; leak
# checking at exit is off (QEMU does not free everything when it quits).  A
# value the user set wins; other QEMUs ignore these.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
    "UBSAN_OPTIONS": "halt_on_error=1:abort_on_error=1:print_stacktrace=1",
}

# Every QEMU this process started, for the test suite's leak check.
STARTED_PIDS: set[int] = set()


def _child_setup(huge_pages: bool) -> None:
    """In the child before exec: die with the parent; without ``huge_pages``, no
    transparent huge pages for the process (both are kept across exec)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not huge_pages:
        libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0)


def leftover_qemu_pids() -> list[int]:
    """QEMU processes this process started that are still running (not zombies)."""
    alive = []
    for pid in sorted(STARTED_PIDS):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive


class QEMUProcess:
    """One QEMU process with its sockets connected and its QMP monitor (``monitor``).

    The runtime directory holds the sockets and ``qemu.stderr``.  Given one
    (``rundir``), it stays the caller's (a machine restarted from a snapshot
    keeps it); without, the process makes its own and ``stop()`` removes it.
    """

    connect_timeout = CONNECT_TIMEOUT

    def __init__(self, rundir: Path | None = None) -> None:
        self.rundir: Path | None = Path(rundir) if rundir is not None else None
        self._own_rundir: RunDir | None = None
        self.cmdline: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.sockets: dict[str, socket.socket] = {}
        self._listeners: dict[str, socket.socket] = {}
        self._qmp_server: QEMUMonitorProtocol | None = None
        self._monitor: Monitor | None = None

    # -- before launch ------------------------------------------------------

    def _dir(self) -> Path:
        if self.rundir is None:
            self._own_rundir = RunDir()
            self.rundir = self._own_rundir.path
        return self.rundir

    def socket_path(self, name: str) -> Path:
        return self._dir() / f"{name}.sock"

    @property
    def stderr_path(self) -> Path:
        return self._dir() / "qemu.stderr"

    def listen(self, name: str) -> Path:
        """A socket QEMU will connect to (a ``-chardev socket,path=``); its path."""
        path = self.socket_path(name)
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(1)
        self._listeners[name] = listener
        return path

    def listen_qmp(self) -> Path:
        """The socket QEMU's QMP monitor will connect to; its path."""
        path = self.socket_path("qmp")
        if self._qmp_server is None:
            path.unlink(missing_ok=True)
            self._qmp_server = QEMUMonitorProtocol(str(path), server=True)
        return path

    # -- launch ---------------------------------------------------------------

    def launch(self, cmdline: Sequence[str], *, huge_pages: bool = True) -> None:
        """Start ``cmdline``; accept every socket listened on, then the QMP handshake.

        ``huge_pages=False`` runs QEMU without transparent huge pages (PR_SET_THP_DISABLE):
        QEMU asks for them for guest RAM and its translation buffer, which under TCG buys
        nothing and costs a 2 MiB clear at each first touch (``Machine.launch``).
        Raises QEMUStartError with QEMU's own last words when it exits or does
        not connect within ``connect_timeout``; nothing is left running then.
        """
        self.cmdline = [str(a) for a in cmdline]
        try:
            with open(self.stderr_path, "wb") as stderr:
                try:
                    self.proc = subprocess.Popen(
                        self.cmdline,
                        stdin=subprocess.DEVNULL,
                        stdout=stderr,
                        stderr=stderr,
                        preexec_fn=functools.partial(_child_setup, huge_pages),
                        env={**SANITIZER_ENV, **os.environ},
                    )
                except OSError as exc:
                    raise QEMUStartError(
                        f"cannot run {self.cmdline[0]}: {exc.strerror}", **self.error_kw()
                    ) from None
            STARTED_PIDS.add(self.proc.pid)
            deadline = time.monotonic() + self.connect_timeout
            for name, listener in list(self._listeners.items()):
                self.sockets[name] = self._accept(name, listener, deadline)
            if self._qmp_server is not None:
                try:
                    self._qmp_server.accept(timeout=max(deadline - time.monotonic(), 1.0))
                except Exception as exc:  # qemu.qmp raises several types here
                    raise self.start_error(f"QMP handshake failed: {exc}") from None
                self._monitor = Monitor(self._qmp_server, self._dir())
        except BaseException:
            self.stop(timeout=1.0)
            raise
        finally:
            for listener in self._listeners.values():
                listener.close()
            self._listeners.clear()

    def _accept(self, name: str, listener: socket.socket, deadline: float) -> socket.socket:
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self.start_error(f"QEMU exited with status {self.proc.returncode}")
            ready, _, _ = select.select([listener], [], [], 0.1)
            if ready:
                conn, _ = listener.accept()
                return conn
        raise self.start_error(
            f"QEMU did not connect its {name} socket within {self.connect_timeout:.0f} s"
        )

    # -- state ----------------------------------------------------------------

    @property
    def monitor(self) -> Monitor:
        if self._monitor is None:
            raise MachineError("QEMU is not running")
        return self._monitor

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr(self) -> str:
        """What QEMU wrote to stdout and stderr so far ("" once its own directory is gone)."""
        if self.rundir is None:
            return ""
        try:
            return (self.rundir / "qemu.stderr").read_text(errors="replace")
        except OSError:
            return ""

    def error_kw(self) -> dict[str, Any]:
        """The MachineError fields this process knows: command line and stderr."""
        return {"cmdline": self.cmdline, "stderr": self.stderr()}

    def start_error(self, message: str) -> QEMUStartError:
        """A QEMUStartError ending with QEMU's last line on stderr (its reason, usually)."""
        if self.is_running():
            assert self.proc is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1)
        stderr = self.stderr().strip()
        if stderr:
            message = f"{message}: {stderr.splitlines()[-1]}"
        return QEMUStartError(message, **self.error_kw())

    # -- stop -----------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> int | None:
        """QMP ``quit``, then SIGTERM, then SIGKILL; sockets and monitor closed; exit status.

        A runtime directory this process made is removed.
        """
        proc = self.proc
        asked = False
        if proc is not None and proc.poll() is None and self._monitor is not None:
            asked = True
            with contextlib.suppress(Exception):  # QEMU may close before it answers
                self._monitor.cmd("quit")
        if proc is not None:
            # without a quit sent, nothing makes QEMU exit by itself: signal at once
            first = timeout if asked else 0.0
            for sig, wait in ((None, first), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                if sig is not None and proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._qmp_server is not None:
            with contextlib.suppress(Exception):
                self._qmp_server.close()
        for sock in self.sockets.values():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.sockets.clear()
        self._qmp_server = None
        self._monitor = None
        if self._own_rundir is not None:
            self._own_rundir.remove()
            self._own_rundir = self.rundir = None
        return proc.returncode if proc is not None else None
