"""Private runtime directories, and the sweep of those whose harness died.

Each QEMU the harness starts has a 0700 directory ``barmap-run-*`` under the
temporary directory for its sockets and its stderr.  The process that made it
holds an exclusive ``flock`` on the ``lock`` file inside for as long as the
directory is in use, and the kernel drops that lock when the process ends,
however it ends.  A harness killed with SIGKILL cannot remove its directory,
so each new directory first sweeps: a directory whose lock can be taken
belongs to no living process and is removed.  Nothing is judged by process
ids, so concurrent harnesses (xdist workers, other users' runs) are safe; a
directory without a lock file (still being made, or made by an older harness)
and another user's directory are left alone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
from pathlib import Path

PREFIX = "barmap-run-"
LOCK = "lock"


class RunDir:
    """A fresh locked runtime directory (``path``), until ``remove()``."""

    def __init__(self, parent: Path | None = None) -> None:
        sweep(parent)
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))  # mode 0700
        staging = self.path / f".{LOCK}.new"
        fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # nobody else can have opened it yet
        # a sweeper sees the lock file only once it is locked
        os.rename(staging, self.path / LOCK)
        self._fd: int | None = fd

    def remove(self) -> None:
        """Delete the directory (still holding its lock), then let the lock go."""
        if self._fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = None

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def sweep(parent: Path | None = None) -> list[Path]:
    """Remove this user's runtime directories whose lock no process holds; return them."""
    removed = []
    for path in Path(parent or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            st = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            continue
        try:
            fd = os.open(path / LOCK, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue  # no lock file: not ours to judge
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # held: a live harness uses it
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)
        removed.append(path)
    return removed
