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
    result.stdout.fnmatch_lines(["*barmap console tail*", "*barmap dmesg*"])
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
