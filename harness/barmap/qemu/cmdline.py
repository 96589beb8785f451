"""The QEMU command lines, built in this one place: a guest's from a MachineConfig, and qtest's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from barmap.build.paths import FIRMWARE_DIRS
from barmap.config import MachineConfig


def firmware_args(dirs: Sequence[str] = FIRMWARE_DIRS) -> list[str]:
    return [arg for d in dirs for arg in ("-L", d)]


def monitor_args(qmp_socket: Path) -> list[str]:
    """QEMU's QMP monitor as a client of the harness's socket."""
    return ["-chardev", f"socket,id=qmp,path={qmp_socket}", "-mon", "chardev=qmp,mode=control"]


# what a test VM does not need at boot: crypto self-tests, IPv6, absent UARTs, LOCK-prefix
# patching on one CPU (docs/performance.md, "The command line", has each one's cost)
FAST_BOOT = (
    "cryptomgr.notests",
    "initcall_blacklist=crypto_kdf108_init,jent_mod_init",
    "ipv6.disable=1",
    "8250.nr_uarts=1",
    "noreplace-smp",
)
# arm64: the same minus what is x86's (UARTs, LOCK prefixes)
FAST_BOOT_ARM64 = FAST_BOOT[:3]
QUIET_CONSOLE = ("loglevel=4",)
# TCG on one CPU: the tick from the HPET, no LAPIC timer calibration against the PIT
TCG_ONE_CPU = ("nolapic_timer",)
# TCG: skip the IO-APIC timer check, which a busy host makes fail (a panic or a hang)
TCG_TIMER = ("no_timer_check",)
# TCG: QEMU's max without ERMS/FSRM and posing as an early K8, so Linux uses its unrolled
# copy loops instead of REP strings, which TCG emulates an element at a time
TCG_CPU = "max,-erms,-fsrm,family=15,model=3,stepping=10"


# arm64 under TCG: an ARMv8.0 core (no pointer authentication for TCG to emulate on every
# return, unlike ``max``)
TCG_CPU_ARM64 = "cortex-a57"


def cpu_model(accel: str, arch: str = "x86_64") -> str:
    """``-cpu`` for ``accel`` (the resolved one, ``kvm`` or ``tcg``) and the guest's arch."""
    if accel == "kvm":
        return "host"
    return TCG_CPU_ARM64 if arch == "arm64" else TCG_CPU


def kernel_append(config: MachineConfig, accel: str) -> str:
    """The kernel command line; ``accel`` is the resolved one (``kvm`` or ``tcg``)."""
    if config.arch == "arm64":  # the reservation is in the device tree (devicetree.py)
        args = ["console=ttyAMA0", "panic=-1", "printk.time=1", *FAST_BOOT_ARM64]
    else:
        args = ["console=ttyS0", "panic=-1", "printk.time=1", *FAST_BOOT]
        if accel == "tcg":
            args.extend(TCG_TIMER)
        if accel == "tcg" and config.smp == 1:
            args.extend(TCG_ONE_CPU)
        if config.reservation is not None:
            r = config.reservation
            args.append(f"memmap={r.size:#x}${r.base:#x}")
    if not config.boot_log:
        args.extend(QUIET_CONSOLE)
    if config.gdb_port is not None:
        args.append("nokaslr")
    if config.iommu:
        args.append("intel_iommu=on")
    args.extend(config.kernel_args)
    args.extend(config.append)
    return " ".join(args)


# q35: root ports beyond the configured devices, free for a device_add of a new id
SPARE_ROOT_PORTS = 2


def root_port_id(qdev_id: str) -> str:
    """The q35 root port a barmap device sits behind (its hot-plug slot)."""
    return f"rp-{qdev_id}"


def machine_args(config: MachineConfig) -> list[str]:
    """``-M`` and what the machine type needs: on q35, ACPI hot-plug on the root ports (as on
    pc; native PCIe hot-plug waits out the 5 s attention-button delay) and the IOMMU."""
    if config.machine == "pc":
        return ["-M", "pc"]
    if config.machine == "virt":
        # GICv3: its ITS takes MSI; root ports at 00:N.0, where the device tree's nodes are
        args = ["-M", "virt,gic-version=3"]
        place = ",bus=pcie.0,addr={n}.0"
    else:
        args = ["-M", "q35", "-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=on"]
        place = ""
    if config.iommu:
        args += ["-device", "intel-iommu"]  # before the devices it translates for
    ports = [root_port_id(d.id) for d in config.devices]
    ports += [f"rp-spare{i}" for i in range(SPARE_ROOT_PORTS)]
    for n, port in enumerate(ports, start=1):
        at = place.format(n=n)
        args += ["-device", f"pcie-root-port,id={port},chassis={n},slot={n}{at}"]
    return args


def device_args(config: MachineConfig) -> list[str]:
    out: list[str] = []
    for dev in config.devices:
        opts = [f"barmap,id={dev.id}", f"size={dev.size}"]
        if config.machine != "pc":
            opts.append(f"bus={root_port_id(dev.id)}")
        if dev.memdev_path is not None:
            backend = f"{dev.id}-mem"
            out += [
                "-object",
                f"memory-backend-file,id={backend},size={dev.size},"
                f"mem-path={dev.memdev_path},share=on",
            ]
            opts.append(f"memdev={backend}")
        opts += [f"{k}={v}" for k, v in dev.props]
        out += ["-device", ",".join(opts)]
    return out


def hardware_args(config: MachineConfig, accel: str) -> list[str]:
    """The machine QEMU emulates: type, accelerator, CPU, memory, CPUs (also what virt's
    device tree is dumped from, barmap.qemu.devicetree)."""
    return [*machine_args(config), "-accel", accel, "-cpu", cpu_model(accel, config.arch),
            "-m", str(config.memory_mb), "-smp", str(config.smp)]  # fmt: skip


def build_cmdline(
    config: MachineConfig,
    *,
    accel: str,
    qmp_socket: Path,
    console_socket: Path,
    ssh_port: int | None = None,
    initrd: Path | None = None,
    incoming: bool = False,
    trace_log: Path | None = None,
    hmp_socket: Path | None = None,
    dtb: Path | None = None,
) -> list[str]:
    """Every argument QEMU gets; ``accel`` is the resolved one (``kvm`` or ``tcg``).

    QEMU starts paused (``-S``) and connects as a client to the harness's QMP
    and console sockets, which are listening before it starts: no console byte
    is lost and no socket path is raced for.  ``initrd`` replaces the config's
    (the per-run overlay); ``incoming`` waits for a saved state (``-incoming defer``).
    ``trace_log`` receives the config's trace events; ``hmp_socket`` is a human
    monitor QEMU listens on (for ``barmap monitor``); ``dtb`` the device tree virt boots.
    """
    args = [str(config.qemu), "-name", "barmap", *hardware_args(config, accel)]
    args += ["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-S"]
    args += firmware_args(config.firmware_dirs)
    args += ["-kernel", str(config.kernel), "-initrd", str(initrd or config.initrd)]
    args += ["-append", kernel_append(config, accel)]
    if dtb is not None:  # virt's tree with the reserved memory (barmap.qemu.devicetree)
        args += ["-dtb", str(dtb)]
    args += ["-chardev", f"socket,id=console,path={console_socket}", "-serial", "chardev:console"]
    args += monitor_args(qmp_socket)
    if config.pvpanic and config.arch == "x86_64":  # Debian's arm64 kernel has no pvpanic
        args += ["-device", "pvpanic"]
    if config.ssh and ssh_port is not None:
        args += [
            "-netdev",
            f"user,id=net0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
            "-device",
            "e1000,netdev=net0,romfile=",
        ]
    if config.gdb_port is not None:
        args += ["-gdb", f"tcp:127.0.0.1:{config.gdb_port}"]
    if config.trace and trace_log is not None:
        for pattern in config.trace:
            args += ["-trace", f"enable={pattern}"]
        args += ["-D", str(trace_log)]
    if hmp_socket is not None:
        args += ["-chardev", f"socket,id=hmp,path={hmp_socket},server=on,wait=off"]
        args += ["-mon", "chardev=hmp,mode=readline"]
    args += device_args(config)
    args += list(config.extra_args)
    if incoming:
        args += ["-incoming", "defer"]
    return args


def build_qtest_cmdline(
    binary: Path,
    *,
    machine: str,
    qtest_socket: Path,
    qmp_socket: Path,
    args: Sequence[str] = (),
) -> list[str]:
    """A machine without a guest, driven through qtest (as libqtest starts it), plus ``args``."""
    cmd = [str(binary), "-accel", "qtest", "-M", machine, *firmware_args()]
    cmd += ["-display", "none", "-nodefaults"]
    cmd += ["-qtest", f"unix:{qtest_socket}", "-qtest-log", "/dev/null"]
    return cmd + monitor_args(qmp_socket) + list(args)
