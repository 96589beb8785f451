"""The crash-marker parser, on console logs captured from real guests."""

from __future__ import annotations

from pathlib import Path

import pytest

from barmap.guest.crash import ANY_MARKER, find_crash

DATA = Path(__file__).resolve().parents[1] / "data"


def test_clean_boot_has_no_marker() -> None:
    text = (DATA / "console-clean-boot.log").read_text(errors="replace")
    assert "barmap-guest: init done" in text
    assert find_crash(text) is None
    assert ANY_MARKER.search(text) is None


def test_sysrq_panic_is_found_with_its_trace() -> None:
    text = (DATA / "console-panic-sysrq.log").read_text(errors="replace")
    report = find_crash(text)
    assert report is not None
    assert report.kind == "panic"
    assert "sysrq triggered crash" in report.line
    assert "Call Trace:" in report.excerpt
    assert "sysrq_handle_crash" in report.excerpt


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("[   12.5] BUG: kernel NULL pointer dereference, address: 0000000000000008", "bug"),
        ("[    3.1] WARNING: CPU: 0 PID: 91 at drivers/misc/barmap.c:120 f+0x1/0x2", "warning"),
        ("[    3.1] general protection fault, probably for non-canonical address", "gpf"),
        ("[   99.0] INFO: task sh:91 blocked for more than 120 seconds.", "hung-task"),
        ("[   30.0] rcu: INFO: rcu_preempt self-detected stall on CPU", "rcu-stall"),
        ("[    5.0] UBSAN: shift-out-of-bounds in drivers/misc/barmap.c:10:5", "ubsan"),
        ("[    5.0] BUG: KASAN: slab-out-of-bounds in f+0x1/0x2", "kasan"),
        ("[    7.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [sh:91]", "soft-lockup"),
        ("[    7.0] kernel BUG at mm/memory.c:2000!", "kernel-bug"),
        ("[    2.661026] Call Trace:", "call-trace"),
        ("Call Trace:", "call-trace"),
    ],
)
def test_markers(line: str, kind: str) -> None:
    report = find_crash(f"[    1.0] harmless line\n{line}\n[    1.1] after\n")
    assert report is not None
    assert report.kind == kind
    assert report.line == line.strip()


@pytest.mark.parametrize(
    "line",
    [
        "[    0.0] Warning: unrelated firmware message",
        "[    1.0] ACPI BIOS Warning (bug): table mismatch",  # 'bug' but no 'BUG: '
        "barmap# echo WARNING",
    ],
)
def test_near_misses_are_not_crashes(line: str) -> None:
    assert find_crash(line + "\n") is None


def test_arm64_reports_are_found() -> None:
    from barmap.guest.crash import find_crash

    oops = (
        "[   12.3] Unable to handle kernel paging request at virtual address dead000000000100\n"
        "[   12.3] Internal error: Oops: 0000000096000044 [#1] PREEMPT SMP\n"
        "[   12.3] Call trace:\n[   12.3]  barmap_mmap+0x40/0x1a0 [barmap]\n"
    )
    report = find_crash(oops)
    assert report is not None and report.kind == "null-deref", report
    abort = "[    3.1] Internal error: synchronous external abort: 0000000096000010 [#1] SMP\n"
    found = find_crash(abort)
    assert found is not None and found.kind == "oops", found
    assert find_crash("[    1.0] Call trace:\n") is not None
