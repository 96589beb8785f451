"""The typed configuration of one barmap VM."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from barmap.build.paths import FIRMWARE_DIRS
from barmap.errors import ConfigError

if TYPE_CHECKING:
    from barmap.build.artifacts import Artifacts

Accel = Literal["auto", "kvm", "tcg"]
ACCELS: tuple[str, ...] = ("auto", "kvm", "tcg")
# pc: i440fx, conventional PCI, ACPI hot-plug on bus 0.  q35: PCIe, each barmap behind its
# own root port, ACPI hot-plug on the root ports (docs/harness.md says what each costs).
# virt: arm64, a generic PCIe host (gpex), each barmap behind its own root port, GICv3 ITS
# for MSI, reserved memory in the device tree.
MachineType = Literal["pc", "q35", "virt"]
MACHINE_TYPES: tuple[str, ...] = ("pc", "q35", "virt")
DEFAULT_MACHINE: MachineType = "q35"
# the guest architecture (barmap.build.paths.GUEST_ARCHS) of each machine, and its default
MACHINE_ARCH = {"pc": "x86_64", "q35": "x86_64", "virt": "arm64"}
ARCH_MACHINE: dict[str, MachineType] = {"x86_64": "q35", "arm64": "virt"}
# where virt's RAM starts (QEMU's hw/arm/virt.c memmap: VIRT_MEM)
VIRT_RAM_BASE = 0x40000000


@dataclass(frozen=True)
class BarmapDevice:
    """One ``-device barmap``; ``memdev`` names a host memory backend file shared with the host."""

    id: str = "barmap0"
    size: int = 16 << 20
    memdev_path: Path | None = None
    props: tuple[tuple[str, str], ...] = ()

    def validate(self) -> None:
        if self.size <= 0 or self.size & (self.size - 1):
            raise ConfigError(f"barmap device {self.id}: size {self.size} is not a power of two")


@dataclass(frozen=True)
class Reservation:
    """Guest RAM kept from the kernel for the driver's reserved strategies: ``memmap=SIZE$ADDR``
    on x86, a device-tree ``reserved-memory`` node (``no-map``) on virt; handed to the driver
    as parameters either way."""

    base: int = 0x30000000
    size: int = 16 << 20


# x86's (memmap=), the default; virt's at the top of a 1 GiB guest's RAM, below its
# shared-dma-pool (DT_POOL)
DEFAULT_RESERVATION = Reservation()
VIRT_RESERVATION = Reservation(base=0x7E000000)
# the shared-dma-pool the device's node names in memory-region on virt (its coherent buffers)
DT_POOL = Reservation(base=0x7C000000, size=32 << 20)


@dataclass(frozen=True)
class MachineConfig:
    qemu: Path
    kernel: Path
    initrd: Path
    accel: Accel = "auto"
    memory_mb: int = 1024
    smp: int = 1
    # None: the QEMU binary's (virt for qemu-system-aarch64, else q35)
    machine: MachineType = None  # type: ignore[assignment]
    # an emulated IOMMU (q35's intel-iommu, the kernel's intel_iommu=on): the DMA API
    # maps through it, and vfio-pci can take a device
    iommu: bool = False
    devices: tuple[BarmapDevice, ...] = (BarmapDevice(),)
    # the default is the machine's: memmap= on x86, the device tree's on virt
    reservation: Reservation | None = DEFAULT_RESERVATION
    # boot parameters the kernel's own build asks for (kernel.env's APPEND=, e.g. the debug
    # kernel's); before ``append``, so the user's word wins
    kernel_args: tuple[str, ...] = ()
    append: tuple[str, ...] = ()
    boot_log: bool = False  # every kernel message on the console, not only warnings and worse
    extra_args: tuple[str, ...] = ()
    ssh: bool = False
    # host files the guest finds at boot: (host path, guest path), in an initrd overlay
    files: tuple[tuple[Path, str], ...] = ()
    gdb_port: int | None = None
    # QEMU trace event patterns (``-trace enable=barmap_*``); the events go to trace.log
    trace: tuple[str, ...] = ()
    # a second QEMU monitor, HMP on hmp.sock in the runtime directory (barmap monitor)
    hmp_socket: bool = False
    pvpanic: bool = True
    boot_timeout: float = 120.0
    command_timeout: float = 60.0
    # every console wait is multiplied by this: a slower kernel's (the debug flavor's) factor
    timeout_scale: float = 1.0
    firmware_dirs: tuple[str, ...] = FIRMWARE_DIRS

    def __post_init__(self) -> None:
        if self.machine is None:
            virt = "aarch64" in Path(self.qemu).name
            object.__setattr__(self, "machine", "virt" if virt else DEFAULT_MACHINE)
        if self.machine == "virt" and self.reservation is DEFAULT_RESERVATION:
            object.__setattr__(self, "reservation", VIRT_RESERVATION)

    @property
    def arch(self) -> str:
        return MACHINE_ARCH.get(self.machine, "x86_64")

    @classmethod
    def for_artifacts(cls, art: Artifacts, **fields: Any) -> MachineConfig:
        """A config that boots ``art`` (its kernel's own arguments and timeout scale, its
        architecture's machine and reservation included); ``fields`` set the rest."""
        fields.setdefault("timeout_scale", art.timeout_scale)
        if not fields.get("machine"):
            fields["machine"] = ARCH_MACHINE[art.arch]
        if MACHINE_ARCH.get(fields["machine"], art.arch) != art.arch:
            raise ConfigError(f"machine {fields['machine']} is not an {art.arch} machine")
        return cls(qemu=art.qemu, kernel=art.kernel, initrd=art.initrd,
                   kernel_args=art.kernel_args, **fields)  # fmt: skip

    def validate(self) -> None:
        if self.accel not in ACCELS:
            raise ConfigError(f"accel must be one of {', '.join(ACCELS)}, not {self.accel!r}")
        if self.machine not in MACHINE_TYPES:
            raise ConfigError(
                f"machine must be one of {', '.join(MACHINE_TYPES)}, not {self.machine!r}"
            )
        if self.memory_mb < 128:
            raise ConfigError(f"memory_mb {self.memory_mb} is too small (at least 128)")
        for pattern in self.trace:
            if not pattern or any(c in pattern for c in ",= \n"):
                raise ConfigError(
                    f"trace pattern {pattern!r}: one event name or glob, like barmap_*"
                )
        if self.iommu and self.machine != "q35":
            raise ConfigError("iommu needs machine q35 (intel-iommu is a q35 device)")
        if self.timeout_scale <= 0:
            raise ConfigError(f"timeout_scale must be positive, not {self.timeout_scale}")
        if self.smp < 1:
            raise ConfigError(f"smp must be at least 1, not {self.smp}")
        ids = [d.id for d in self.devices]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"duplicate barmap device ids: {ids}")
        for dev in self.devices:
            dev.validate()
        if self.reservation is not None:
            r, ram = self.reservation, self.memory_mb << 20
            low, end = (VIRT_RAM_BASE, VIRT_RAM_BASE + ram) if self.arch == "arm64" else (0, ram)
            if r.base < low or r.base + r.size > min(end, low + 0xB0000000):
                raise ConfigError(
                    f"reservation {self.reservation.base:#x}+{self.reservation.size:#x} "
                    f"lies outside the guest's {self.memory_mb} MiB of RAM"
                )
        for host, guest in self.files:
            if not Path(host).is_file():
                raise ConfigError(f"file for the guest not found: {host}")
            if not guest.startswith("/") or guest.endswith("/"):
                raise ConfigError(f"guest path {guest!r}: an absolute file path, like /root/x.ko")
        for path, what in (
            (self.qemu, "QEMU binary"),
            (self.kernel, "kernel"),
            (self.initrd, "initramfs"),
        ):
            if not Path(path).is_file():
                raise ConfigError(f"{what} not found: {path}")
