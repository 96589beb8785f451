"""The console protocol against a real shell: framing, output, status, timeouts, kernel reports.

A ``/bin/sh`` reads commands from one end of a socket pair, as the guest's
shell reads the serial console; the harness's drain thread, pexpect and
``Shell`` work on the other end exactly as for a VM.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from barmap.errors import CommandFailed, ConsoleTimeout, GuestCrash, MachineDied
from barmap.guest.console import Console, ConsoleDrain, Shell


class Host:
    def __init__(self, tmp_path: Path) -> None:
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen(["sh"], stdin=theirs, stdout=theirs, stderr=theirs)
        theirs.close()
        self.sock = ours
        self.log = tmp_path / "console.log"
        self.drain = ConsoleDrain(ours, self.log)
        self.drain.start()
        self.console = Console(ours, self.drain)
        self.shell = Shell(
            self.console, command_timeout=10, alive=lambda: self.proc.poll() is None,
            crash_settle=0.3,
        )  # fmt: skip

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.sock.shutdown(socket.SHUT_RDWR)
        self.drain.join(timeout=5)
        self.sock.close()
        self.console.close()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(tmp_path)
    yield h
    h.close()


def test_output_and_status_are_exactly_the_commands(host: Host) -> None:
    assert tuple(host.shell.run("printf 'a\\nb\\n'")) == (0, "a\nb\n")
    assert tuple(host.shell.run("echo err >&2; exit_code() { return 3; }; exit_code")) == (
        3, "err\n",
    )  # fmt: skip
    assert host.shell.run("true").output == ""


def test_the_typed_line_never_matches_its_own_markers(host: Host) -> None:
    line, start, end = host.console.framed("echo hi")
    assert not start.search(line) and not end.search(line)
    n = re.search(r"BM''START-(\d+);", line).group(1)  # type: ignore[union-attr]
    assert start.search(f"BMSTART-{n}\r\n") and end.search(f"BMEND-{n}-0\n")
    _, start2, _ = host.console.framed("echo hi")
    assert not start2.search(f"BMSTART-{n}\n")  # each command has its own number


@pytest.mark.parametrize(
    "command,sep",
    [("sleep 0 &", " "), ("sleep 0 & ", " "), ("true && true", "; "), ("a & b", "; ")],
)
def test_framing_of_background_commands(host: Host, command: str, sep: str) -> None:
    line, _, _ = host.console.framed(command)
    assert f"{command.rstrip()}{sep}echo BM''END-" in line


def test_a_background_command_leaves_the_shell_usable(host: Host) -> None:
    assert host.shell.run("sleep 5 &").status == 0
    assert host.shell.run("echo still here").output == "still here\n"


def test_check_raises_command_failed_with_status_and_output(host: Host) -> None:
    with pytest.raises(CommandFailed) as info:
        host.shell.run("echo why; false", check=True)
    err = info.value
    assert (err.status, err.output, err.command) == (1, "why\n", "echo why; false")
    assert "why" in info.value.console_tail


def test_a_silent_command_times_out_with_the_console_tail(host: Host) -> None:
    host.shell.run("echo before-the-hang")
    with pytest.raises(ConsoleTimeout) as info:
        host.shell.run("sleep 30", timeout=0.5)
    assert info.value.command == "sleep 30" and info.value.timeout == 0.5
    assert "before-the-hang" in info.value.console_tail


def test_a_kernel_report_fails_a_command_that_passed(host: Host) -> None:
    report = "[   12.5] BUG: kernel NULL pointer dereference, address: 0000000000000008"
    with pytest.raises(GuestCrash) as info:
        host.shell.run(f"echo '{report}'; echo '[   12.6] Call Trace:'; echo ' <TASK>'")
    err = info.value
    assert err.marker == "bug" and "NULL pointer dereference" in str(err)
    assert "Call Trace:" in err.excerpt and "<TASK>" in err.excerpt
    assert host.shell.run("echo once").output == "once\n"  # reported once, then commands go on


def test_a_marker_split_across_reads_is_found(host: Host) -> None:
    with pytest.raises(GuestCrash) as info:
        host.shell.run("printf 'Kernel pa'; sleep 0.3; printf 'nic - not syncing: boom\\n'")
    assert info.value.marker == "panic"


def test_the_shell_going_away_is_machine_died(host: Host) -> None:
    with pytest.raises(MachineDied, match="exit"):
        host.shell.run("exit 0")


def test_one_command_line_only(host: Host) -> None:
    with pytest.raises(ValueError):
        host.shell.run("echo a\necho b")


def test_the_log_keeps_every_byte_and_the_tail_drops_escapes(host: Host) -> None:
    host.shell.run("printf '\\033[1mbold\\033[0m\\n'")
    host.shell.run("echo second")
    assert b"\x1b[1mbold\x1b[0m" in host.log.read_bytes()
    assert re.search(r"bold\r?\n", host.drain.tail()) and "\x1b" not in host.drain.tail()
    assert "second" in host.drain.text()


def test_buffered_is_what_expect_left_over(host: Host) -> None:
    host.console.send("echo one; echo two\n")
    host.console.expect("one", timeout=5)
    host.console.expect("two", timeout=5)
    host.console.send("echo three\n")
    host.console.expect("thr", timeout=5)
    assert host.console.buffered().startswith("ee")


def test_milestones_are_timed_once_when_they_first_arrive(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    drain = ConsoleDrain(ours, tmp_path / "log", milestones=("init start", "init done"))
    drain.start()
    try:
        theirs.sendall(b"early boot\r\ninit st")
        theirs.sendall(b"art\r\n")  # a milestone split across reads still counts
        for _ in range(100):
            if "init start" in drain.seen:
                break
            time.sleep(0.01)
        theirs.sendall(b"init done\r\ninit start again\r\n")
        theirs.shutdown(socket.SHUT_WR)
        drain.join(timeout=5)
    finally:
        theirs.close()
        ours.close()
    assert set(drain.seen) == {"", "init start", "init done"}
    assert drain.seen[""] <= drain.seen["init start"] <= drain.seen["init done"]


def test_the_log_leaves_out_terminal_queries_even_split_across_reads() -> None:
    from barmap.guest.console import LogFilter

    f = LogFilter()
    chunks = [b"~ # \x1b[6", b"nls\r\n\x1b", b"[1mbold\x1b[0m \x1b[c", b"end\x1b["]
    got = b"".join(f.feed(c) for c in chunks) + f.flush()
    assert got == b"~ # ls\r\n\x1b[1mbold\x1b[0m end\x1b["
    assert LogFilter().feed(b"plain") == b"plain"
