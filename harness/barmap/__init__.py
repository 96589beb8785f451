"""barmap: boot the barmap device under QEMU, drive the guest, check both mmap strategies."""

from barmap.errors import BarmapError, CommandFailed, ConsoleTimeout, GuestCrash, MachineError
from barmap.machine import Machine, MachineConfig

__all__ = [
    "BarmapError",
    "CommandFailed",
    "ConsoleTimeout",
    "GuestCrash",
    "Machine",
    "MachineConfig",
    "MachineError",
]
