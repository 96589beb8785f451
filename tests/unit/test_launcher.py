"""The launcher's failure paths, with programs that are not QEMU: a clear error, nothing left.

(The real QEMU's start and stop are exercised by every device and guest test.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from barmap.errors import QEMUStartError
from barmap.qemu import rundir
from barmap.qemu.launcher import QEMUProcess, leftover_qemu_pids
from barmap.qtest.machine import QTest


def _program(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-qemu"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def made_rundirs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The runtime directories this test makes (other workers make theirs meanwhile)."""
    made: list[Path] = []
    real_init = rundir.RunDir.__init__

    def init(self: rundir.RunDir, parent: Path | None = None) -> None:
        real_init(self, parent)
        made.append(self.path)

    monkeypatch.setattr(rundir.RunDir, "__init__", init)
    return made


def test_a_program_that_cannot_run(tmp_path: Path, made_rundirs: list[Path]) -> None:
    binary = tmp_path / "qemu"
    binary.write_bytes(b"")  # not executable
    with pytest.raises(QEMUStartError, match=r"cannot run .*qemu: Permission denied"):
        QTest(binary=binary).start()
    assert made_rundirs and not any(d.exists() for d in made_rundirs)


def test_exit_at_once_gives_its_last_words(tmp_path: Path, made_rundirs: list[Path]) -> None:
    binary = _program(tmp_path, 'echo "first line" >&2; echo "qemu: -device nope: bad" >&2; exit 1')
    with pytest.raises(QEMUStartError) as info:
        QTest(["-device", "nope"], binary=binary).start()
    err = info.value
    assert err.message == "QEMU exited with status 1: qemu: -device nope: bad"
    assert "first line" in err.stderr and err.cmdline[-2:] == ["-device", "nope"]
    assert made_rundirs and not any(d.exists() for d in made_rundirs)


def test_never_connecting_is_a_timeout_and_the_process_goes(tmp_path: Path) -> None:
    binary = _program(tmp_path, "exec sleep 60")
    proc = QEMUProcess()
    proc.connect_timeout = 0.5
    rundir = proc.listen("console").parent
    with pytest.raises(QEMUStartError, match="did not connect its console socket within"):
        proc.launch([str(binary)])
    assert proc.pid is not None and proc.pid not in leftover_qemu_pids()
    assert not proc.is_running() and proc.returncode is not None
    assert not rundir.exists()


def test_a_given_runtime_directory_is_the_callers(tmp_path: Path) -> None:
    binary = _program(tmp_path, "exit 3")
    proc = QEMUProcess(tmp_path)
    proc.listen("console")
    with pytest.raises(QEMUStartError, match="status 3"):
        proc.launch([str(binary)])
    assert tmp_path.is_dir() and os.listdir(tmp_path)  # stderr file kept, not removed


def test_sanitizer_reports_stop_qemu_unless_the_user_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = _program(tmp_path, 'echo "ubsan=$UBSAN_OPTIONS asan=$ASAN_OPTIONS" >&2; exit 1')
    monkeypatch.delenv("UBSAN_OPTIONS", raising=False)
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=1")
    with pytest.raises(QEMUStartError) as info:
        QTest(binary=binary).start()
    assert "ubsan=halt_on_error=1:" in info.value.message
    assert info.value.message.endswith("asan=detect_leaks=1")


@pytest.mark.parametrize("huge_pages", [True, False])
def test_huge_pages_are_the_callers_choice_and_outlive_exec(
    tmp_path: Path, huge_pages: bool
) -> None:
    """The flag reaches QEMU's own process (and its children): the kernel reports it."""
    status = Path("/proc/self/status").read_text()
    if "THP_enabled:" not in status:
        pytest.skip("this kernel does not report THP_enabled in /proc/PID/status")
    if huge_pages and "THP_enabled:\t0" in status:
        pytest.skip("this test runs without huge pages itself: its children inherit that")
    binary = _program(tmp_path, "grep THP_enabled /proc/self/status >&2; exit 1")
    proc = QEMUProcess()
    proc.listen("console")
    with pytest.raises(QEMUStartError) as info:
        proc.launch([str(binary)], huge_pages=huge_pages)
    assert info.value.message.endswith(f"THP_enabled:\t{int(huge_pages)}")
