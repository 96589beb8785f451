"""The barmap command as a user runs it: demo, an interactive serial shell, ssh, doctor.

(Its errors that need no VM are in tests/unit/test_cli_without_vm.py.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from barmap.build.paths import timeout_scale
from barmap.config import MachineConfig

pytestmark = pytest.mark.guest


def _args(config: MachineConfig) -> list[str]:
    return ["--qemu", str(config.qemu), "--kernel", str(config.kernel),
            "--initrd", str(config.initrd), "--accel", config.accel]  # fmt: skip


def _barmap(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "barmap", *args], capture_output=True,
                          text=True, timeout=timeout * timeout_scale(), env=env)  # fmt: skip


def _use_the_shell(child: pexpect.spawn, first: str = "") -> None:
    """Wait for the serial shell, run a command with the driver loaded, quit with Ctrl-]."""
    child.expect("Ctrl-\\] quits")
    child.send("\r")
    child.expect("barmap# ")
    if first:
        child.send(first + "\r")
        child.expect("barmap# ")
    child.send("ls /dev/barmap0 && echo ANSWER-$((6*7))\r")
    child.expect("ANSWER-42")
    child.expect("barmap# ")
    child.send("\x1d")
    child.expect(pexpect.EOF, timeout=30 * timeout_scale())


def test_demo_prints_a_passing_table(barmap_config: MachineConfig, tmp_path: Path) -> None:
    proc = _barmap("demo", *_args(barmap_config), "--log-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {re.split(r"\s{2,}", line)[0]: re.split(r"\s{2,}", line.strip())
            for line in proc.stdout.splitlines()[2:] if line.strip()}  # fmt: skip
    for strategy in ("bar", "reserved", "reserved-remap", "dma", "host-view (QMP)"):
        assert rows[strategy][-1] == "PASS", rows
        assert int(rows[strategy][1]) > 0 and rows[strategy][2] == "0"
    # the question's story: each way of reading nothing, and barmap-why naming it
    # nothing there: x86 QEMU's unassigned memory reads 0x00, virt's PCI window all-ones
    nothing = "all 0xff" if barmap_config.arch == "arm64" else "all 0x00"
    expected = {"nothing decodes it": (nothing, "nothing-decodes"),
                "dead link (fault-all-ones)": ("all 0xff", "link-down"),
                "memory decode off": (None, "memory-decode-off")}  # fmt: skip
    for case, (reads, cause) in expected.items():
        assert rows[case][4:] == [cause, "PASS"], rows[case]
        assert reads is None or rows[case][3] == reads, rows[case]
    assert (tmp_path / "console.log").stat().st_size > 0


def test_run_gives_an_interactive_serial_shell(
    barmap_config: MachineConfig, tmp_path: Path
) -> None:
    child = pexpect.spawn(
        sys.executable, ["-m", "barmap", "run", "--load", *_args(barmap_config),
                         "--log-dir", str(tmp_path)],
        encoding="utf-8", timeout=120 * timeout_scale(),
    )  # fmt: skip
    try:
        _use_the_shell(child)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    log = (tmp_path / "console.log").read_text(errors="replace")
    assert "ANSWER-42" in log


def test_ssh_runs_a_command_with_its_exit_status(barmap_config: MachineConfig) -> None:
    proc = _barmap("ssh", *_args(barmap_config), "--", "uname -r; exit 7")
    assert proc.returncode == 7, proc.stderr
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", proc.stdout.strip()), proc.stdout  # a release


def test_doctor_finds_the_artifacts_and_probes_kvm(barmap_config: MachineConfig) -> None:
    env = {"BARMAP_QEMU": str(barmap_config.qemu), "BARMAP_KERNEL": str(barmap_config.kernel),
           "BARMAP_INITRD": str(barmap_config.initrd)}  # fmt: skip
    proc = _barmap("doctor", timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # what | state | detail, in columns two spaces apart
    rows = {
        c[0]: c[1:] for c in (re.split(r"\s{2,}", ln.strip()) for ln in proc.stdout.splitlines())
    }
    assert rows["QEMU build"] == ["ok", str(barmap_config.qemu)]
    assert rows["guest kernel"][0] == "ok" and rows["guest kernel"][1].endswith(
        str(barmap_config.kernel)
    )
    assert rows["initramfs"] == ["ok", str(barmap_config.initrd)]
    assert rows["KVM"][0] in ("usable", "unusable (TCG)"), rows["KVM"]  # probed, not "unknown"


def test_debug_stops_for_gdb_then_boots(barmap_config: MachineConfig, tmp_path: Path) -> None:
    import shutil
    import socket

    if shutil.which("gdb") is None:
        pytest.skip("gdb is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # without --load or --break: stopped at the first instruction, for the boot itself
    child = pexpect.spawn(
        sys.executable, ["-m", "barmap", "debug", "--gdb-port", str(port),
                         *_args(barmap_config), "--log-dir", str(tmp_path)],
        encoding="utf-8", timeout=120 * timeout_scale(),
    )  # fmt: skip
    try:
        child.expect(f"target remote 127.0.0.1:{port}")
        child.expect("press Enter here")
        gdb = subprocess.run(
            ["gdb", "-batch", "-nx", "-ex", "set architecture i386:x86-64",
             "-ex", f"target remote 127.0.0.1:{port}", "-ex", "info registers rip",
             "-ex", "detach"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "rip" in gdb.stdout, gdb.stdout + gdb.stderr
        child.send("\r")
        _use_the_shell(child, first="insmod /lib/modules/barmap.ko")
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
