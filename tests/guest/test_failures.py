"""Each way a run can go wrong ends in a typed, readable error, no QEMU and no files left."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
from knobs import soak

from barmap.build.paths import timeout_scale
from barmap.config import MachineConfig
from barmap.errors import ConsoleTimeout, GuestCrash, MachineDied, QEMUStartError
from barmap.guest.machine import Machine
from barmap.qemu.accel import KvmUnusable, cached_probe
from barmap.qemu.rundir import RunDir

pytestmark = pytest.mark.guest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_guest_panic_is_reported_with_its_trace(
    barmap_config: MachineConfig, tmp_path: Path
) -> None:
    with pytest.raises(GuestCrash) as info, Machine(barmap_config, log_dir=tmp_path) as vm:
        pid = vm.pid
        rundir = vm.rundir
        vm.run("echo c > /proc/sysrq-trigger", timeout=60)
    err = info.value
    assert err.marker == "panic"
    assert "sysrq triggered crash" in str(err)
    assert re.search(r"Call [Tt]race:", err.excerpt)  # x86's, arm64's
    assert err.cmdline and err.log_path == str(tmp_path / "console.log")
    assert pid is not None and not _alive(pid)
    assert not rundir.exists()


def test_guest_hang_times_out_with_the_console_tail(barmap_vm: Machine) -> None:
    barmap_vm.run("echo last-words-before-the-hang", check=True)
    barmap_vm.qmp.cmd("stop")  # the guest's CPUs stop: nothing answers any more
    start = time.monotonic()
    with pytest.raises(ConsoleTimeout) as info:
        barmap_vm.run("echo never", timeout=3)
    # it waited the whole timeout (scaled for a slow kernel), not less, and says so
    assert time.monotonic() - start >= 3 * timeout_scale()
    assert info.value.command == "echo never"
    assert info.value.timeout == 3 * timeout_scale()
    assert "last-words-before-the-hang" in info.value.console_tail
    barmap_vm.qmp.cmd("cont")


def test_qemu_killed_from_outside_is_noticed(barmap_vm: Machine) -> None:
    assert barmap_vm.pid is not None
    os.kill(barmap_vm.pid, signal.SIGKILL)
    # not a ConsoleTimeout after 30 s: the harness sees QEMU go
    with pytest.raises(MachineDied, match=r"QEMU exited \(status -9\)"):
        barmap_vm.run("true", timeout=30)


def test_bad_qemu_arguments_give_qemus_own_words(barmap_config: MachineConfig) -> None:
    config = replace(barmap_config, extra_args=("-device", "no-such-device"))
    with pytest.raises(QEMUStartError) as info, Machine(config):
        pass
    assert "no-such-device" in info.value.message
    assert "no-such-device" in info.value.stderr
    assert "-device" in info.value.cmdline


def test_bad_device_property_is_refused(barmap_config: MachineConfig) -> None:
    from barmap.config import BarmapDevice

    config = replace(barmap_config, devices=(BarmapDevice(props=(("size", "3000"),)),))
    with pytest.raises(QEMUStartError, match="size"), Machine(config):
        pass


def test_kvm_probe_gives_a_reason_and_auto_falls_back(barmap_config: MachineConfig) -> None:
    # the verdict the session's own start cached (a probe on a broken KVM waits its
    # whole deadline; tests/unit/test_accel.py probes stand-in QEMUs)
    result = cached_probe(barmap_config.qemu, barmap_config.kernel)
    assert result.reason
    if result.usable:
        pytest.skip("KVM works on this host: the fallback is not exercised")
    # forcing KVM where the probe found it unusable is refused at once, with its reason
    with (
        pytest.raises(KvmUnusable, match=re.escape(result.reason)),
        Machine(replace(barmap_config, accel="kvm")),
    ):
        pass
    # ...and auto falls back to TCG
    with Machine(replace(barmap_config, accel="auto", devices=())) as vm:
        assert vm.accel == "tcg"


@pytest.mark.skipif(not soak(), reason="BARMAP_SOAK=1 (the pipeline) runs it: ~30 s here")
def test_a_guest_kvm_cannot_run_is_an_error_at_once_not_a_timeout(
    barmap_config: MachineConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if cached_probe(barmap_config.qemu, barmap_config.kernel).usable:
        pytest.skip("KVM works on this host")
    monkeypatch.setenv("BARMAP_CACHE", str(tmp_path))  # no verdict: KVM is tried for real
    # QEMU refuses to start, or starts and stops the guest (a KVM emulation failure);
    # a ConsoleTimeout, the boot timeout waited out, is neither
    with (
        pytest.raises((QEMUStartError, MachineDied)) as info,
        Machine(replace(barmap_config, accel="kvm")),
    ):
        pass
    if isinstance(info.value, MachineDied):
        assert "QEMU stopped the guest (internal-error)" in info.value.message


def test_gdb_port_in_use_is_a_clear_error(barmap_config: MachineConfig) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        config = replace(barmap_config, gdb_port=port)
        with pytest.raises(QEMUStartError) as info, Machine(config):
            pass
    assert str(port) in info.value.message or "gdb" in info.value.message.lower()


_CHILD = textwrap.dedent("""
    import signal, sys, time
    # Ctrl-C as on a terminal, even when this test runs where SIGINT is ignored (a job
    # started in the background by a shell)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from barmap.config import MachineConfig
    from barmap.guest.machine import Machine
    from pathlib import Path
    config = MachineConfig(qemu=Path(sys.argv[1]), kernel=Path(sys.argv[2]),
                           initrd=Path(sys.argv[3]), accel="tcg", devices=())
    with Machine(config) as vm:
        print("READY", vm.pid, vm.rundir, flush=True)
        time.sleep(600)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_qemu_outlives_the_harness(barmap_config: MachineConfig, sig: signal.Signals) -> None:
    """Ctrl-C, a terminated pytest, or a killed harness: QEMU goes, and so do its files
    (at once, or, after SIGKILL, at the next harness's start)."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(barmap_config.qemu), str(barmap_config.kernel),
         str(barmap_config.initrd)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    line = child.stdout.readline().split()
    assert line and line[0] == "READY", line
    pid, rundir = int(line[1]), Path(line[2])
    assert _alive(pid)
    child.send_signal(sig)
    child.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
    if sig == signal.SIGKILL and rundir.exists():  # a killed process cannot clean up...
        RunDir().remove()  # ...the next start sweeps it (another worker's start may have)
    assert not rundir.exists()
