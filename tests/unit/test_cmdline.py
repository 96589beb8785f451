"""The QEMU command line builder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from barmap.build.paths import FIRMWARE_DIRS
from barmap.config import BarmapDevice, MachineConfig, Reservation
from barmap.errors import ConfigError
from barmap.qemu.cmdline import (
    SPARE_ROOT_PORTS,
    TCG_CPU,
    build_cmdline,
    build_qtest_cmdline,
    kernel_append,
)


@pytest.fixture
def config(tmp_path: Path) -> MachineConfig:
    for name in ("qemu", "vmlinuz", "initrd"):
        (tmp_path / name).write_bytes(b"x")
    return MachineConfig(
        qemu=tmp_path / "qemu", kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd", accel="tcg"
    )


def _opt(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def test_paused_with_sockets_and_no_defaults(config: MachineConfig, tmp_path: Path) -> None:
    args = build_cmdline(
        config, accel="tcg", qmp_socket=tmp_path / "q", console_socket=tmp_path / "c"
    )
    assert args[0] == str(config.qemu)
    assert "-S" in args and "-nodefaults" in args and "-no-reboot" in args
    assert _opt(args, "-accel") == ["tcg"]
    assert _opt(args, "-cpu") == [TCG_CPU]
    chardevs = _opt(args, "-chardev")
    assert f"socket,id=console,path={tmp_path / 'c'}" in chardevs
    assert f"socket,id=qmp,path={tmp_path / 'q'}" in chardevs
    assert _opt(args, "-L") == list(FIRMWARE_DIRS)
    assert "barmap,id=barmap0,size=16777216,bus=rp-barmap0" in _opt(args, "-device")
    assert "pvpanic" in _opt(args, "-device")


def test_q35_puts_each_device_behind_a_root_port_with_acpi_hotplug(
    config: MachineConfig, tmp_path: Path
) -> None:
    devices = (BarmapDevice(id="a"), BarmapDevice(id="b"))
    args = build_cmdline(
        replace(config, devices=devices), accel="tcg", qmp_socket=tmp_path / "q",
        console_socket=tmp_path / "c",
    )  # fmt: skip
    assert _opt(args, "-M") == ["q35"]
    assert "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=on" in _opt(args, "-global")
    devs = _opt(args, "-device")
    ports = [d for d in devs if d.startswith("pcie-root-port,")]
    assert ports[:2] == ["pcie-root-port,id=rp-a,chassis=1,slot=1",
                         "pcie-root-port,id=rp-b,chassis=2,slot=2"]  # fmt: skip
    assert len(ports) == 2 + SPARE_ROOT_PORTS  # room for a device_add of a new id
    assert "barmap,id=a,size=16777216,bus=rp-a" in devs
    assert "barmap,id=b,size=16777216,bus=rp-b" in devs
    assert "intel-iommu" not in devs and "intel_iommu=on" not in kernel_append(config, "tcg")


def test_iommu_comes_before_the_devices_and_turns_the_kernel_on(
    config: MachineConfig, tmp_path: Path
) -> None:
    args = build_cmdline(
        replace(config, iommu=True), accel="tcg", qmp_socket=tmp_path / "q",
        console_socket=tmp_path / "c",
    )  # fmt: skip
    devs = _opt(args, "-device")
    assert devs.index("intel-iommu") < devs.index("barmap,id=barmap0,size=16777216,bus=rp-barmap0")
    assert "intel_iommu=on" in kernel_append(replace(config, iommu=True), "tcg").split()


def test_pc_keeps_bus_0_and_refuses_an_iommu(config: MachineConfig, tmp_path: Path) -> None:
    pc = replace(config, machine="pc")
    args = build_cmdline(pc, accel="tcg", qmp_socket=tmp_path / "q", console_socket=tmp_path / "c")
    assert _opt(args, "-M") == ["pc"]
    assert "barmap,id=barmap0,size=16777216" in _opt(args, "-device")
    assert not [d for d in _opt(args, "-device") if d.startswith("pcie-root-port")]
    with pytest.raises(ConfigError, match="iommu needs machine q35"):
        replace(pc, iommu=True).validate()
    with pytest.raises(ConfigError, match="machine must be one of"):
        replace(config, machine="microvm").validate()  # type: ignore[arg-type]


def test_kvm_uses_host_cpu(config: MachineConfig, tmp_path: Path) -> None:
    args = build_cmdline(
        config, accel="kvm", qmp_socket=tmp_path / "q", console_socket=tmp_path / "c"
    )
    assert _opt(args, "-cpu") == ["host"]


def test_reservation_and_gdb_in_append(config: MachineConfig) -> None:
    cfg = replace(config, reservation=Reservation(base=0x20000000, size=0x100000), gdb_port=4321)
    append = kernel_append(cfg, "tcg")
    assert "memmap=0x100000$0x20000000" in append
    assert "console=ttyS0" in append and "nokaslr" in append


def test_memdev_device(config: MachineConfig, tmp_path: Path) -> None:
    dev = BarmapDevice(id="bm1", size=1 << 20, memdev_path=tmp_path / "mem")
    args = build_cmdline(
        replace(config, devices=(dev,)),
        accel="tcg",
        qmp_socket=tmp_path / "q",
        console_socket=tmp_path / "c",
    )
    assert _opt(args, "-object") == [
        f"memory-backend-file,id=bm1-mem,size={1 << 20},mem-path={tmp_path / 'mem'},share=on"
    ]
    assert "barmap,id=bm1,size=1048576,bus=rp-bm1,memdev=bm1-mem" in _opt(args, "-device")


def test_ssh_forward_binds_loopback(config: MachineConfig, tmp_path: Path) -> None:
    args = build_cmdline(
        replace(config, ssh=True),
        accel="tcg",
        qmp_socket=tmp_path / "q",
        console_socket=tmp_path / "c",
        ssh_port=2222,
    )
    assert "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22" in _opt(args, "-netdev")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"accel": "xen"}, "accel must be one of"),
        ({"memory_mb": 64}, "too small"),
        ({"devices": (BarmapDevice(size=3 << 20),)}, "not a power of two"),
        ({"devices": (BarmapDevice(), BarmapDevice())}, "duplicate"),
        ({"reservation": Reservation(base=0x7FF00000, size=0x200000)}, "outside"),
        ({"qemu": Path("/nonexistent/qemu")}, "QEMU binary not found"),
    ],
)
def test_bad_config_is_refused(
    config: MachineConfig, change: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        replace(config, **change).validate()  # type: ignore[arg-type]


def test_qtest_machine_connects_to_our_sockets(tmp_path: Path) -> None:
    args = build_qtest_cmdline(
        tmp_path / "qemu", machine="q35", qtest_socket=tmp_path / "t", qmp_socket=tmp_path / "q",
        args=["-device", "barmap"],
    )  # fmt: skip
    assert args[0] == str(tmp_path / "qemu")
    assert _opt(args, "-accel") == ["qtest"] and _opt(args, "-M") == ["q35"]
    assert _opt(args, "-qtest") == [f"unix:{tmp_path / 't'}"]
    assert _opt(args, "-chardev") == [f"socket,id=qmp,path={tmp_path / 'q'}"]
    assert _opt(args, "-mon") == ["chardev=qmp,mode=control"]
    assert _opt(args, "-L") == list(FIRMWARE_DIRS)
    assert "-nodefaults" in args and args[-2:] == ["-device", "barmap"]


def test_the_lapic_timer_stays_where_it_is_not_calibrated_at_boot(config: MachineConfig) -> None:
    """nolapic_timer only for one CPU under TCG (no TSC-deadline timer there)."""
    assert "nolapic_timer" in kernel_append(config, "tcg").split()
    assert "nolapic_timer" not in kernel_append(config, "kvm").split()
    assert "nolapic_timer" not in kernel_append(replace(config, smp=2), "tcg").split()


def test_a_guest_keeps_the_locked_instructions_whatever_its_cpu_count(
    config: MachineConfig,
) -> None:
    # one text_poke per LOCK prefix otherwise: 0.12 s of a TCG boot (docs/performance.md)
    for smp in (1, 2):
        for accel in ("tcg", "kvm"):
            assert "noreplace-smp" in kernel_append(replace(config, smp=smp), accel).split()


def test_no_timer_check_under_tcg_only(config: MachineConfig) -> None:
    """A busy host fails the IO-APIC timer check of a TCG guest; KVM skips it itself."""
    assert "no_timer_check" in kernel_append(config, "tcg").split()
    assert "no_timer_check" in kernel_append(replace(config, smp=2), "tcg").split()
    assert "no_timer_check" not in kernel_append(config, "kvm").split()


def test_virt_is_arm64_with_its_own_console_cpu_and_device_tree(
    config: MachineConfig, tmp_path: Path
) -> None:
    from barmap.config import VIRT_RESERVATION

    virt = replace(config, machine="virt", reservation=VIRT_RESERVATION)
    virt.validate()
    assert virt.arch == "arm64"
    args = build_cmdline(virt, accel="tcg", qmp_socket=tmp_path / "q",
                         console_socket=tmp_path / "c", dtb=tmp_path / "virt.dtb")  # fmt: skip
    assert _opt(args, "-M") == ["virt,gic-version=3"]
    assert _opt(args, "-cpu") == ["cortex-a57"]
    assert _opt(args, "-dtb") == [str(tmp_path / "virt.dtb")]
    ports = [d for d in _opt(args, "-device") if d.startswith("pcie-root-port")]
    assert ports[0] == "pcie-root-port,id=rp-barmap0,chassis=1,slot=1,bus=pcie.0,addr=1.0"
    assert "barmap,id=barmap0,size=16777216,bus=rp-barmap0" in _opt(args, "-device")
    assert "pvpanic" not in " ".join(_opt(args, "-device"))
    append = kernel_append(virt, "tcg").split()
    assert "console=ttyAMA0" in append and not [a for a in append if a.startswith("memmap=")]
    assert not {"nolapic_timer", "no_timer_check", "noreplace-smp"} & set(append)
    # virt's RAM starts at 1 GiB: x86's default reservation is not in it
    with pytest.raises(ConfigError, match="outside the guest's"):
        replace(virt, reservation=Reservation()).validate()


def test_the_artifacts_architecture_picks_the_machine(config: MachineConfig) -> None:
    from barmap.build.artifacts import Artifacts
    from barmap.config import VIRT_RESERVATION

    arm = Artifacts(config.qemu, config.kernel, config.initrd, "6.1.0-57-arm64", arch="arm64")
    c = MachineConfig.for_artifacts(arm)
    assert (c.machine, c.reservation) == ("virt", VIRT_RESERVATION)
    assert MachineConfig.for_artifacts(replace(arm, arch="x86_64")).machine == "q35"
    with pytest.raises(ConfigError, match="not an arm64 machine"):
        MachineConfig.for_artifacts(arm, machine="q35")
