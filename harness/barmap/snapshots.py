"""Whole-VM snapshots: a running machine's state into a file and back (migration streams).

``save_state`` migrates the running VM into a file (``migrate exec:cat > path``)
and lets it run on; ``restore_state`` stops its QEMU, starts a new one with
``-incoming defer`` in the same runtime directory and loads the file.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING

from barmap.errors import MachineError

if TYPE_CHECKING:
    from barmap.machine import Machine


def save_state(vm: Machine, path: Path, timeout: float = 120.0) -> float:
    """Write the whole VM state to ``path``; the VM runs on.  Returns the seconds it took."""
    start = time.monotonic()
    vm.qmp.cmd("migrate", uri=f"exec:cat > {shlex.quote(str(path))}")
    wait_migration(vm, timeout, "saving the VM state")
    vm.qmp.cmd("cont")
    return time.monotonic() - start


def restore_state(vm: Machine, path: Path, timeout: float = 120.0) -> float:
    """Replace the running VM by the state in ``path``; seconds to a responsive guest shell."""
    if not Path(path).is_file():
        raise MachineError(f"no saved state at {path}")
    start = time.monotonic()
    vm.stop_qemu()
    vm.launch(incoming=True)
    vm.qmp.cmd("migrate-incoming", uri=f"exec:cat {shlex.quote(str(path))}")
    wait_migration(vm, timeout, "restoring the VM state")
    vm.qmp.cmd("cont")
    vm.run("true", check=True)
    return time.monotonic() - start


def wait_migration(vm: Machine, timeout: float, what: str) -> None:
    """Until ``query-migrate`` says completed; MachineError if it fails or QEMU dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = vm.qmp.cmd("query-migrate")
        status = info.get("status", "")
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise MachineError(f"{what} failed: {info.get('error-desc', status)}", **vm.error_kw())
        if not vm.is_running():
            vm.died(what)
        time.sleep(0.05)
    raise MachineError(f"{what}: not done within {timeout:.0f} s", **vm.error_kw())
