"""Reading barmap-check's records: the tool's own output lines, without a guest."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from barmap.guest import checks
from barmap.guest.console import CommandResult
from barmap.pattern import pattern

# what `barmap-check --strategy bar --pattern all --sizes page,whole` prints (abridged)
MATRIX = """\
strategy=bar bytes=4096 pattern=offset width=32 seed=0x5eed1234 mismatches=0 verdict=PASS
strategy=bar bytes=16777216 pattern=walk width=32 seed=0x5eed1235 mismatches=0 verdict=PASS
strategy=bar summary=1 passes=2 bytes=16781312 mismatches=0 verdict=PASS
"""
ONE_FAIL = """\
strategy=dma bytes=4096 pattern=offset width=32 seed=0x5eed1234 mismatches=1024 verdict=FAIL
  first mismatch at 0x0: expected 3412ed5e got ffffffff
"""
SKIPPED = 'strategy=reserved error=ENODEV verdict=SKIP note="no reserved region: load it"\n'


@dataclass
class Recorder:
    """Stands for the guest: answers each command with a canned (status, output)."""

    status: int
    output: str
    commands: list[str] = field(default_factory=list)

    def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        self.commands.append(command)
        return CommandResult(self.status, self.output)


def test_parse_kv_takes_quoted_values_and_skips_words() -> None:
    assert checks.parse_kv(SKIPPED) == {
        "strategy": "reserved", "error": "ENODEV", "verdict": "SKIP",
        "note": "no reserved region: load it",
    }  # fmt: skip
    assert checks.parse_kv("  first mismatch at 0x0: expected") == {}
    assert checks.parse_kv("a=1 a=2 b==c") == {"a": "2", "b": "=c"}


def test_the_summary_line_is_the_result() -> None:
    vm = Recorder(0, MATRIX)
    r = checks.run_tool(vm, "bar", seed=0x5EED1234)  # type: ignore[arg-type]
    assert (r.strategy, r.bytes_checked, r.mismatches, r.verdict) == ("bar", 16781312, 0, "PASS")
    assert r.passed and r.extra["passes"] == "2"
    assert vm.commands == ["barmap-check --dev /dev/barmap0 --strategy bar --seed 0x5eed1234"]


def test_a_single_failing_pass_is_the_result() -> None:
    r = checks.run_tool(Recorder(1, ONE_FAIL), "dma")  # type: ignore[arg-type]
    assert (r.bytes_checked, r.mismatches, r.verdict, r.passed) == (4096, 1024, "FAIL", False)
    assert "first mismatch" in r.detail


def test_a_nonzero_status_fails_even_a_pass_line() -> None:
    r = checks.run_tool(Recorder(2, MATRIX), "bar")  # type: ignore[arg-type]
    assert r.verdict == "FAIL" and "summary=1" in r.detail


@pytest.mark.parametrize("output", ["", "barmap-check: /dev/barmap0: No such file\n", MATRIX])
def test_no_line_for_the_strategy_is_a_failure(output: str) -> None:
    r = checks.run_tool(Recorder(1, output), "dma")  # type: ignore[arg-type]
    assert r.verdict == "FAIL" and r.bytes_checked == 0 and "no result line" in r.detail


@dataclass
class HostView:
    """Stands for QMP: BAR2 at 0xfe000000 holding ``data``."""

    data: bytes

    def barmap_bar(self, qdev_id: str) -> tuple[int, int]:
        return 0xFE000000, len(self.data)

    def read_phys(self, addr: int, size: int) -> bytes:
        return self.data[:size]


@dataclass
class VM:
    qmp: HostView


def test_host_view_compares_with_the_tools_pattern() -> None:
    good = pattern(0x1000, 7)
    assert checks.host_view_check(VM(HostView(good)), seed=7).passed  # type: ignore[arg-type]
    bad = good[:0x20] + b"\xff" * 8 + good[0x28:]
    r = checks.host_view_check(VM(HostView(bad)), seed=7)  # type: ignore[arg-type]
    assert (r.verdict, r.mismatches) == ("FAIL", 2)
    assert "first mismatch at 0x20" in r.detail and "got ffffffff" in r.detail
