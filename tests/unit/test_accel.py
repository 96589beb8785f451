"""The KVM probe's verdict, from stand-in QEMUs that print what real ones printed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from barmap.qemu import accel


def _fake_qemu(tmp_path: Path, body: str) -> Path:
    qemu = tmp_path / "qemu-system-x86_64"
    qemu.write_text("#!/bin/sh\n" + body)
    qemu.chmod(0o755)
    return qemu


@pytest.fixture
def kernel(tmp_path: Path) -> Path:
    path = tmp_path / "vmlinux"
    path.write_bytes(b"\x7fELF")
    return path


@pytest.fixture(autouse=True)
def _kvm_node(monkeypatch: pytest.MonkeyPatch) -> None:
    real_exists, real_access = os.path.exists, os.access
    monkeypatch.setattr(
        accel.os.path, "exists", lambda p: True if p == "/dev/kvm" else real_exists(p)
    )
    monkeypatch.setattr(
        accel.os, "access", lambda p, m: True if p == "/dev/kvm" else real_access(p, m)
    )


def test_a_whole_boot_is_usable(tmp_path: Path, kernel: Path) -> None:
    qemu = _fake_qemu(
        tmp_path,
        'echo "Linux version 6.1.0"\necho "VFS: Unable to mount root fs on unknown-block(0,0)"\n',
    )
    result = accel.probe_kvm(qemu, kernel, deadline=5)
    assert result.usable, result.reason


def test_a_banner_then_an_emulation_failure_is_not(tmp_path: Path, kernel: Path) -> None:
    # seen on the project's CI machine: the banner under KVM, then the VM stopped
    qemu = _fake_qemu(
        tmp_path,
        'echo "[    0.000000] Linux version 6.1.0-57-amd64"\n'
        'echo "KVM internal error. Suberror: 1"\n'
        'echo "emulation failure"\n'
        "exec sleep 30\n",
    )
    result = accel.probe_kvm(qemu, kernel, deadline=1.5)
    assert not result.usable
    assert result.reason == "KVM internal error. Suberror: 1"


def test_a_banner_then_silence_is_a_hang(tmp_path: Path, kernel: Path) -> None:
    qemu = _fake_qemu(tmp_path, 'echo "Linux version 6.1.0"\nexec sleep 30\n')
    result = accel.probe_kvm(qemu, kernel, deadline=1.0)
    assert not result.usable
    assert "did not finish booting within 1 s" in result.reason


def test_qemu_refusing_kvm_gives_its_last_words(tmp_path: Path, kernel: Path) -> None:
    qemu = _fake_qemu(
        tmp_path, 'echo "qemu-system-x86_64: failed to initialize kvm: Permission denied"\nexit 1\n'
    )
    result = accel.probe_kvm(qemu, kernel, deadline=5)
    assert not result.usable
    assert "failed to initialize kvm" in result.reason


def test_kvm_asked_for_is_refused_where_the_probe_found_it_broken(
    tmp_path: Path, kernel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BARMAP_CACHE", str(tmp_path / "cache"))
    # a QEMU that would hang if probed: asking for kvm outright never probes
    qemu = _fake_qemu(tmp_path, 'echo "Linux version 6.1.0"\nexec sleep 30\n')
    assert accel.resolve_accel("kvm", qemu, kernel) == "kvm"
    # once a probe found it broken, kvm is refused at once with the probe's reason
    verdict = accel.probe_kvm(qemu, kernel, deadline=0.5)
    accel.store_verdict(qemu, kernel, verdict)
    with pytest.raises(accel.KvmUnusable, match="did not finish booting"):
        accel.resolve_accel("kvm", qemu, kernel)
    assert accel.resolve_accel("tcg", qemu, kernel) == "tcg"
    assert accel.resolve_accel("auto", qemu, kernel) == "tcg"  # from the verdict, no probe


def test_each_kernel_keeps_its_own_verdict(
    tmp_path: Path, kernel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that boots two kernels probes each once: one verdict does not push out another
    (with one kept, each boot of the other kernel waited out a broken KVM's 20 s again)."""
    monkeypatch.setenv("BARMAP_CACHE", str(tmp_path / "cache"))
    ran = tmp_path / "probed"
    qemu = _fake_qemu(tmp_path, f"touch {ran}\nexec sleep 30\n")  # a probe would show
    other = tmp_path / "vmlinux-copy"
    other.write_bytes(kernel.read_bytes())
    accel.store_verdict(qemu, kernel, accel.ProbeResult(False, "hangs", 20.0))
    accel.store_verdict(qemu, other, accel.ProbeResult(True, "boots", 1.0))
    assert accel.resolve_accel("auto", qemu, kernel) == "tcg"
    assert accel.resolve_accel("auto", qemu, other) == "kvm"
    assert not ran.exists()
    # the oldest go first, past what is kept
    for i in range(accel.VERDICTS_KEPT):
        extra = tmp_path / f"vmlinux-{i}"
        extra.write_bytes(b"")
        accel.store_verdict(qemu, extra, accel.ProbeResult(True, "boots", 1.0))
    assert accel.cached_verdict(qemu, kernel) is None
    assert accel.cached_verdict(qemu, extra) is not None


def test_a_verdict_file_of_the_one_verdict_format_is_read(
    tmp_path: Path, kernel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BARMAP_CACHE", str(tmp_path))
    qemu = _fake_qemu(tmp_path, "exit 1\n")
    old = {"key": accel._cache_key(qemu, kernel), "usable": False, "reason": "hangs", "seconds": 20}
    (tmp_path / "kvm-probe.json").write_text(json.dumps(old))
    assert accel.cached_verdict(qemu, kernel) == accel.ProbeResult(False, "hangs", 20.0)
    (tmp_path / "kvm-probe.json").write_text("[not a verdict")
    assert accel.cached_verdict(qemu, kernel) is None
