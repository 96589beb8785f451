"""The registry of running interactive sessions (``barmap run``, ``barmap debug``).

Each describes itself in ``session.json`` in its runtime directory: its name, the
harness's and QEMU's process ids, the gdb port, the log directory; a session is live
while its runtime directory's lock is held.  ``barmap monitor`` finds them here.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from barmap.errors import BarmapError
from barmap.qemu.hmp import HMP_SOCKET
from barmap.qemu.rundir import LOCK, PREFIX

SESSION_FILE = "session.json"


@dataclass(frozen=True)
class SessionInfo:
    name: str
    rundir: Path
    harness_pid: int
    qemu_pid: int
    gdb_port: int | None
    log_dir: str
    command: str

    @property
    def hmp_socket(self) -> Path:
        return self.rundir / HMP_SOCKET


def write_session(rundir: Path, **fields: object) -> Path:
    """Describe a running session in its runtime directory (``session.json``)."""
    path = rundir / SESSION_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(fields))
    tmp.replace(path)
    return path


def _live(rundir: Path) -> bool:
    """Whether a harness still holds the directory's lock."""
    try:
        fd = os.open(rundir / LOCK, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def sessions(parent: Path | None = None) -> list[SessionInfo]:
    """This user's running sessions that have a monitor, oldest first."""
    found = []
    for rundir in Path(parent or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            if rundir.stat().st_uid != os.getuid():
                continue
            data = json.loads((rundir / SESSION_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not _live(rundir) or not (rundir / HMP_SOCKET).exists():
            continue
        found.append(
            SessionInfo(
                name=str(data.get("name", rundir.name)),
                rundir=rundir,
                harness_pid=int(data.get("harness_pid", 0)),
                qemu_pid=int(data.get("qemu_pid", 0)),
                gdb_port=data.get("gdb_port"),
                log_dir=str(data.get("log_dir", "")),
                command=str(data.get("command", "")),
            )
        )
    return sorted(found, key=lambda s: (s.rundir.stat().st_mtime, s.name))


def find_session(name: str | None, parent: Path | None = None) -> SessionInfo:
    """The session called ``name`` (or whose name starts with it); the only one without."""
    live = sessions(parent)
    listing = ", ".join(s.name for s in live) or "none"
    if name is None:
        if len(live) == 1:
            return live[0]
        if not live:
            raise BarmapError("no barmap session with a monitor is running (barmap run/debug)")
        raise BarmapError(f"{len(live)} sessions are running, name one: {listing}")
    exact = [s for s in live if s.name == name]
    if exact:
        return exact[0]
    prefix = [s for s in live if s.name.startswith(name)]
    if len(prefix) == 1:
        return prefix[0]
    raise BarmapError(f"no single session named {name!r} (running: {listing})")
