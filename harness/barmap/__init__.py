"""barmap: boot the barmap device under QEMU, drive the guest, check every mmap strategy.

The public API: ``Machine``, ``MachineConfig``, ``find_artifacts`` and the errors.  They
load on first use, so a script that imports a bottom layer (``barmap.build``) pulls in
nothing above it.  The layers, bottom first (each may import only those before it;
tests/unit/test_layers.py checks the real import graph against this list):
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# (layer, the modules or subpackages in it); a module may import its own layer and below
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("leaves", ("errors", "abi", "pattern")),
    ("build", ("build",)),
    ("config", ("config",)),
    ("qemu", ("qemu",)),
    ("qtest", ("qtest",)),
    ("guest", ("guest",)),
    ("debug", ("debug",)),
    ("runs", ("runs",)),
    ("cli", ("cli",)),
    ("testing", ("testing",)),
    ("entry", ("__main__",)),
)
# subpackages of the same layer that must not import one another
SIBLINGS: tuple[tuple[str, str], ...] = (("qtest", "guest"),)

_EXPORTS = {
    "BarmapError": "barmap.errors",
    "CommandFailed": "barmap.errors",
    "ConsoleTimeout": "barmap.errors",
    "GuestCrash": "barmap.errors",
    "MachineError": "barmap.errors",
    "MachineConfig": "barmap.config",
    "Machine": "barmap.guest.machine",
    "find_artifacts": "barmap.build.artifacts",
}
__all__ = [
    "BarmapError",
    "CommandFailed",
    "ConsoleTimeout",
    "GuestCrash",
    "Machine",
    "MachineConfig",
    "MachineError",
    "find_artifacts",
]

if TYPE_CHECKING:
    from barmap.build.artifacts import find_artifacts
    from barmap.config import MachineConfig
    from barmap.errors import BarmapError, CommandFailed, ConsoleTimeout, GuestCrash, MachineError
    from barmap.guest.machine import Machine


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'barmap' has no attribute {name!r}")
