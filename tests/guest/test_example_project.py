"""examples/driver-project, a driver repository of its own, run end to end as its author
would: its tests pass on barmap's device posing as its card, and fail with GuestCrash
when its driver carries the planted oops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from barmap.build.paths import REPO_ROOT
from barmap.config import MachineConfig

pytestmark = [
    pytest.mark.guest,
    pytest.mark.x86_only(
        "the example's module builds for the x86_64 guest kernel (its Makefile has no cross build)"
    ),
]

PROJECT = REPO_ROOT / "examples" / "driver-project"


def _pytest(config: MachineConfig, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", f"--barmap-qemu={config.qemu}",
         f"--barmap-kernel={config.kernel}", f"--barmap-initrd={config.initrd}",
         f"--barmap-accel={config.accel}", f"--barmap-artifacts={tmp_path / 'artifacts'}",
         f"--basetemp={tmp_path / 'tmp'}", *extra],
        cwd=PROJECT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_its_tests_pass_on_the_device_posing_as_its_card(
    barmap_config: MachineConfig, tmp_path: Path
) -> None:
    proc = _pytest(barmap_config, tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "2 passed" in proc.stdout


def test_the_planted_oops_fails_its_tests(barmap_config: MachineConfig, tmp_path: Path) -> None:
    proc = _pytest(barmap_config, tmp_path, "--barmap-module-args=plant_oops=1")
    assert proc.returncode == 1, proc.stdout[-4000:]
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout[-4000:]
    assert "GuestCrash" in proc.stdout and "exdrv_mmap" in proc.stdout, proc.stdout[-4000:]
