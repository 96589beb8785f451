"""barmap-why, the host build, on this machine's own /proc: its RAM, an address with nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from barmap.build.paths import REPO_ROOT

TOOL = REPO_ROOT / "guest-driver" / "tools" / "barmap-why"


@pytest.fixture(scope="module")
def tool() -> Path:
    subprocess.run(["make", "-s", "-C", str(TOOL.parents[1]), "tools/barmap-why"], check=True)
    return TOOL


def _run(tool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool), *args], capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(os.geteuid() != 0, reason="/proc/iomem shows addresses to root only")
def test_the_hosts_own_ram_is_ram(tool: Path) -> None:
    ram = next(
        start
        for line in Path("/proc/iomem").read_text().splitlines()
        if line.endswith(" : System RAM") and not line.startswith(" ")
        and (start := int(line.split("-")[0], 16))
    )  # fmt: skip
    out = _run(tool, "--phys", hex(ram + 0x1000), "--json")
    assert out.returncode == 1, out
    report = json.loads(out.stdout)
    assert report["cause"] == "region-is-ram", report
    assert report["facts"]["owner"].startswith("System RAM")


def test_an_address_with_nothing_decodes_nothing(tool: Path) -> None:
    out = _run(tool, "--phys", hex(1 << 47))
    assert out.returncode == 1, out
    assert out.stdout.splitlines()[-1] == "cause: nothing-decodes", out.stdout


def test_its_own_anonymous_memory_is_ordinary(tool: Path) -> None:
    """A process's heap: mapped, sampled, the process's own memory."""
    addr = next(
        int(line.split("-")[0], 16)
        for line in Path("/proc/self/maps").read_text().splitlines()
        if "[heap]" in line or "[stack]" in line
    )
    out = _run(tool, "--pid", str(os.getpid()), "--addr", hex(addr))
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "cause: ok", out.stdout


@pytest.mark.parametrize("args", [[], ["--phys"], ["--phys", "zz"], ["--bogus", "1"],
                                  ["--pid", "1"], ["--phys", "1", "--pid", "1", "--addr", "1"],
                                  ["--pid", "999999999", "--addr", "0x1000"]])  # fmt: skip
def test_a_bad_argument_is_one_line_and_exit_2(tool: Path, args: list[str]) -> None:
    out = _run(tool, *args)
    assert out.returncode == 2, out
    assert out.stdout == "" and len(out.stderr.strip().splitlines()) == 1, out
