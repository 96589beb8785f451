"""barmap.debug.interactive: the console's keys (Ctrl-a c for the monitor, Ctrl-] to quit)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from barmap.debug.interactive import _Terminal, _Trace


class FakeVM:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.hmp_lines: list[str] = []
        self.console = SimpleNamespace(send=self.sent.append)
        self.qmp = SimpleNamespace(hmp=self._hmp)

    def _hmp(self, line: str) -> str:
        self.hmp_lines.append(line)
        return f"answer to {line}\r\n"


@pytest.fixture
def term() -> Iterator[tuple[_Terminal, FakeVM]]:
    vm = FakeVM()
    rfd, wfd = os.pipe()  # not a terminal: nothing to switch to raw mode
    yield _Terminal(vm, None, stdin=rfd, out=io.BytesIO()), vm  # type: ignore[arg-type]
    os.close(rfd)
    os.close(wfd)


def test_keys_go_to_the_guest_and_ctrl_bracket_quits(term: tuple[_Terminal, FakeVM]) -> None:
    t, vm = term
    assert t.keys(b"ls\r")
    assert not t.keys(b"x\x1dnot sent")
    assert vm.sent == [b"ls\r", b"x"]


def test_ctrl_a_prefix(term: tuple[_Terminal, FakeVM]) -> None:
    t, vm = term
    assert t.keys(b"\x01a")  # a literal Ctrl-a for the guest's shell
    assert t.keys(b"\x01")  # split across reads
    assert t.keys(b"z")  # not a barmap key: both go to the guest
    assert not t.keys(b"\x01x")
    assert vm.sent == [b"\x01", b"\x01z"]


def test_the_monitor_takes_lines_and_holds_the_console_back(
    term: tuple[_Terminal, FakeVM],
) -> None:
    t, vm = term
    assert t.keys(b"pwd\r\x01cignored")
    assert t.in_monitor and vm.sent == [b"pwd\r"]
    t.monitor_line(b"info pci\n")
    assert vm.hmp_lines == ["info pci"]
    t.held.append(b"guest output meanwhile")
    t.monitor_line(b"\n")  # an empty line: back to the console, held output shown
    assert not t.in_monitor and not t.held
    out = t.out.getvalue()  # type: ignore[attr-defined]
    assert b"answer to info pci\n(qemu) " in out  # the terminal is cooked: no CR added
    assert out.endswith(b"guest output meanwhile")


def test_trace_lines_come_whole(tmp_path: Path) -> None:
    log = tmp_path / "trace.log"
    trace = _Trace(log)
    assert trace.poll() == b""  # not there yet
    log.write_bytes(b"barmap_mmio_read addr 0x0\nbarmap_mmio_wr")
    assert trace.poll() == b"trace: barmap_mmio_read addr 0x0\r\n"
    with log.open("ab") as f:
        f.write(b"ite addr 0x8\n")
    assert trace.poll() == b"trace: barmap_mmio_write addr 0x8\r\n"
