"""The VM options, declared once: ``barmap`` COMMAND's ``--NAME`` and pytest's ``--barmap-NAME``.

Both resolve the same way (``resolve``): an option given wins, then the environment
``make`` exports (BARMAP_ACCEL, BARMAP_BOOT, ...: barmap.build.artifacts), then the defaults.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from barmap.build.artifacts import BOOTS, Artifacts, find_artifacts
from barmap.build.paths import DEFAULT_SUITE, GUEST_ARCHS, SUITES
from barmap.config import ACCELS, MACHINE_TYPES, MachineConfig

SUITE_HELP = f"kernel suite: {' or '.join(SUITES)} (default: {DEFAULT_SUITE})"


@dataclass(frozen=True)
class VmOption:
    name: str  # --NAME on the command line, --barmap-NAME under pytest
    help: str
    choices: tuple[str, ...] | None = None
    default: str | None = None


VM_OPTIONS: tuple[VmOption, ...] = (
    VmOption(
        "accel", "auto probes KVM and falls back to TCG (default: $BARMAP_ACCEL or auto)", ACCELS
    ),
    VmOption("qemu", "QEMU binary (default: the cached build)"),
    VmOption("kernel", "guest kernel image (default: the cached distro kernel)"),
    VmOption(
        "boot",
        "the distro kernel's ELF vmlinux via PVH, or its bzImage (default:"
        " $BARMAP_BOOT or auto: PVH when the kernel has it)",
        BOOTS,
    ),
    VmOption("initrd", "initramfs (default: build/SUITE/initramfs.cpio)"),
    VmOption("suite", SUITE_HELP, SUITES),
    VmOption(
        "arch", "the guest's architecture (default: $BARMAP_GUEST_ARCH or x86_64)", GUEST_ARCHS
    ),
    VmOption(
        "machine",
        "q35 (PCIe, each device behind a root port) or pc on x86_64, virt on arm64 (default:"
        " q35, virt)",
        MACHINE_TYPES,
    ),
)


def add_vm_options(add: Callable[..., object], prefix: str = "--") -> None:
    """Declare VM_OPTIONS through ``add`` (argparse's add_argument, pytest's addoption)."""
    for o in VM_OPTIONS:
        kw: dict[str, object] = {"help": o.help, "default": o.default}
        if o.choices:
            kw["choices"] = o.choices
        add(f"{prefix}{o.name}", **kw)


@dataclass(frozen=True)
class VmChoice:
    """The VM options' values, as given (None: not given)."""

    accel: str | None = None
    qemu: str | None = None
    kernel: str | None = None
    boot: str | None = None
    initrd: str | None = None
    suite: str | None = None
    arch: str | None = None
    machine: str | None = None

    def artifacts(self, *, boot: str | None = None, suite: str | None = None) -> Artifacts:
        art = find_artifacts(suite or self.suite, self.qemu, self.kernel, self.initrd,
                             boot or self.boot, self.arch)  # fmt: skip
        art.check()
        return art

    def config(self, art: Artifacts | None = None, **fields: object) -> MachineConfig:
        accel = self.accel or os.environ.get("BARMAP_ACCEL", "").strip() or "auto"
        config = MachineConfig.for_artifacts(art or self.artifacts(), accel=accel,
                                             machine=self.machine)  # fmt: skip
        return replace(config, **fields)  # type: ignore[arg-type]


def vm_choice(get: Callable[[str], object]) -> VmChoice:
    """The values of VM_OPTIONS through ``get(name)``."""
    return VmChoice(**{o.name: get(o.name) for o in VM_OPTIONS})  # type: ignore[arg-type]


# -- the command line's own ------------------------------------------------------------


def add_cli_vm_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("virtual machine")
    add_vm_options(g.add_argument)
    g.add_argument("--memory", type=int, default=1024, metavar="MiB", help="guest RAM")
    g.add_argument(
        "--boot-log",
        action="store_true",
        help="every kernel boot message on the console (default: warnings and worse)",
    )
    g.add_argument("--log-dir", type=Path, help="where to keep the console log")


def add_session_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("session")
    g.add_argument("--name", help="the session's name for `barmap monitor` (default: COMMAND-PID)")
    g.add_argument("--trace", action="append", metavar="PATTERN",
                   help="QEMU trace events to show beside the console and keep in the log "
                   "directory's trace.log (repeatable; e.g. 'barmap_*')")  # fmt: skip


def choice(args: argparse.Namespace) -> VmChoice:
    return vm_choice(lambda name: getattr(args, name, None))


def config(
    args: argparse.Namespace, art: Artifacts | None = None, **fields: object
) -> MachineConfig:
    """The MachineConfig of a command's VM options (``fields`` set the rest)."""
    fields = {"memory_mb": args.memory, "boot_log": args.boot_log, **fields}
    return choice(args).config(art, **fields)


def log_dir(args: argparse.Namespace, name: str) -> Path:
    """``--log-dir``, else a fresh directory under $BARMAP_LOG_DIR or build/logs."""
    if args.log_dir:
        return Path(args.log_dir)
    base = Path(os.environ.get("BARMAP_LOG_DIR") or Path.cwd() / "build" / "logs")
    return base / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
