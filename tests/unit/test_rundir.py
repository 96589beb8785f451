"""Runtime directories: a live harness's is never swept, a dead one's always is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from barmap.qemu.rundir import LOCK, PREFIX, RunDir, sweep

_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from barmap.qemu.rundir import RunDir
    d = RunDir(Path(sys.argv[1]))
    (d / "qmp.sock").write_text("")
    print(d.path, flush=True)
    time.sleep(600)
""")


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Another harness process with a live runtime directory under tmp_path."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    path = Path(proc.stdout.readline().strip())
    yield proc, path
    proc.kill()
    proc.wait()


def test_a_live_harness_keeps_its_directory(holder: tuple[subprocess.Popen[str], Path]) -> None:
    _, path = holder
    assert path.name.startswith(PREFIX) and (path / LOCK).is_file()
    assert sweep(path.parent) == []
    RunDir(path.parent).remove()  # a new start sweeps too
    assert (path / "qmp.sock").exists()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_dead_harness_directory_is_swept_at_the_next_start(
    holder: tuple[subprocess.Popen[str], Path], sig: signal.Signals
) -> None:
    proc, path = holder
    proc.send_signal(sig)
    proc.wait()
    assert path.exists()  # nobody could clean up
    fresh = RunDir(path.parent)
    assert not path.exists()
    assert fresh.path.is_dir() and (fresh / LOCK).is_file()
    fresh.remove()
    assert not fresh.path.exists()


def test_two_directories_of_one_process_do_not_sweep_each_other(tmp_path: Path) -> None:
    first = RunDir(tmp_path)
    second = RunDir(tmp_path)
    assert first.path.is_dir() and second.path.is_dir()
    first.remove()
    second.remove()
    assert list(tmp_path.iterdir()) == []


def test_what_is_not_ours_to_judge_is_left_alone(tmp_path: Path) -> None:
    lockless = tmp_path / f"{PREFIX}old"  # an older harness's, or one being made
    lockless.mkdir()
    (lockless / "console.sock").write_text("")
    plain = tmp_path / f"{PREFIX}file"
    plain.write_text("not a directory")
    other = tmp_path / "barmap-other"
    other.mkdir()
    (other / LOCK).write_text("")
    assert sweep(tmp_path) == []
    assert lockless.is_dir() and plain.is_file() and other.is_dir()


def test_directories_are_private(tmp_path: Path) -> None:
    d = RunDir(tmp_path)
    assert os.stat(d.path).st_mode & 0o777 == 0o700
    d.remove()
