"""``Machine``: one barmap VM, from a typed config to a clean shutdown.

    with Machine(config, log_dir=Path("build/logs/demo")) as vm:
        status, out = vm.run("cat /proc/version")

QEMU is started by the shared launcher (``barmap.qemu.launcher``), paused, with its
console and QMP connected to sockets in a private, locked runtime directory
(``barmap.qemu.rundir``); the console drain thread is running before ``cont``, so
no console byte is lost.  Commands go through ``barmap.guest.console.Shell``,
snapshots as migration streams into a file, SSH through ``barmap.guest.ssh``.  The
context manager turns SIGTERM into a clean exit; QEMU dies with the harness
even on SIGKILL, and the next harness sweeps the directory it left.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import socket
import subprocess
import threading
import time
import weakref
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

from barmap.build.paths import ssh_initrd
from barmap.config import DT_POOL, MachineConfig
from barmap.errors import ConsoleTimeout, GuestCrash, MachineDied, MachineError, QEMUStartError
from barmap.guest.console import CommandResult, Console, ConsoleDrain, Shell
from barmap.guest.crash import CrashReport
from barmap.guest.overlay import files_overlay, initrd_with_overlay
from barmap.guest.ssh import SshKeys, SshSession
from barmap.qemu.accel import resolve_accel, wants_huge_pages
from barmap.qemu.cmdline import build_cmdline, hardware_args
from barmap.qemu.devicetree import DeviceTreeError, virt_dtb
from barmap.qemu.launcher import QEMUProcess
from barmap.qemu.qmp import Monitor
from barmap.qemu.rundir import RunDir

__all__ = ["CommandResult", "Machine", "MachineConfig"]

BOOT_MARKER = "barmap-guest: init done"
INIT_MARKER = "barmap-guest: init start"  # the kernel has handed over to the initramfs


# every Machine of this process, for who checks them all (the pytest plugin, at each test's end)
_MACHINES: weakref.WeakSet[Machine] = weakref.WeakSet()


def all_machines() -> list[Machine]:
    return list(_MACHINES)


class Machine:
    """A running barmap VM (a context manager)."""

    def __init__(self, config: MachineConfig, *, log_dir: Path | None = None) -> None:
        config.validate()
        self.config = config
        self.log_dir = Path(log_dir) if log_dir else None
        self.accel = ""
        self.boot_seconds = 0.0
        # monotonic times of the last start: launch, cont, first byte, init start, init
        # done, shell (``boot_phases`` gives them relative to the launch)
        self.timeline: dict[str, float] = {}
        self.ssh_port: int | None = None
        self._rundir: RunDir | None = None
        self._proc: QEMUProcess | None = None
        self._drain: ConsoleDrain | None = None
        self._shell: Shell | None = None
        self._ssh_keys: SshKeys | None = None
        self._ssh: SshSession | None = None
        self._initrd: Path | None = None
        self._saved_sigterm: Any = None
        self._unreported: list[CrashReport] = []  # of QEMUs gone, never raised
        _MACHINES.add(self)

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
    def rundir(self) -> Path:
        assert self._rundir is not None, "machine not started"
        return self._rundir.path

    @property
    def console_log(self) -> Path:
        return (self.log_dir if self.log_dir else self.rundir) / "console.log"

    @property
    def trace_log(self) -> Path:
        """Where QEMU writes the trace events of ``config.trace`` (kept with the console log)."""
        return (self.log_dir if self.log_dir else self.rundir) / "trace.log"

    @property
    def cmdline(self) -> list[str]:
        """The QEMU command line of the current (or last) QEMU."""
        return self._proc.cmdline if self._proc is not None else []

    def start(
        self, *, wait_boot: bool = True, paused: bool = False, quiet_shell: bool = True
    ) -> None:
        """Launch QEMU; unless ``paused``, run the guest and (``wait_boot``) wait for its shell.

        ``quiet_shell`` turns the console's echo off for ``run()``; an
        interactive session keeps it.
        """
        self._prepare()
        self.timeline = {"launch": time.monotonic()}
        self.launch()
        if paused:
            return
        self.timeline["cont"] = time.monotonic()
        self.qmp.cmd("cont")
        if wait_boot:
            self.wait_boot(quiet_shell=quiet_shell)

    def _prepare(self) -> None:
        """What outlives a QEMU restart: the runtime directory, the log, the SSH keys."""
        self._rundir = RunDir()
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.console_log.write_bytes(b"")
        self.accel = resolve_accel(
            self.config.accel, self.config.qemu, self.config.kernel, self.config.arch
        )
        pieces = files_overlay(self.config.files)
        if self.config.ssh:
            self._ssh_keys = SshKeys(self.rundir)
            # the SSH server, when the image keeps it apart (a user's own image may hold it)
            server = ssh_initrd(self.config.initrd)
            pieces += self._ssh_keys.overlay() + (server.read_bytes() if server.is_file() else b"")
        if pieces:
            self._initrd = initrd_with_overlay(
                self.config.initrd, pieces, self.rundir / "initrd.img"
            )

    def launch(self, *, incoming: bool = False) -> None:
        """Start a QEMU for this machine, paused (``incoming``: waiting for a saved state)."""
        proc = self._proc = QEMUProcess(self.rundir)
        console_path = proc.listen("console")
        qmp_path = proc.listen_qmp()
        self.ssh_port = _free_port() if self.config.ssh else None
        cmdline = build_cmdline(
            self.config,
            accel=self.accel,
            qmp_socket=qmp_path,
            console_socket=console_path,
            ssh_port=self.ssh_port,
            initrd=self._initrd,
            incoming=incoming,
            trace_log=self.trace_log if self.config.trace else None,
            hmp_socket=self.rundir / "hmp.sock" if self.config.hmp_socket else None,
            dtb=self._device_tree(),
        )
        try:
            proc.launch(cmdline, huge_pages=wants_huge_pages(self.accel))
        except QEMUStartError as exc:
            raise QEMUStartError(exc.message, **self.error_kw()) from None
        sock = proc.sockets["console"]
        self._drain = ConsoleDrain(sock, self.console_log, milestones=(INIT_MARKER, BOOT_MARKER))
        self._drain.start()
        self._shell = Shell(
            Console(sock, self._drain),
            command_timeout=self.config.command_timeout,
            timeout_scale=self.config.timeout_scale,
            alive=self._guest_can_answer,
            died=self.died,
            error_kw=self.error_kw,
        )

    def _device_tree(self) -> Path | None:
        """virt's tree with the reservation and the DMA pool in it (made once per run dir)."""
        c = self.config
        if c.machine != "virt" or c.reservation is None:
            return None
        out = self.rundir / "virt.dtb"
        if not out.is_file():
            machine = hardware_args(replace(c, devices=()), self.accel)
            try:
                virt_dtb(c.qemu, machine, out, (c.reservation.base, c.reservation.size),
                         (DT_POOL.base, DT_POOL.size))  # fmt: skip
            except DeviceTreeError as exc:
                raise QEMUStartError(f"virt's device tree: {exc}", **self.error_kw()) from None
        return out

    def error_kw(self) -> dict[str, Any]:
        """The context every MachineError of this machine carries."""
        return {
            **(self._proc.error_kw() if self._proc is not None else {}),
            "console_tail": self._drain.tail() if self._drain else "",
            "log_path": str(self.console_log) if self.log_dir else "",
        }

    def wait_boot(self, *, quiet_shell: bool = True) -> float:
        """Wait for the guest's init to hand over its shell; returns seconds since ``cont``."""
        start = time.monotonic()
        self.shell.expect(BOOT_MARKER, self.config.boot_timeout, what="guest boot")
        if quiet_shell:
            # no echo: busybox's line editing turns off too, so output is exactly what ran
            self.console.send("\nstty -echo\n")
            self.run("true", check=True)
        self.timeline["shell"] = time.monotonic()
        self.boot_seconds = self.timeline["shell"] - start
        return self.boot_seconds

    def boot_phases(self) -> dict[str, float]:
        """Seconds from QEMU's launch to each boot milestone the last start reached.

        ``qemu_ready`` (QEMU started, sockets and QMP connected), ``first_byte``
        (the first console output), ``init_start`` (the kernel has started the
        initramfs' init), ``init_done`` (the init script is through), ``shell`` (a
        command ran): all measured on the host, as a user waits for them.
        """
        t = dict(self.timeline)
        if self._drain is not None:
            t["first_byte"] = self._drain.seen.get("", 0.0)
            t["init_start"] = self._drain.seen.get(INIT_MARKER, 0.0)
            t["init_done"] = self._drain.seen.get(BOOT_MARKER, 0.0)
        t0 = t.get("launch", 0.0)
        order = ("cont", "first_byte", "init_start", "init_done", "shell")
        names = {"cont": "qemu_ready"}
        return {names.get(k, k): round(t[k] - t0, 3) for k in order if t.get(k)}

    @property
    def pid(self) -> int | None:
        """QEMU's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.is_running()

    def stopped_by_error(self) -> str:
        """The run state QEMU stopped the guest in for good ("" while it can still run).

        QEMU keeps running when it cannot go on with the guest: a KVM emulation
        failure stops it in ``internal-error``, a failed disk write in ``io-error``.
        A stop by gdb, the monitor or a snapshot (``debug``, ``paused``...) is not one.
        """
        try:
            self.qmp.poll_events()
            runs = [e["event"] for e in self.qmp.events if e.get("event") in ("STOP", "RESUME")]
            if not runs or runs[-1] != "STOP":  # running: nothing to ask QEMU
                return ""
            status = str(self.qmp.cmd("query-status").get("status", ""))
        except Exception:  # QEMU going away: is_running() tells
            return ""
        return status if status in _ERROR_STATES else ""

    def _guest_can_answer(self) -> bool:
        return self.is_running() and not self.stopped_by_error()

    def shutdown(self, timeout: float = 10.0) -> None:
        """QMP quit, then SIGTERM, then SIGKILL; sockets closed, runtime directory removed."""
        self.stop_qemu(timeout)
        if self.log_dir and self._proc is not None and self._rundir is not None:
            stderr = self._proc.stderr()
            if stderr:
                (self.log_dir / "qemu.stderr").write_text(stderr)
        if self._rundir is not None:
            self._rundir.remove()
        self._rundir = None

    def stop_qemu(self, timeout: float = 10.0) -> None:
        """Stop this machine's QEMU; the runtime directory stays (for ``launch`` again)."""
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = None
        if self._proc is not None:
            self._proc.stop(timeout)
        if self._drain is not None:
            self._drain.join(timeout=5)
        if self._shell is not None:
            report = self._shell.take_crash(settle=0)  # the drain has ended: it is whole
            if report is not None:
                self._unreported.append(report)
            self._shell.console.close()
        self._drain = self._shell = None

    def unreported_crashes(self) -> list[CrashReport]:
        """Failure reports of this machine's kernel that no GuestCrash carried, whether its
        QEMU still runs or not; each is returned once."""
        reports, self._unreported = self._unreported, []
        if self._shell is not None:
            report = self._shell.take_crash()
            if report is not None:
                reports.append(report)
        return reports

    # -- snapshots: the whole VM state into a file and back (migration streams) --------

    def save_state(self, path: Path, timeout: float = 120.0) -> float:
        """Write the whole VM state to ``path`` (``migrate exec:cat > path``); the VM runs
        on.  Seconds it took."""
        start = time.monotonic()
        self.qmp.cmd("migrate", uri=f"exec:cat > {shlex.quote(str(path))}")
        self._wait_migration(timeout, "saving the VM state")
        self.qmp.cmd("cont")
        return time.monotonic() - start

    def restore_state(self, path: Path, timeout: float = 120.0) -> float:
        """Replace the running VM by the state saved in ``path``: a new QEMU in the same
        run dir with ``-incoming defer``.  Seconds from stopping the old QEMU to a
        responsive guest shell."""
        if not Path(path).is_file():
            raise MachineError(f"no saved state at {path}")
        start = time.monotonic()
        self.stop_qemu()
        self.launch(incoming=True)
        self.qmp.cmd("migrate-incoming", uri=f"exec:cat {shlex.quote(str(path))}")
        self._wait_migration(timeout, "restoring the VM state")
        self.qmp.cmd("cont")
        self.run("true", check=True)
        return time.monotonic() - start

    def _wait_migration(self, timeout: float, what: str) -> None:
        """Until ``query-migrate`` says completed; MachineError if it fails or QEMU dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.qmp.cmd("query-migrate")
            status = info.get("status", "")
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise MachineError(
                    f"{what} failed: {info.get('error-desc', status)}", **self.error_kw()
                )
            if not self.is_running():
                self.died(what)
            time.sleep(0.05)
        raise MachineError(f"{what}: not done within {timeout:.0f} s", **self.error_kw())

    # -- the console ------------------------------------------------------

    @property
    def shell(self) -> Shell:
        if self._shell is None:
            raise MachineError("machine not started")
        return self._shell

    @property
    def console(self) -> Console:
        return self.shell.console

    @property
    def drain(self) -> ConsoleDrain:
        return self.shell.console.drain

    def console_text(self) -> str:
        return self._drain.text() if self._drain else ""

    def check_crash(self) -> None:
        """Raise GuestCrash if the kernel has reported a failure on the console."""
        self.shell.check_crash()

    def run(
        self, command: str, *, timeout: float | None = None, check: bool = False
    ) -> CommandResult:
        """Run one shell command line on the serial console: (exit status, output).

        Raises ConsoleTimeout, MachineDied, GuestCrash (a kernel failure marker
        appeared, even if the command itself succeeded), and with ``check``
        CommandFailed on a non-zero status.
        """
        return self.shell.run(command, timeout=timeout, check=check)

    def converse(self, *args: Any, **kwargs: Any) -> CommandResult:
        """A command that asks the host for things while it runs: ``Shell.converse``."""
        return self.shell.converse(*args, **kwargs)

    def died(self, what: str) -> NoReturn:
        """QEMU is gone or going: GuestCrash if the guest said why, else MachineDied."""
        assert self._proc is not None and self._proc.proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.proc.wait(timeout=2)
        self.check_crash()
        with contextlib.suppress(Exception):
            self.qmp.poll_events()
        if any(e.get("event") == "GUEST_PANICKED" for e in self.qmp_events()):
            raise GuestCrash(
                f"{what}: the guest panicked (pvpanic)", marker="panic", **self.error_kw()
            )
        state = self.stopped_by_error() if self.is_running() else ""
        if state:
            lines = [ln.strip() for ln in self._proc.stderr().splitlines() if ln.strip()]
            said = [ln for ln in lines if "error" in ln.lower() or "failure" in ln.lower()]
            why = f": {said[0]}" if said else ""
            raise MachineDied(f"{what}: QEMU stopped the guest ({state}){why}", **self.error_kw())
        status = self._proc.returncode
        raise MachineDied(f"{what}: QEMU exited (status {status})", **self.error_kw())

    # -- SSH ----------------------------------------------------------------

    def ssh(self, timeout: float = 60.0) -> SshSession:
        """The SSH session to the guest (``MachineConfig(ssh=True)``), connected on first use."""
        if not self.config.ssh or self._ssh_keys is None or self.ssh_port is None:
            raise MachineError("this machine was started without ssh=True")
        if self._ssh is None:
            self._ssh = SshSession(
                self.ssh_port,
                self._ssh_keys,
                timeout=timeout,
                check_crash=self.check_crash,
                timed_out=self._ssh_timed_out,
            )
        return self._ssh

    def _ssh_timed_out(self, command: str, timeout: float) -> NoReturn:
        raise ConsoleTimeout(
            f"ssh command {command!r}: no end within {timeout:.0f} s",
            command=command, timeout=timeout, **self.error_kw(),
        )  # fmt: skip

    # -- QMP ----------------------------------------------------------------

    @property
    def qmp(self) -> Monitor:
        if self._proc is None:
            raise MachineError("machine not started")
        return self._proc.monitor

    def qmp_events(self) -> list[dict[str, Any]]:
        """The QMP events of the current QEMU (none once it is stopped)."""
        try:
            return self.qmp.events
        except MachineError:
            return []


# Run states QEMU leaves a guest in when it cannot go on (QMP ``query-status``).
_ERROR_STATES = ("internal-error", "io-error", "guest-panicked", "shutdown")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
