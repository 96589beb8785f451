"""The pytest plugin as CI meets it: a failing guest test leaves its evidence behind."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from barmap.config import MachineConfig

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.guest


def test_failure_keeps_console_dmesg_and_qmp_events(
    pytester: pytest.Pytester, barmap_config: MachineConfig, tmp_path: Path
) -> None:
    pytester.makepyfile(
        test_inner="""
        def test_passes(barmap_vm):
            assert barmap_vm.run("test -c /dev/barmap0").status == 0

        def test_fails(barmap_vm):
            barmap_vm.run("echo inner-test-was-here > /dev/kmsg")
            assert barmap_vm.run("false").status == 0
        """
    )
    artifacts = tmp_path / "artifacts"
    junit = tmp_path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider",
        f"--barmap-qemu={barmap_config.qemu}", f"--barmap-kernel={barmap_config.kernel}",
        f"--barmap-initrd={barmap_config.initrd}", f"--barmap-accel={barmap_config.accel}",
        f"--barmap-artifacts={artifacts}", f"--junitxml={junit}",
        timeout=300,
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*barmap console (as the test left it)*", "*barmap dmesg*"])
    dirs = list(artifacts.iterdir())
    assert len(dirs) == 1 and "test_fails" in dirs[0].name
    files = {p.name: p for p in dirs[0].iterdir()}
    assert {"console.log", "dmesg.txt", "qmp-events.json", "info-pci.txt"} <= files.keys()
    assert "inner-test-was-here" in files["dmesg.txt"].read_text()
    assert "barmap-guest: init done" in files["console.log"].read_text()
    failure = ET.parse(junit).getroot().find(".//testcase[@name='test_fails']/failure")
    assert failure is not None and failure.text is not None
    assert f"dmesg: {files['dmesg.txt'].resolve()}" in failure.text
    assert "inner-test-was-here" in failure.text  # the dmesg excerpt itself


def test_a_kernel_report_fails_the_test_on_every_path(
    pytester: pytest.Pytester, barmap_config: MachineConfig, tmp_path: Path
) -> None:
    """A report (here sysrq's backtrace, a Call Trace) fails a test that passed otherwise:
    on the console, over SSH in the foreground and in the background, in a Machine of the
    test's own and in barmap_vm; and an SSH command that never ends is a ConsoleTimeout."""
    pytester.makepyfile(
        test_inner=f"""
        import time
        from pathlib import Path
        import pytest
        from barmap import Machine
        from barmap.config import MachineConfig
        from barmap.errors import ConsoleTimeout

        TRACE = "echo 8 > /proc/sys/kernel/printk; echo l > /proc/sysrq-trigger"

        def _own(tmp_path):
            return Machine(MachineConfig(qemu=Path({str(barmap_config.qemu)!r}),
                                         kernel=Path({str(barmap_config.kernel)!r}),
                                         initrd=Path({str(barmap_config.initrd)!r}),
                                         accel={barmap_config.accel!r}, ssh=True),
                           log_dir=tmp_path)

        def test_console_foreground(barmap_vm):
            barmap_vm.run(TRACE)

        def test_barmap_vm_background(barmap_vm):
            barmap_vm.run("(sleep 0.3; " + TRACE + ") >/dev/null 2>&1 &")
            time.sleep(3)

        def test_ssh_foreground(tmp_path):
            with _own(tmp_path) as vm:
                vm.ssh().exec(TRACE)

        def test_ssh_background_in_its_own_machine(tmp_path):
            with _own(tmp_path) as vm:
                vm.ssh().exec("(sleep 0.3; " + TRACE + ") >/dev/null 2>&1 &")
                time.sleep(3)

        def test_ssh_timeout_is_the_harness_s_own_error(tmp_path):
            with _own(tmp_path) as vm:
                with pytest.raises(ConsoleTimeout, match="no end within 2 s") as err:
                    vm.ssh().exec("echo '<2>last-words' > /dev/kmsg; sleep 30", timeout=2)
                assert "last-words" in err.value.console_tail
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider",
        f"--barmap-qemu={barmap_config.qemu}", f"--barmap-kernel={barmap_config.kernel}",
        f"--barmap-initrd={barmap_config.initrd}", f"--barmap-accel={barmap_config.accel}",
        f"--barmap-artifacts={tmp_path / 'artifacts'}",
        timeout=600,
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=4)
    out = result.stdout.str()
    for name in ("test_console_foreground", "test_barmap_vm_background", "test_ssh_foreground",
                 "test_ssh_background_in_its_own_machine"):  # fmt: skip
        assert f"FAILED test_inner.py::{name}" in out, out[-3000:]
    assert out.count("GuestCrash") >= 4 and "call-trace" in out, out[-3000:]
