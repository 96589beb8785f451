"""barmap.qemu.sessions and .hmp: finding a running session and talking HMP to it, against a
stand-in monitor that answers as QEMU's does (echo, terminal codes, the prompt)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from barmap.errors import BarmapError
from barmap.qemu import hmp, sessions
from barmap.qemu.rundir import RunDir

GREETING = b"QEMU 7.2.22 monitor - type 'help' for more information\r\n(qemu) "
ANSWERS = {b"info status": b"VM status: running\r\n", b"info name": b"barmap\r\n"}


def _hmp_server(path: Path) -> threading.Thread:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        listener.close()
        with conn:
            conn.sendall(GREETING)
            buf = b""
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    # QEMU's readline echoes the line with cursor codes, then answers
                    conn.sendall(line + b"\x1b[K\r\n" + ANSWERS.get(line, b"unknown\r\n"))
                    conn.sendall(b"(qemu) ")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def parent(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def live(parent: Path) -> Iterator[RunDir]:
    rundir = RunDir(parent)
    sessions.write_session(rundir.path, name="debug-1234", harness_pid=os.getpid(), qemu_pid=1,
                          gdb_port=1234, log_dir="build/logs/x", command="debug")  # fmt: skip
    _hmp_server(rundir.path / hmp.HMP_SOCKET)
    yield rundir
    rundir.remove()


def test_a_live_session_is_found_and_answers(
    live: RunDir, parent: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = sessions.find_session(None, parent)
    assert session.name == "debug-1234" and session.gdb_port == 1234
    assert sessions.find_session("debug-12", parent).rundir == live.path  # a prefix will do
    assert hmp.run_commands(session.hmp_socket, ["info status", "info name"]) == 0
    assert capsys.readouterr().out == "VM status: running\nbarmap\n"  # no echo, no codes


def test_a_dead_session_is_not_listed(parent: Path) -> None:
    rundir = RunDir(parent)
    sessions.write_session(rundir.path, name="gone")
    (rundir.path / hmp.HMP_SOCKET).touch()
    os.close(rundir._fd)  # the harness died: its lock went with it
    rundir._fd = None
    assert sessions.sessions(parent) == []
    with pytest.raises(BarmapError, match="no barmap session"):
        sessions.find_session(None, parent)


def test_names_must_pick_one(live: RunDir, parent: Path) -> None:
    other = RunDir(parent)
    try:
        sessions.write_session(other.path, name="debug-5678")
        (other.path / hmp.HMP_SOCKET).touch()
        with pytest.raises(BarmapError, match="2 sessions are running, name one"):
            sessions.find_session(None, parent)
        with pytest.raises(BarmapError, match="no single session named 'debug-'"):
            sessions.find_session("debug-", parent)
        assert sessions.find_session("debug-5678", parent).rundir == other.path
    finally:
        other.remove()


def test_a_monitor_that_is_gone_is_one_readable_error(tmp_path: Path) -> None:
    with pytest.raises(BarmapError, match="cannot connect to the monitor"):
        hmp.HmpClient(tmp_path / "nothing.sock")
