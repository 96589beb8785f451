"""Harness features on a real guest: SSH transfer and module reload, snapshots, QMP views."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from barmap.config import MachineConfig
from barmap.guest import checks
from barmap.guest.machine import Machine
from barmap.qemu.accel import wants_huge_pages

X86_ONLY = pytest.mark.x86_only("x86's TCG CPU model (ERMS, FSRM, SMEP, SMAP)")
pytestmark = pytest.mark.guest


def test_ssh_pushes_a_rebuilt_module_and_reloads_it(
    barmap_config: MachineConfig, tmp_path: Path
) -> None:
    module = barmap_config.initrd.parent / "barmap.ko"
    if not module.is_file():
        pytest.skip(f"no built module beside the initramfs ({module})")
    with Machine(replace(barmap_config, ssh=True), log_dir=tmp_path) as vm:
        checks.load_module(vm)
        ssh = vm.ssh()
        ssh.put(module, "/tmp/barmap-new.ko")
        assert ssh.get("/tmp/barmap-new.ko") == module.read_bytes()
        status, _, err = ssh.exec(
            "rmmod barmap && insmod /tmp/barmap-new.ko && test -c /dev/barmap0"
        )
        assert status == 0, err
        status, out, _ = ssh.exec("barmap-check --strategy bar --sizes page")
        assert status == 0 and "verdict=PASS" in out
        status, _, _ = ssh.exec("exit 3")
        assert status == 3


def test_restore_undoes_guest_changes(barmap_vm: Machine, tmp_path: Path) -> None:
    state = tmp_path / "state"
    barmap_vm.run("echo kept > /tmp/mark", check=True)
    barmap_vm.save_state(state)
    barmap_vm.run("echo changed > /tmp/mark; rmmod barmap", check=True)
    old_pid = barmap_vm.pid
    barmap_vm.restore_state(state)
    assert barmap_vm.pid != old_pid  # a new QEMU, loaded from the file
    assert barmap_vm.run("cat /tmp/mark", check=True).output.strip() == "kept"
    assert barmap_vm.run("test -c /dev/barmap0").status == 0  # the module is back


def test_restore_keeps_bar_contents(barmap_vm: Machine, tmp_path: Path) -> None:
    seed = 0x0BADCAFE
    assert checks.run_tool(barmap_vm, "bar", seed=seed).passed
    state = tmp_path / "state"
    barmap_vm.save_state(state)
    assert checks.run_tool(barmap_vm, "bar", seed=seed ^ 1).passed  # overwrite
    barmap_vm.restore_state(state)
    assert checks.host_view_check(barmap_vm, seed=seed).passed


def test_qemu_keeps_huge_pages_only_where_they_pay(barmap_vm: Machine) -> None:
    """Under TCG the guest's QEMU runs without transparent huge pages (docs/performance.md)."""
    status = Path(f"/proc/{barmap_vm.pid}/status").read_text()
    if "THP_enabled:" not in status:
        pytest.skip("this kernel does not report THP_enabled in /proc/PID/status")
    assert f"THP_enabled:\t{int(wants_huge_pages(barmap_vm.accel))}" in status


@X86_ONLY
def test_a_tcg_guest_copies_without_rep_strings_and_keeps_max_protections(
    barmap_vm: Machine,
) -> None:
    """Under TCG the CPU is ``max`` without ERMS, FSRM and REP_GOOD (cmdline.TCG_CPU)."""
    if barmap_vm.accel == "kvm":
        pytest.skip("under KVM the guest runs the host's CPU")
    flags = barmap_vm.run("grep -m1 '^flags' /proc/cpuinfo", check=True).output.split()
    assert {"smep", "smap", "nx", "pat", "mtrr"} <= set(flags)
    assert not {"erms", "rep_good", "fsrm"} & set(flags)
    # no ACPI C-state limit of an early Opteron, no "CPU out of specification" taint (bit 2)
    assert "limited to max C-state" not in barmap_vm.run("dmesg", check=True).output
    assert not int(barmap_vm.run("cat /proc/sys/kernel/tainted", check=True).output) & 4


def test_qmp_views_for_diagnosis(barmap_vm: Machine) -> None:
    pci = barmap_vm.qmp.hmp("info pci")
    assert "1234:ba12" in pci.lower()
    addr, size = barmap_vm.qmp.barmap_bar("barmap0")
    mtree = barmap_vm.qmp.hmp("info mtree -f")
    assert f"{addr:016x}" in mtree
    assert size == 16 << 20


def test_a_kernel_report_fails_a_command_that_passed(
    barmap_config: MachineConfig, tmp_path: Path
) -> None:
    from barmap.errors import GuestCrash

    with Machine(barmap_config, log_dir=tmp_path) as vm:
        # sysrq 'l' prints each CPU's backtrace with its "Call Trace:" (a failure marker),
        # harmlessly ('t', every task's, took ~20 s to cross the emulated UART)
        with pytest.raises(GuestCrash) as info:
            vm.run("echo 8 > /proc/sys/kernel/printk; echo l > /proc/sysrq-trigger")
            for _ in range(40):  # the dump may still be reaching the console
                vm.run("sleep 0.5")
        assert info.value.marker == "call-trace"
        assert re.search(r"Call [Tt]race:", info.value.excerpt)  # x86's, arm64's
