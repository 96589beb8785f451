"""Typed errors: each carries what a user needs to act on it (command line, console tail)."""

from __future__ import annotations

from collections.abc import Sequence


class BarmapError(Exception):
    """Base of every error the harness raises on purpose."""


class ConfigError(BarmapError):
    """A bad argument or a missing artifact (QEMU build, kernel, initramfs)."""


class MachineError(BarmapError):
    """QEMU failed to start, died, or the guest did not behave.

    ``cmdline`` is the QEMU command line, ``console_tail`` the last console
    output and ``log_path`` where the whole console log is kept.
    """

    def __init__(
        self,
        message: str,
        *,
        cmdline: Sequence[str] = (),
        console_tail: str = "",
        log_path: str = "",
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.cmdline = list(cmdline)
        self.console_tail = console_tail
        self.log_path = log_path
        self.stderr = stderr

    def details(self) -> str:
        """A multi-line account for reports: message, QEMU stderr, command line, console tail."""
        parts = [self.message]
        if self.stderr.strip():
            parts.append("QEMU stderr:\n" + self.stderr.rstrip())
        if self.cmdline:
            parts.append("command line: " + " ".join(self.cmdline))
        if self.console_tail.strip():
            parts.append("console tail:\n" + self.console_tail.rstrip())
        if self.log_path:
            parts.append(f"console log: {self.log_path}")
        return "\n".join(parts)


class QEMUStartError(MachineError):
    """QEMU exited or never connected while starting (bad arguments, missing firmware)."""


class MachineDied(MachineError):
    """QEMU went away while the harness was using it."""


class EventTimeout(MachineError):
    """A QMP event did not come within its timeout."""


class ConsoleTimeout(MachineError):
    """No answer on the console within the timeout (guest hang or a command that never ends)."""

    def __init__(self, message: str, *, command: str = "", timeout: float = 0.0, **kw: object):
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.command = command
        self.timeout = timeout


class GuestCrash(MachineError):
    """The guest kernel reported a failure (oops, BUG, WARNING, panic, stall)."""

    def __init__(self, message: str, *, marker: str = "", excerpt: str = "", **kw: object):
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.marker = marker
        self.excerpt = excerpt


class CommandFailed(MachineError):
    """A guest command exited non-zero where success was required."""

    def __init__(
        self, message: str, *, command: str = "", status: int = 0, output: str = "", **kw: object
    ):
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.command = command
        self.status = status
        self.output = output
