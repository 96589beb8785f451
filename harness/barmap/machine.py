"""``Machine``: one barmap VM, from a typed config to a clean shutdown.

    with Machine(config, log_dir=Path("build/logs/demo")) as vm:
        status, out = vm.run("cat /proc/version")

QEMU starts paused with its QMP and console sockets connected to sockets the
harness listens on in a private 0700 directory; the console drain thread is
running before ``cont``, so no console byte is lost.  Shutdown is QMP ``quit``,
then SIGTERM, then SIGKILL; QEMU also gets SIGKILL from the kernel if the
harness process dies (PR_SET_PDEATHSIG), so no QEMU outlives it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import pexpect
from qemu.qmp.legacy import QEMUMonitorProtocol

from barmap.accel import resolve_accel
from barmap.cmdline import build_cmdline
from barmap.config import MachineConfig
from barmap.console import Console, ConsoleDrain
from barmap.errors import (
    CommandFailed,
    ConsoleTimeout,
    GuestCrash,
    MachineDied,
    MachineError,
    QEMUStartError,
)
from barmap.overlay import initrd_with_overlay
from barmap.qmp import Monitor
from barmap.ssh import SshKeys, SshSession

__all__ = ["CommandResult", "Machine", "MachineConfig"]

BOOT_MARKER = "barmap-guest: init done"
CONNECT_TIMEOUT = 30.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# Every QEMU this process started, for the test suite's leak check.
STARTED_PIDS: set[int] = set()


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


@dataclass(frozen=True)
class CommandResult:
    status: int
    output: str

    def __iter__(self) -> Any:  # (status, output) unpacking
        return iter((self.status, self.output))


class Machine:
    """A running barmap VM (a context manager)."""

    def __init__(self, config: MachineConfig, *, log_dir: Path | None = None) -> None:
        config.validate()
        self.config = config
        self.log_dir = Path(log_dir) if log_dir else None
        self.accel = ""
        self.cmdline: list[str] = []
        self.boot_seconds = 0.0
        self._rundir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._console_sock: socket.socket | None = None
        self._drain: ConsoleDrain | None = None
        self._console: Console | None = None
        self._monitor: Monitor | None = None
        self._crash_reported = False
        self.ssh_port: int | None = None
        self._ssh_keys: SshKeys | None = None
        self._ssh: SshSession | None = None
        self._initrd: Path | None = None
        self._saved_sigterm: Any = None

    # -- life cycle -------------------------------------------------------

    def __enter__(self) -> Machine:
        self._hook_sigterm()
        try:
            self.start()
        except BaseException:
            self.shutdown()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()
        if self._saved_sigterm is not None:
            signal.signal(signal.SIGTERM, self._saved_sigterm)
            self._saved_sigterm = None

    def _hook_sigterm(self) -> None:
        """Turn a default SIGTERM into SystemExit while the context is open, so it cleans up."""
        self._saved_sigterm = None
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

            def _exit(signum: int, frame: object) -> None:
                raise SystemExit(128 + signum)

            self._saved_sigterm = signal.signal(signal.SIGTERM, _exit)

    @property
    def console_log(self) -> Path:
        base = self.log_dir if self.log_dir else self._rundir
        assert base is not None
        return base / "console.log"

    @property
    def rundir(self) -> Path:
        assert self._rundir is not None, "machine not started"
        return self._rundir

    def start(
        self, *, wait_boot: bool = True, paused: bool = False, quiet_shell: bool = True
    ) -> None:
        """Launch QEMU; unless ``paused``, run the guest and (``wait_boot``) wait for its shell.

        ``quiet_shell`` turns the console's echo off for ``run()``; an
        interactive session keeps it.
        """
        self._prepare()
        self._launch()
        if paused:
            return
        self.qmp.cmd("cont")
        if wait_boot:
            self.wait_boot(quiet_shell=quiet_shell)

    def _prepare(self) -> None:
        """What outlives a QEMU restart: the runtime directory, the log, the SSH keys."""
        self._rundir = Path(tempfile.mkdtemp(prefix="barmap-run-"))
        os.chmod(self._rundir, 0o700)
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.console_log.write_bytes(b"")
        self.accel = resolve_accel(self.config.accel, self.config.qemu, self.config.kernel)
        if self.config.ssh:
            self._ssh_keys = SshKeys(self._rundir)
            self._initrd = initrd_with_overlay(
                self.config.initrd, self._ssh_keys.overlay(), self._rundir / "initrd.img"
            )

    def _launch(self, incoming: bool = False) -> None:
        """Start QEMU paused, connected to our console and QMP sockets."""
        qmp_path = self.rundir / "qmp.sock"
        console_path = self.rundir / "console.sock"
        for path in (qmp_path, console_path):
            path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(console_path))
        listener.listen(1)
        qmp = QEMUMonitorProtocol(str(qmp_path), server=True)
        self.ssh_port = _free_port() if self.config.ssh else None
        self.cmdline = build_cmdline(
            self.config,
            accel=self.accel,
            qmp_socket=qmp_path,
            console_socket=console_path,
            ssh_port=self.ssh_port,
            initrd=self._initrd,
            incoming=incoming,
        )
        with open(self.rundir / "qemu.stderr", "wb") as stderr:
            self._proc = subprocess.Popen(
                self.cmdline,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                preexec_fn=_die_with_parent,
            )
        STARTED_PIDS.add(self._proc.pid)
        try:
            self._console_sock = self._accept(listener)
        finally:
            listener.close()
        self._drain = ConsoleDrain(self._console_sock, self.console_log)
        self._drain.start()
        self._console = Console(self._console_sock, self._drain)
        try:
            qmp.accept(timeout=CONNECT_TIMEOUT)
        except Exception as exc:  # qemu.qmp raises several types here
            raise self._start_error(f"QMP handshake failed: {exc}") from None
        self._monitor = Monitor(qmp, self.rundir)

    def _accept(self, listener: socket.socket) -> socket.socket:
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise self._start_error(f"QEMU exited with status {self._proc.returncode}")
            ready, _, _ = select.select([listener], [], [], 0.1)
            if ready:
                conn, _ = listener.accept()
                return conn
        raise self._start_error(f"QEMU did not connect its console within {CONNECT_TIMEOUT:.0f} s")

    def _stderr(self) -> str:
        if self._rundir is None:
            return ""
        try:
            return (self._rundir / "qemu.stderr").read_text(errors="replace")
        except OSError:
            return ""

    def _error_kw(self) -> dict[str, Any]:
        return {
            "cmdline": self.cmdline,
            "console_tail": self._drain.tail() if self._drain else "",
            "log_path": str(self.console_log) if self.log_dir else "",
            "stderr": self._stderr(),
        }

    def _start_error(self, message: str) -> QEMUStartError:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1)
        stderr = self._stderr().strip()
        if stderr:
            message = f"{message}: {stderr.splitlines()[-1]}"
        return QEMUStartError(message, **self._error_kw())

    def wait_boot(self, *, quiet_shell: bool = True) -> float:
        """Wait for the guest's init to hand over its shell; returns seconds since ``cont``."""
        start = time.monotonic()
        self._expect(BOOT_MARKER, self.config.boot_timeout, what="guest boot")
        if quiet_shell:
            # no echo: busybox's line editing turns off too, so output is exactly what ran
            self._console_ready()
        self.boot_seconds = time.monotonic() - start
        return self.boot_seconds

    def _console_ready(self) -> None:
        assert self._console is not None
        self._console.send("\nstty -echo\n")
        self.run("true", check=True, timeout=self.config.command_timeout)

    @property
    def pid(self) -> int | None:
        """QEMU's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def shutdown(self, timeout: float = 10.0) -> None:
        """QMP quit, then SIGTERM, then SIGKILL; sockets closed, runtime directory removed."""
        self._stop_qemu(timeout)
        if self.log_dir and self._rundir:
            stderr = self._stderr()
            if stderr:
                (self.log_dir / "qemu.stderr").write_text(stderr)
        if self._rundir is not None:
            shutil.rmtree(self._rundir, ignore_errors=True)
        self._rundir = None

    def _stop_qemu(self, timeout: float = 10.0) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None and self._monitor is not None:
            with contextlib.suppress(Exception):
                self._monitor.cmd("quit")
        if proc is not None:
            for sig, wait in ((None, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                if sig is not None and proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = None
        if self._monitor is not None:
            with contextlib.suppress(Exception):
                self._monitor.close()
        if self._console_sock is not None:
            with contextlib.suppress(OSError):
                self._console_sock.shutdown(socket.SHUT_RDWR)
            self._console_sock.close()
        if self._drain is not None:
            self._drain.join(timeout=5)
        if self._console is not None:
            self._console.close()
        self._proc = self._console_sock = self._drain = self._console = self._monitor = None
        self._crash_reported = False

    # -- snapshots ------------------------------------------------------------

    def save_state(self, path: Path, timeout: float = 120.0) -> float:
        """Write the whole VM state (a migration stream) to ``path``; the VM runs on.

        Returns the seconds it took.  ``restore_state`` brings it back.
        """
        start = time.monotonic()
        self.qmp.cmd("migrate", uri=f"exec:cat > {shlex.quote(str(path))}")
        self._wait_migration(timeout, "saving the VM state")
        self.qmp.cmd("cont")
        return time.monotonic() - start

    def restore_state(self, path: Path, timeout: float = 120.0) -> float:
        """Replace the running VM by the state saved in ``path`` (QEMU restarts with -incoming).

        Returns the seconds from stopping the old QEMU to a responsive guest shell.
        """
        if not Path(path).is_file():
            raise MachineError(f"no saved state at {path}")
        start = time.monotonic()
        self._stop_qemu()
        self._launch(incoming=True)
        self.qmp.cmd("migrate-incoming", uri=f"exec:cat {shlex.quote(str(path))}")
        self._wait_migration(timeout, "restoring the VM state")
        self.qmp.cmd("cont")
        self.run("true", check=True)
        return time.monotonic() - start

    def _wait_migration(self, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.qmp.cmd("query-migrate")
            status = info.get("status", "")
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise MachineError(
                    f"{what} failed: {info.get('error-desc', status)}", **self._error_kw()
                )
            if not self.is_running():
                self._died(what)
            time.sleep(0.05)
        raise MachineError(f"{what}: not done within {timeout:.0f} s", **self._error_kw())

    # -- the console ------------------------------------------------------

    @property
    def console(self) -> Console:
        if self._console is None:
            raise MachineError("machine not started")
        return self._console

    @property
    def drain(self) -> ConsoleDrain:
        if self._drain is None:
            raise MachineError("machine not started")
        return self._drain

    def console_text(self) -> str:
        return self._drain.text() if self._drain else ""

    def check_crash(self) -> None:
        """Raise GuestCrash if the kernel has reported a failure on the console."""
        drain = self.drain
        if drain.crash is None or self._crash_reported:
            return
        # let the rest of the report (call trace) arrive
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not drain.eof.is_set():
            time.sleep(0.1)
        report = drain.crash_report()
        assert report is not None
        self._crash_reported = True
        raise GuestCrash(
            str(report), marker=report.kind, excerpt=report.excerpt, **self._error_kw()
        )

    def _expect(self, pattern: Any, timeout: float, *, what: str, command: str = "") -> None:
        console = self.console
        deadline = time.monotonic() + timeout
        while True:
            self.check_crash()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConsoleTimeout(
                    f"{what}: no answer within {timeout:.0f} s",
                    command=command,
                    timeout=timeout,
                    **self._error_kw(),
                )
            try:
                console.expect(pattern, timeout=min(0.5, remaining))
                return
            except pexpect.TIMEOUT:
                if not self.is_running():
                    self._died(what)
            except pexpect.EOF:
                self.check_crash()
                self._died(what)

    def _died(self, what: str) -> NoReturn:
        assert self._proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=2)
        self.check_crash()
        if self._monitor is not None:
            with contextlib.suppress(Exception):
                self._monitor.poll_events()
            if any(e.get("event") == "GUEST_PANICKED" for e in self._monitor.events):
                raise GuestCrash(
                    f"{what}: the guest panicked (pvpanic)", marker="panic", **self._error_kw()
                )
        status = self._proc.returncode
        raise MachineDied(f"{what}: QEMU exited (status {status})", **self._error_kw())

    def run(
        self, command: str, *, timeout: float | None = None, check: bool = False
    ) -> CommandResult:
        """Run one shell command line on the serial console: (exit status, output).

        Raises ConsoleTimeout, MachineDied, GuestCrash (a kernel failure marker
        appeared, even if the command itself succeeded), and with ``check``
        CommandFailed on a non-zero status.
        """
        if "\n" in command:
            raise ValueError("run() takes a single command line")
        timeout = self.config.command_timeout if timeout is None else timeout
        console = self.console
        line, start, end = console.framed(command)
        what = f"command {command!r}"
        try:
            console.send(line)
        except OSError:  # QEMU closed the console: it is gone or going
            self._died(what)
        self._expect(start, timeout, what=what, command=command)
        self._expect(end, timeout, what=what, command=command)
        output = console.before.replace("\r\n", "\n").replace("\r", "")
        status = int(console.match.group(1))
        self.check_crash()
        if check and status != 0:
            raise CommandFailed(
                f"{what} exited with status {status}: {output.strip()[-500:]}",
                command=command,
                status=status,
                output=output,
                **self._error_kw(),
            )
        return CommandResult(status, output)

    # -- SSH ----------------------------------------------------------------

    def ssh(self, timeout: float = 60.0) -> SshSession:
        """The SSH session to the guest (``MachineConfig(ssh=True)``), connected on first use."""
        if not self.config.ssh or self._ssh_keys is None or self.ssh_port is None:
            raise MachineError("this machine was started without ssh=True")
        if self._ssh is None:
            self._ssh = SshSession(self.ssh_port, self._ssh_keys, timeout=timeout)
        return self._ssh

    # -- QMP ----------------------------------------------------------------

    @property
    def qmp(self) -> Monitor:
        if self._monitor is None:
            raise MachineError("machine not started")
        return self._monitor


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
