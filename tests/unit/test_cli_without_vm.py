"""The barmap command where no VM is needed: bad input gets one readable line and a status."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def _barmap(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "barmap", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})  # fmt: skip


def test_missing_artifact_is_one_readable_line() -> None:
    proc = _barmap("demo", "--qemu", "/nonexistent/qemu", "--accel", "tcg")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "barmap: error: QEMU binary not found at /nonexistent/qemu: run `make qemu`"
    ]


def test_bad_argument_is_refused_by_the_parser() -> None:
    proc = _barmap("demo", "--accel", "xen")
    assert proc.returncode == 2
    assert "invalid choice: 'xen'" in proc.stderr
    proc = _barmap("build", "everything")
    assert proc.returncode == 2 and "invalid choice: 'everything'" in proc.stderr


def _rows(stdout: str) -> dict[str, list[str]]:
    """doctor's table: what | state | detail, in columns two spaces apart."""
    cells = (re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines())
    return {c[0]: c[1:] for c in cells}


def test_doctor_fails_and_says_what_is_missing(tmp_path: Path) -> None:
    proc = _barmap("doctor", env={"BARMAP_QEMU": str(tmp_path / "no-qemu"),
                                  "BARMAP_INITRD": str(tmp_path / "no-initrd")})  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = _rows(proc.stdout)
    assert rows["QEMU build"] == ["MISSING", str(tmp_path / "no-qemu")]
    assert rows["initramfs"] == ["MISSING", str(tmp_path / "no-initrd")]
    assert rows["KVM"][0] == "unknown"  # no probe without a QEMU to probe with


def test_doctor_passes_with_every_artifact_in_place(tmp_path: Path) -> None:
    kenv = tmp_path / "kernel.env"
    kenv.write_text(f"KVER=9.9.9-test\nVMLINUZ={tmp_path / 'vmlinuz'}\n")
    for name in ("qemu", "vmlinuz", "initrd"):
        (tmp_path / name).write_bytes(b"")
    env = {
        "BARMAP_QEMU": str(tmp_path / "qemu"),
        "BARMAP_KENV": str(kenv),
        "BARMAP_INITRD": str(tmp_path / "initrd"),
        "BARMAP_CACHE": str(tmp_path / "cache"),
    }
    # an empty "QEMU" cannot run: the KVM probe says unusable, which is not a failure
    proc = _barmap("doctor", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = _rows(proc.stdout)
    assert rows["QEMU build"] == ["ok", str(tmp_path / "qemu")]
    assert rows["guest kernel"] == ["ok", f"9.9.9-test {tmp_path / 'vmlinuz'}"]
    assert rows["KVM"][0] in ("usable", "unusable (TCG)")
    assert rows["cache"] == ["ok", str(tmp_path / "cache")]
